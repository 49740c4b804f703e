"""The MESH bridge: trusts that have only a MESH mailbox send to and receive from the hub through NHS England's
Message Exchange for Social Care and Health (see README, "MESH bridge"). inbound.py reads the inbox into the
intake; bridge.py runs it beside the MESH delivery channel as one process. The MESH client is service/mesh/."""

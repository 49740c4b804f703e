"""The MESH bridge: trusts that have only a MESH mailbox send to and receive from the hub through NHS England's
Message Exchange for Social Care and Health (see README, "MESH bridge")."""

"""MESH, the client side: the hub's MESH mailbox over NHS England's Message Exchange for Social Care and Health
(mailbox.py) and its settings. The delivery channel (service/delivery/mesh.py) and the bridge that reads the inbox
into the intake (service/meshbridge/) both use it; it imports neither."""

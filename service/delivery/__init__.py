"""Getting accepted messages to their recipients: mailbox pull (mailbox.py) and push delivery with retries,
per-recipient queues, dead letters and non-delivery reports (relay.py and the modules it uses), MESH as a channel
(mesh.py, over the MESH client in service/mesh/); and the hub's own messages: their one sender (hubmail.py) and the
duties that send them, the safety net's overdue answers (safetynet.py) and pathway clock alerts (clockwatch.py)."""

"""Getting accepted messages to their recipients: mailbox pull (mailbox.py) and push delivery with retries,
per-recipient queues, dead letters and non-delivery reports (relay.py and the modules it uses)."""

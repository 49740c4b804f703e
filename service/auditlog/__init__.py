"""The tamper-evident audit log: events and appending them (events.py, appending.py: the store only writes bytes),
the RFC 9162 Merkle tree, the checkpoint writer (checkpoints.py; the note format is service/identity/notes.py),
export, and the offline verifier (log_check.py, verify_cli.py), which reads checkpoints without the writer."""

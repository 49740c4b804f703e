"""The tamper-evident audit log: events, their leaves, and (later) the Merkle tree and checkpoints."""

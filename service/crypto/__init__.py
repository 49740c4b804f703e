"""Encryption at rest: per-payload data keys (envelope.py), the key-encryption key behind them (kek.py), the
domain helper that seals and opens stored payloads (vault.py), KEK rotation (rotation.py) and crypto-shredding
at the end of retention (retention.py). The store only ever sees ciphertext and wrapped keys."""

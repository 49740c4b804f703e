"""Test fixtures' building blocks: real PostgreSQL databases, a running hub, trust clients."""

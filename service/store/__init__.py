"""Persistence: every SQL statement lives here, one module per concern."""

"""Housekeeping: the duties that enforce each table's stated lifetime (docs/operations.md, "Table lifetimes"),
scheduled by the hub every HANDOVER_HOUSEKEEPING_SECONDS, one process at a time, observable on /metrics."""

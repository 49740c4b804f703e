"""Persistence: every SQL statement lives here, one module per concern. The bottom room: it takes and gives plain
values and bytes (an audit leaf arrives as bytes, service/auditlog/appending.py makes them) and imports no domain
code."""

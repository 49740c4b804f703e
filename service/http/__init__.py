"""The HTTP edge: request parsing and response shaping; no SQL, no business rules. Its shared `Services` (context.py)
is built from the hub's parts (service/hub.py) by service/app.py; the staff pages (service/ui/) sit above it."""

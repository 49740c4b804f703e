"""The HTTP edge: request parsing and response shaping; no SQL, no business rules."""

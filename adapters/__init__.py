"""Bridges between Handover and the outside: the trust client, message builders, the demo scenario.

Adapters depend on `service/`; `service/` never imports them (except the CLI, the composition root).
"""

"""Handover episodes: one per patient referral, its state machine and the clinical responsibility ledger (pure),
the tracker that records them from accepted messages, deadlines and pathway clocks, the alerts' message bodies
(alerts.py; delivery/ sends them), and cancer waiting times (cwt_*.py)."""

"""Handover episodes: one per patient referral, its state machine and the clinical responsibility ledger."""

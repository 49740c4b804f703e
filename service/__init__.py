"""Handover: a secure FHIR messaging hub through which NHS trusts hand patients over to each other."""

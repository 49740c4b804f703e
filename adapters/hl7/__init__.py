"""The trust-side HL7 v2 connector: an MLLP listener for the trust's EPR that turns HL7 v2 into signed Handover
messages (and what the trust receives back into HL7 v2 for the EPR). Mapping tables: adapters/README.md."""

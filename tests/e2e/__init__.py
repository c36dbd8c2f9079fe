"""End-to-end tests through real pcscd, vpcd, OpenSC and TCP bridges."""

"""Reproducible speed measurements of browserfleet, each against a baseline run alongside."""

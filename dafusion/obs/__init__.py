"""Observations: the canonical observation table, readers (IGRA2) and the
synthetic OSSE network. Observation handlers (likelihood terms) join here."""

"""Observations: the likelihood-term contract (`base.py`), the canonical observation
table, readers (IGRA2), the synthetic OSSE network, the sources (likelihood terms:
stations, gridded fields, the emulator forecast) and the background check."""

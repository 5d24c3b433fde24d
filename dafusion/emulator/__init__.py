"""Forecast models (LUCIE-style SFNO emulator, persistence). Not built yet:
see docs/ARCHITECTURE.md for the planned interface."""

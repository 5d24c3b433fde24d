"""The cycle driver and run directories (`cycler run`). Not built yet: see
docs/ARCHITECTURE.md for the planned interface."""

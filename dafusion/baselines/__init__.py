"""Classical analysis methods for the same cycle: optimal interpolation, LETKF."""

"""Forecast models: the interface (base.py), persistence, and the LUCIE-style
SFNO emulator (to come). Regridding lives in dafusion/regrid.py."""

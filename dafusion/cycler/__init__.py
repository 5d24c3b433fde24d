"""The cycle driver (`cycler run`, `run.py`), skill metrics (`metrics.py`) and run
comparison (`compare.py`)."""

"""The cycle driver (`cycler run`, `run.py`), ensemble scores (`metrics.py`), run
comparison (`compare.py`) and the report (`report.py`)."""

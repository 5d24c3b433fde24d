"""The assimilation cycle: the loop (`run.py`) over an experiment's parts
(`experiment.py`), its modes (`modes.py`), the sources of each analysis (`sources.py`),
every seed (`seeding.py`), what a cycle records (`record.py`) and the run directory
that holds it (`rundir.py`); ensemble scores (`metrics.py`), run comparison
(`compare.py`), sweeps (`sweep.py`) and the report (`report.py`, `runview.py`,
`figures.py`)."""

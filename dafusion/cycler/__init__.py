"""The assimilation cycle: the loop (`run.py`: observe → analyse → record → advance)
over an experiment's parts (`experiment.py`), its modes (`modes.py`), its observation
sources (`sources/`), the analysis step (`analysis.py`), every seed (`seeding.py`),
who writes while it runs (`recorder.py`), what a cycle records (`record.py`,
`metrics.py`) and the run directory that holds it (`rundir.py`); members across
processes (`ranks.py`). Many runs are `campaigns/` (sweeps, executors, statistics,
comparison); what a run shows is `reporting/` (report, figures, bench)."""

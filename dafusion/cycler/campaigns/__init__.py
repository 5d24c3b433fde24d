"""Many runs: a sweep of settings (``sweep.py``) and its index (``index.py``), where its
runs execute (``executors.py``), statistics over a campaign's windows
(``statistics.py``) and the comparison of runs (``compare.py``)."""

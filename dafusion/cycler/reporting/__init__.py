"""What a run shows: the report page (``report.py``) with its figures
(``figures.py``) over a run's files (``runview.py``), and ``cycler bench``, the cost of
one analysis (``bench.py``)."""

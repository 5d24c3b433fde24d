"""Observation sources: one object per enabled ``run.sources.<name>``, built once per
run, giving each analysis its likelihood terms (paper eq. 14) and keeping what it
needs between cycles (``state.npz``).

``base.py`` holds the contract (:class:`ObservationSource`), what a source sees of a
cycle (:class:`Cycle`) and the one place that builds the sources of an experiment;
one file per source: ``stations.py`` (radiosondes), ``gridded.py`` (coarse fields of
the truth, the OSSE's LR), ``emulator.py`` (the emulator state as a
pseudo-observation, with the adaptive Σ_y of ``adaptive.py``). The likelihood terms
themselves are ``dafusion.obs``'s.
"""

from dafusion.cycler.sources.base import (
                                          Cycle,
                                          ObservationSource,
                                          build_sources,
                                          carry,
                                          observe,
                                          restore,
                                          verifying,
)

__all__ = ["Cycle", "ObservationSource", "build_sources", "carry", "observe", "restore",
           "verifying"]

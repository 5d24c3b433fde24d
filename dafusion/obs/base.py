"""The interface of an observation source.

An observation source *is* a likelihood term of the posterior sampler
(``dafusion.prior.base.LikelihoodTerm``: ``name``, ``y``, ``sigma_y``,
``gamma``, ``weight``, ``operator``), all in normalised units, converted once
by the normaliser, plus what the diagnostics need. The guidance is the sum
over enabled sources, so a new observation type is one new file in ``obs/``
with a class that has these attributes (no base class to inherit).

Units of Σ_y and Γ̂: normalised, as in the paper. Station sources derive Σ_y
from each observation's physical error std, (error_std / std_channel)², unless
a normalised value is configured; gridded sources take a configured value.

Sources so far: ``stations.StationObs`` (radiosondes, IGRA2, synthetic),
``gridded.GriddedObs`` (coarse fields, the paper's LR), ``forecast.ForecastObs``
(the emulator forecast as a pseudo-observation, the paper's LUCIE term).
"""

from __future__ import annotations

from typing import Protocol

from dafusion.prior.base import LikelihoodTerm


class ObservationSource(LikelihoodTerm, Protocol):
    """A likelihood term that can also describe itself for the diagnostics."""

    def diagnostics(self) -> dict[str, object]:
        """``{"source": name, "used": n, "rejected": {reason: count}, ...}``."""
        ...

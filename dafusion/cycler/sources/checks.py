"""What the stations and gridded sources share: the background check of their term
(when their settings ask for one) and their rejection counts."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from dafusion.obs.qc import background_check

if TYPE_CHECKING:
    import torch

    from dafusion.config import GriddedSourceConfig, StationSourceConfig
    from dafusion.obs.base import LikelihoodTerm


def checked(term: LikelihoodTerm, settings: StationSourceConfig | GriddedSourceConfig,
            background: torch.Tensor | None) -> LikelihoodTerm:
    """``term`` after its background check (``settings.background_check`` k > 0 and a
    background ``(C, H, W)`` normalised exists), else ``term`` itself."""
    if settings.background_check <= 0 or background is None:
        return term
    return background_check(term, background, settings.background_std,
                            settings.background_check)


class Rejections:
    """A source's rejected observations by reason, summed over the run's cycles."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, term: LikelihoodTerm) -> None:
        self.counts.update(term.diagnostics()["rejected"])

    def carry(self) -> dict[str, Any]:
        return {"rejected": dict(self.counts)}

    def restore(self, meta: dict[str, Any]) -> None:
        self.counts = Counter({str(k): int(v) for k, v in meta.get("rejected", {}).items()})

"""Every random number of a run comes from a generator seeded here.

Member ``m`` of analysis ``cycle`` draws all its sampler noise from a generator
seeded by ``(seed · 100003 + cycle, m)`` (``prior.sampler.member_seeds``), the
perturbation of its emulator pseudo-observation (``run.sources.emulator.perturb``)
from ``(seed · 100003 + cycle, m, 1)``, and the gridded observation noise of a
cycle from ``seed · 100003 + cycle + 7919``. No
random state is carried between cycles, so a resumed run draws what an
uninterrupted one draws, and a member's sample does not depend on the ensemble
size. ``seeds.json`` is :func:`record`: the seeds themselves, from these functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dafusion.prior.sampler import member_generators, member_seeds


def analysis_seed(run_seed: int, cycle: int) -> int:
    """The seed whose (seed, member) pairs seed the members of analysis ``cycle``."""
    return run_seed * 100003 + cycle


def gridded_noise_seed(run_seed: int, cycle: int) -> int:
    return run_seed * 100003 + cycle + 7919


def generators(run_seed: int, cycle: int, members: int,
               device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per member of analysis ``cycle``."""
    return member_generators(analysis_seed(run_seed, cycle), range(members), device)


def perturbation_seeds(run_seed: int, cycle: int, members: int) -> list[int]:
    """The torch seed of each member's pseudo-observation perturbation at ``cycle``."""
    base = analysis_seed(run_seed, cycle)
    return [int(np.random.SeedSequence([base, m, 1]).generate_state(1, np.uint64)[0])
            % 2**63 for m in range(members)]


def perturbation_generators(run_seed: int, cycle: int, members: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s)
            for s in perturbation_seeds(run_seed, cycle, members)]


def gridded_generator(run_seed: int, cycle: int) -> torch.Generator:
    return torch.Generator().manual_seed(gridded_noise_seed(run_seed, cycle))


def record(run_seed: int, times: np.ndarray, members: int) -> dict[str, Any]:
    """What ``seeds.json`` holds: the torch seed of every generator of every cycle."""
    return {"run.seed": run_seed,
            "rule": "member m of cycle c: torch.Generator().manual_seed(members[m]) with "
                    "members = dafusion.prior.sampler.member_seeds(seed * 100003 + c, "
                    "range(M)); gridded observation noise: seed * 100003 + c + 7919; "
                    "pseudo-observation perturbations: SeedSequence([seed * 100003 + c, m, 1])",
            "cycles": [{"cycle": c, "valid_time": str(t)[:16],
                        "members": member_seeds(analysis_seed(run_seed, c), range(members)),
                        "gridded_noise": gridded_noise_seed(run_seed, c),
                        "perturbations": perturbation_seeds(run_seed, c, members)}
                       for c, t in enumerate(times)]}

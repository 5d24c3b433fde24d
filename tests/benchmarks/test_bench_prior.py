"""Opt-in benchmarks of the posterior sampler (``pytest tests/benchmarks -o addopts=""``).

One guided analysis with the demo architecture (untrained weights cost the same
as trained ones) and the demo step count, 8 and 16 members; the batched
ensemble against a member-by-member loop; guided against unguided.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dafusion.config import load_config
from dafusion.prior.edm import EDMDenoiser
from dafusion.prior.network import SongUNet
from dafusion.prior.sampler import PosteriorSampler, member_generators

CFG = load_config(None)
SHAPE = (len(CFG.data.channels), 32, 64)


@dataclasses.dataclass
class PointObs:
    """A station-like term: 600 grid points of every channel observed."""

    name: str = "points"
    y: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(600))
    sigma_y: float = 5e-4
    gamma: float = 1e-5
    weight: float = 1.0
    index: torch.Tensor = dataclasses.field(
        default_factory=lambda: torch.randperm(SHAPE[0] * 32 * 64,
                                               generator=torch.Generator().manual_seed(0))[:600])

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)[:, self.index]


@pytest.fixture(scope="module")
def denoiser():
    torch.manual_seed(0)
    return EDMDenoiser(SongUNet(SHAPE[0], SHAPE[1:], CFG.prior.network), 1.0).eval()


def _run(denoiser, members, terms):
    sampler = PosteriorSampler(CFG.prior.sampler)
    return sampler(denoiser, SHAPE, member_generators(0, members), terms)


@pytest.mark.parametrize("n", [8, 16])
def test_guided_analysis_batched(benchmark, denoiser, n):
    benchmark.extra_info["members"] = n
    benchmark.pedantic(_run, args=(denoiser, range(n), [PointObs()]), rounds=1, iterations=1)


def test_guided_analysis_member_by_member_8(benchmark, denoiser):
    def loop():
        return [_run(denoiser, [m], [PointObs()]) for m in range(8)]

    benchmark.extra_info["members"] = 8
    benchmark.pedantic(loop, rounds=1, iterations=1)


def test_unguided_analysis_batched_8(benchmark, denoiser):
    benchmark.extra_info["members"] = 8
    benchmark.pedantic(_run, args=(denoiser, range(8), []), rounds=1, iterations=1)

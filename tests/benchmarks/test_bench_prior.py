"""Opt-in benchmarks of the posterior sampler (``pytest tests/benchmarks -o addopts=""``).

One guided analysis with the shipped demo prior and the demo step count, 8 and
16 members; the batched ensemble against a member-by-member loop; guided
against unguided. The station-like term uses Σ_y = 0.01, Γ̂ = 0.1.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dafusion.config import load_config
from dafusion.obs.base import joint_log_likelihood
from dafusion.prior.guidance import GuidedDenoiser
from dafusion.prior.sampler import EDMSampler, member_generators

CFG = load_config(None)
SHAPE = (len(CFG.data.channels), 32, 64)


@dataclasses.dataclass
class PointObs:
    """A station-like term: 600 grid points of every channel observed."""

    name: str = "points"
    y: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(600))
    sigma_y: float = 0.01
    gamma: float = 0.1
    weight: float = 1.0
    covariance: None = None
    index: torch.Tensor = dataclasses.field(
        default_factory=lambda: torch.randperm(SHAPE[0] * 32 * 64,
                                               generator=torch.Generator().manual_seed(0))[:600])

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)[:, self.index]


@pytest.fixture(scope="module")
def denoiser():
    from dafusion.prior import demo_prior_path
    from dafusion.prior.checkpoint import load_prior

    return load_prior(demo_prior_path())[0]


def _run(denoiser, members, terms):
    if terms:
        denoiser = GuidedDenoiser(denoiser, joint_log_likelihood(terms))
    return EDMSampler(CFG.prior.sampler)(denoiser, SHAPE, member_generators(0, members))


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


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_first_demo_analysis_against_its_floor(benchmark, precision):
    """``cycler bench``'s analysis and floor (dafusion/cycler/reporting/bench.py) as a benchmark."""
    from dafusion.config import with_overrides
    from dafusion.cycler.reporting import bench

    cfg = with_overrides(CFG, [f"prior.sampler.precision={precision}"])
    dev = torch.device("cpu")
    parts = bench.demo_parts(cfg, 8, dev)
    x, sigma = torch.randn((8, *parts.shape)), torch.ones(8)
    one = bench._timed(lambda: bench.forward_and_gradient(parts.denoiser, x, sigma), dev, 3)
    seconds, evals, _ = benchmark.pedantic(bench.analysis, args=(parts, cfg, list(range(8)), dev),
                                        rounds=1, iterations=1)
    benchmark.extra_info.update(precision=precision, evaluations=evals, floor_s=evals * one,
                                analysis_over_floor=seconds / (evals * one))

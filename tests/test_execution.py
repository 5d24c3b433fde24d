"""How the denoiser runs (precision, layout) and ``cycler bench``: exact where the maths is
unchanged, bounded where bfloat16 rounds, and every measurement present."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fakes as cycle_fakes
from dafusion.cli import main
from dafusion.config import load_config
from dafusion.prior.execution import configure
from dafusion.prior.sampler import EDMSampler, member_generators


def _denoiser():
    """The fake prior with random weights everywhere (untrained, its output layer is
    zero: F_θ ≡ 0 would make every precision agree)."""
    truth = cycle_fakes.truth_source()
    denoiser, _, _ = cycle_fakes.prior_parts(truth)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in denoiser.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return denoiser.eval(), (len(truth.channels), *truth.grid.shape)


def test_channels_last_changes_nothing_and_bf16_rounds_only_the_network():
    denoiser, shape = _denoiser()
    cfg = load_config().prior.sampler
    x = torch.randn((3, *shape), generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.05, 1.0, 20.0])
    with torch.no_grad():
        reference = denoiser(x, sigma)
        configure(denoiser, dataclasses.replace(cfg, channels_last=True))
        assert torch.allclose(denoiser(x, sigma), reference, rtol=0, atol=1e-6)
        configure(denoiser, dataclasses.replace(cfg, precision="bf16", channels_last=False))
        low = denoiser(x, sigma)
        configure(denoiser, cfg)
        assert torch.equal(denoiser(x, sigma), reference)  # back to fp32, exactly
    assert low.dtype == torch.float32
    # F_θ is rounded to bf16 (8-bit mantissa, relative 2^-8); c_out·F is what it reaches
    from dafusion.prior.edm import preconditioning

    _, c_out, _, _ = preconditioning(sigma.double(), denoiser.sigma_data)
    err = (low - reference).abs().amax(dim=(1, 2, 3)).double()
    f_scale = ((reference - x).abs().amax(dim=(1, 2, 3)).double() + 1.0)
    assert torch.all(err <= 0.05 * c_out * f_scale), (err, c_out)
    assert torch.all(err > 0)  # bf16 really ran


def test_a_bf16_analysis_on_cpu_stays_close_to_fp32():
    denoiser, shape = _denoiser()
    cfg = dataclasses.replace(load_config().prior.sampler, steps=6)
    out = {}
    for precision in ("fp32", "bf16"):
        configure(denoiser, dataclasses.replace(cfg, precision=precision))
        gens = member_generators(0, range(2))
        out[precision] = EDMSampler(cfg)(denoiser, shape, gens)
    configure(denoiser, cfg)
    diff = (out["bf16"] - out["fp32"]).pow(2).mean().sqrt() / out["fp32"].pow(2).mean().sqrt()
    assert 0 < float(diff) < 0.05


def test_bench_on_files_reports_every_measurement(tmp_path):
    sets = cycle_fakes.setup(tmp_path)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--members", "2", "--json", str(out),
                                       *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())
    steps = load_config(None, sets).prior.sampler.steps
    assert r["evaluations"] == 2 * steps - 1  # Heun: two per step but the last
    assert r["source"].startswith("the configuration's files")
    assert r["gflop_forward_gradient"] > r["gflop_forward"] > 0
    assert r["evaluations_with_backward"] == r["evaluations"]  # Algorithm 1: all of them
    assert r["floor_s"] == pytest.approx(r["evaluations"] * r["forward_gradient_s"])
    assert r["analysis_over_floor"] == pytest.approx(r["analysis_s"] / r["floor_s"])
    assert r["batched_speedup"] == pytest.approx(r["member_loop_s"] / r["analysis_s"])
    assert r["peak_memory_gb"] > 0 and r["emulator_12h_s"] > 0
    assert "analysis_over_floor" in result.output


def test_bench_without_files_builds_random_weights_of_the_shapes(tmp_path):
    result = CliRunner().invoke(main, [
        "bench", "--members", "1", "--no-loop", "--shape", "16x32", "--precision", "bf16",
        "--set", "prior.checkpoint=/nowhere/prior", "--set", "prior.sampler.steps=2",
        "--set", "prior.network.base_channels=8", "--set", "prior.network.channel_mult=[1]",
        "--set", "prior.network.attention_resolutions=[]",
        "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["source"].startswith("random weights") and r["shape"][1:] == [16, 32]
    assert r["precision"] == "bf16" and r["evaluations"] == 3


def test_flop_count_of_a_convolution_is_the_textbook_one():
    from dafusion.cycler.reporting.bench import flops

    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=False)

    class Plain(torch.nn.Module):  # D(x) = conv(x): 2·C_in·C_out·k²·H·W per forward
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x, sigma):
            return self.conv(x)

    fwd, both = flops(Plain(), (3, 8, 16), torch.device("cpu"))
    assert fwd == 2 * 3 * 5 * 9 * 8 * 16
    assert both == 2 * fwd  # the input gradient is one transposed convolution


def test_threads_follow_the_affinity_and_the_option(monkeypatch):
    from dafusion import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 1.5)
    assert threads.available_cpus() == 2  # ceil of the 1.5-CPU quota
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    assert threads.choose_threads(None) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.choose_threads(None) == 1
    assert threads.choose_threads(4) == 4
    with pytest.raises(ValueError, match="--threads"):
        threads.choose_threads(0)


@dataclasses.dataclass
class _Points:
    """A linear term on fixed grid points; ``y`` shared ``(n,)`` or per member ``(M, n)``."""

    y: torch.Tensor
    index: torch.Tensor
    name: str = "points"
    sigma_y: float = 0.05
    gamma: float = 0.01
    weight: float = 1.0
    covariance: None = None

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)[:, self.index]


def test_micro_batched_guidance_equals_the_whole_batch():
    from dafusion.cycler.analysis import guided

    denoiser, shape = _denoiser()
    members, gen = 5, torch.Generator().manual_seed(3)
    size = int(np.prod(shape))
    shared = _Points(torch.randn(40, generator=gen), torch.randperm(size, generator=gen)[:40])
    per_member = _Points(torch.randn(members, 30, generator=gen),
                         torch.randperm(size, generator=gen)[:30], name="per member")
    x = torch.randn((members, *shape), generator=gen) * 2.0
    sigma = torch.full((members,), 2.0)
    cfg = load_config().prior.sampler
    whole = guided(denoiser, [shared, per_member], cfg, members)(x, sigma)
    chunked = guided(denoiser, [shared, per_member],
                     dataclasses.replace(cfg, micro_batch=2), members)(x, sigma)
    assert torch.allclose(chunked, whole, rtol=0, atol=1e-5)
    alone = guided(denoiser, [shared, _Points(per_member.y[3:4], per_member.index)], cfg,
                   1)(x[3:4], sigma[3:4])
    assert torch.allclose(alone, whole[3:4], rtol=0, atol=1e-5)  # member 3 on its own


def test_activation_checkpointing_gives_the_same_guided_step():
    from dafusion.cycler.analysis import guided

    denoiser, shape = _denoiser()
    gen = torch.Generator().manual_seed(5)
    size = int(np.prod(shape))
    term = _Points(torch.randn(50, generator=gen), torch.randperm(size, generator=gen)[:50])
    x, sigma = torch.randn((2, *shape), generator=gen), torch.full((2,), 3.0)
    cfg = load_config().prior.sampler
    plain = guided(denoiser, [term], cfg, 2)(x, sigma)
    configure(denoiser, dataclasses.replace(cfg, activation_checkpointing=True))
    assert denoiser.net.checkpointing
    recomputed = guided(denoiser, [term], cfg, 2)(x, sigma)
    configure(denoiser, cfg)
    assert torch.allclose(recomputed, plain, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_a_compiled_network_gives_the_same_denoiser():
    denoiser, shape = _denoiser()
    x = torch.randn((2, *shape), generator=torch.Generator().manual_seed(7))
    sigma = torch.tensor([0.5, 5.0])
    cfg = load_config().prior.sampler
    with torch.no_grad():
        reference = denoiser(x, sigma)
        configure(denoiser, dataclasses.replace(cfg, compile=True))  # ~40 s on a 2-core CPU
        compiled = denoiser(x, sigma)
    assert getattr(denoiser.net, "_dafusion_compiled", False)
    assert torch.allclose(compiled, reference, rtol=0, atol=1e-5)


def test_bench_sweep_steps_times_each_runs_sampler_and_scores_it_against_the_first(tmp_path):
    """Four runs of the same window (Algorithm 1 with 3 and 2 steps, a warm start with
    2, and the same with the identity Jacobian below σ = 0.5): evaluations 2N - 1 (with
    a backward pass: all but the two at σ_min < 0.5 in the last), the reference's
    ratios exactly 1, the others' equal to their RMS errors over the analyses after the
    first computed from metrics.csv here."""
    import csv

    from dafusion.cycler.run import start_run

    sets = cycle_fakes.setup(tmp_path)
    settings = {"ref": [], "two": ["prior.sampler.steps=2"],
                "warm": ["prior.sampler.steps=2", "prior.sampler.start=background",
                         "prior.sampler.sigma_start=1.5"]}
    settings["cheap"] = settings["warm"] + ["prior.sampler.identity_jacobian_below=0.5"]
    for name, extra in settings.items():
        start_run(cycle_fakes.config(sets, "run.mode=reinit", "run.days=0.5", *extra),
                  tmp_path / name)
    out = tmp_path / "sweep.json"
    result = CliRunner().invoke(main, [
        "bench", "--members", "2", "--sweep-steps", *[str(tmp_path / n) for n in settings],
        "--json", str(out), "--figure", str(tmp_path / "sweep.png"),
        *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    steps = load_config(None, sets).prior.sampler.steps
    assert [r["evaluations"] for r in rows] == [2 * steps - 1, 3, 3, 3]
    assert [r["with_backward"] for r in rows] == [2 * steps - 1, 3, 3, 1]
    assert [r["start"] for r in rows] == ["noise", "noise", "background", "background"]
    assert rows[2]["sigma_0"] == 1.5 and rows[0]["sigma_0"] == 80.0
    assert set(rows[0]["rmse_rel"].values()) == {1.0} and rows[0]["speedup"] == 1.0

    def rms(run, channel):
        with open(tmp_path / run / "metrics.csv") as f:
            errors = [float(r["rmse"]) for r in csv.DictReader(f)
                      if r["channel"] == channel and int(r["lead_hours"]) > 0]
        return np.sqrt(np.mean(np.square(errors)))

    for r in rows[1:]:
        for c in cycle_fakes.CHANNELS:
            assert r["rmse_rel"][c] == pytest.approx(rms(r["run"], c) / rms("ref", c),
                                                     rel=1e-12)
    assert "| warm | background | 1.5 | 2 | 7 | 0 | 0 | 3 (3) |" in result.output
    assert "| cheap | background | 1.5 | 2 | 7 | 0 | 0.5 | 3 (1) |" in result.output
    assert (tmp_path / "sweep.png").stat().st_size > 0
    refused = CliRunner().invoke(main, ["bench", "--sweep-steps", str(tmp_path / "ref")])
    assert refused.exit_code == 2 and "two or more runs" in refused.output

"""``cycler bench``: how fast an analysis is on this hardware, and how close to the network.

The *floor* of a guided analysis is what its network alone costs: the number of
guided evaluations the sampler makes (2 per Heun step but the last: 2N − 1) times the
measured time of one forward + input-gradient pass of the whole ensemble batch, or of
one forward pass alone for those below ``identity_jacobian_below`` (no backward).
Everything else — likelihood terms, observation operators, noise, checks, copies —
is the overhead, ``analysis / floor − 1``. FLOPs are counted by torch
(``torch.utils.flop_counter``) for one member.

With a configuration whose files exist (the demo by default) the analysis is the
first cycle of a real run: the shipped checkpoints, the truth and the configured
sources. With one whose checkpoints or truth are not here (``configs/era5_lucie.yaml``)
the networks are built with random weights at their real shapes (the cost does not
depend on the weights) and one station-like term observes 700 points per channel.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dafusion.config import Config
from dafusion.obs.base import members_of
from dafusion.prior.guidance import GuidedDenoiser
from dafusion.prior.sampler import EDMSampler, member_generators


@dataclasses.dataclass
class Parts:
    """What one analysis needs: the denoiser, its shape, the terms, an emulator step."""

    denoiser: torch.nn.Module
    shape: tuple[int, int, int]
    terms: list
    forecast: Callable[[], Any] | None  # one 12-hour emulator forecast of the ensemble
    source: str  # "demo files" / "random weights at the real shapes"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int = 1) -> float:
    """Median seconds of ``repeats`` calls (after the caller's warm-up)."""
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def flops(denoiser: torch.nn.Module, shape: tuple[int, int, int],
          device: torch.device) -> tuple[int, int]:
    """FLOPs of one member's forward, and of its forward + input gradient (torch's count)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn((1, *shape), device=device)
    sigma = torch.ones(1, device=device)
    with FlopCounterMode(display=False) as fwd, torch.no_grad():
        denoiser(x, sigma)
    params = [p for p in denoiser.parameters() if p.requires_grad]
    for p in params:  # the input gradient only, as guidance takes it
        p.requires_grad_(False)
    try:
        with FlopCounterMode(display=False) as both:
            denoiser(x.requires_grad_(True), sigma).square().sum().backward()
    finally:
        for p in params:
            p.requires_grad_(True)
    return fwd.get_total_flops(), both.get_total_flops()


def forward_and_gradient(denoiser: torch.nn.Module, x: torch.Tensor,
                         sigma: torch.Tensor) -> None:
    """One network pass with the input gradient, as a guided evaluation makes it."""
    x_in = x.detach().requires_grad_(True)
    torch.autograd.grad(denoiser(x_in, sigma).square().sum(), x_in)


class _Counted:
    """A denoiser that counts its calls (the sampler's guided evaluations) and those
    whose likelihood gradient goes back through the network."""

    def __init__(self, denoiser: Callable) -> None:
        self.denoiser, self.calls, self.backward = denoiser, 0, 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if isinstance(self.denoiser, GuidedDenoiser) and self.denoiser.through_network(sigma):
            self.backward += 1
        return self.denoiser(x, sigma)


def analysis(parts: Parts, cfg: Config, members: list[int], device: torch.device,
             terms: list | None = None) -> tuple[float, int, int]:
    """Seconds of one guided analysis of ``members`` (one batch), its evaluations and
    how many of them go back through the network."""
    from dafusion.cycler.analysis import guided as guided_denoiser

    s, terms = cfg.prior.sampler, parts.terms if terms is None else terms
    guided = _Counted(guided_denoiser(parts.denoiser, terms, s, len(members)) if terms
                      else parts.denoiser)
    sampler = EDMSampler(s)
    gens = member_generators(cfg.run.seed, members, device)
    start = (torch.zeros((1, *parts.shape), device=device)  # the climatological mean
             if s.start == "background" else None)
    seconds = _timed(lambda: sampler(guided, parts.shape, gens, device=device, start=start),
                     device)
    return seconds, guided.calls, guided.backward


def peak_memory(device: torch.device) -> tuple[str, float]:
    """('cuda max allocated' | 'peak RSS', GB)."""
    if device.type == "cuda":
        return "CUDA max allocated", torch.cuda.max_memory_allocated(device) / 1e9
    return "peak RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB -> GB


def run_bench(parts: Parts, cfg: Config, *, members: int, device: torch.device,
              loop: bool = True, repeats: int = 3) -> dict[str, Any]:
    """Every measurement of the module docstring, as a flat dictionary."""
    s = cfg.prior.sampler
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out: dict[str, Any] = {
        "source": parts.source, "device": _device_name(device), "threads": torch.get_num_threads(),
        "precision": s.precision, "channels_last": s.channels_last, "compile": s.compile,
        "micro_batch": s.micro_batch,
        "shape": list(parts.shape), "members": members, "steps": s.steps,
        "parameters": sum(p.numel() for p in parts.denoiser.parameters())}
    out["gflop_forward"], out["gflop_forward_gradient"] = (
        f / 1e9 for f in flops(parts.denoiser, parts.shape, device))
    x = torch.randn((members, *parts.shape), device=device)
    sigma = torch.ones(members, device=device)
    first = _timed(lambda: forward_and_gradient(parts.denoiser, x, sigma), device)
    out["first_call_s"] = first  # includes compilation when compile is on
    one = _timed(lambda: forward_and_gradient(parts.denoiser, x, sigma), device, repeats)
    out["forward_gradient_s"] = one

    def forward() -> None:
        with torch.no_grad():
            parts.denoiser(x, sigma)

    out["forward_s"] = forward_only = _timed(forward, device, repeats)
    analysis(parts, cfg, list(range(members)), device)  # warm-up (allocations, caches)
    seconds, evals, backward = analysis(parts, cfg, list(range(members)), device)
    floor = backward * one + (evals - backward) * forward_only
    gflop = (backward * out["gflop_forward_gradient"]
             + (evals - backward) * out["gflop_forward"])
    out.update(analysis_s=seconds, per_member_s=seconds / members, evaluations=evals,
               evaluations_with_backward=backward, floor_s=floor,
               analysis_over_floor=seconds / floor,
               achieved_tflops=members * gflop / 1e3 / seconds)
    if loop:
        looped = sum(analysis(parts, cfg, [m], device,
                              [members_of(term, m, m + 1, members) for term in parts.terms])[0]
                     for m in range(members))
        out.update(member_loop_s=looped, batched_speedup=looped / seconds)
    if parts.forecast is not None:
        parts.forecast()  # warm-up
        out["emulator_12h_s"] = _timed(parts.forecast, device, repeats)
    out["memory_kind"], out["peak_memory_gb"] = peak_memory(device)
    return out


def sweep_steps(parts: Parts, cfg: Config, runs: list[Path], *, members: int,
                device: torch.device) -> list[dict[str, Any]]:
    """Cost against skill of sampler settings (``--sweep-steps``): for each run (the
    first is the reference, e.g. the default), its sampler's guided evaluations and
    seconds of one analysis measured here in this process, and its scores over every
    analysis after the first (``compare``'s ``mean`` column) relative to the
    reference's, per channel, with its spread-skill ratio."""
    from dafusion.cycler.campaigns.compare import check_comparable, scores_by_lead
    from dafusion.cycler.rundir import RunDir

    check_comparable(runs)
    rows: list[dict[str, Any]] = []
    for run in runs:
        run_cfg = RunDir(run).config()
        s = run_cfg.prior.sampler
        here = dataclasses.replace(cfg, prior=dataclasses.replace(cfg.prior, sampler=s))
        analysis(parts, here, list(range(members)), device)  # warm-up
        seconds, evals, backward = analysis(parts, here, list(range(members)), device)
        scores = scores_by_lead(RunDir(run).metrics(), run_cfg.run.members)
        mean = {k: {c: v["mean"] for c, v in by_channel.items()}
                for k, by_channel in scores.items()}
        ref = rows[0] if rows else None
        rows.append({
            "run": Path(run).name, "start": s.start, "steps": s.steps, "rho": s.rho,
            "S_churn": s.S_churn,
            "sigma_0": s.sigma_start if s.start == "background" else s.sigma_max,
            "identity_jacobian_below": s.identity_jacobian_below,
            "evaluations": evals, "with_backward": backward, "analysis_s": seconds,
            "speedup": (ref["analysis_s"] if ref else seconds) / seconds,
            "rmse": mean["rmse"], "crps": mean["crps"], "spread_skill": mean["spread_skill"]})
    ref = rows[0]
    for row in rows:
        for k in ("rmse", "crps"):
            row[f"{k}_rel"] = {c: v / ref[k][c] for c, v in row[k].items()}
    return rows


def sweep_table(rows: list[dict[str, Any]]) -> str:
    """One line per setting: relative scores as mean over channels [worst channel]."""
    lines = ["| run | start | σ_0 | steps | ρ | churn | σ_J | evaluations (with backward) "
             "| s / analysis | speed-up | RMSE / ref | CRPS / ref | spread-skill |",
             "|---" * 13 + "|"]
    for r in rows:
        rel = {k: np.array(list(r[f"{k}_rel"].values())) for k in ("rmse", "crps")}
        ss = np.array(list(r["spread_skill"].values()))
        lines.append(
            f"| {r['run']} | {r['start']} | {r['sigma_0']:g} | {r['steps']} | {r['rho']:g} "
            f"| {r['S_churn']:g} | {r['identity_jacobian_below']:g} "
            f"| {r['evaluations']} ({r['with_backward']}) | {r['analysis_s']:.3g} "
            f"| {r['speedup']:.2f} | "
            f"{rel['rmse'].mean():.4f} [{rel['rmse'].max():.4f}] | "
            f"{rel['crps'].mean():.4f} [{rel['crps'].max():.4f}] | "
            f"{ss.min():.2f}..{ss.max():.2f} |")
    return "\n".join(lines)


def plot_sweep(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """RMSE and CRPS relative to the reference (mean and worst channel) against the
    network passes of an analysis (a guided evaluation is a forward pass, and a
    backward pass unless it is below ``identity_jacobian_below``), one marker per
    setting."""
    from dafusion.figures import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
    for ax, key in zip(axes, ("rmse", "crps")):
        for label, marker, sel in _classes(rows):
            passes = [r["evaluations"] + r["with_backward"] for r in sel]
            ax.scatter(passes, [np.mean(list(r[f"{key}_rel"].values())) for r in sel],
                       marker=marker, label=f"{label}: mean over channels")
            ax.scatter(passes, [max(r[f"{key}_rel"].values()) for r in sel], marker=marker,
                       facecolors="none", edgecolors="k", label=f"{label}: worst")
        ax.axhline(1.02, color="r", lw=0.8, ls="--")
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set_xlabel("network passes per analysis (forward + backward)")
        ax.set_ylabel(f"{key.upper()} / reference")
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path, dpi=100)
    return path


def _classes(rows: list[dict[str, Any]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """The figure's marker classes: start noise / background, identity Jacobian or not."""
    out = []
    for label, marker, keep in (
            ("start noise", "o", lambda r: r["start"] == "noise"),
            ("start background", "s", lambda r: r["start"] == "background"
             and not r["identity_jacobian_below"]),
            ("background, identity Jacobian", "^", lambda r: r["start"] == "background"
             and r["identity_jacobian_below"])):
        sel = [r for r in rows if keep(r)]
        if sel:
            out.append((label, marker, sel))
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"{platform.processor() or platform.machine()} CPU"


# --------------------------------------------------------------------------- the parts


def demo_parts(cfg: Config, members: int, device: torch.device) -> Parts:
    """The first analysis of a real run of ``cfg`` (its files must exist)."""
    from dafusion.cycler.experiment import build_experiment
    from dafusion.cycler.sources import Cycle, build_sources, observe

    exp = build_experiment(dataclasses.replace(cfg, run=dataclasses.replace(
        cfg.run, members=members)), str(device))
    t, mode = exp.times[0], exp.mode()
    truth = exp.normalised(exp.truth.at(t).values)
    terms = observe(build_sources(exp), Cycle(0, t, truth, None, mode.pseudo_obs(0)))
    forecast = None
    if exp.emulator is not None:  # the emulator modes: one 12-hour step as a cycle makes it
        truth_m = np.repeat(exp.truth.at(t).values[None], members, axis=0)
        forecast = lambda: mode.next_state(0, truth_m)  # noqa: E731
    return Parts(exp.denoiser, (len(exp.channels), *exp.grid.shape), terms, forecast,
                 "the configuration's files (first analysis of a run)")


class _StationLike:
    """700 observed points per channel, Σ_y and Γ̂ as the paper's radiosondes."""

    name, sigma_y, gamma, weight, covariance = "stations", 5e-4, 1e-5, 1.0, None
    pseudo_observation = False

    def __init__(self, shape: tuple[int, int, int], device: torch.device) -> None:
        size = int(np.prod(shape))
        gen = torch.Generator().manual_seed(0)
        self.index = torch.randperm(size, generator=gen)[:shape[0] * 700].to(device)
        self.y = torch.zeros(self.index.numel(), device=device)

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)[:, self.index]

    def locations(self) -> None:
        return None


def synthetic_parts(cfg: Config, shape: tuple[int, int, int], members: int,
                    device: torch.device) -> Parts:
    """Random-weight networks of the configuration's shapes (prior and emulator)."""
    from dafusion.emulator.checkpoint import meta_from_config
    from dafusion.emulator.model import EmulatorStats, SFNOEmulator
    from dafusion.prior.edm import EDMDenoiser
    from dafusion.prior.execution import configure
    from dafusion.prior.network import SongUNet

    torch.manual_seed(0)
    denoiser = EDMDenoiser(SongUNet(shape[0], shape[1:], cfg.prior.network),
                           cfg.prior.edm.sigma_data).to(device).eval()
    configure(denoiser, cfg.prior.sampler)
    meta = meta_from_config(cfg.emulator)
    p, f, d = len(meta.channels), len(meta.forcing), len(meta.diagnostics)
    stats = EmulatorStats(np.zeros(p), np.ones(p), np.ones(p), np.zeros(f), np.ones(f),
                          np.zeros(d), np.ones(d))
    static = {"orography": np.zeros(meta.grid.shape)} if "orography" in meta.forcing else {}
    emulator = SFNOEmulator(meta, stats, static=static).to(device).eval()
    x = torch.randn((members, p + f, *meta.grid.shape), device=device)

    def forecast() -> None:
        with torch.no_grad():
            for _ in range(12 // meta.time_step_hours):
                emulator.net(x)

    return Parts(denoiser, shape, [_StationLike(shape, device)], forecast,
                 "random weights at the configuration's shapes")


def files_present(cfg: Config) -> bool:
    """Whether ``cfg`` names files that exist; with no prior checkpoint named, whether the
    network it describes is the shipped demo prior's (else: random weights of its shape)."""
    from dafusion.prior import demo_prior_path
    from dafusion.prior.checkpoint import read_meta

    named = [cfg.prior.checkpoint, cfg.run.truth]
    if cfg.run.mode != "plain":
        named.append(cfg.emulator.checkpoint)
    if not all(not p or Path(p).exists() for p in named):
        return False
    return bool(cfg.prior.checkpoint) or \
        read_meta(Path(demo_prior_path())).network == cfg.prior.network


def table(result: dict[str, Any]) -> str:
    """The measurements as ``name  value`` lines."""
    rows = []
    for key, value in result.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        rows.append(f"{key:<24} {text}")
    return "\n".join(rows)

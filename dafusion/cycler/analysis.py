"""The analysis step of a cycle, a choice (``run.method``).

Every method turns the cycle's likelihood terms (``cycler.sources``) and the mode's
emulator state into an analysis ensemble ``(M, C, H, W)`` in physical units;
everything around it (truth, observations and their QC, emulator and modes, run
directory, metrics, resume) is the same for all:

* ``diffusion``: Algorithm 1, posterior samples of the prior guided by the terms,
  the emulator state among them as a pseudo-observation;
* ``oi``: optimal interpolation (``baselines.oi``); the background is the emulator
  state valid now, brought to the analysis grid by the modes' regridder (each
  member's with ``reinit members``), the climatological mean in plain mode;
  members beyond one assimilate perturbed observations (``run.oi.perturb``);
* ``letkf``: the LETKF (``baselines.letkf``) of the members' forecasts; the first
  analysis, which has one forecast (the initial state), draws the ensemble from
  the static B of ``run.oi`` about it.

The classical methods take the stations and gridded terms as observations; the
emulator is their background, not an observation. A channel the emulator does
not forecast has the previous analysis mean as background (the climatological
mean at the first analysis).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from dafusion.baselines import letkf, oi
from dafusion.baselines.base import BaselineError, Observations, channel_levels, observations
from dafusion.config import SamplerConfig
from dafusion.cycler import seeding
from dafusion.cycler.rundir import RunError
from dafusion.obs.base import joint_log_likelihood, members_of
from dafusion.prior.base import Denoiser
from dafusion.prior.guidance import GuidedDenoiser
from dafusion.prior.sampler import EDMSampler
from dafusion.variables import parse_channels

if TYPE_CHECKING:
    from dafusion.cycler.experiment import Experiment
    from dafusion.cycler.modes import Mode
    from dafusion.obs.base import LikelihoodTerm


class AnalysisMethod(Protocol):
    """``units``: progress steps per analysis; ``emulator_term``: whether the emulator
    state is one of the terms; calling it gives the analysis ``(M, C, H, W)``."""

    units: int
    emulator_term: bool
    progress: Callable[[int], object]

    def __call__(self, cycle: int, terms: list[LikelihoodTerm], mode: Mode) -> np.ndarray: ...


def analysis_method(exp: Experiment) -> AnalysisMethod:
    """The configured method for ``exp``."""
    return {"diffusion": DiffusionAnalysis, "oi": OIAnalysis,
            "letkf": LETKFAnalysis}[exp.cfg.run.method](exp)


class DiffusionAnalysis:
    """Algorithm 1 (:func:`analyse`)."""

    emulator_term = True

    def __init__(self, exp: Experiment) -> None:
        self.exp, self.units = exp, exp.cfg.prior.sampler.steps
        self.progress: Callable[[int], object] = lambda n: None
        self.sampler = EDMSampler(exp.cfg.prior.sampler,
                                  callback=lambda i, x: self.progress(1))

    def __call__(self, cycle: int, terms: list[LikelihoodTerm], mode: Mode) -> np.ndarray:
        warm = self.exp.cfg.prior.sampler.start == "background"
        return analyse(self.exp, self.sampler, terms, cycle, mode if warm else None)


def analyse(exp: Experiment, sampler: EDMSampler, terms: list, cycle: int,
            backgrounds: Mode | None = None) -> np.ndarray:
    """The analysis ensemble ``(M, C, H, W)`` in physical units (Algorithm 1; warm
    started from the mode ``backgrounds``' members with ``prior.sampler.start =
    background``).
    Across processes (``cycler.ranks``) each samples its members, then all have all."""
    shape, members = (len(exp.channels), *exp.grid.shape), exp.cfg.run.members
    a, b = exp.ranks.span(members)
    gens = seeding.generators(exp.cfg.run.seed, cycle, members, exp.device)[a:b]
    s = exp.cfg.prior.sampler
    if exp.ranks.size > 1:  # the terms as members a..b-1 see them
        terms = [members_of(t, a, b, members) for t in terms]
    denoiser = guided(exp.denoiser, terms, s, b - a) if terms else exp.denoiser
    x0 = None if backgrounds is None else warm_start(exp, backgrounds, cycle, a, b)
    x = sampler(denoiser, shape, gens, device=exp.device, start=x0).detach()
    x = exp.ranks.gather(x, members).cpu()
    _check_divergence(x, cycle, exp)
    return exp.normaliser.denormalise(x.double().numpy())


def warm_start(exp: Experiment, mode: Mode, cycle: int, a: int, b: int) -> torch.Tensor:
    """Members a..b-1's backgrounds, normalised ``(b - a or 1, C, H, W)``: each member's
    emulator state on the analysis grid (``reinit members``), else the one state; a
    channel the emulator does not forecast: the previous analysis mean, at the first
    analysis the climatological mean (0)."""
    background = mode.background_members(cycle)
    if background is None:
        raise RunError("prior.sampler.start=background starts from the emulator's "
                       "forecast: use mode forecast or reinit")
    z = np.nan_to_num(exp.normaliser.normalise(background), nan=0.0)
    if z.shape[0] > 1:
        z = z[a:b]
    return torch.as_tensor(z, dtype=torch.float32)


def guided(denoiser: Denoiser, terms: list, s: SamplerConfig, members: int) -> GuidedDenoiser:
    """Algorithm 1's guided denoiser for ``terms`` with the sampler's settings."""
    return GuidedDenoiser(
        denoiser, joint_log_likelihood(terms), scale=s.guidance_scale, clip=s.guidance_clip,
        bound=s.guidance_bound, identity_jacobian_below=s.identity_jacobian_below,
        micro_batch=s.micro_batch,
        split=lambda a, b: joint_log_likelihood([members_of(t, a, b, members) for t in terms]))


def _check_divergence(x: torch.Tensor, cycle: int, exp: Experiment) -> None:
    """Stop, before anything of the cycle is written, when the sampler blew up without
    producing NaN (guidance too stiff for the step size): |x| far beyond the prior."""
    cfg, limit = exp.cfg, exp.cfg.run.max_normalised
    peak = x.abs().amax(dim=(0, 2, 3))
    bad = [f"{c} ({v:.3g})" for c, v in zip(exp.channels, peak.tolist()) if v > limit]
    if bad:
        raise RunError(
            f"cycle {cycle} ({str(exp.times[cycle])[:16]}): the analysis diverged, reaching "
            f"more than run.max_normalised={limit:g} standard deviations in {bad}. The "
            f"guidance is too strong for {cfg.prior.sampler.steps} sampler steps: lower a "
            "source's weight or raise its sigma_y/gamma, cap the guidance with "
            "prior.sampler.guidance_clip (e.g. 1), or use more steps")


class _Classical:
    """The part the classical methods share: B, backgrounds and units."""

    emulator_term, units, name = False, 1, ""

    def __init__(self, exp: Experiment) -> None:
        self.exp = exp
        self.progress: Callable[[int], object] = lambda n: None
        o, variables = exp.cfg.run.oi, [c.variable.name for c in parse_channels(exp.channels)]
        self.b = oi.StaticCovariance([o.of("variance", v) for v in variables],
                                     [o.of("length_scale_km", v) for v in variables],
                                     o.correlation, exp.grid.lat, exp.grid.lon)

    def background(self, mode: Mode, cycle: int) -> np.ndarray:
        """``(1 or M, C, H, W)`` normalised; climatology (0) where there is none."""
        exp = self.exp
        xb = mode.background_members(cycle)
        if xb is None:
            return np.zeros((1, len(exp.channels), *exp.grid.shape))
        return np.nan_to_num(exp.normaliser.normalise(xb), nan=0.0)

    def __call__(self, cycle: int, terms: list[LikelihoodTerm], mode: Mode) -> np.ndarray:
        try:
            xa = self.analyse(cycle, observations(terms, self.name), self.background(mode, cycle))
        except BaselineError as err:
            raise RunError(f"cycle {cycle} ({str(self.exp.times[cycle])[:16]}): {err}") from None
        self.progress(1)
        return self.exp.normaliser.denormalise(xa)

    def analyse(self, cycle: int, obs: Observations, xb: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OIAnalysis(_Classical):
    """Optimal interpolation of each member's background (``baselines.oi``)."""

    name = "oi"

    def analyse(self, cycle: int, obs: Observations, xb: np.ndarray) -> np.ndarray:
        run = self.exp.cfg.run
        gens = (seeding.perturbation_generators(run.seed, cycle, run.members)
                if run.oi.perturb and run.members > 1 else None)
        return oi.analysis(xb, obs, self.b, run.members, gens)


class LETKFAnalysis(_Classical):
    """The LETKF of the members' forecasts (``baselines.letkf``)."""

    name = "letkf"

    def analyse(self, cycle: int, obs: Observations, xb: np.ndarray) -> np.ndarray:
        run, exp = self.exp.cfg.run, self.exp
        if xb.shape[0] == 1:  # the first analysis: one state; members from B about it
            xb = xb + self.b.sample(seeding.generators(run.seed, cycle, run.members))
        elif xb.shape[0] != run.members:
            raise BaselineError(f"{xb.shape[0]} forecasts for {run.members} members")
        lk = run.letkf
        return letkf.analysis(xb, obs, exp.grid.lat, exp.grid.lon, channel_levels(exp.channels),
                              localisation_km=lk.localisation_km or None,
                              vertical=lk.vertical_localisation or None, rtps=lk.rtps)



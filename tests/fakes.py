"""Every test double of the suite, in one place (STYLE principle 12).

* Files in the layouts the data layer reads: ``truth_dataset``/``truth_file``.
* An untrained prior and SFNO emulator (``prior_parts``, ``tiny_sfno``) and their
  checkpoint directories (``prior_checkpoint``, ``emulator_checkpoint``).
* ``experiment(...)``: a cycle experiment built from in-memory parts, no files.
* Exact-answer doubles for the sampler: ``GaussianDenoiser`` and ``GaussianField``
  (closed-form denoisers of Gaussian priors), ``LinearObs`` (y = A x, A selecting
  points), ``sample`` (Algorithm 1 = EDM's sampler on the guided denoiser).
* ``Constant``: a fake emulator network, the same output everywhere.
* ``setup``/``config``: the files and ``--set`` overrides of the command-line tests.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from dafusion.config import EDMConfig, NetworkConfig, SFNOConfig, load_config
from dafusion.data import GriddedSource, standardise
from dafusion.emulator.checkpoint import save_emulator
from dafusion.emulator.model import EmulatorMeta, EmulatorStats, SFNOEmulator
from dafusion.grids import EquiangularGrid, LegendreGaussGrid
from dafusion.normalise import Normaliser
from dafusion.obs.base import validate_term
from dafusion.prior.checkpoint import PriorMeta, build_denoiser, save_prior

CHANNELS = ["t850", "z500", "sp"]
GRID = EquiangularGrid(32, 64)
EMU_GRID = LegendreGaussGrid(16, 32)
# an untrained prior with 3 steps is no distribution: its samples reach ~20 std
CYCLE_SETTINGS = ["prior.sampler.steps=3", "run.members=2", "run.days=1",
                  "run.start=2020-01-01T00", "obs.n_stations=30", "run.max_normalised=1e6",
                  f"data.channels=[{','.join(CHANNELS)}]",
                  f"emulator.channels=[{','.join(CHANNELS)}]"]


# --------------------------------------------------------------------------- truth


def truth_dataset(days: int = 4) -> xr.Dataset:
    """6-hourly smooth travelling waves plus noise: t850, z500 (as levels) and sp."""
    times = np.datetime64("2020-01-01T00", "ns") + np.arange(4 * days + 1) * np.timedelta64(6, "h")
    lat = np.deg2rad(GRID.lat)[None, :, None]
    lon = np.deg2rad(GRID.lon)[None, None, :]
    k = np.arange(times.size)[:, None, None]
    rng = np.random.default_rng(0)
    wave = np.sin(lat) * np.cos(lon - 0.2 * k)
    t850 = 270 + 20 * wave + rng.normal(0, 0.5, wave.shape)
    z500 = 54000 + 2000 * wave + rng.normal(0, 50, wave.shape)
    sp = 100000 + 500 * wave + rng.normal(0, 20, wave.shape)
    t = np.stack([t850 - 20, t850], axis=1)
    z = np.stack([z500, z500 - 40000], axis=1)
    dims = ("time", "level", "latitude", "longitude")
    return xr.Dataset({"temperature": (dims, t.astype(np.float32), {"units": "K"}),
                       "geopotential": (dims, z.astype(np.float32), {"units": "m**2 s**-2"}),
                       "surface_pressure": (("time", "latitude", "longitude"),
                                            sp.astype(np.float32), {"units": "Pa"})},
                      coords={"time": times, "level": [500, 850], "latitude": GRID.lat,
                              "longitude": GRID.lon})


def truth_file(path: Path, days: int = 4) -> Path:
    truth_dataset(days).to_netcdf(path)
    return path


def truth_source(days: int = 4) -> GriddedSource:
    """The same truth in memory, as the data layer serves it."""
    return GriddedSource("<memory>", [], standardise(truth_dataset(days), "<memory>"),
                         GRID).select(CHANNELS)


# --------------------------------------------------------------------------- models


def prior_parts(truth: GriddedSource):
    """An untrained small SongUNet denoiser, its normaliser (fitted on ``truth``), meta."""
    normaliser = Normaliser.fit(truth.stack().load(), GRID)
    meta = PriorMeta(GRID, CHANNELS, NetworkConfig(base_channels=8, channel_mult=[1, 2],
                                                   attention_resolutions=[], dropout=0.0),
                     EDMConfig())
    torch.manual_seed(0)
    return build_denoiser(meta).eval(), normaliser, meta


def tiny_sfno(channels=CHANNELS, diagnostics=(), log=(), forcing=(),
              lat_order="north_to_south", grid=EMU_GRID, seed=0, static=None, embed_dim=8,
              num_layers=1, stats=None):
    """An untrained SFNO emulator (statistics: ``stats`` or a fixed ramp)."""
    meta = EmulatorMeta(grid, list(channels), list(diagnostics), list(log), list(forcing), 6,
                        lat_order, SFNOConfig(embed_dim=embed_dim, num_layers=num_layers))
    p, d, f = len(channels), len(diagnostics), len(forcing)
    stats = stats or EmulatorStats(np.linspace(1, 2, p), np.linspace(2, 3, p),
                                   np.linspace(0.5, 1, p), np.zeros(f), np.ones(f),
                                   np.full(d, 0.3), np.full(d, 0.2))
    torch.manual_seed(seed)
    return SFNOEmulator(meta, stats, static=static)


CYCLE_EMULATOR_STATS = EmulatorStats(np.array([270.0, 54000.0, 1e5]),
                                     np.array([15.0, 1500.0, 400.0]),
                                     np.array([0.5, 50.0, 20.0]), np.zeros(0), np.ones(0),
                                     np.zeros(0), np.zeros(0))


def prior_checkpoint(path: Path, truth: Path) -> Path:
    denoiser, normaliser, meta = prior_parts(GriddedSource.open(truth, CHANNELS))
    return save_prior(path, meta, denoiser, normaliser, {"note": "untrained"})


def emulator_checkpoint(path: Path) -> Path:
    """The tiny SFNO's checkpoint, with its error statistics (``errors.nc``) as shipped."""
    from dafusion.io import write_netcdf

    model = tiny_sfno(stats=CYCLE_EMULATOR_STATS)
    out = save_emulator(path, model, {"note": "untrained"})
    write_netcdf(emulator_errors(model), out / "errors.nc")
    return out


def emulator_errors(model, truth: GriddedSource | None = None) -> xr.Dataset:
    """The model's error statistics on the fake truth: 3 initial times, leads to 48 h."""
    from dafusion.emulator.errors import error_statistics

    truth = truth or truth_source()
    return error_statistics(model, truth.select(list(model.channels)), truth.times[:3], 8)


# --------------------------------------------------------------------------- experiments


def config(overrides: list[str], *extra: str):
    return load_config(None, list(overrides) + list(extra))


def setup(tmp: Path, days: int = 4) -> list[str]:
    """Files in ``tmp`` and the --set overrides that point a run at them."""
    truth = truth_file(tmp / "truth.nc", days)
    prior_checkpoint(tmp / "prior", truth)
    emulator_checkpoint(tmp / "emulator")
    return [f"run.truth={truth}", f"prior.checkpoint={tmp / 'prior'}",
            f"emulator.checkpoint={tmp / 'emulator'}", *CYCLE_SETTINGS]


def experiment(*settings: str, emulator=None, table=None):
    """A cycle experiment from in-memory parts: the fake truth, an untrained prior, the
    tiny SFNO (or ``emulator``) and synthetic stations (or ``table``)."""
    from dafusion.cycler.experiment import Experiment, observation_table

    cfg = config(CYCLE_SETTINGS, *settings)
    truth = truth_source()
    denoiser, normaliser, _ = prior_parts(truth)
    if emulator is None and cfg.run.mode != "plain":
        emulator = tiny_sfno(stats=CYCLE_EMULATOR_STATS)
    if table is None:
        table = observation_table(cfg, truth, {})
    errors = None
    if emulator is not None and cfg.run.sources.emulator.error_model == "statistics":
        errors = emulator_errors(emulator, truth)
    return Experiment(cfg, truth, denoiser, normaliser, emulator, table, errors)


# --------------------------------------------------------------------------- exact answers


@dataclasses.dataclass
class GaussianDenoiser:
    """Exact D(x; σ) = μ + Σ (Σ + σ² I)⁻¹ (x − μ) for N(μ, Σ) data on a (1, 2, 4) grid."""

    mu: torch.Tensor  # (8,)
    cov: torch.Tensor  # (8, 8)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        lam, vec = torch.linalg.eigh(self.cov)  # Σ = V Λ Vᵀ
        coef = (x.reshape(x.shape[0], -1) - self.mu) @ vec  # (B, 8)
        shrink = lam / (lam + sigma[:, None] ** 2)
        return (self.mu + (coef * shrink) @ vec.T).reshape(x.shape)


@dataclasses.dataclass
class LinearObs:
    """y = A x + noise, A selecting some grid points (orthonormal rows); validated as
    every observation source is."""

    name: str
    y: torch.Tensor
    sigma_y: float
    gamma: object
    weight: float
    index: torch.Tensor
    covariance: object = None
    pseudo_observation = False

    def __post_init__(self) -> None:
        validate_term(self)

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)[:, self.index]

    def locations(self) -> None:  # the tests of the guidance do not localise
        return None

    def diagnostics(self) -> dict[str, object]:
        return {"source": self.name, "used": int(self.index.numel()), "rejected": {}}


@dataclasses.dataclass
class GaussianField:
    """Exact denoiser of N(0, Σ) on an 8x16 grid, Σ exponential in great-circle distance."""

    cov: torch.Tensor

    def __post_init__(self) -> None:
        self.lam, self.vec = torch.linalg.eigh(self.cov)

    @classmethod
    def make(cls, length_km: float = 1500.0) -> GaussianField:
        grid = EquiangularGrid(8, 16)
        lat, lon = np.meshgrid(np.deg2rad(grid.lat), np.deg2rad(grid.lon), indexing="ij")
        xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
        xyz = xyz.reshape(-1, 3)
        dist = 6371.0 * np.arccos(np.clip(xyz @ xyz.T, -1, 1))
        return cls(torch.as_tensor(np.exp(-dist / length_km)))

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        coef = x.reshape(x.shape[0], -1) @ self.vec
        shrink = self.lam / (self.lam + sigma[:, None] ** 2)
        return ((coef * shrink) @ self.vec.T).reshape(x.shape)


class Constant(torch.nn.Module):
    """A fake network: the same output everywhere, whatever the input."""

    def __init__(self, values):
        super().__init__()
        self.values = torch.tensor(values, dtype=torch.float32).reshape(1, -1, 1, 1)

    def forward(self, x):
        return self.values.expand(x.shape[0], -1, *x.shape[2:]).clone()



def sample(cfg, denoiser, shape, generators, terms=(), **kwargs):
    """Algorithm 1: EDM's sampler on the denoiser guided by ``terms`` (none: unguided)."""
    from dafusion.obs.base import joint_log_likelihood
    from dafusion.prior.guidance import GuidedDenoiser
    from dafusion.prior.sampler import EDMSampler

    if terms:
        denoiser = GuidedDenoiser(denoiser, joint_log_likelihood(terms),
                                  scale=cfg.guidance_scale, clip=cfg.guidance_clip)
    return EDMSampler(cfg)(denoiser, shape, generators, **kwargs)


def crash_at_metrics_write(monkeypatch, n: int, partial: bool = False) -> None:
    """The ``n``-th write of a ``metrics.csv`` raises KeyboardInterrupt (a kill at that
    moment), leaving half the file as ``metrics.csv.partial`` with ``partial``; undo with
    ``monkeypatch.undo()``."""
    import dafusion.cycler.rundir as rundir

    real, calls = rundir.write_text, {"n": 0}

    def crashing(path, text):
        if path.name == "metrics.csv":
            calls["n"] += 1
            if calls["n"] == n:
                if partial:
                    path.with_name("metrics.csv.partial").write_text(text[: len(text) // 2])
                raise KeyboardInterrupt("killed while writing")
        real(path, text)

    monkeypatch.setattr(rundir, "write_text", crashing)


def interrupted_children(monkeypatch, interrupt) -> list:
    """The local executor's child runs (``executors.Child``) replaced by fakes whose
    first ``wait()`` calls ``interrupt()`` (e.g. raises KeyboardInterrupt, or sends this
    process SIGTERM); returns the list of signals the children receive."""
    from dafusion.cycler.campaigns import executors

    signals: list = []

    class Child:
        def __init__(self, cmd):
            self.done = False

        def wait(self):
            if not signals:
                interrupt()
            self.done = True

        def poll(self):
            return 0 if self.done else None

        def send_signal(self, sig):
            signals.append(sig)

    monkeypatch.setattr(executors, "Child", Child)
    return signals

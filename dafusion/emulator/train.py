"""``cycler emulator train``: the SFNO emulator trained on the truth data.

The training period of ``data`` (the nature run for the OSSE) is read through
the data layer, regridded to the emulator grid by ``dafusion.regrid`` (spectral
by default) and held in memory. Statistics (``EmulatorStats``) are
area-weighted global means/stds over the training period. The loss is the
area-weighted MSE of the normalised state error after each of
``rollout_steps`` autoregressive steps, ``(x̂_k - x_k) / std_dx``: for one step
an MSE on the normalised tendency. This is *not* LUCIE's loss, which is a
relative spherical L2 norm with further terms (Guan et al. 2024); it is the
simpler loss the demo emulator was trained with. Diagnostics add the MSE of
their normalised values. AdamW, linear warm-up, cosine decay to 0,
gradient-norm clipping.

The output directory is itself a checkpoint, rewritten atomically every
``checkpoint_every`` steps with ``training_state.pt`` (optimiser, step, RNG
states, record), so ``--resume`` continues exactly where it stopped. Each
checkpoint also records the one-step validation loss on fixed states of the
validation period.
"""

from __future__ import annotations

import dataclasses
import math
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dafusion.config import Config, dump_config
from dafusion.data import GriddedSource
from dafusion.emulator.checkpoint import meta_from_config, save_emulator
from dafusion.emulator.forcing import read_orography
from dafusion.emulator.model import LOG_SCALE, EmulatorMeta, EmulatorStats, SFNOEmulator
from dafusion.grids import AnyGrid, weighted_mean
from dafusion.io import recover_directory
from dafusion.regrid import make_regridder
from dafusion.training import Trainer

VALID_STATES = 256


def regridded_period(source: GriddedSource, channels: list[str], start: str, end: str,
                     grid: AnyGrid, method: str, chunk: int = 512
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(times, values (time, channel, lat, lon) float32 on ``grid``) of a period."""
    stack = source.stack(start, end).sel(channel=channels)
    if stack.sizes["time"] < 2:
        raise ValueError(f"{source.path}: fewer than 2 states in {start} .. {end}")
    regrid = make_regridder(source.grid, grid, method) if source.grid != grid else None
    out = np.empty((stack.sizes["time"], len(channels), *grid.shape), np.float32)
    for i in range(0, stack.sizes["time"], chunk):
        block = torch.as_tensor(stack.isel(time=slice(i, i + chunk)).values, dtype=torch.float64)
        out[i:i + chunk] = (regrid(block) if regrid is not None else block).numpy()
    return stack["time"].values, out


def _weighted_stats(x: np.ndarray, grid: AnyGrid) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted mean and std per channel of ``x (n, c, lat, lon)``."""
    mean = weighted_mean(x, grid).mean(0)
    var = weighted_mean((x - mean[None, :, None, None]) ** 2, grid).mean(0)
    return mean, np.sqrt(var)


def _pairs(times: np.ndarray, step: np.timedelta64, k: int) -> np.ndarray:
    """Indices i with states at i, i+1, .., i+k exactly ``step`` apart."""
    ok = np.diff(times) == step
    if k == 1:
        return np.flatnonzero(ok)
    run = np.convolve(ok.astype(int), np.ones(k, int), "valid") == k
    return np.flatnonzero(run)


class EmulatorData:
    """States, forcing and statistics of one period on the emulator grid."""

    def __init__(self, cfg: Config, meta: EmulatorMeta, start: str, end: str,
                 static: dict[str, np.ndarray], stats: EmulatorStats | None = None):
        source = GriddedSource.open(cfg.data.path, meta.channels + meta.diagnostics,
                                    member=cfg.data.member)
        self.times, values = regridded_period(source, meta.channels + meta.diagnostics, start,
                                              end, meta.grid, cfg.emulator.regrid)
        p = len(meta.channels)
        self.states, diag = values[:, :p], values[:, p:]
        for j, name in enumerate(meta.diagnostics):
            if name in meta.log_transform:
                diag[:, j] = np.log(np.clip(diag[:, j], 0, None) / LOG_SCALE + 1.0)
        self.diag = diag
        step = np.timedelta64(meta.time_step_hours, "h")
        self.starts = _pairs(self.times, step, cfg.emulator.train.rollout_steps)
        if self.starts.size == 0:
            raise ValueError(f"{cfg.data.path}: no states {meta.time_step_hours} h apart in "
                             f"{start} .. {end}")
        if stats is None:
            mean, std = _weighted_stats(self.states, meta.grid)
            one = _pairs(self.times, step, 1)
            _, tstd = _weighted_stats(self.states[one + 1].astype(np.float64)
                                      - self.states[one], meta.grid)
            dmean, dstd = _weighted_stats(diag[one + 1], meta.grid) if diag.shape[1] else (
                np.zeros(0), np.zeros(0))
            stats = EmulatorStats(mean, std, tstd, np.zeros(len(meta.forcing)),
                                  np.ones(len(meta.forcing)), dmean, dstd)
            if meta.forcing:
                probe = SFNOEmulator(meta, stats, static=static)
                raw = np.stack([_raw_forcing(probe, t) for t in self.times[::97]])
                fmean, fstd = _weighted_stats(raw, meta.grid)
                stats.forcing_mean, stats.forcing_std = fmean, np.where(fstd > 0, fstd, 1.0)
        self.stats = stats


def _raw_forcing(emulator: SFNOEmulator, time: np.datetime64) -> np.ndarray:
    f = emulator.forcing(time, 1)[0]
    return (f * emulator.s_forcing_std[0] + emulator.s_forcing_mean[0]).numpy()


def _lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def rollout_loss(emulator: SFNOEmulator, data: EmulatorData, idx: np.ndarray,
                 k: int, device: torch.device) -> torch.Tensor:
    """Mean over k steps of the area-weighted MSE of normalised errors."""
    w = torch.as_tensor(emulator.grid.lat_weights / emulator.grid.lat_weights.mean(),
                        dtype=torch.float32, device=device).reshape(1, 1, -1, 1)
    x = torch.as_tensor(data.states[idx], device=device)
    loss = torch.zeros((), device=device)
    for j in range(k):
        times = data.times[idx + j]
        if len(emulator.meta.forcing):  # forcing differs per sample time
            nxt, diag = zip(*(emulator.raw_step(x[b:b + 1], times[b])
                              for b in range(len(idx))))
            nxt, diag = torch.cat(nxt), torch.cat(diag)
        else:
            nxt, diag = emulator.raw_step(x, times[0])
        target = torch.as_tensor(data.states[idx + j + 1], device=device)
        err = (nxt - target) / emulator.s_tendency_std
        loss = loss + (err ** 2 * w).mean()
        if diag.shape[1]:
            t = (torch.as_tensor(data.diag[idx + j + 1], device=device)
                 - emulator.s_diag_mean) / emulator.s_diag_std
            loss = loss + ((diag - t) ** 2 * w).mean()
        x = nxt
    return loss / k


def train_emulator(cfg: Config, out: str | Path, *, resume: bool = False, force: bool = False,
                   steps: int | None = None, device: str = "cpu", init_from: str | None = None,
                   progress: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Train (or resume training) the emulator into the checkpoint directory ``out``.

    ``init_from``: start from that checkpoint's weights (fine-tuning, e.g. with a longer
    rollout); its grid, channels and architecture must be those of the configuration.
    """
    out = Path(out)
    ecfg, tcfg = cfg.emulator, cfg.emulator.train
    total = steps or tcfg.steps
    recover_directory(out)
    if out.exists() and not (resume or force):
        raise FileExistsError(f"{out}: already exists; pass --resume to continue training "
                              "or --force to start again")
    state = _training_state(out, cfg) if resume else None
    meta = meta_from_config(ecfg)
    static = {"orography": read_orography(ecfg.orography, meta.grid)} \
        if "orography" in meta.forcing else {}
    data = EmulatorData(cfg, meta, cfg.data.train_start, cfg.data.train_end, static,
                        EmulatorStats(**{k: v.numpy() for k, v in state["stats"].items()})
                        if state else None)
    valid = EmulatorData(cfg, meta, cfg.data.valid_start, cfg.data.valid_end, static,
                         data.stats)
    vidx = valid.starts[np.linspace(0, valid.starts.size - 1,
                                    min(VALID_STATES, valid.starts.size)).astype(int)]
    torch.manual_seed(tcfg.seed)
    dev = torch.device(device)
    emulator = SFNOEmulator(meta, data.stats, static=static).to(dev)
    record: dict[str, Any] = {"loss": [], "valid_loss": [], "wall_seconds": 0.0, "step": 0}
    if init_from and not state:
        record["initialised_from"] = _initialise_from(emulator, init_from)
    optimiser = torch.optim.AdamW(emulator.net.parameters(), lr=tcfg.lr,
                                  weight_decay=tcfg.weight_decay)
    gen = np.random.default_rng(tcfg.seed)
    if state:
        emulator.net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        gen.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        record = state["record"]
    trainer = _EmulatorTrainer(cfg, emulator, optimiser, data, valid, vidx, gen, dev, total,
                               record, lambda rec: _checkpoint(out, cfg, emulator, optimiser,
                                                               data, rec, gen))
    return trainer.run(progress)


def _training_state(out: Path, cfg: Config) -> dict[str, Any]:
    path = out / "training_state.pt"
    if not path.exists():
        raise FileNotFoundError(f"{out}: nothing to resume (no training_state.pt)")
    try:  # tensors, numbers, strings and containers only: a crafted file cannot run code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unreadable, truncated or not a plain state
        raise ValueError(f"{path}: unreadable, truncated or not a plain training state "
                         f"({type(err).__name__}); start again with --force") from None
    missing = {"model", "optimiser", "rng", "torch_rng", "record", "stats", "config",
               "data"} - set(state if isinstance(state, dict) else {})
    if missing:
        raise ValueError(f"{path}: not a training state of this version (missing "
                         f"{sorted(missing)}); start again with --force")
    if state["config"] != dump_config(cfg.emulator) or state["data"] != dump_config(cfg.data):
        raise ValueError(f"{out}: trained with another emulator/data configuration; "
                         "resume with the same configuration or start again with --force")
    return state


def _initialise_from(emulator: SFNOEmulator, init_from: str) -> dict[str, Any]:
    """Copy the weights of checkpoint ``init_from``; returns what the record says of it."""
    from dafusion.emulator.checkpoint import load_emulator, read_record

    meta = emulator.meta
    base = load_emulator(init_from, grid=meta.grid, channels=meta.channels)
    if base.meta.network != meta.network:
        raise ValueError(f"{init_from}: its network {base.meta.network} differs from the "
                         f"configured {meta.network}")
    emulator.net.load_state_dict(base.net.state_dict())
    prior_record = read_record(init_from)
    return {"checkpoint": Path(init_from).name, "steps": prior_record.get("step"),
            "wall_seconds": prior_record.get("wall_seconds"),
            "valid_loss": prior_record.get("valid_loss", [])[-1:]}


class _EmulatorTrainer(Trainer):
    """The rollout loss on random training starts; the checkpoint adds a validation loss."""

    name = "emulator"

    def __init__(self, cfg: Config, emulator: SFNOEmulator, optimiser: torch.optim.Optimizer,
                 data: EmulatorData, valid: EmulatorData, vidx: np.ndarray,
                 gen: np.random.Generator, device: torch.device, total: int,
                 record: dict[str, Any], checkpoint: Callable[[dict[str, Any]], None]):
        t = cfg.emulator.train
        super().__init__(list(emulator.net.parameters()), optimiser, total_steps=total,
                         grad_clip=t.grad_clip, log_every=t.log_every,
                         checkpoint_every=t.checkpoint_every, record=record)
        self.tcfg, self.emulator, self.data, self.valid, self.vidx = t, emulator, data, valid, vidx
        self.gen, self.device, self.checkpoint = gen, device, checkpoint

    def learning_rate(self, step: int) -> float:
        return _lr(step, self.total_steps, self.tcfg.lr, self.tcfg.warmup_steps)

    def loss(self, step: int) -> torch.Tensor:
        self.emulator.net.train()
        idx = self.data.starts[self.gen.integers(0, self.data.starts.size, self.tcfg.batch_size)]
        return rollout_loss(self.emulator, self.data, idx, self.tcfg.rollout_steps, self.device)

    def save(self, record: dict[str, Any]) -> None:
        self.emulator.net.eval()
        with torch.no_grad():
            vloss = float(np.mean([rollout_loss(self.emulator, self.valid,
                                                self.vidx[i:i + 64], 1, self.device).item()
                                   for i in range(0, self.vidx.size, 64)]))
        record["valid_loss"].append([record["step"], vloss])
        self.checkpoint(record)


def _checkpoint(out: Path, cfg: Config, emulator: SFNOEmulator, optimiser: torch.optim.Optimizer,
                data: EmulatorData, record: dict[str, Any], gen: np.random.Generator) -> None:
    info = {**record, "config": dump_config(cfg.emulator),
            "data": {"path": Path(cfg.data.path).name,
                     "train": [str(data.times[0])[:19], str(data.times[-1])[:19]],
                     "valid": [cfg.data.valid_start, cfg.data.valid_end]},
            "hardware": platform.processor() or platform.machine(),
            "torch": torch.__version__, "parameters": emulator.describe()["parameters"]}
    training_state = {"model": emulator.net.state_dict(), "optimiser": optimiser.state_dict(),
                      "rng": gen.bit_generator.state, "torch_rng": torch.get_rng_state(),
                      "record": record,
                      "stats": {k: torch.as_tensor(np.asarray(v))  # tensors: weights_only
                                for k, v in dataclasses.asdict(data.stats).items()},
                      "config": dump_config(cfg.emulator), "data": dump_config(cfg.data)}
    save_emulator(out, emulator, info, training_state)

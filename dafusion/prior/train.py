"""``cycler prior train``: EDM training of the SongUNet prior.

AdamW with linear learning-rate warm-up, gradient-norm clipping, an EMA of the
weights (the EMA is what the checkpoint's ``weights.pt`` holds), data from the
data layer normalised by the normaliser fitted on the training period. The
output directory is itself a checkpoint, rewritten atomically every
``checkpoint_every`` steps together with ``training_state.pt`` (raw weights,
optimiser, EMA, step, every RNG state, loss curve), so ``--resume`` continues
exactly where the last checkpoint left off.

Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains data-parallel with
DistributedDataParallel (NCCL on CUDA, Gloo on CPU); each rank draws its own
batches (seed + rank) and rank 0 writes the checkpoints, with every rank's random
states, so a resumed data-parallel run equals an uninterrupted one. Effective batch:
``prior.train.batch_size`` × ``WORLD_SIZE`` at the same ``prior.train.lr``
(docs/scale-out.md). On Slurm: :class:`PriorTrainJob`.
"""

from __future__ import annotations

import copy
import os
import platform
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dafusion.config import Config, dump_config
from dafusion.data import GriddedSource, load
from dafusion.io import recover_directory as recover
from dafusion.normalise import Normaliser
from dafusion.prior.checkpoint import PriorMeta, build_denoiser, read_meta, save_prior
from dafusion.prior.edm import edm_loss
from dafusion.training import Trainer


class TrainingData:
    """Normalised training states, in memory when small enough, else read lazily."""

    def __init__(self, cfg: Config, normaliser: Normaliser | None = None):
        self.source = GriddedSource.open(cfg.data.path, cfg.data.channels,
                                         member=cfg.data.member)
        self.stack = self.source.stack(cfg.data.train_start, cfg.data.train_end)
        if self.stack.sizes["time"] < 1:
            raise ValueError(f"{cfg.data.path}: no data in the training period "
                             f"{cfg.data.train_start} .. {cfg.data.train_end}")
        self.cache = None
        in_memory = self.stack.size * 4 <= cfg.prior.train.cache_max_gb * 1e9
        if in_memory:
            self.stack = load(self.stack.astype(np.float32), self.source.path)
        self.normaliser = normaliser or Normaliser.fit(self.stack, self.source.grid)
        if in_memory:
            values = self.normaliser.normalise(self.stack.values)
            self.cache = torch.from_numpy(values.astype(np.float32))

    def __len__(self) -> int:
        return int(self.stack.sizes["time"])

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[idx]
        values = self.stack.isel(time=np.sort(idx.numpy())).values.astype(np.float32)
        return torch.from_numpy(self.normaliser.normalise(values).astype(np.float32))

    def span(self) -> list[str]:
        times = self.stack["time"].values
        return [str(times[0])[:19], str(times[-1])[:19]]


def _distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, rank, device


def train_prior(cfg: Config, out: str | Path, *, resume: bool = False, force: bool = False,
                steps: int | None = None, progress: Callable[..., Any] | None = None
                ) -> dict[str, Any]:
    """Train (or resume training) the prior into the checkpoint directory ``out``."""
    out = Path(out)
    tcfg = cfg.prior.train
    total_steps = steps or tcfg.steps
    world, rank, device = _distributed()
    recover(out)
    if out.exists() and not (resume or force):
        raise FileExistsError(f"{out}: already exists; pass --resume to continue training "
                              "or --force to start again")
    state = _load_training_state(out, cfg) if resume else None
    data = TrainingData(cfg, state["normaliser"] if state else None)
    meta = PriorMeta(data.source.grid, cfg.data.channels, cfg.prior.network, cfg.prior.edm)
    torch.manual_seed(tcfg.seed)  # initial weights: the same on every rank and every run
    model = build_denoiser(meta).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimiser = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    gen = torch.Generator().manual_seed(tcfg.seed + 1000 * rank)
    noise_gen = torch.Generator(device=device).manual_seed(tcfg.seed + 1000 * rank + 1)
    torch.manual_seed(tcfg.seed + 1000 * rank + 2)  # dropout
    record: dict[str, Any] = {"loss": [], "wall_seconds": 0.0, "step": 0}
    if state:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimiser.load_state_dict(state["optimiser"])
        _restore_rng(state["rng"], gen, noise_gen, world, rank, tcfg.seed,
                     state["record"]["step"])
        record = state["record"]
    ddp = (torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model)

    def save(rec: dict[str, Any]) -> None:
        rng = _rng_states(gen, noise_gen, world, device)  # every rank takes part
        if rank == 0:
            _checkpoint(out, cfg, meta, model, ema, optimiser, data, rec, rng, world, device)

    trainer = _PriorTrainer(cfg, data, model, ddp, ema, optimiser, (gen, noise_gen), device,
                            total_steps, record, save)
    record = trainer.run(progress)
    if world > 1:
        torch.distributed.barrier()  # no rank leaves before rank 0 has written
        torch.distributed.destroy_process_group()
    return record


class _PriorTrainer(Trainer):
    """EDM denoising loss on random training states, then the EMA update."""

    name = "prior"

    def __init__(self, cfg: Config, data: TrainingData, model: torch.nn.Module,
                 ddp: torch.nn.Module, ema: torch.nn.Module, optimiser: torch.optim.Optimizer,
                 generators: tuple[torch.Generator, torch.Generator], device: torch.device,
                 total_steps: int, record: dict[str, Any],
                 save: Callable[[dict[str, Any]], None]):
        t = cfg.prior.train
        super().__init__(list(model.parameters()), optimiser, total_steps=total_steps,
                         grad_clip=t.grad_clip, log_every=t.log_every,
                         checkpoint_every=t.checkpoint_every, record=record)
        self.cfg, self.data, self.model, self.ddp, self.ema = cfg, data, model, ddp, ema
        self.data_gen, self.noise_gen = generators
        self.device, self._save = device, save

    def learning_rate(self, step: int) -> float:
        t = self.cfg.prior.train
        return t.lr * min(1.0, (step + 1) / max(1, t.warmup_steps))

    def loss(self, step: int) -> torch.Tensor:
        t, edm = self.cfg.prior.train, self.cfg.prior.edm
        idx = torch.randint(len(self.data), (t.batch_size,), generator=self.data_gen)
        x0 = self.data.batch(idx).to(self.device)
        return edm_loss(self.ddp, x0, edm.P_mean, edm.P_std, self.noise_gen)

    def after_step(self) -> None:
        _ema_update(self.ema, self.model, self.cfg.prior.train.ema_decay)

    def save(self, record: dict[str, Any]) -> None:
        self._save(record)


RNG_KEYS = ("data", "noise", "torch")


def _rng_states(gen: torch.Generator, noise_gen: torch.Generator, world: int,
                device: torch.device) -> dict[str, Any]:
    """This rank's generator states (``data``, ``noise``, ``torch``) and, under DDP, every
    rank's (``ranks``: ``(world, n)`` per key), gathered, so that a resumed data-parallel
    run draws what each rank would have drawn."""
    mine = {"data": gen.get_state(), "noise": noise_gen.get_state(),
            "torch": torch.get_rng_state()}
    if world == 1:
        return mine
    comm = device if device.type == "cuda" else torch.device("cpu")
    ranks = {}
    for key, value in mine.items():
        parts = [torch.empty_like(value, device=comm) for _ in range(world)]
        torch.distributed.all_gather(parts, value.to(comm))
        ranks[key] = torch.stack(parts).cpu()
    return {**mine, "ranks": ranks}


def _restore_rng(saved: dict[str, Any], gen: torch.Generator, noise_gen: torch.Generator,
                 world: int, rank: int, seed: int, step: int) -> None:
    """Each rank's saved states; from a checkpoint of another world size (or one made
    before they were saved per rank), rank 0 takes the saved states and the others
    fresh ones from (seed, rank, step) — never rank 0's, which would give every rank
    the same batches."""
    per_rank = saved.get("ranks")
    if world > 1 and per_rank is not None and per_rank["data"].shape[0] == world:
        states = {k: per_rank[k][rank].clone() for k in RNG_KEYS}
    elif rank == 0:
        states = {k: saved[k] for k in RNG_KEYS}
        if world > 1:
            warnings.warn(f"resuming on {world} processes from a checkpoint without their "
                          "random states: ranks > 0 draw new batches (not those of an "
                          "uninterrupted run)", stacklevel=2)
    else:
        base = int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])
        gen.manual_seed(base)
        noise_gen.manual_seed(base + 1)
        torch.manual_seed(base + 2)
        return
    gen.set_state(states["data"])
    noise_gen.set_state(states["noise"])
    torch.set_rng_state(states["torch"])


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def _checkpoint(out: Path, cfg: Config, meta: PriorMeta, model: torch.nn.Module,
                ema: torch.nn.Module, optimiser: torch.optim.Optimizer, data: TrainingData,
                record: dict[str, Any], rng: dict[str, Any], world: int,
                device: torch.device) -> None:
    info = {**record, "data_span": data.span(), "data_path": str(cfg.data.path),
            "hardware": _hardware(device, world), "resolved_config": dump_config(cfg),
            "parameters": sum(p.numel() for p in model.parameters()),
            "torch_version": torch.__version__}
    state = {"model": model.state_dict(), "ema": ema.state_dict(),
             "optimiser": optimiser.state_dict(), "rng": rng, "record": record}
    save_prior(out, meta, ema, data.normaliser, info, training_state=state)


def _load_training_state(out: Path, cfg: Config) -> dict[str, Any]:
    path = out / "training_state.pt"
    if not path.exists():
        raise FileNotFoundError(f"{out}: nothing to resume (no training_state.pt)")
    meta = read_meta(out)
    for key, saved, now in (("data.channels", meta.channels, cfg.data.channels),
                            ("prior.network", meta.network, cfg.prior.network),
                            ("prior.edm", meta.edm, cfg.prior.edm)):
        if saved != now:
            raise ValueError(f"{out}: trained with {key} = {saved}, the configuration now says "
                             f"{now}; resume with the same settings or start again with --force")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{path}: unreadable or truncated ({err})") from None
    state["normaliser"] = Normaliser.load(out / "normaliser.nc")
    return state


def _hardware(device: torch.device, world: int) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
    return f"{world} x {name}"



class PriorTrainJob:
    """``cycler prior train --executor slurm``: the DDP training as one submitit job of
    ``nodes × tasks_per_node`` tasks (one per GPU). Each task takes its rank, world size
    and rendezvous from Slurm (``submitit.helpers.TorchDistributedEnvironment``), so
    :func:`train_prior` runs exactly as under torchrun. At the time limit or on
    pre-emption submitit calls :meth:`checkpoint`: the job is requeued with
    ``--resume`` from the last checkpoint (at most ``checkpoint_every`` steps lost)."""

    def __call__(self, config: str, out: str, steps: int | None = None, resume: bool = False,
                 force: bool = False) -> dict[str, Any]:
        import submitit

        from dafusion.config import load_config

        # CUDA_VISIBLE_DEVICES left whole: train_prior takes cuda:LOCAL_RANK itself
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return train_prior(load_config(config), out, resume=resume, force=force, steps=steps)

    def checkpoint(self, config: str, out: str, steps: int | None = None, resume: bool = False,
                   force: bool = False) -> Any:
        from submitit.helpers import DelayedSubmission

        started = (Path(out) / "training_state.pt").exists()  # else: from the beginning again
        return DelayedSubmission(PriorTrainJob(), config, out, steps, started,
                                 force and not started)

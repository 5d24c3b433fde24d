"""An ensemble across processes: ``torchrun --nproc-per-node N -m dafusion.cli run …``.

Under torchrun (``WORLD_SIZE`` > 1) ``cycler run`` joins the process group — NCCL
when the device is CUDA (rank r on ``cuda:LOCAL_RANK``), Gloo on CPUs — and every
rank builds the same experiment. At each analysis:

* rank r samples members ``r·M/N … (r+1)·M/N − 1`` (:meth:`Ranks.span`) with
  those members' own generators (``cycler.seeding``) and the likelihood terms as
  those members see them (``obs.base.members_of``: their perturbed
  pseudo-observations);
* one ``all_gather`` gives every rank the whole analysis ensemble, in member order;
* every rank then makes the same emulator step (a 12 h forecast of the coarse
  state: cheap next to the analysis), so the reinit state is the same on all of
  them without more communication;
* rank 0 alone writes the run directory, holds its lock, logs, and owns resume;
  the other ranks read the configuration and ``state.npz`` from it (a run
  directory on a file system every node sees).

Since a member's sample depends only on its generator, not on the other members
(the network has no batch coupling), the run equals a one-process run of the same
members — bit for bit on CPUs with the same threads per process
(``tests/test_ranks.py``: 2 Gloo ranks, ``metrics.csv`` equal). The classical
methods (OI, LETKF) are not split: they are refused under more than one rank.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import torch

from dafusion.cycler.rundir import RunError


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place among the run's processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """The rank that writes the run directory."""
        return self.rank == 0

    def span(self, members: int, rank: int | None = None) -> tuple[int, int]:
        """The members ``[a, b)`` that ``rank`` (default: this one) samples."""
        r = self.rank if rank is None else rank
        return r * members // self.size, (r + 1) * members // self.size

    def gather(self, part: torch.Tensor, members: int) -> torch.Tensor:
        """Every rank's members, in member order, on every rank (``part``'s device)."""
        if self.size == 1:
            return part
        import torch.distributed as dist

        rows = -(-members // self.size)
        padded = torch.zeros((rows, *part.shape[1:]), dtype=part.dtype, device=part.device)
        padded[: part.shape[0]] = part
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        return torch.cat([p[: b - a] for p, (a, b) in
                          zip(parts, (self.span(members, r) for r in range(self.size)))])

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group (at the end of the command)."""
        if self.size > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def broadcast_text(self, text: str) -> str:
        """Rank 0's ``text`` on every rank (e.g. the run directory's name)."""
        if self.size == 1:
            return text
        import torch.distributed as dist

        data = torch.tensor(list(text.encode()) if self.main else [], dtype=torch.int64)
        length = torch.tensor([data.numel()], dtype=torch.int64)
        device = _comm_device()
        length = length.to(device)
        dist.broadcast(length, 0)
        buffer = torch.zeros(int(length.item()), dtype=torch.int64, device=device)
        if self.main:
            buffer.copy_(data.to(device))
        dist.broadcast(buffer, 0)
        return bytes(buffer.cpu().tolist()).decode()


SINGLE = Ranks()


def under_launcher() -> bool:
    """Whether torchrun (or ``cycler run --ranks``) started this process as one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def from_environment(device: str = "cpu") -> tuple[Ranks, str]:
    """This process's ranks and device: under torchrun, the process group joined
    (NCCL for CUDA, Gloo otherwise) and ``cuda:LOCAL_RANK``; else one process."""
    if not under_launcher():
        return SINGLE, device
    size = int(os.environ["WORLD_SIZE"])
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            raise RunError("--device cuda: no CUDA device is available")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=dt.timedelta(minutes=30))
    return Ranks(rank, size), device


def _comm_device() -> torch.device:
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) \
        if dist.get_backend() == "nccl" else torch.device("cpu")


def check(ranks: Ranks, method: str, members: int) -> None:
    """Refuse, before anything is written, what cannot be split across the ranks."""
    if ranks.size == 1:
        return
    if method != "diffusion":
        raise RunError(f"run.method {method} runs in one process (its analysis couples the "
                       f"members); launched on {ranks.size} ranks, run it without torchrun")
    if members < ranks.size:
        raise RunError(f"run.members={members} is fewer than the {ranks.size} ranks: each "
                       "rank needs at least one member")

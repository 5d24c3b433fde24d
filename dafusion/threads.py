"""CPU threads: as many as the process may really use, and threads that sleep when idle.

torch's default is one intra-op thread per core of the machine, whose OpenMP workers
spin while they wait for work. On a machine shared with other jobs (or a container
given fewer cores than the host has) they compete for cores with each other and with
the other jobs: a 7-day demo run went from minutes to about 20x slower on a shared
2-core machine. So ``cycler`` (the command; the library leaves torch alone):

* sets ``OMP_WAIT_POLICY=PASSIVE`` before torch starts (idle workers sleep), unless set;
* uses ``cycler --threads N``, else ``OMP_NUM_THREADS``, else the CPUs this process
  may run on: its affinity mask (``os.sched_getaffinity``) and its cgroup CPU quota
  (``cpu.max``, cgroup v2; ``cpu.cfs_quota_us``/``cpu.cfs_period_us``, v1);
* records the count in the run directory (``versions.json``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cpus, math.ceil(quota)) if quota else cpus)


def _cgroup_quota() -> float | None:
    """The cgroup CPU quota in CPUs, or None when unlimited or unknown."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()  # v2: "<quota> <period>"
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def prepare_environment() -> None:
    """Before torch is imported: idle OpenMP workers sleep instead of spinning."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def choose_threads(requested: int | None) -> int:
    """``--threads``, else ``OMP_NUM_THREADS``, else :func:`available_cpus`."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads: must be >= 1, got {requested}")
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else available_cpus()


def apply(threads: int) -> None:
    """Use ``threads`` intra-op threads in torch (imported here, after the environment)."""
    import torch

    torch.set_num_threads(threads)

"""``cycler sweep`` as a library: one run per combination of settings, then their comparison.

``sweep(base, {"run.sources.stations.weight": ["0.5", "1", "2"]}, root)`` checks every
combination's configuration before anything runs, runs each into
``root/<label>/`` (an ordinary run directory; ``label`` is e.g.
``stations.weight=0.5``), in this process or in ``jobs`` child processes, and
compares the runs that completed in ``root/compare.*``.
"""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
from pathlib import Path

from dafusion.config import Config, dump_config, with_overrides
from dafusion.cycler.compare import compare
from dafusion.cycler.rundir import RunDir, RunError
from dafusion.io import write_text


@dataclasses.dataclass
class SweepRun:
    label: str
    cfg: Config
    path: Path


@dataclasses.dataclass
class SweepResult:
    runs: list[SweepRun]
    table: str  # the comparison (Markdown), "" when no run completed
    files: list[Path]
    failed: list[SweepRun]


def label(settings: dict[str, str]) -> str:
    """``run.sources.stations.weight=0.5`` -> ``stations.weight=0.5`` (joined by commas)."""
    return ",".join(f"{'.'.join(k.split('.')[-2:])}={v}" for k, v in settings.items())


def plan(base: Config, axes: dict[str, list[str]], root: Path) -> list[SweepRun]:
    """Every combination of ``axes`` (key -> values, YAML text), each checked now."""
    if not axes or any(not values for values in axes.values()):
        raise RunError("sweep: give at least one setting with values (key=v1,v2,...)")
    runs = []
    for combo in itertools.product(*axes.values()):
        settings = dict(zip(axes, combo))
        cfg = with_overrides(base, [f"{k}={v}" for k, v in settings.items()])
        name = label(settings)
        if "/" in name or name in (".", ".."):
            raise RunError(f"sweep: setting values may not contain '/' ({name!r})")
        runs.append(SweepRun(name, cfg, root / name))
    return runs


def sweep(base: Config, axes: dict[str, list[str]], root: str | Path, *, jobs: int = 1,
          device: str = "cpu") -> SweepResult:
    """Run every combination (``jobs`` > 1: child processes), then compare them."""
    from dafusion.cycler.run import start_run

    root = Path(root)
    runs = plan(base, axes, root)
    if jobs < 1:
        raise RunError(f"sweep: --jobs must be >= 1, got {jobs}")
    if root.exists():
        raise RunError(f"{root}: already exists; choose another --name")
    root.mkdir(parents=True)
    if jobs == 1:
        for r in runs:
            try:
                start_run(r.cfg, r.path, device=device)
            except Exception as err:  # noqa: BLE001 - one failed run does not stop the sweep
                write_text(root / f"{r.label}.error.txt", f"{type(err).__name__}: {err}\n")
    else:
        _in_processes(runs, root, jobs, device)
    done = [r for r in runs if RunDir(r.path).complete]
    table, files = (compare([r.path for r in done], root, labels=[r.label for r in done])
                    if done else ("", []))
    return SweepResult(runs, table, files, [r for r in runs if r not in done])


def _in_processes(runs: list[SweepRun], root: Path, jobs: int, device: str) -> None:
    """``python -m dafusion.cli --threads T run --config <root>/<label>.yaml --out
    <root>/<label>``, T = this process's threads shared among the ``jobs``."""
    import torch

    threads = max(1, torch.get_num_threads() // jobs)
    commands = []
    for r in runs:
        config = write_text(root / f"{r.label}.yaml", dump_config(r.cfg))
        commands.append([sys.executable, "-m", "dafusion.cli", "--threads", str(threads),
                         "run", "--config", str(config), "--out", str(r.path),
                         "--device", device])
    for i in range(0, len(commands), jobs):
        procs = [subprocess.Popen(c) for c in commands[i:i + jobs]]
        for proc in procs:
            proc.wait()

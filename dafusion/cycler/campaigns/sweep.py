"""``cycler sweep`` as a library: one run per combination of settings (and window), then
their comparison.

``sweep(base, {"run.sources.stations.weight": ["0.5", "1", "2"]}, root)`` checks every
combination's configuration before anything runs, runs each into ``root/<label>/``
(an ordinary run directory; ``label`` is e.g. ``stations.weight=0.5``) from its
configuration file ``root/<label>.yaml`` — in this process, in child processes or as
Slurm jobs (``executor``: ``cycler.campaigns.executors``) — and compares the
runs that completed in ``root/compare.*``.

A **campaign** adds a window axis: ``starts=window_starts("2020-01-01:2020-01-22:7d")``
runs every setting from every start into ``root/<label>/<start>/`` and compares the
settings over the windows with confidence intervals (``cycler.campaigns.statistics``).

``root/sweep.json`` indexes the runs (``index.py``: label, settings, start, directory,
the sha256 of each configuration). Running the same sweep again continues it: completed runs are
skipped, interrupted ones resumed, missing ones started; a different plan on the
same root is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import re
from pathlib import Path

from dafusion.config import Config, dump_config, with_overrides
from dafusion.cycler.campaigns.compare import compare
from dafusion.cycler.campaigns.executors import Executor, Job, make_executor
from dafusion.cycler.campaigns.index import IndexedRun, SweepIndex, open_index
from dafusion.cycler.rundir import RunDir, RunError
from dafusion.io import write_text

BASE_LABEL = "base"  # the setting of a campaign without other axes


@dataclasses.dataclass
class SweepRun:
    label: str  # the setting, e.g. stations.weight=0.5
    cfg: Config
    path: Path
    start: str = ""  # the window's first analysis, in a campaign


@dataclasses.dataclass
class SweepResult:
    runs: list[SweepRun]
    table: str  # the comparison (Markdown), "" when no run completed
    files: list[Path]
    failed: list[SweepRun]


def label(settings: dict[str, str]) -> str:
    """``run.sources.stations.weight=0.5`` -> ``stations.weight=0.5`` (joined by commas)."""
    return ",".join(f"{'.'.join(k.split('.')[-2:])}={v}" for k, v in settings.items())


def window_starts(spec: str) -> list[str]:
    """``FIRST:LAST:STEP`` (dates or ISO times; STEP as ``14d`` or ``12h``) -> the starts
    FIRST, FIRST + STEP, … up to LAST, as ISO times."""
    head, _, step_text = spec.rpartition(":")
    match = re.fullmatch(r"(\d+)([dh])", step_text.strip())
    found = re.fullmatch(r"(.+?):(\d{4}-\d\d-\d\d.*)", head)  # LAST starts with a date
    if not (match and found):
        raise RunError(f"--starts {spec!r}: expected FIRST:LAST:STEP, e.g. "
                       "2020-01-01:2020-12-17:14d")
    try:
        first, last = (dt.datetime.fromisoformat(found.group(i).strip()) for i in (1, 2))
    except ValueError as err:
        raise RunError(f"--starts {spec!r}: {err}") from None
    step = dt.timedelta(days=int(match.group(1))) if match.group(2) == "d" else \
        dt.timedelta(hours=int(match.group(1)))
    if step <= dt.timedelta(0) or last < first:
        raise RunError(f"--starts {spec!r}: needs a positive step and LAST >= FIRST")
    out = []
    while first <= last:
        out.append(first.isoformat(timespec="minutes"))
        first += step
    return out


def plan(base: Config, axes: dict[str, list[str]], root: Path,
         starts: list[str] | tuple[str, ...] = ()) -> list[SweepRun]:
    """Every combination of ``axes`` (key -> values, YAML text) from every start in
    ``starts`` (none: the configuration's), each checked now."""
    if (not axes and not starts) or any(not values for values in axes.values()):
        raise RunError("sweep: give at least one setting with values (key=v1,v2,...)")
    runs = []
    for combo in itertools.product(*axes.values()):
        settings = dict(zip(axes, combo))
        name = label(settings) or BASE_LABEL
        if "/" in name or name in (".", ".."):
            raise RunError(f"sweep: setting values may not contain '/' ({name!r})")
        overrides = [f"{k}={v}" for k, v in settings.items()]
        if not starts:
            runs.append(SweepRun(name, with_overrides(base, overrides), root / name))
        for start in starts:
            cfg = with_overrides(base, overrides + [f"run.start={start}"])
            runs.append(SweepRun(name, cfg, root / name / _tag(start), start))
    return runs


def sweep(base: Config, axes: dict[str, list[str]], root: str | Path, *,
          device: str = "cpu", starts: list[str] | tuple[str, ...] = (),
          executor: Executor | None = None) -> SweepResult:
    """Run (or continue) every combination with ``executor`` (default: one after the
    other in this process; ``executors.make_executor``), then compare them: over
    windows with confidence intervals in a campaign."""
    root = Path(root)
    runs = plan(base, axes, root, starts)
    executor = executor or make_executor("local")
    open_index(root, SweepIndex(axes, sorted({r.start for r in runs if r.start}), [
        IndexedRun(r.label, r.start, r.path, hashlib.sha256(dump_config(r.cfg).encode())
                   .hexdigest()) for r in runs]))
    todo = [r for r in runs if not RunDir(r.path).complete]
    threads = executor.threads_per_job()
    work = [Job(r.path, _config_file(root, r), device, threads) for r in todo]
    for path, error in executor.run(work, root).items():
        write_text(_error_file(root, next(r for r in todo if r.path == path)), error + "\n")
    done = [r for r in runs if RunDir(r.path).complete]
    return SweepResult(runs, *_comparison(root, runs, done, bool(starts)),
                       [r for r in runs if r not in done])


def _config_file(root: Path, r: SweepRun) -> Path:
    """The run's configuration beside the index (what a job starts from)."""
    path = root / f"{_stem(r)}.yaml"
    text = dump_config(r.cfg)
    if not path.exists() or path.read_text() != text:
        write_text(path, text)
    return path


def _comparison(root: Path, runs: list[SweepRun], done: list[SweepRun],
                campaign: bool) -> tuple[str, list[Path]]:
    if not done:
        return "", []
    if campaign:
        from dafusion.cycler.campaigns.statistics import compare_campaign

        return compare_campaign(root)
    return compare([r.path for r in done], root, labels=[r.label for r in done])


def _tag(start: str) -> str:
    """A window's start as a folder name: ``2020-01-01T00:00`` -> ``2020-01-01T0000``."""
    return start.replace(":", "")


def _stem(r: SweepRun) -> str:
    """The run's name beside the sweep's index: ``label`` or ``label@start``."""
    return r.label + (f"@{_tag(r.start)}" if r.start else "")


def _error_file(root: Path, r: SweepRun) -> Path:
    return root / f"{_stem(r)}.error.txt"

"""``cycler run --ranks N``: the N processes of one run, started through torch's elastic
launcher API (what ``torchrun --standalone`` uses), each running the command's own
function with the options as given (``cycler/ranks.py`` says what a rank does)."""

from __future__ import annotations

import signal
import sys

import click

from dafusion.cli.main import friendly


def threads_per_rank(nranks: int) -> int:
    """``--threads`` as given (per process, as torch reads it), else the CPUs this
    process may use shared over the ranks."""
    import torch

    given = click.get_current_context().find_root().params.get("threads")
    return given if given is not None else max(1, torch.get_num_threads() // nranks)


def launch(nranks: int, threads: int, device: str, params: dict) -> None:
    """Start ``nranks`` processes through torch's elastic launcher (the API behind
    torchrun --standalone), each running :func:`_rank_main`; rank 0's output is the
    command's. A failed rank ends the others; its message is already printed."""
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    for name in list(logging.root.manager.loggerDict):  # a rank's own message says what
        if name.startswith(("torch.distributed.elastic", "torch.multiprocessing")):  # went
            logging.getLogger(name).setLevel(logging.CRITICAL)  # wrong, once
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nranks,
                          run_id=str(uuid.uuid4()), rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    try:
        elastic_launch(config, _rank_main)(threads, device, params)
    except SignalException:  # Ctrl-C (or SIGTERM): the ranks stopped resumably, rank 0 said so
        sys.exit(130)
    except ChildFailedError as err:
        codes = sorted({f.exitcode for f in err.failures.values()})
        if 130 in codes or codes == [1]:  # interrupted, or a user error rank 0 printed
            sys.exit(codes[-1])
        raise click.ClickException(f"{len(err.failures)} of {nranks} ranks stopped (exit "
                                   f"status {', '.join(map(str, codes))}); see above") from None


def _stop_once(signum: int, frame: object) -> None:
    """The first SIGINT or SIGTERM stops the rank as Ctrl-C does (resumably, rank 0 says
    so); the launcher's SIGTERM that follows a Ctrl-C is then ignored."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _rank_main(threads: int, device: str, params: dict) -> None:
    """One rank started by :func:`launch`: the command's settings, then ``cycler run``'s
    own function; a user error is printed once (by rank 0) and ends the rank with
    status 1."""
    import warnings

    from dafusion import threads as dafusion_threads
    from dafusion.cli.main import _one_line_warning
    from dafusion.cli.run import _run
    from dafusion.cycler.ranks import from_environment

    warnings.formatwarning = _one_line_warning
    dafusion_threads.apply(threads)
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C here, or the launcher stopping us
        signal.signal(sig, _stop_once)
    ranks, device = from_environment(device)
    try:
        friendly(_run)(ranks, device, **params)
    except click.ClickException as err:
        if ranks.main:
            err.show()
        sys.exit(1)
    finally:
        ranks.close()

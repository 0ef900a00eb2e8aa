"""A local Dask cluster that a Ctrl-C stops cleanly: one line from edstomo, no tracebacks from the cluster.

:func:`local_cluster` starts a ``distributed.LocalCluster`` and its client for
:mod:`edstomo.distributed`, with three rules about interrupts:

* **Workers leave Ctrl-C to this process.** A terminal's Ctrl-C reaches every
  process of its group. The workers are forked from multiprocessing's fork
  server, started with SIGINT ignored (children inherit that), so only this
  process reacts; it keeps handling Ctrl-C all along.
* **A cluster is never left half started.** SIGINT and SIGTERM are held back
  while the cluster and its client start (about a second); one that arrived
  meanwhile is acted on as soon as the cluster can be closed in order.
* **Stopping after an interrupt is quiet.** Busy workers cannot close
  gracefully; they are killed (they hold nothing that is not rewritten next
  time: chunk files are written atomically into a folder that is removed), and
  Dask's own complaints while the cluster is torn down are not shown, nor is
  the resource tracker's report of the semaphores it then releases.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import warnings
from collections.abc import Iterator
from typing import Any

from . import outputs

__all__ = ["local_cluster"]


@contextlib.contextmanager
def _workers_ignore_interrupts(processes: bool) -> Iterator[None]:
    """Within the block, Dask starts worker processes from a fork server that ignores SIGINT.

    Where there is no fork server (Windows) or the workers are threads, nothing changes.
    """
    if not processes or "forkserver" not in multiprocessing.get_all_start_methods():
        yield
        return
    from multiprocessing import forkserver

    import dask
    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context()  # distributed's preload list for the fork server
        with outputs.children_ignore_interrupts(), _quiet_resource_tracker():
            forkserver.ensure_running()  # and multiprocessing's resource tracker
        yield


#: The resource tracker's report of semaphores that workers killed after an interrupt did not release
#: (it releases them itself; the report would follow edstomo's one-line message).
_TRACKER_REPORT = "ignore:resource_tracker:UserWarning"  # (a colon would end the message field)


@contextlib.contextmanager
def _quiet_resource_tracker() -> Iterator[None]:
    """Start multiprocessing's resource tracker (if it starts here) without its leaked-semaphore report."""
    previous = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [previous, _TRACKER_REPORT]))
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYTHONWARNINGS"]
        else:
            os.environ["PYTHONWARNINGS"] = previous


class _QuietStop:
    """After an interrupt: kill the worker processes and silence Dask's logging until the cluster is closed."""

    def __init__(self, client: Any, processes: bool) -> None:
        self.pids = [int(pid) for pid in client.run(os.getpid).values()] if processes else []
        self.logger = logging.getLogger("distributed")
        self.level = self.logger.level

    def now(self) -> None:
        self.logger.setLevel(logging.CRITICAL + 1)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> _QuietStop:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.setLevel(self.level)


@contextlib.contextmanager
def local_cluster(workers: int, processes: bool) -> Iterator[Any]:
    """A ``distributed.Client`` of a ``LocalCluster`` of ``workers`` single-threaded workers, closed at the end.

    Parameters
    ----------
    workers : int
        Worker processes (or threads, with ``processes=False``).
    processes : bool
        Workers as processes (forked from a fork server that ignores SIGINT) or as threads.
    """
    from distributed import Client, LocalCluster

    with _workers_ignore_interrupts(processes):
        with warnings.catch_warnings(), outputs.DeferredInterrupts() as starting:
            warnings.simplefilter("ignore", UserWarning)  # e.g. "port 8787 is already in use"
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=None)
            client = Client(cluster)
            quiet = _QuietStop(client, processes)
        with quiet, cluster, client:
            try:
                if starting.signalled is not None:  # interrupted while it started: stop now, in order
                    raise KeyboardInterrupt
                yield client
            except KeyboardInterrupt:
                quiet.now()
                raise

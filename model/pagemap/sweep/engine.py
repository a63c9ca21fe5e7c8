"""Where the checks run: Dask distributed (spec/sweep.md says why Dask).

``--workers N`` starts an embedded ``LocalCluster`` of N worker processes,
one thread each (the checker is pure Python: threads would share one
interpreter lock); ``--scheduler ADDRESS`` sends the same tasks to a running
``dask scheduler`` whose workers have pagemap installed.  A task is a batch of
scenarios (``pagemap.sweep.run.check_batch``); batches are small so that
progress is smooth and the last ones do not leave a worker idle.

``serial`` runs the same batches in this process, for tests of the sweep's
logic that need no cluster.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Batch = list[tuple[str, dict[str, Any]]]
#: Yields (batch number, results) as batches finish, in any order.
Mapper = Callable[[Callable[..., list[Any]], list[Batch], tuple[Any, ...]],
                  Iterator[tuple[int, list[Any]]]]


def serial(fn: Callable[..., list[Any]], batches: list[Batch], args: tuple[Any, ...]
           ) -> Iterator[tuple[int, list[Any]]]:
    for i, b in enumerate(batches):
        yield i, fn(b, *args)


@contextmanager
def dask_cluster(workers: int | None = None, scheduler: str | None = None
                 ) -> Iterator["DaskMapper"]:
    """A mapper over a Dask cluster: the scheduler at ``scheduler``, or a local
    cluster of ``workers`` processes (default: one per core)."""
    import dask.config
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        n = workers or os.cpu_count() or 1
        # forkserver: workers start in about half the time of spawn (the
        # default), without forking this process's running event loop.
        with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout=30)

    try:
        yield DaskMapper(client, as_completed)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class DaskMapper:
    """Submits each batch as one task; yields results as tasks finish."""

    def __init__(self, client: Any, as_completed: Any) -> None:
        self.client = client
        self._as_completed = as_completed

    def __call__(self, fn: Callable[..., list[Any]], batches: list[Batch], args: tuple[Any, ...]
                 ) -> Iterator[tuple[int, list[Any]]]:
        futures = [self.client.submit(fn, b, *args, pure=False) for b in batches]
        number = {f.key: i for i, f in enumerate(futures)}
        for fut, res in self._as_completed(futures, with_results=True):
            yield number[fut.key], res

    def worker_pids(self) -> list[int]:
        """The process id of each worker (they are separate processes)."""
        return sorted(self.client.run(os.getpid).values())


def worker_count(scheduler: str | None, workers: int | None) -> str:
    return f"scheduler {scheduler}" if scheduler else f"{workers or os.cpu_count()} local workers"


class Progress:
    """done/total, findings so far, rate and time left, on stderr: rewritten in
    place on a terminal, one line every few seconds otherwise."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, done: int, findings: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < (0.5 if self.tty else 5.0)):
            return
        self.last = now
        el = now - self.start
        rate = done / el if el > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else 0.0
        line = (f"sweep: {done}/{self.total} scenarios, {findings} root causes, "
                f"{rate:.1f}/s, {_clock(el)} elapsed, {_clock(left)} left")
        if self.tty:
            print("\r" + line + "\x1b[K", end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def _clock(s: float) -> str:
    m, sec = divmod(int(s + 0.5), 60)
    return f"{m}:{sec:02d}"

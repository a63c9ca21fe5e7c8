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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

Batch = list[tuple[str, dict[str, Any]]]
#: Runs fn(batch, *args) for each batch as the iterable yields it (so that
#: checking starts while later scenarios are still being enumerated) and
#: yields the results as batches finish, in any order.
Mapper = Callable[[Callable[..., list[Any]], Iterable[Batch], tuple[Any, ...]],
                  Iterator[list[Any]]]


def serial(fn: Callable[..., list[Any]], batches: Iterable[Batch], args: tuple[Any, ...]
           ) -> Iterator[list[Any]]:
    for b in batches:
        yield fn(b, *args)


#: Dask settings for a sweep.  forkserver: workers start in about half the
#: time of spawn (the default), without forking this process's running event
#: loop.  The timeouts are long because on a loaded machine a process's event
#: loop can go unscheduled for tens of seconds (seen at load 12 on two cores:
#: the client's connection to the in-process scheduler timed out, and Dask's
#: reconnect then failed); a starved peer is not a dead one.
SETTINGS = {
    "distributed.worker.multiprocessing-method": "forkserver",
    "distributed.comm.timeouts.connect": "120s",
    "distributed.comm.timeouts.tcp": "900s",
    "distributed.scheduler.worker-ttl": "30 minutes",
}
RETRIES = 2  # a batch whose worker died is run again elsewhere (results are the same)


@contextmanager
def dask_cluster(workers: int | None = None, scheduler: str | None = None
                 ) -> Iterator[DaskMapper]:
    """A mapper over a Dask cluster: the scheduler at ``scheduler``, or a local
    cluster of ``workers`` processes (default: one per core)."""
    import dask.config
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    with dask.config.set(SETTINGS):
        if scheduler is None:
            n = workers or os.cpu_count() or 1
            # Only loopback addresses; the scheduler's HTTP endpoint on a free
            # port (two sweeps at once would clash on the fixed default).
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                   silence_logs=logging.ERROR)
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

    def __call__(self, fn: Callable[..., list[Any]], batches: Iterable[Batch],
                 args: tuple[Any, ...]) -> Iterator[list[Any]]:
        done = self._as_completed(with_results=True)
        for b in batches:
            done.add(self.client.submit(fn, b, *args, pure=False, retries=RETRIES))
            for _, res in done.next_batch(block=False):  # what finished meanwhile
                yield res
        for _, res in done:
            yield res

    def worker_pids(self) -> list[int]:
        """The process id of each worker (they are separate processes)."""
        return sorted(self.client.run(os.getpid).values())


def worker_count(scheduler: str | None, workers: int | None) -> str:
    return f"scheduler {scheduler}" if scheduler else f"{workers or os.cpu_count()} local workers"


class Progress:
    """Done, total (or planned so far, while the enumeration runs), root causes
    so far, rate and time left, on stderr: rewritten in place on a terminal,
    one line every few seconds otherwise."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, done: int, total: int, total_known: bool, causes: int,
               final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < (0.5 if self.tty else 5.0)):
            return
        self.last = now
        el = now - self.start
        rate = done / el if el > 0 else 0.0
        left = f"{_clock((total - done) / rate)} left" if rate > 0 and total_known else \
            "enumerating"
        line = (f"sweep: {done:,}/{total:,}{'' if total_known else '+'} scenarios, "
                f"{causes} root causes, {rate:.1f}/s, {_clock(el)} elapsed, {left}")
        if self.tty:
            print("\r" + line + "\x1b[K", end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def _clock(s: float) -> str:
    m, sec = divmod(int(s + 0.5), 60)
    return f"{m}:{sec:02d}"

"""The Dask cluster an engine sends its tasks to: opening it, running tasks, losing it.

``open_cluster("tcp://host:8786")`` connects to a running scheduler;
``open_cluster("local:4")`` starts a ``distributed.LocalCluster`` of 4 worker
processes on this machine. ``Tasks.map`` runs the files in batches and gathers
the partial answers; a task that fails is retried by Dask, and a cluster that
stops answering becomes a ``ClusterError`` saying so (the tables are untouched).
"""

from __future__ import annotations

import asyncio
import re
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from typing import Any

from panels_core.query.errors import QueryError

__all__ = [
    "RETRIES",
    "ClusterError",
    "Tasks",
    "close_cluster",
    "each_of",
    "in_batches",
    "local_cluster",
    "open_cluster",
    "worker_threads",
]

RETRIES = 2
"""A task that fails (its worker died, a read failed) is run again this many times."""
TASKS_PER_THREAD = 4
"""Files are sent in batches toward this many tasks per worker thread (enough for a slow
worker's share to move to a faster one)."""
WAIT_STEP = 1.0
"""Seconds between two looks at the connection while tasks run."""
WORKER_MEMORY = 4 * 2**30
"""A local cluster's worker ``memory_limit`` (bytes; less when the machine's memory split
between the workers is less): above 60% of it Dask spills the worker's data to its local
directory (a comparison's shuffle holds both tables' rows while it runs)."""
_LOCAL = re.compile(r"local:(\d+)")
_addresses: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
"""Each client's scheduler address, as last seen."""


class ClusterError(QueryError):
    """The Dask cluster does not answer; the message says what to do."""


def open_cluster(spec: str) -> tuple[Any, Any]:
    """(client, the LocalCluster it started or None) for ``tcp://host:port`` or ``local:N``.

    A LocalCluster has N single-threaded worker processes, no dashboard, and
    is the caller's to close (``close_cluster``)."""
    import distributed

    local = _LOCAL.fullmatch(spec.strip())
    if local is not None:
        workers = int(local.group(1))
        if workers < 1:
            raise ValueError(f"--cluster {spec}: a local cluster needs at least 1 worker")
        cluster = local_cluster(workers)
        return distributed.Client(cluster), cluster
    if "://" not in spec:
        raise ValueError(
            f"--cluster {spec!r}: give a scheduler address such as tcp://host:8786, "
            "or local:N to start N worker processes here"
        )
    try:
        return distributed.Client(spec, timeout="20s"), None
    except (OSError, TimeoutError) as exc:
        raise ValueError(
            f"--cluster {spec}: no Dask scheduler answers there ({exc}); start one "
            "(`dask scheduler`, then `dask worker {spec}`) or use local:N"
        ) from None


def local_cluster(workers: int, *, processes: bool = True, **options: Any) -> Any:
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded workers, no dashboard.

    The scheduler always serves a few HTTP routes (health, metrics); left alone it takes
    port 8787 on every interface. Here it listens on loopback on a free port, so serving a
    workspace opens nothing to the network and two clusters never fight over a port.
    Each worker's ``memory_limit`` is ``WORKER_MEMORY`` unless ``options`` say otherwise."""
    import distributed
    from distributed.system import MEMORY_LIMIT

    options.setdefault("memory_limit", min(WORKER_MEMORY, MEMORY_LIMIT // workers))
    return distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        **options,
    )


def close_cluster(client: Any, cluster: Any) -> None:
    """Close the client, and the LocalCluster when ``open_cluster`` started one."""
    client.close()
    if cluster is not None:
        cluster.close()


class Tasks:
    """Runs a function over files on the cluster of ``client``."""

    def __init__(self, client: Any) -> None:
        self.client = client
        scheduler = getattr(client, "scheduler", None)
        address = getattr(scheduler, "address", None)
        if address:
            _addresses[client] = str(address)
        self.address = _addresses.get(client, "(unknown address)")
        """The scheduler's address, kept to name it once it is gone (also by a ``Tasks``
        made after the loss, when an earlier one saw it)."""

    def lost(self, reason: Any) -> ClusterError:
        """The error of a cluster that does not answer."""
        if isinstance(reason, CancelledError | asyncio.CancelledError):
            text = "the query's tasks were cancelled (the scheduler, or the way to it, is gone)"
        else:
            text = (str(reason).strip() or type(reason).__name__).splitlines()[0]
        return ClusterError(
            f"the Dask cluster at {self.address} is not answering: {text}; the tables are "
            "still there — restart the cluster or serve without --cluster"
        )

    def run(self, work: Callable[[], Any]) -> Any:
        """``work()`` (which talks to the cluster), a lost cluster as a ``ClusterError``."""
        if self.client.status != "running":
            raise self.lost(f"the connection is {self.client.status}")
        try:
            return work()
        except QueryError:
            raise
        except (OSError, TimeoutError, CancelledError, asyncio.CancelledError) as exc:
            raise self.lost(exc) from None

    def compute(self, collections: list[Any]) -> list[Any]:
        """A list of Dask collections computed on the cluster."""
        return self.collect(lambda: self.client.compute(collections, retries=RETRIES))

    def persist(self, collections: list[Any]) -> list[Any]:
        """Dask collections computed on the cluster and kept there: their futures, once
        every one is done (the caller releases them)."""

        def start() -> list[Any]:
            futures = self.client.compute(collections, retries=RETRIES)
            self.wait(futures)
            return futures

        return self.run(start)

    def map(self, fn: Callable[..., Any], shards: Sequence[Any], **kwargs: Any) -> list[Any]:
        """``fn(shard, **kwargs)`` for every shard, run on the cluster, in shard order.

        Files go in batches, about ``TASKS_PER_THREAD`` tasks per worker thread (each
        task costs Dask's round trip, more than DuckDB's work on a small file); kept
        pairs (futures on the workers) one task each, where they are."""
        import distributed

        if any(isinstance(shard, distributed.Future) for shard in shards):
            return self.collect(
                lambda: self.client.map(fn, shards, retries=RETRIES, pure=False, **kwargs)
            )
        batches = in_batches(list(shards), TASKS_PER_THREAD * self.threads())
        names = [f"{fn.__name__}-{uuid.uuid4().hex}" for _ in batches]
        done = self.collect(
            lambda: self.client.map(
                each_of, batches, key=names, retries=RETRIES, pure=False, fn=fn, **kwargs
            )
        )
        return [answer for batch in done for answer in batch]

    def threads(self) -> int:
        """The cluster's worker threads now (at least 1)."""
        return self.run(lambda: worker_threads(self.client))

    def collect(self, submit: Callable[[], list[Any]]) -> list[Any]:
        """The results of the futures ``submit()`` starts (released after)."""
        futures: list[Any] = []

        def gather() -> list[Any]:
            futures.extend(submit())
            self.wait(futures)
            return self.client.gather(futures)

        try:
            return self.run(gather)
        finally:
            for future in futures:
                future.release()

    def wait(self, futures: list[Any]) -> None:
        """Until every future is done; a ``ClusterError`` as soon as the client loses its
        scheduler (a gather would wait for it to come back)."""
        import distributed

        while True:
            try:
                with self.client.as_current():  # not the process's default client
                    distributed.wait(futures, timeout=WAIT_STEP)
                return
            except TimeoutError:
                if self.client.status != "running":
                    raise self.lost(f"the connection is {self.client.status}") from None


def worker_threads(client: Any) -> int:
    """The threads of the cluster's workers now (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def in_batches(shards: list[Any], tasks: int) -> list[list[Any]]:
    """``shards`` cut into at most ``tasks`` consecutive batches of near-equal size."""
    size = max(1, -(-len(shards) // max(1, tasks)))
    return [shards[i : i + size] for i in range(0, len(shards), size)]


def each_of(batch: list[Any], fn: Callable[..., Any], **kwargs: Any) -> list[Any]:
    """``fn(shard, **kwargs)`` for each shard of a batch, on a worker, in order."""
    return [fn(shard, **kwargs) for shard in batch]

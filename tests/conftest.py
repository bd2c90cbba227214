"""Fixtures for every test: no test depends on the machine's speed or on what an earlier test
left running.

- Each test starts (and ends) with no projection job left in this process: a job that a
  slow test gave up on is cancelled and has stopped, so it is never "an earlier
  projection" for the next test (a busy worker process is replaced when its job stops).
- Hypothesis has no per-example deadline: a busy machine only makes examples slower.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import wait

import pytest
from hypothesis import HealthCheck, settings

from panels_core.projection import live_projectors

# a bound, not a timing check: a cancelled job stops in well under a second, and a UMAP on
# threads of this process (which cannot be interrupted) ends within minutes
SETTLE_SECONDS = 600

settings.register_profile(
    "busy-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("busy-machine")


def settle_projections() -> int:
    """Cancel every unfinished projection job of this process and wait until each has stopped;
    returns how many there were."""
    futures = [
        future
        for projector in live_projectors()
        for future in projector.cancel_all("left over from an earlier test")
    ]
    _, running = wait(futures, timeout=SETTLE_SECONDS)
    assert not running, (
        f"{len(running)} projection job(s) still running {SETTLE_SECONDS} s after cancel"
    )
    return len(futures)


@pytest.fixture(autouse=True)
def no_projection_left_running() -> Iterator[None]:
    """Each test starts and ends with no projection job running or queued."""
    settle_projections()
    yield
    settle_projections()


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """A Dask client of a LocalCluster of 2 single-threaded worker processes, started once
    for the session by the first test that asks for it, and closed at the end (no
    dashboard; each worker may use 2 GiB)."""
    distributed = pytest.importorskip("distributed")
    from panels_core.query.cluster import local_cluster

    cluster = local_cluster(2, memory_limit="2GiB")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()

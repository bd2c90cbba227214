"""ProcessProjector: same points as in-process ``project``, progress, cache, cancel and supersede
(the worker is replaced), crashes and errors in the worker, shared memory and shutdown."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from panels_core.projection import (
    ProjectionCache,
    ProjectionCancelled,
    ProjectionError,
    ProjectionResult,
    project,
    transport,
)
from panels_core.projection import worker as pw
from panels_core.projection.rows import as_rows
from panels_core.projection.spec import as_spec
from panels_core.projection.worker import ProcessProjector
from tests.conftest import settle_projections

# What the worker calls instead of ``project`` in these tests: the first value of the first
# row picks a behaviour; any other input is projected for real.
CRASH, SLOW, PROJECTION_ERROR, KEY_ERROR, OTHER_ERROR, AS_PCA = (
    1001.0,
    1002.0,
    1003.0,
    1004.0,
    1005.0,
    1006.0,
)
TARGET = f"{__name__}:scripted"
# seconds a test waits at most for a future: a bound, not a timing assertion, generous enough
# for a cold numba cache (UMAP compiles in the worker) on a machine that is busy with other work
WAIT = 600


class WeirdError(Exception):
    """An exception type the worker does not pass through as is."""


def scripted(rows: Any, spec: Any, *, progress: Any = None, cancel: Any = None) -> Any:
    """The test worker's compute function (runs in the worker process)."""
    command = float(rows.values[0, 0]) if rows.values.size else 0.0
    if command == CRASH:
        progress(0.5, "about to crash")
        os._exit(3)
    if command == SLOW:
        progress(0.2, "sleeping")
        time.sleep(300)
    if command == PROJECTION_ERROR:
        raise ProjectionError("no good: the worker says so")
    if command == KEY_ERROR:
        raise KeyError("missing thing")
    if command == OTHER_ERROR:
        raise WeirdError("strange state")
    if command == AS_PCA:
        return project(rows, {"method": "pca"})
    return project(rows, spec, progress=progress, cancel=cancel)


def quick_warm_up() -> float:
    """Stands in for UMAP's warm-up (tens of seconds) in the worker."""
    time.sleep(0.5)
    return 0.5


def crashing_warm_up() -> float:
    time.sleep(0.5)
    os._exit(5)


def endless_warm_up() -> float:
    time.sleep(300)
    return 300.0


def command(code: float, rows: int = 50) -> np.ndarray:
    data = np.random.default_rng(int(code)).normal(size=(rows, 4)).astype(np.float32)
    data[0, 0] = code
    return data


def own_segments() -> list[str]:
    prefix = f"{pw.SEGMENT_PREFIX}{os.getpid()}-"
    return sorted(p.name for p in Path("/dev/shm").glob(f"{prefix}*"))


def worker_children() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.name == "panels-projection-worker"]


def assert_stopped(pid: int | None) -> None:
    """The process ``pid`` was ended and reaped (no zombie, no orphan)."""
    assert pid is not None
    assert pid not in [p.pid for p in multiprocessing.active_children()]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture(scope="module")
def projector() -> Iterator[ProcessProjector]:
    """One projector for the module (its worker is replaced only where a test kills it); at
    normal priority, as the tests wait for it (the default niceness is checked below). Its
    PCA jobs go to the worker too, as the scripted target reads every job."""
    projector = ProcessProjector(
        cache=ProjectionCache(), warm_up=False, target=TARGET, niceness=0, pca_in_process=False
    )
    projector.start()
    yield projector
    projector.shutdown()
    assert worker_children() == []
    assert own_segments() == []


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    """300 x 12, three clusters, with a row of NaN, an all-NaN row and an infinite value."""
    rng = np.random.default_rng(3)
    centers = rng.normal(0, 8, size=(3, 12))
    values = (centers[np.arange(300) % 3] + rng.normal(0, 1, size=(300, 12))).astype(np.float32)
    values[5, 3] = np.nan
    values[7] = np.nan
    values[11, 0] = np.inf
    return values


class Progress:
    """Collects (fraction, message) and signals when a message containing ``until`` arrives."""

    def __init__(self, until: str = "") -> None:
        self.messages: list[tuple[float, str]] = []
        self.until = until
        self.seen = threading.Event()
        self.arrived = threading.Condition()

    def __call__(self, fraction: float, message: str) -> None:
        with self.arrived:
            self.messages.append((fraction, message))
            self.arrived.notify_all()
        if self.until and self.until in message:
            self.seen.set()

    def wait_for(self, text: str) -> bool:
        """Wait (at most ``WAIT``) until a message containing ``text`` has arrived."""
        with self.arrived:
            return self.arrived.wait_for(lambda: any(text in m for _, m in self.messages), WAIT)


def without_start(messages: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """The messages of the job itself (a job may first see its worker start)."""
    return [m for m in messages if m != (0.0, "starting the projection worker")]


def assert_same_result(got: ProjectionResult, want: ProjectionResult) -> None:
    np.testing.assert_array_equal(got.points, want.points)
    np.testing.assert_array_equal(got.kept, want.kept)
    assert got.points.dtype == np.float32 and got.kept.dtype == bool
    assert not got.points.flags.writeable and not got.kept.flags.writeable
    assert (got.spec, got.dropped, got.message) == (want.spec, want.dropped, want.message)
    assert (got.notes, got.axis_labels, got.fit_points) == (
        want.notes,
        want.axis_labels,
        want.fit_points,
    )


# ----------------------------------------------------------------------------- same results


def test_umap_in_the_worker_gives_the_in_process_points_and_progress(projector, data):
    spec = {"method": "umap", "seed": 7, "params": {"n_neighbors": 10}}
    local, remote = Progress(), Progress()
    future = projector.submit("umap", data, spec, remote, key="umap-data")
    want = project(data, spec, progress=local)  # compiles here while the worker compiles there
    got = future.result(WAIT)
    assert_same_result(got, want)
    assert got.n_kept == 297 and got.dropped == 3
    assert without_start(remote.messages) == local.messages
    assert remote.messages[-1] == (1.0, "297 points")


def test_pca_in_the_worker_gives_the_in_process_points_and_progress(projector, data):
    spec = {"method": "pca", "params": {"components": [2, 3], "whiten": True}}
    local, remote = Progress(), Progress()
    want = project(data, spec, progress=local)
    got = projector.submit("pca", data, spec, remote, key="pca-data").result(WAIT)
    assert_same_result(got, want)
    assert without_start(remote.messages) == local.messages
    assert got.dropped == 3 and "1 row without an embedding" in got.message


def test_the_scale_setting_reaches_the_worker(projector):
    rng = np.random.default_rng(17)
    data = np.column_stack(
        [rng.normal(0, 1, 200), rng.normal(0, 10_000, 200), rng.normal(size=200)]
    )
    spec = {"method": "pca", "scale": "standard"}
    want = project(data, spec)
    got = projector.submit("pca", data, spec, Progress(), key="scaled").result(WAIT)
    assert_same_result(got, want)
    assert got.spec.scale == "standard" and got.notes == (
        "standardized the 3 input columns (mean 0, standard deviation 1)",
    )
    raw = projector.submit("pca", data, {"method": "pca"}, Progress(), key="scaled").result(WAIT)
    assert raw.notes == () and not np.allclose(np.abs(raw.points), np.abs(got.points))


def test_ragged_and_missing_rows_reach_the_worker(projector):
    rows: list[Any] = [[float(i), float(i % 7), float(i % 5)] for i in range(40)]
    rows[3] = None
    rows[9] = [1.0, 2.0]  # wrong length
    got = projector.submit("ragged", rows, {}, key="ragged").result(WAIT)
    assert_same_result(got, project(rows, {}))
    assert got.dropped == 2 and "1 row without an embedding" in got.message


def test_cache_hit_does_not_reach_the_worker(projector, data):
    spec = {"method": "pca", "seed": 1}
    before = projector.jobs_sent
    first = projector.submit("cached", data, spec, key="cache-me").result(WAIT)
    progress = Progress()
    second = projector.submit("cached", data, spec, progress, key="cache-me").result(WAIT)
    assert second is first
    assert projector.jobs_sent == before + 1
    assert progress.messages == [(1.0, "from cache")]


def test_rows_go_through_the_pipe_when_shared_memory_has_no_room(projector, data, monkeypatch):
    def full(segment: Any, size: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(transport, "_reserve", full)
    got = projector.submit("pipe", data, {"method": "pca"}, key="pipe").result(WAIT)
    assert_same_result(got, project(data, {"method": "pca"}))
    assert own_segments() == []


def test_the_transport_hands_the_worker_the_same_rows():
    rows = as_rows([[1.5, -2.0, 3.25], None, [4.0, 5.0], [7.0, np.nan, 9.0]])
    segment = transport.share(rows)
    assert segment is not None and segment.name in own_segments()
    try:
        seen = transport.rows_view(segment.buf, {"n": 4, "d": 3, "expected_dim": 3})
        np.testing.assert_array_equal(seen.values, rows.values)
        assert seen.values.dtype == np.float32 and seen.values.shape == (4, 3)
        assert seen.missing.tolist() == [False, True, False, False]
        assert seen.ragged.tolist() == [False, False, True, False]
        assert seen.expected_dim == 3
        del seen
    finally:
        transport.release(segment)
    assert own_segments() == []


# ----------------------------------------------------------------------------- PCA in this process


def test_a_pca_is_computed_in_this_process_with_the_points_project_gives(data):
    projector = ProcessProjector(cache=ProjectionCache(), warm_up=False)
    try:
        spec = {"method": "pca", "params": {"components": [2, 3]}}
        local, here = Progress(), Progress()
        want = project(data, spec, progress=local)
        got = projector.submit("pca", data, spec, here, key="here").result(WAIT)
        assert_same_result(got, want)
        assert here.messages == local.messages
        # no worker was started and no rows were copied into shared memory
        assert projector.jobs_sent == 0 and projector.worker_pid is None
        assert own_segments() == []
    finally:
        projector.shutdown()


def test_a_pca_of_over_1000_dims_and_a_umap_go_to_the_worker():
    projector = ProcessProjector(cache=ProjectionCache(), warm_up=False)
    pca, umap = as_spec({"method": "pca"}), as_spec({"method": "umap"})
    assert projector.runs_here(pca, as_rows(np.ones((2000, 384), dtype=np.float32)))
    assert not projector.runs_here(umap, as_rows(np.ones((2000, 384), dtype=np.float32)))
    assert not ProcessProjector(pca_in_process=False).runs_here(
        pca, as_rows(np.ones((2000, 384), dtype=np.float32))
    )
    # a full SVD (over 1000 dims) centres a copy of the rows: the worker holds that copy
    wide = np.random.default_rng(5).normal(size=(60, 1001)).astype(np.float32)
    assert not projector.runs_here(pca, as_rows(wide))
    try:
        got = projector.submit("wide", wide, pca, key="wide").result(WAIT)
        want = project(wide, pca)
        # the same up to float32 rounding (the SVD's BLAS may sum in another order there)
        np.testing.assert_allclose(got.points, want.points, atol=1e-5 * np.abs(want.points).max())
        assert (got.axis_labels, got.fit_points) == (want.axis_labels, want.fit_points)
        assert projector.jobs_sent == 1
    finally:
        projector.shutdown()


# ----------------------------------------------------------------------------- errors


def test_errors_in_the_worker_keep_their_type_and_message(projector):
    pid = projector.worker_pid
    future = projector.submit("err", command(PROJECTION_ERROR), {}, key="e1")
    error = future.exception(WAIT)
    assert type(error) is ProjectionError
    assert str(error) == "no good: the worker says so"
    assert "in scripted" in str(error.__cause__)  # the worker's traceback

    error = projector.submit("err", command(KEY_ERROR), {}, key="e2").exception(WAIT)
    assert type(error) is KeyError and error.args == ("missing thing",)

    error = projector.submit("err", command(OTHER_ERROR), {}, key="e3").exception(WAIT)
    assert type(error) is ProjectionError
    assert str(error) == "PCA failed in the projection worker (WeirdError: strange state)"
    assert projector.worker_pid == pid  # an exception does not cost the worker


def test_bad_input_fails_in_the_worker_as_in_process(projector):
    error = projector.submit("bad", np.ones((10, 1)), {}, key="one-dim").exception(WAIT)
    with pytest.raises(ProjectionError) as local:
        project(np.ones((10, 1)), {})
    assert type(error) is ProjectionError and str(error) == str(local.value)


def test_a_crash_fails_only_its_own_job(projector, data):
    pid = projector.worker_pid
    error = projector.submit("crash", command(CRASH), {}, key="crash").exception(WAIT)
    assert isinstance(error, ProjectionError)
    assert str(error).startswith(
        "the projection worker stopped (exit code 3) while running PCA on 50 rows; try "
    )
    got = projector.submit("after", data, {}, key="after-crash").result(WAIT)
    assert_same_result(got, project(data, {}))
    assert projector.worker_pid not in (None, pid)
    assert own_segments() == []


# ----------------------------------------------------------------------------- cancel


def start_slow(projector: ProcessProjector, slot: str, key: str) -> Any:
    progress = Progress(until="sleeping")
    future = projector.submit(slot, command(SLOW), {}, progress, key=key)
    assert progress.seen.wait(WAIT), progress.messages
    return future


def test_cancel_of_a_running_job_replaces_the_worker(projector, data):
    future = start_slow(projector, "slow", "slow-1")
    pid = projector.worker_pid
    assert projector.cancel("slow") is True
    assert isinstance(future.exception(WAIT), ProjectionCancelled)
    assert_stopped(pid)
    got = projector.submit("slow", data, {}, key="after-cancel").result(WAIT)
    assert_same_result(got, project(data, {}))
    assert projector.worker_pid not in (None, pid)


def test_a_newer_request_supersedes_a_running_one(projector, data):
    old = start_slow(projector, "card", "slow-2")
    pid = projector.worker_pid
    new = projector.submit("card", data, {"method": "pca", "seed": 3}, key="newer")
    error = old.exception(WAIT)
    assert isinstance(error, ProjectionCancelled) and "superseded" in str(error)
    assert_same_result(new.result(WAIT), project(data, {"method": "pca", "seed": 3}))
    assert projector.worker_pid != pid


def test_a_failing_progress_callback_fails_the_job_and_frees_the_worker(projector, data):
    def broken(fraction: float, message: str) -> None:
        if message == "sleeping":
            raise RuntimeError("the card is gone")

    pid = projector.worker_pid
    error = projector.submit("cb", command(SLOW), {}, broken, key="slow-cb").exception(WAIT)
    assert type(error) is RuntimeError and str(error) == "the card is gone"
    # the worker was still sleeping on that job: it was replaced, so this one does not wait
    got = projector.submit("cb", data, {"seed": 4}, key="after-cb").result(WAIT)
    assert_same_result(got, project(data, {"seed": 4}))
    assert_stopped(pid)


def test_a_job_cancelled_while_queued_never_reaches_the_worker(projector, data):
    running = start_slow(projector, "first", "slow-3")
    sent = projector.jobs_sent
    waiting = Progress(until="waiting for 1 earlier projection")
    queued = projector.submit("second", data, {"seed": 9}, waiting, key="queued")
    assert waiting.seen.wait(WAIT)
    assert projector.cancel("second") is True
    assert isinstance(queued.exception(WAIT), ProjectionCancelled)
    assert projector.cancel("first") is True
    assert isinstance(running.exception(WAIT), ProjectionCancelled)
    assert projector.jobs_sent == sent


def waiting_messages(progress: Progress) -> list[str]:
    return [m for _, m in progress.messages if m.startswith("waiting for")]


def give_up(future: Any, how: str) -> None:
    """The caller stops waiting for ``future`` (a test that hit its bound, a closed page)."""
    if how == "cancel":
        assert future.cancel() is False  # a running job is stopped, not cancelled at once
    else:
        with pytest.raises(TimeoutError):
            getattr(future, how)(0)  # "result" or "exception", with a timeout that has passed


@pytest.mark.parametrize("how", ["result", "exception", "cancel"])
def test_a_job_given_up_by_its_caller_stops_and_the_next_does_not_wait_for_it(projector, data, how):
    stuck = start_slow(projector, "stuck", f"slow-{how}")
    pid = projector.worker_pid
    give_up(stuck, how)
    following = Progress()
    got = projector.submit("next", data, {"seed": 11}, following, key=how).result(WAIT)
    assert_same_result(got, project(data, {"seed": 11}))
    assert waiting_messages(following) == []  # never "waiting for 1 earlier projection"
    error = stuck.exception(WAIT)
    reason = "cancelled by its caller" if how == "cancel" else "its caller stopped waiting"
    assert isinstance(error, ProjectionCancelled) and str(error) == reason
    assert_stopped(pid)  # the worker busy with the stuck job was replaced
    assert projector.worker_pid not in (None, pid)


def test_a_queued_job_counts_only_the_earlier_jobs_still_wanted(projector, data):
    running = start_slow(projector, "first", "slow-count")
    second = Progress(until="waiting for 1 earlier projection")
    queued = projector.submit("second", command(SLOW), {}, second, key="slow-count-2")
    assert second.seen.wait(WAIT)
    third = Progress(until="waiting for 2 earlier projections")
    last = projector.submit("third", data, {"seed": 12}, third, key="counted")
    assert third.seen.wait(WAIT)
    give_up(queued, "result")  # the third job now waits for one job only
    assert third.wait_for("waiting for 1 earlier projection")
    assert projector.cancel("first") is True
    assert_same_result(last.result(WAIT), project(data, {"seed": 12}))
    assert waiting_messages(third)[:2] == [
        "waiting for 2 earlier projections",
        "waiting for 1 earlier projection",
    ]
    # the first job may still have been stopping when the third one's turn came
    assert set(waiting_messages(third)[2:]) <= {"waiting for a cancelled projection to stop"}
    assert isinstance(running.exception(WAIT), ProjectionCancelled)
    assert isinstance(queued.exception(WAIT), ProjectionCancelled)


def test_settling_between_tests_stops_a_left_over_job(projector, data):
    left_over = start_slow(projector, "left", "slow-left-over")
    pid = projector.worker_pid
    assert settle_projections() == 1
    error = left_over.exception(0)  # already over: settling waits until it has stopped
    assert isinstance(error, ProjectionCancelled)
    assert str(error) == "left over from an earlier test"
    assert_stopped(pid)
    following = Progress()
    projector.submit("next", data, {"seed": 13}, following, key="after-left-over").result(WAIT)
    assert waiting_messages(following) == []
    assert settle_projections() == 0


# ----------------------------------------------------------------------------- worker life


def test_the_warm_up_runs_again_in_the_worker_that_follows_a_warmed_one(data):
    projector = ProcessProjector(
        cache=ProjectionCache(),
        target=TARGET,
        pca_in_process=False,
        warm_up_target=f"{__name__}:quick_warm_up",
    )
    try:
        assert projector.wait_until_warm(WAIT) is True
        pid = projector.worker_pid
        niceness = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(niceness + 10, 19)
        got = projector.submit("a", data, {}, key="w1").result(WAIT)
        assert_same_result(got, project(data, {}))
        assert isinstance(
            projector.submit("a", command(CRASH), {}).exception(WAIT), ProjectionError
        )
        # the warmed worker's successor starts (and warms up) at once, before the next job
        assert projector.worker_pid not in (None, pid)
        assert projector.warm_up_state == "running"
        assert projector.wait_until_warm(WAIT) is True
        assert projector.warm_up_state == "done"
        pid = projector.worker_pid
    finally:
        projector.shutdown()
    assert_stopped(pid)


def test_jobs_run_beside_the_warm_up_and_a_cancel_does_not_end_warming(data):
    projector = ProcessProjector(
        cache=ProjectionCache(),
        target=TARGET,
        pca_in_process=False,
        warm_up_target=f"{__name__}:endless_warm_up",
    )
    try:
        assert projector.wait_until_warm(0.5) is False  # still warming
        got = projector.submit("a", data, {}, key="beside").result(WAIT)  # not after the warm-up
        assert_same_result(got, project(data, {}))
        progress = Progress()
        projector.submit("a", command(AS_PCA), {"method": "umap"}, progress, key="u").result(WAIT)
        assert progress.messages[0] == (
            0.0,
            "waiting for UMAP's kernels to compile (once per server)",
        )
        pid = projector.worker_pid
        future = start_slow(projector, "b", "slow-warm")
        projector.cancel("b")
        assert isinstance(future.exception(WAIT), ProjectionCancelled)
        # stopped by us while warming: its successor starts at once and warms up again
        assert projector.worker_pid not in (None, pid)
        assert projector.warm_up_state == "running"
    finally:
        projector.shutdown()


def test_a_warm_up_that_kills_the_worker_is_not_tried_again(data):
    projector = ProcessProjector(
        cache=ProjectionCache(),
        target=TARGET,
        pca_in_process=False,
        warm_up_target=f"{__name__}:crashing_warm_up",
    )
    try:
        assert projector.wait_until_warm(WAIT) is False  # it died warming up
        assert projector.worker_pid is None  # no successor started for a warm-up
        got = projector.submit("a", data, {}, key="w").result(WAIT)
        assert_same_result(got, project(data, {}))
        assert projector.warm_up_state == "off"  # this worker does not warm up
        assert projector.wait_until_warm(WAIT) is False
        pid = projector.worker_pid
        assert pid is not None
    finally:
        projector.shutdown()
    assert_stopped(pid)


def test_a_worker_that_cannot_start_fails_the_job_with_the_reason(data):
    projector = ProcessProjector(
        cache=ProjectionCache(),
        warm_up=False,
        target="panels_no_such_module:project",
        pca_in_process=False,
    )
    try:
        error = projector.submit("a", data, {}, key="x").exception(WAIT)
        assert isinstance(error, ProjectionError)
        assert "could not start (ModuleNotFoundError" in str(error)
    finally:
        projector.shutdown()


@pytest.mark.parametrize("target", ["os.system('ls')", "panels_core.projection", ":project", ""])
def test_target_must_name_a_module_function(target):
    with pytest.raises(ValueError, match="module-level function"):
        ProcessProjector(target=target)


def test_shutdown_during_a_job_stops_the_worker_and_frees_memory():
    projector = ProcessProjector(
        cache=ProjectionCache(), warm_up=False, target=TARGET, pca_in_process=False
    )
    future = start_slow(projector, "slow", "slow-4")
    pid = projector.worker_pid
    assert len(own_segments()) == 1
    projector.shutdown()
    assert isinstance(future.exception(WAIT), ProjectionCancelled)
    assert projector.worker_pid is None
    assert_stopped(pid)
    assert own_segments() == []

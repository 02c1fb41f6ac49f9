"""The dashboard's projection worker process (dashboard/worker.py): fits like the caller would,
survives errors and deaths, compiles UMAP at the lowest priority and pauses while a page is in use.

UMAP's compile takes about a minute on this 2-core machine: the tests that run it are marked slow.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from precal.dashboard import worker as P
from precal.dashboard.worker import warm_up_umap
from precal.projection import fit_projection
from tests.precal.test_projection import TSNE_FAST, _one_thread_and_clean_cache, pre_post  # noqa: F401


# --- warm-up -----------------------------------------------------------------------------------


def test_warm_up_starts_one_daemon_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without running UMAP (its JIT takes a minute): a stub workload counts its calls."""
    calls = []
    release = threading.Event()

    def workload() -> None:
        calls.append(1)
        release.wait(5)

    monkeypatch.setattr(P, "_warm_thread", None)
    monkeypatch.setattr(P, "_umap_jit_workload", workload)
    first = warm_up_umap()
    second = warm_up_umap()
    assert first is second and first.daemon
    release.set()
    first.join(5)
    assert calls == [1]
    assert warm_up_umap() is first  # finished: still not restarted


def test_warm_up_swallows_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise RuntimeError("no numba")

    monkeypatch.setattr(P, "_warm_thread", None)
    monkeypatch.setattr(P, "_umap_jit_workload", boom)
    thread = warm_up_umap()
    thread.join(5)
    assert not thread.is_alive()


# --- the projection worker process ---------------------------------------------------------------


@pytest.fixture
def worker() -> Iterator[P.ProjectionWorker]:
    w = P.ProjectionWorker()
    yield w
    w.close()


@pytest.mark.parametrize("method, params", [("pca", {}), ("tsne", TSNE_FAST)])
def test_worker_fits_what_the_caller_would(worker: P.ProjectionWorker, method: str, params: dict) -> None:
    pre, post = pre_post(30)
    here = fit_projection(pre, post, method, seed=4, **params)
    there = worker.fit(pre, post, method, seed=4, **params)
    assert worker.pid is not None and worker.pid != P.os.getpid()
    np.testing.assert_allclose(there.pre_xy, here.pre_xy, atol=1e-9)
    np.testing.assert_allclose(there.post_xy, here.post_xy, atol=1e-9)
    assert there.params == here.params and there.model is None
    assert there.placement == ("linear" if method == "pca" else "knn")
    np.testing.assert_allclose(there.place(post[:3]), here.place(post[:3]) if method == "pca" else there.post_xy[:3],
                               atol=1e-9)  # kNN: a fitted point lands on itself


def test_worker_returns_the_callers_errors_and_survives_them(worker: P.ProjectionWorker) -> None:
    pre, post = pre_post(10)
    with pytest.raises(ValueError, match="perplexity"):
        worker.fit(pre, post, "tsne", perplexity=50.0)
    with pytest.raises(ValueError, match="unknown projection method|isomap"):
        worker.fit(pre, post, "isomap")
    pid = worker.pid
    assert worker.fit(pre, post, "pca").pre_xy.shape == (10, 2)
    assert worker.pid == pid  # the same process served all of it


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread priorities are read from Linux's /proc")
def test_the_warm_up_runs_at_the_lowest_cpu_priority_and_fits_do_not(worker: P.ProjectionWorker) -> None:
    worker.fit(*pre_post(10), "pca")  # started, idle
    pid = worker.pid
    thread = worker.warm_up()
    niceness = {}
    for _ in range(100):  # until the warm-up's thread exists
        niceness = {int(t.name): P.os.getpriority(P.os.PRIO_PROCESS, int(t.name))
                    for t in Path(f"/proc/{pid}/task").iterdir()}
        if 19 in niceness.values():
            break
        time.sleep(0.05)
    assert 19 in niceness.values()  # the compiling thread
    assert niceness[pid] < 19  # the main thread, which serves fits
    worker.close()
    thread.join(5)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _stopped_soon(pid: int, timeout: float = 2.0) -> bool:
    """Whether the process is stopped within ``timeout`` (a signal is delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    while _state(pid) != "T" and time.monotonic() < deadline:
        time.sleep(0.01)
    return _state(pid) == "T"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process states are read from Linux's /proc")
def test_a_page_in_use_pauses_the_warm_up_compile_and_only_that(worker: P.ProjectionWorker) -> None:
    worker.fit(*pre_post(10), "pca")
    assert not worker.pause_warm_up(0.5)  # nothing is compiling: nothing to pause
    assert _state(worker.pid) != "T"
    thread = worker.warm_up()
    for _ in range(100):
        if worker._warming:
            break
        time.sleep(0.02)
    start = time.monotonic()
    assert worker.pause_warm_up(2.0)
    assert _stopped_soon(worker.pid)
    worker.pause_warm_up(3.0)  # a second page run extends the pause
    second = time.monotonic()
    time.sleep(max(0.0, 2.5 - (time.monotonic() - start)))  # past the first call's delay
    if time.monotonic() - second < 2.7:  # a loaded machine may oversleep; then this check proves nothing
        assert _state(worker.pid) == "T"
    deadline = time.monotonic() + 10.0
    while _state(worker.pid) == "T" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(worker.pid) != "T"  # resumed after the last call's delay
    worker.close()
    thread.join(5)


def test_a_dead_worker_is_replaced(worker: P.ProjectionWorker) -> None:
    import signal

    pre, post = pre_post(10)
    worker.fit(pre, post, "pca")
    first = worker.pid
    P.os.kill(first, signal.SIGKILL)
    for _ in range(50):  # until the kernel has reaped it
        if worker._process.poll() is not None:
            break
        time.sleep(0.05)
    assert worker.fit(pre, post, "pca").pre_xy.shape == (10, 2)
    assert worker.pid not in (None, first)
    worker.close()
    assert worker.pid is None


def test_close_stops_a_long_request_at_once(worker: P.ProjectionWorker) -> None:
    """The warm-up holds the worker for a minute or more; close() (also run at exit) must not wait."""
    thread = worker.warm_up()
    time.sleep(1.5)  # the child is importing umap / compiling
    started = time.perf_counter()
    worker.close()
    assert time.perf_counter() - started < 5
    thread.join(5)
    assert not thread.is_alive() and worker.pid is None


def test_worker_imports_this_precal_not_one_in_its_working_directory(
        worker: P.ProjectionWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shadow = tmp_path / "precal"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('the wrong precal')\n")
    monkeypatch.chdir(tmp_path)
    pid = None
    pre, post = pre_post(10)
    assert worker.fit(pre, post, "pca").pre_xy.shape == (10, 2)
    pid = worker.pid
    worker.fit(pre, post, "pca")
    assert worker.pid == pid  # served by the worker, not by the in-process fallback after a crash


def test_a_worker_that_cannot_start_falls_back_to_this_process(
        worker: P.ProjectionWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys, "executable", "/bin/false")  # the child exits at once
    pre, post = pre_post(12)
    proj = worker.fit(pre, post, "pca")
    np.testing.assert_allclose(proj.pre_xy, fit_projection(pre, post, "pca").pre_xy)
    assert worker.pid is None


class _InterruptedOnce:
    """A connection whose next wait is interrupted (Ctrl-C between sending and reading)."""

    def __init__(self, conn) -> None:
        self.conn, self.armed = conn, True

    def poll(self, timeout):
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return self.conn.poll(timeout)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_an_interrupted_request_does_not_answer_the_next_one(worker: P.ProjectionWorker) -> None:
    big_pre, big_post = pre_post(60)
    worker.fit(big_pre, big_post, "pca")  # started
    worker._conn = _InterruptedOnce(worker._conn)
    with pytest.raises(KeyboardInterrupt):
        worker.fit(big_pre, big_post, "tsne", **TSNE_FAST)
    assert worker.pid is None  # its answer is discarded with the process
    pre, post = pre_post(7)
    proj = worker.fit(pre, post, "pca")
    assert proj.pre_xy.shape == (7, 2) and proj.method == "pca"


def test_worker_errors_reach_the_caller_as_they_can_travel() -> None:
    class Odd(Exception):
        def __init__(self, a, b):  # cannot be rebuilt from its args after pickling
            super().__init__(f"{a}/{b}")

    class BadValue(ValueError):
        pass

    assert type(P._portable_error(BadValue("bad perplexity"))) is ValueError
    odd = P._portable_error(Odd(1, 2))
    assert isinstance(odd, RuntimeError) and "Odd" in str(odd) and "1/2" in str(odd)
    import pickle

    assert str(pickle.loads(pickle.dumps(odd))) == str(odd)


@pytest.mark.slow
def test_umap_in_the_worker_after_its_warm_up(worker: P.ProjectionWorker) -> None:
    """The dashboard's path: compile in the worker, then fit there; the result equals the
    in-process fit and places new points by kNN (the fitted model stays in the worker)."""
    thread = worker.warm_up()
    assert worker.warm_up() is thread and thread.daemon
    thread.join(600)
    assert not thread.is_alive()
    pre, post = pre_post(60)
    there = worker.fit(pre, post, "umap", seed=0)
    here = fit_projection(pre, post, "umap", seed=0)
    np.testing.assert_allclose(there.pre_xy, here.pre_xy, atol=1e-4)
    assert there.placement == "knn" and there.place(pre[:4]).shape == (4, 2)


@pytest.mark.slow
def test_real_warm_up_compiles_umap() -> None:
    thread = warm_up_umap()
    thread.join(600)
    assert not thread.is_alive()

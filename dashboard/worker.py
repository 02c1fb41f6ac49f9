"""The dashboard's projection worker: UMAP (and the other methods) fitted in a process of its own.

Only the dashboard server needs this: UMAP's first fit compiles numba kernels for a minute or more
while holding the GIL of its process, which in the server would slow every page of every session.
The maths is :mod:`precal.projection.method`; the cache that calls the worker as its fitter is
:mod:`precal.projection.cache`.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np

import precal
from precal.projection.method import Projection, check_method, check_pair, fit_projection

log = logging.getLogger(__name__)

# --- UMAP warm-up -----------------------------------------------------------------------------

_warm_lock = threading.Lock()
_warm_thread: Optional[threading.Thread] = None


def warm_up_umap() -> threading.Thread:
    """Start (once per process) a daemon thread that fits and applies UMAP on 50 random points.

    UMAP's first call JIT-compiles its numba kernels, which takes tens of seconds on a small CPU; doing
    it in the background when the dashboard starts keeps its first projection page from blocking.
    Calling again returns the same thread. Failures are logged, never raised: warm-up is optional.
    """
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_warm_up_quietly, name="precal-umap-warm-up", daemon=True)
            _warm_thread.start()
        return _warm_thread


def _warm_up_quietly() -> None:
    try:
        _umap_jit_workload()
    except Exception:  # noqa: BLE001 - warm-up must never take the app down
        log.exception("UMAP warm-up failed; the first UMAP projection will compile on demand")


def _umap_jit_workload() -> None:
    """The same code paths as real UMAP projections: fit on stacked pre/post, then place.

    Both of UMAP's neighbour-search paths are compiled: exact distances (fewer than 4096 fitted
    points) and the pynndescent index (larger maps, forced here on few points). Placement runs for one
    point and for several, because numba compiles separate versions for the contiguous slices a
    single row produces and the strided ones of several rows.
    """
    rng = np.random.default_rng(0)
    pre = rng.normal(size=(25, 8)).astype(np.float32)
    post = pre + rng.normal(scale=0.1, size=pre.shape).astype(np.float32)
    for approximate in (False, True):
        proj = fit_projection(pre, post, "umap", seed=0, force_approximation_algorithm=approximate)
        proj.place(pre[:1])
        proj.place(pre[:3])


class WorkerDied(RuntimeError):
    """The projection worker process ended (or could not start) while it had a request."""


class ProjectionWorker:
    """One long-lived worker process that fits projections away from the calling process.

    Why: UMAP's first fit JIT-compiles numba kernels for about a minute on a small CPU, holding the
    GIL of the process it runs in. In the dashboard's server process that slows every page of every
    session for that minute; in a worker process it costs one CPU core and no GIL. The worker keeps
    its compiled kernels, so later fits there are fast.

    The warm-up compile runs at the lowest CPU priority (nice 19, see :func:`_at_lowest_priority`):
    separating the GIL is not enough on a 2-core machine, where the compile also takes a core that
    the browser and the server need (``benchmarks/dashboard.py`` measures the lab's round trip
    during the compile), and a page that someone is using can pause it (:meth:`pause_warm_up`).
    Fits run at normal priority and are never paused: a user is waiting for those.

    Only arrays come back: the fitted UMAP object stays in the worker, so new points are placed with
    the kNN rule, exactly as for a projection reloaded from the disk cache (see the module docstring).
    Requests are served one at a time (a fit asked for during the warm-up waits for it). The
    process is started on the first request (a fresh interpreter with the caller's ``sys.path``:
    no copy of the caller's threads or torch state), is killed by :meth:`close` and at exit, and is
    restarted if it died. If it cannot serve a fit at all, :meth:`fit` fits in the calling process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one request at a time on the connection
        self._process: Optional[Any] = None
        self._conn: Optional[Any] = None
        self._warm_thread: Optional[threading.Thread] = None
        self._closing = False  # close() killed the process: a request's WorkerDied is expected
        self._warming = False
        self._pause_lock = threading.Lock()
        self._paused: Optional[Any] = None  # the process stopped by pause_warm_up, if any
        self._resume_timer: Optional[threading.Timer] = None
        _live_workers.add(self)

    def fit(self, pre: np.ndarray, post: np.ndarray, method: str, seed: int = 0, **params: Any) -> Projection:
        """:func:`fit_projection` in the worker (same arguments, errors and result, minus ``model``)."""
        check_method(method)
        pre, post = check_pair(pre, post)
        try:
            arrays = self._call("fit", pre, post, method, int(seed), params)
        except WorkerDied:
            log.warning("the projection worker failed; fitting %s in this process instead", method, exc_info=True)
            return fit_projection(pre, post, method, seed, **params)
        n = pre.shape[0]
        if arrays["pre_xy"].shape != (n, 2) or arrays["post_xy"].shape != (n, 2):  # never cache a mix-up
            raise WorkerDied(f"the projection worker answered with maps of shape {arrays['pre_xy'].shape}, "
                             f"expected ({n}, 2)")
        return Projection(method=method, seed=int(seed), source=(pre, post), **arrays)

    def warm_up(self) -> threading.Thread:
        """Compile UMAP in the worker, from a daemon thread that waits for it (started once; a
        failure is logged, never raised: warm-up is optional)."""
        with _warm_lock:
            if self._warm_thread is None:
                self._warm_thread = threading.Thread(target=self._warm_up_quietly, daemon=True,
                                                     name="precal-umap-worker-warm-up")
                self._warm_thread.start()
            return self._warm_thread

    @property
    def pid(self) -> Optional[int]:
        process = self._process
        return None if process is None else process.pid

    def close(self) -> None:
        """Stop the worker process now, even in the middle of a request (which then raises
        :class:`WorkerDied` in its caller); a new request starts another process."""
        process = self._process
        if process is not None and process.poll() is None:
            self._closing = True
            process.kill()  # without the lock: a request in progress may hold it for minutes
        if self._lock.acquire(timeout=10):  # the request's wait loop sees the kill within 0.2 s
            try:
                self._stop()
            finally:
                self._lock.release()

    def pause_warm_up(self, seconds: float = 2.0) -> bool:
        """Stop a running warm-up compile (SIGSTOP) until ``seconds`` after the last call, then let
        it go on (SIGCONT). Returns whether a compile was paused.

        Why: even at nice 19 the compile costs a page that a user is waiting for some tens of ms on
        a 2-core machine (the kernel still gives it a share, and it competes for caches); a page
        that calls this whenever it runs keeps the whole machine while someone is interacting.
        Fits that a user asked for are never paused. POSIX only (elsewhere a no-op)."""
        import signal

        process = self._process
        if not self._warming or process is None or process.poll() is not None or not hasattr(signal, "SIGSTOP"):
            return False
        with self._pause_lock:
            if self._paused is None:
                os.kill(process.pid, signal.SIGSTOP)
                self._paused = process
            if self._resume_timer is not None:
                self._resume_timer.cancel()
            self._resume_timer = threading.Timer(seconds, self._resume)
            self._resume_timer.daemon = True
            self._resume_timer.start()
        return True

    def _resume(self) -> None:
        import signal

        with self._pause_lock:
            process, self._paused = self._paused, None
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)

    def _warm_up_quietly(self) -> None:
        self._warming = True
        try:
            self._call("warm_up")
        except WorkerDied:
            if not self._closing:  # not stopped on purpose
                log.exception("UMAP warm-up in the worker failed; the first UMAP projection will compile on demand")
        except Exception:  # noqa: BLE001 - warm-up must never take the caller down
            log.exception("UMAP warm-up in the worker failed; the first UMAP projection will compile on demand")
        finally:
            self._warming = False
            self._resume()

    def _call(self, request: str, *args: Any) -> Any:
        with self._lock:
            try:
                if self._process is None or self._process.poll() is not None:
                    self._start()
                self._conn.send((request, args))
                while not self._conn.poll(0.2):  # waits without the GIL
                    if self._process.poll() is not None:
                        raise EOFError("the worker process ended")
                ok, value = self._conn.recv()
            except (EOFError, OSError) as err:
                self._stop()
                raise WorkerDied(f"the projection worker process ended during {request!r}: {err}") from err
            except BaseException:
                # Interrupted between sending and reading the answer: that answer would otherwise be
                # read as the next request's. A new process is started for the next request.
                self._stop()
                raise
        if not ok:
            raise value
        return value

    def _start(self) -> None:
        """A plain ``python -c`` child on one end of a socket pair. Not ``multiprocessing``'s spawn:
        that re-runs the caller's main script in the child, which is a server's (or a test
        runner's) start-up, not something to repeat. The child gets the caller's ``sys.path``, so it
        imports the same ``precal`` (not one that the child's working directory would shadow)."""
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        self._closing = False
        mine, theirs = socket.socketpair()
        try:
            # the folder holding this precal first, then the caller's path minus "" (a working
            # directory's own precal/ must not shadow the one the caller runs)
            paths = [str(Path(precal.__file__).resolve().parent.parent)] + [p for p in sys.path if p]
            code = (f"import sys; sys.path[:] = {paths!r}; "
                    f"from precal.dashboard.worker import serve_fd; serve_fd({theirs.fileno()})")
            self._process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(theirs.fileno(),),
                                             stdin=subprocess.DEVNULL)
            self._conn = Connection(mine.detach())
        finally:
            theirs.close()
            mine.close()  # a no-op once detached

    def _stop(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is not None and process.poll() is None:
            process.kill()
            try:
                process.wait(5)
            except Exception:  # noqa: BLE001 - a kill that takes longer still ends the process
                pass
        if conn is not None:
            conn.close()


_live_workers: "weakref.WeakSet[ProjectionWorker]" = weakref.WeakSet()


@atexit.register
def _close_live_workers() -> None:
    """A compile in progress must not outlive its caller."""
    for worker in list(_live_workers):
        worker.close()


def serve_fd(fd: int) -> None:
    """The worker's loop: answer (request, args) with (ok, result or error) until the caller
    closes its end. Its messages are pickles, as in ``multiprocessing``: both ends are this code."""
    import signal
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is for the caller, who stops us
    conn = Connection(fd)
    handlers = {"fit": _fit_arrays, "warm_up": lambda: _at_lowest_priority(_umap_jit_workload)}
    while True:
        try:
            request, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer = (True, handlers[request](*args))
        except Exception as err:  # noqa: BLE001 - every error goes back to the caller
            answer = (False, _portable_error(err))
        try:
            conn.send(answer)
        except OSError:  # the caller is gone
            return


def _at_lowest_priority(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread at the lowest CPU priority (nice 19) and wait for it.

    The warm-up compile is speculative background work: on a small machine it must yield to the
    server and the browser, whose work a user is waiting for (idle cores it still gets). A fit that
    a user asked for runs at normal priority in the worker's main thread; the compiled kernels are
    the process's, so it profits from the warm-up all the same. Linux sets priorities per thread;
    where that fails the work simply runs at normal priority."""
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        try:
            outcome["value"] = work()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = err

    thread = threading.Thread(target=run, name="precal-low-priority")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _portable_error(err: Exception) -> Exception:
    """An exception that survives the trip to the caller: ValueError (the API's "bad input") as
    itself, anything else as a RuntimeError naming the original type (a custom exception may not
    pickle, or not be rebuilt on the other side)."""
    if isinstance(err, ValueError):
        return ValueError(str(err))
    return RuntimeError(f"{type(err).__name__} in the projection worker: {err}")


def _fit_arrays(pre: np.ndarray, post: np.ndarray, method: str, seed: int, params: Dict[str, Any]) -> Dict[str, Any]:
    proj = fit_projection(pre, post, method, seed, **params)
    return {"params": proj.params, "pre_xy": np.array(proj.pre_xy), "post_xy": np.array(proj.post_xy),
            "mean": proj.mean, "scale": proj.scale, "pca_mean": proj.pca_mean, "components": proj.components,
            "fit_samples": proj.fit_samples}


_shared_worker: Optional[ProjectionWorker] = None


def shared_worker() -> ProjectionWorker:
    """This process's one :class:`ProjectionWorker` (created on first use, no process until needed)."""
    global _shared_worker
    with _warm_lock:
        if _shared_worker is None:
            _shared_worker = ProjectionWorker()
        return _shared_worker

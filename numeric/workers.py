"""Worker processes that never outlive the command, and the executors of a solve's second process.

Executors (passed explicitly by the code that splits the work; nothing is module state):

* `SolveJobs(processes)` — the double solve's second process: a forked one-worker pool that takes
  half of every right-hand side (the pool is the ``helper`` of `online.linear_terms`) and half of
  the metric evaluations; with ``processes=1`` the same jobs run here when their results are asked
  for (the same sums in the same order, so the same numbers).
* `mp_executor(processes)` — the mp path's: `InProcess` (1) or `ForkedPair` (2), a child forked
  for one piece of work (it inherits the mp context), its result sent back through a pipe:
  ``map(fn, items)`` (the second half of the items in the child) and ``split(run, add)`` (the
  two halves of one integral's points, added); `ForkedPair` forks only for work of at least
  ``min_points`` quadrature points (`worth`).  `map_two(fn, items, processes)` is
  ``mp_executor(processes).map(fn, items)``.  An executor passed down as ``processes`` tallies the
  product-rule points of the integrals it is handed (`_Tally`): the measured size of an mp
  right-hand side.

Worker processes:

* `worker_init` — run in each worker as it starts: SIGINT ignored (an interrupt at the terminal
  reaches the whole process group; the main process decides and stops the workers), SIGTERM back
  to its default (the fork copies the main process's handler), and on Linux the kernel sends the
  worker SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``), so even a main process killed
  with SIGKILL leaves no worker behind.
* `stop_pool(pool)` — the pool's workers terminated at once (an error or an interrupt in the main
  process: their running jobs are not waited for), then the pool shut down.
* `one_torch_thread(device)` — torch with one intra-op thread on a CPU device, for the
  simulators and the DMFT's torch arrays.
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import pickle
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

from mtsp.errors import MtspError

__all__ = ["worker_init", "stop_pool", "one_torch_thread", "SolveJobs", "InProcess", "ForkedPair", "mp_executor",
           "map_two", "PARALLEL_MIN_POINTS"]

_PR_SET_PDEATHSIG = 1
PARALLEL_MIN_POINTS = 512   # mp quadrature points below which a forked second process costs more than it saves


def worker_init() -> None:
    """Signal dispositions of a worker process (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):   # no prctl: the main process still stops its workers
            pass


def stop_pool(pool) -> None:
    """Terminate the workers of a `concurrent.futures.ProcessPoolExecutor` and shut it down
    without waiting for their jobs."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        try:
            p.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except Exception:  # noqa: BLE001  (a broken pool is what we are ending)
        pass
    for p in procs:
        try:
            p.join(timeout=5)
        except (OSError, ValueError, AttributeError, AssertionError):
            pass


@contextmanager
def one_torch_thread(device):
    """A context in which torch uses one intra-op thread when `device` is a CPU device (nothing
    changes on another device), restored on exit: the simulators' and the DMFT's tensors are
    small, and intra-op threads only synchronise on shared cores."""
    if not str(device).startswith("cpu"):   # a torch.device prints as its string
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SolveJobs:
    """Jobs for one forked worker process (half of each right-hand side during the integration,
    metric evaluations after it), or — without a worker — calls made here when their results are
    asked for; the results are the same either way.  ``pool``: the worker's executor (None with
    ``processes=1``), the ``helper`` of the right-hand sides."""

    def __init__(self, processes: int):
        self.pool = None
        if processes == 2:
            self.pool = ProcessPoolExecutor(1, mp_context=mp.get_context("fork"), initializer=worker_init)

    def submit(self, fn, *args):
        if self.pool is not None:
            return self.pool.submit(fn, *args)
        return (fn, args)

    @staticmethod
    def ready(value):
        """A job whose result is already known."""
        return (lambda v: v, (value,))

    @staticmethod
    def result(job):
        if isinstance(job, tuple):
            fn, args = job
            return fn(*args)
        return job.result()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def abort(self):
        """The worker stopped at once (an error or a signal in this process)."""
        if self.pool is not None:
            stop_pool(self.pool)
            self.pool = None


class _Tally:
    """What an mp executor ran: ``points`` (the product-rule points of every integral it was
    handed, n^d each), ``rules`` (their number) and ``largest`` (the largest d) — the measured
    size of a right-hand side (`mp_solve`'s progress notes)."""

    def __init__(self):
        self.points = self.rules = self.largest = 0

    def ran(self, points: int, dims: int) -> None:
        self.points += points
        self.rules += 1
        self.largest = max(self.largest, dims)


class InProcess(_Tally):
    """The mp path's work in this process alone (``processes=1``)."""
    processes = 1

    def worth(self, points: int) -> bool:
        return False

    def map(self, fn, items) -> list:
        return [fn(x) for x in items]

    def split(self, run, add):
        return run((0, 1))


class ForkedPair(_Tally):
    """This process and a child forked for each piece of work (``processes=2``): the child inherits
    the mp context and the data, computes its half, pickles the result through a pipe and leaves."""
    processes = 2

    def __init__(self, min_points: int = PARALLEL_MIN_POINTS):
        super().__init__()
        self.min_points = min_points

    def worth(self, points: int) -> bool:
        """Whether work of `points` quadrature points is worth a fork."""
        return points >= self.min_points

    @staticmethod
    def _fork(child):
        """child() in a forked process; returns collect(), which waits for it and returns its
        result, or raises the child's MtspError as it is (key and reason, the CLI's exit status),
        any other exception as a RuntimeError naming it."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                                        # the child: compute, send, leave at once
            os.close(r)
            try:
                payload = pickle.dumps(("ok", child()))
            except MtspError as e:                          # a user-facing error: raised as itself
                payload = pickle.dumps(("mtsp", e))
            except BaseException as e:                      # noqa: BLE001 — reported by the parent
                payload = pickle.dumps(("error", f"{type(e).__name__}: {e}"))
            with os.fdopen(w, "wb") as f:
                f.write(payload)
            os._exit(0)
        os.close(w)

        def collect():
            with os.fdopen(r, "rb") as f:
                data = f.read()
            os.waitpid(pid, 0)
            status, value = pickle.loads(data) if data else ("error", "no result")
            if status == "mtsp":
                raise value
            if status != "ok":
                raise RuntimeError(f"mp helper process failed: {value}")
            return value
        return collect

    def map(self, fn, items) -> list:
        """[fn(x) for x in items], the second half in the child."""
        items = list(items)
        if len(items) < 2:
            return [fn(x) for x in items]
        half = (len(items) + 1) // 2
        collect = self._fork(lambda: [fn(x) for x in items[half:]])
        try:
            mine = [fn(x) for x in items[:half]]
        finally:
            theirs = collect()
        return mine + theirs

    def split(self, run, add):
        """add(run((0, 2)) here, run((1, 2)) in the child): the two halves of one piece of work."""
        collect = self._fork(lambda: run((1, 2)))
        try:
            mine = run((0, 2))
        finally:
            theirs = collect()
        return add(mine, theirs)


def mp_executor(processes):
    """The mp path's executor for ``processes``: 1 or 2 (validated by `solve.check_processes`), or
    an executor itself (`InProcess`, `ForkedPair`: passed down as it is, so that its tally counts
    all the work it is handed)."""
    if isinstance(processes, _Tally):
        return processes
    return ForkedPair() if processes > 1 else InProcess()


def map_two(fn, items, processes: int = 1) -> list:
    """[fn(x) for x in items], the second half in a forked process when ``processes`` is 2."""
    return mp_executor(processes).map(fn, items)

"""Worker processes that never outlive the command: what the solve's forked second process and the
sweep's process pool share.

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

import signal
import sys
from contextlib import contextmanager

__all__ = ["worker_init", "stop_pool", "one_torch_thread"]

_PR_SET_PDEATHSIG = 1


def worker_init() -> None:
    """Signal dispositions of a worker process (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            import ctypes
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

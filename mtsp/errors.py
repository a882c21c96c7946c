"""The errors mtsp raises on purpose: each names the key at fault and the reason.

``str(err) == f"{err.key}: {err.reason}"``; the key is a dotted setup key (``tasks.B.noise``), a
command-line option or API argument (``device``, ``accuracy.budget``), or a stage (``theory``).

==================  ==========================================================  ===========
class               raised when                                                 CLI status
==================  ==========================================================  ===========
`SetupError`        the setup is invalid (mtsp.setup validates it on load)      2
`RequestError`      an option, argument or configuration value is invalid       2
`ReachError`        a valid setup lies outside an engine's reach (not           2
                    implemented: a protocol, the mp path for K ≥ 4, ...)
`ConvergenceError`  a solver stopped without converging; carries the residual   3
                    and the solver's status
==================  ==========================================================  ===========

All derive from `MtspError`; `SetupError` and `RequestError` are also `ValueError`\\ s,
`ReachError` a `NotImplementedError` and `ConvergenceError` a `RuntimeError`, so code that
catches the built-in classes keeps working.  Every other exception is a bug.
"""
from __future__ import annotations

__all__ = ["MtspError", "SetupError", "RequestError", "ReachError", "ConvergenceError",
           "EXIT_STATUS", "exit_status"]


class MtspError(Exception):
    """Base class: ``key`` is what is at fault, ``reason`` why; ``str(err) == "key: reason"``."""

    def __init__(self, key: str, reason: str):
        self.key, self.reason = str(key), str(reason)
        super().__init__(f"{self.key}: {self.reason}")

    def __reduce__(self):  # picklable across processes despite the two-argument constructor
        return (type(self), (self.key, self.reason), self.__dict__)


class SetupError(MtspError, ValueError):
    """An invalid setup: ``key`` is the dotted setup key at fault (``teacher.gram``)."""


class RequestError(MtspError, ValueError):
    """An invalid request: a command-line option, an API argument or a configuration value
    (``key`` names it: ``device``, ``out``, ``accuracy.budget``)."""


class ReachError(MtspError, NotImplementedError):
    """A valid setup (or request) outside an engine's reach: not implemented, not wrong."""


class ConvergenceError(MtspError, RuntimeError):
    """A solver stopped without converging.  ``residual``: its last error measure (the ODE
    integrator's scaled local error norm, a minimiser's bracket, ...), None if it has none;
    ``status``: a dict of what the solver reported (time, step size, iterations)."""

    def __init__(self, key: str, reason: str, residual: float | None = None,
                 status: dict | None = None):
        super().__init__(key, reason)
        self.residual = residual
        self.status = dict(status or {})


EXIT_STATUS = {SetupError: 2, RequestError: 2, ReachError: 2, ConvergenceError: 3}


def exit_status(err: BaseException) -> int | None:
    """The command line's exit status for `err` (see the table above), None for a bug."""
    for cls, status in EXIT_STATUS.items():
        if isinstance(err, cls):
            return status
    return 2 if isinstance(err, MtspError) else None

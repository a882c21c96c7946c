"""The online engine's reach: which setups it solves within reasonable time and memory, checked
before any work starts, and the guards that stop an integration that leaves it.

1. `check_structure(setup)` — the structure (classes per task, logits M = Σ C_t, hidden units K,
   tasks) against `LIMITS`: the symbolic derivation and the generated module grow with them
   (K² + K·M + Σ C_t·K order parameters, integrals over up to C_t + C_u − 2 dimensions), so a
   structure beyond them is refused at once (ReachError naming the key, the limit and what to do
   instead: ``mtsp simulate``).  No SymPy or NumPy work happens before this check.
2. `estimate(rhs, y0, t_end)` — the cost of the integration from the dynamics themselves: the
   Jacobian's spectral radius L at the initial state (power iteration on finite differences of the
   right-hand side) bounds the step of the explicit Dormand–Prince pair by its real stability
   interval, h ≤ 3.3 / L, so the integration to t_end needs about `GROWTH`·t_end·L / 3.3 steps of 6
   right-hand sides each (the rate grows along the trajectory as the heads grow: `GROWTH`); with
   the measured seconds per right-hand side this is the estimated time.  Beyond `MAX_SECONDS` the setup is refused (ReachError naming ``training.lr`` when the
   rate L itself is beyond reach — a learning rate far past the stability of the dynamics — else
   ``training.times``); beyond `NOTE_SECONDS` the estimate is printed before the work starts.
3. `Guard` — checked at every right-hand side of the integration: non-finite or exploding order
   parameters (max |y| > `EXPLODE`) stop it with a ConvergenceError stating the time t at which it
   happened; a wall time beyond the budget stops it with a ReachError stating how far it got.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from mtsp.engines import LIMITS, check_structure  # noqa: F401  (1.: shared with derive, which checks it first)
from mtsp.errors import ConvergenceError, ReachError

__all__ = ["LIMITS", "MAX_SECONDS", "NOTE_SECONDS", "EXPLODE", "GROWTH", "check_structure", "Estimate",
           "estimate", "check_cost", "Guard"]

MAX_SECONDS = 600.0   # an estimated integration beyond this is refused before it starts
NOTE_SECONDS = 20.0   # an estimated integration beyond this is announced before it starts
EXPLODE = 1e8         # |order parameter| beyond which the dynamics count as diverging
_STABILITY = 3.3      # real stability interval of Dormand–Prince 5(4): h·L ≤ 3.3
# the rate L grows along the trajectory: the demo setup integrated to t = 300 took 1310
# right-hand sides where its initial rate (L = 0.33) predicts 300 (measured, 2 cores)
GROWTH = 4.0
_SIMULATE = "'mtsp simulate' runs it at finite N"


@dataclass
class Estimate:
    """The estimated cost of an integration to ``t_end``: ``rate`` L (the Jacobian's spectral
    radius at the initial state), ``steps`` (≥ t_end·L/3.3), ``rhs`` (6 per step) and
    ``seconds`` (``rhs`` × the measured seconds per right-hand side)."""
    t_end: float
    rate: float
    steps: float
    rhs: float
    rhs_seconds: float

    @property
    def seconds(self) -> float:
        return self.rhs * self.rhs_seconds

    def describe(self) -> str:
        return (f"about {_fmt_s(self.seconds)} ({self.rhs:.3g} right-hand sides of "
                f"{1e3 * self.rhs_seconds:.3g} ms; fastest rate of the dynamics L = {self.rate:.3g})")


def _fmt_s(s: float) -> str:
    if not math.isfinite(s):
        return "forever"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.3g} h"


def _rate(rhs, y: np.ndarray, f0: np.ndarray, iterations: int) -> tuple[float, int]:
    """(L, evaluations): the spectral radius of rhs's Jacobian at y by power iteration on
    finite differences (rhs(y + εv) − rhs(y)) / ε; inf where rhs is not finite."""
    if not np.all(np.isfinite(f0)):
        return math.inf, 0
    scale = max(float(np.abs(y).max(initial=0.0)), 1e-3)
    v = np.random.default_rng(0).standard_normal(y.size)
    v /= np.linalg.norm(v)
    rate, n = 0.0, 0
    for _ in range(iterations):
        eps = 1e-4 * scale
        jv = (rhs(y + eps * v) - f0) / eps
        n += 1
        norm = float(np.linalg.norm(jv))
        if not math.isfinite(norm):
            return math.inf, n
        rate = norm
        if norm == 0.0:
            break
        v = jv / norm
    return rate, n


def estimate(rhs, y0: np.ndarray, t_end: float, iterations: int = 4) -> Estimate:
    """`Estimate` of integrating y' = rhs(y) from y0 to t_end (see the module docstring): L by
    `iterations` steps of power iteration.  Where that L makes the integration long (beyond
    `NOTE_SECONDS`), L is measured again a little way along, at y0 + τ·rhs(y0) with
    τ = 0.05·min(t_end, 1) (smaller where that step would exceed half the state's scale, or 0.5),
    and the smaller one is used: the initial state can sit on a
    singularity of the right-hand side (a student started at zero has Q = 0, a singular field
    covariance) where finite differences overstate the rate (measured: L = 986 at y0, 2.4 a
    little way along, on a three-task glm whose integration took steps of 0.09)."""
    y0 = np.asarray(y0, float)
    t0 = time.perf_counter()
    f0 = rhs(y0)
    rate, n = _rate(rhs, y0, f0, iterations)
    n_eval = 1 + n
    per = (time.perf_counter() - t0) / n_eval

    def seconds(L):
        return 6.0 * (GROWTH * t_end * L / _STABILITY + 20.0) * per
    if seconds(rate) > NOTE_SECONDS and np.all(np.isfinite(f0)):
        # a small step: at most half the state's scale (or 0.5), so that a right-hand side far
        # out of scale (lr = 1e6) does not throw the probe into a meaningless state
        step = float(np.abs(f0).max(initial=0.0))
        tau = 0.05 * min(t_end, 1.0)
        if step > 0:
            tau = min(tau, 0.5 * max(float(np.abs(y0).max(initial=0.0)), 1.0) / step)
        y1 = y0 + tau * f0
        f1 = rhs(y1)
        rate1, _ = _rate(rhs, y1, f1, iterations)
        if math.isfinite(rate1):
            rate = min(rate, rate1)
    steps = GROWTH * t_end * rate / _STABILITY + 20.0  # 20: the accuracy-limited steps of a smooth start
    return Estimate(float(t_end), float(rate), float(steps), 6.0 * steps, per)


def check_cost(est: Estimate, lr: float, max_seconds: float = MAX_SECONDS, note=None) -> None:
    """ReachError when `est` exceeds `max_seconds`; `note(text)` (default: a line on stderr) is
    told the estimate when it exceeds `NOTE_SECONDS`."""
    if est.seconds > max_seconds:
        # the rate alone: steps per unit of time beyond what the whole budget allows in t = 1
        per_unit = GROWTH * est.rate / _STABILITY * 6.0 * est.rhs_seconds
        if not math.isfinite(est.rate) or per_unit > max_seconds:
            raise ReachError("training.lr", f"lr = {lr:g} is far beyond the stability of the "
                             f"dynamics: their fastest rate L = {est.rate:.3g} needs steps below "
                             f"{_STABILITY / est.rate if est.rate else math.inf:.3g} in time, so "
                             f"the integration to t = {est.t_end:g} would take {_fmt_s(est.seconds)}"
                             f" (the reach is {_fmt_s(max_seconds)}); lower lr (η·L scales with "
                             f"η) or {_SIMULATE}")
        raise ReachError("training.times", f"integrating to t = {est.t_end:g} would take "
                         f"{est.describe()}, beyond the online engine's reach of "
                         f"{_fmt_s(max_seconds)}; ask for earlier times (the last is the cost) "
                         f"or {_SIMULATE}")
    if est.seconds > NOTE_SECONDS:
        text = f"mtsp: note: theory: estimated {est.describe()}"
        if note is None:
            print(text, file=sys.stderr, flush=True)
        else:
            note(text)


class Guard:
    """Checks the state of an integration at each right-hand side: ConvergenceError (key
    ``training.lr``) at the first non-finite or exploding order parameter, with the time; a
    ReachError (key ``training.times``) when the wall time exceeds ``max_seconds``."""

    def __init__(self, t_end: float, max_seconds: float = MAX_SECONDS):
        self.t_end, self.max_seconds = float(t_end), float(max_seconds)
        self.start = time.perf_counter()
        self.t_max = 0.0

    def __call__(self, t: float, y: np.ndarray) -> None:
        big = float(np.abs(y).max(initial=0.0))
        if not math.isfinite(big) or big > EXPLODE:
            what = "are not finite" if not math.isfinite(big) else f"exceed {EXPLODE:.0e}"
            raise ConvergenceError("training.lr", f"the dynamics diverge: the order parameters "
                                   f"{what} at t = {t:.4g} (of {self.t_end:g}); lower lr",
                                   status={"t": float(t)})
        self.t_max = max(self.t_max, float(t))
        elapsed = time.perf_counter() - self.start
        if elapsed > self.max_seconds:
            raise ReachError("training.times", f"the integration reached t = {self.t_max:.4g} of "
                             f"{self.t_end:g} in {_fmt_s(elapsed)}, beyond the online engine's "
                             f"reach of {_fmt_s(self.max_seconds)}; ask for earlier times or "
                             f"{_SIMULATE}")

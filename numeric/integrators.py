"""One explicit Runge–Kutta integrator and one bounded minimiser for both number types.

Small pieces composed in one call, in the style of diffrax:

- `ButcherTableau`: exact rational coefficients; `DORMAND_PRINCE_54` (Dormand & Prince 1980,
  FSAL, 6 new stages per step) with its 4th-order continuous extension (Shampine 1986):

      y_{n+1} = y_n + h Σ_i b_i k_i,    err = h Σ_i e_i k_i,
      y(t_n + θh) = y_n + h Σ_i k_i Σ_j P_ij θ^{j+1}.

- `StepController`: the standard (integral) controller with rtol / atol,

      ‖err_i / (atol + rtol·max(|y_n,i|, |y_{n+1},i|))‖ < 1 accepts the step,
      h ← h · clip(safety · ‖·‖^{−1/(q+1)}, min_factor, max_factor)   (q = 4: the error's order),

  the norm RMS or max; optionally no growth right after a rejection; the first step from the
  Hairer–Nørsett–Wanner rule (II.4) or given.  A step clipped to land on a requested stop
  leaves the proposed step size unchanged.
- an arithmetic: `cone.DOUBLE` (float64 NumPy arrays) or `cone.MP` (lists of mpmath numbers at the
  working precision; sums by `mpmath.fsum`) — the few vector and scalar operations the step needs,
  in the one arithmetic object per number type that the cone kernel and the replica use too.
- `Solution`: status, accepted / rejected steps, right-hand sides, the step boundaries ``ts`` and
  states ``ys``, and the dense output ``sol(t)``.

`integrate(f, y0, t_end, controller=…, arithmetic=…, stops=…)` composes them; `dormand_prince(f,
y0, t_end, rtol, atol)` is the double path's call (the steps of scipy's RK45: same tableau, RMS
norm, controller and initial-step rule; tested against it in tests/test_integrators.py).  They are
written here because importing scipy.integrate / scipy.optimize costs ≈ 0.17 s, a tenth of a small
`mtsp solve`, and because scipy has no mp arithmetic.

`bounded_minimum(f, lo, hi, xatol)` is Brent's method (golden sections with parabolic
interpolation) for a minimum of a scalar function on [lo, hi], in either arithmetic.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction as Fr

from .cone import DOUBLE, MP

__all__ = ["ButcherTableau", "DORMAND_PRINCE_54", "StepController", "DOUBLE", "MP", "Solution",
           "IntegrationFailed", "integrate", "dormand_prince", "bounded_minimum"]


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge–Kutta pair with an FSAL last stage: nodes ``c``, rows ``a`` (a[s] has s
    entries), weights ``b``, error weights ``e`` (one per stage, the FSAL stage included),
    continuous extension ``dense`` (per stage the coefficients of θ, θ², …), ``error_order``."""
    c: tuple
    a: tuple
    b: tuple
    e: tuple
    dense: tuple
    error_order: int

    @property
    def stages(self) -> int:
        return len(self.c)


def _fr(*pairs):
    return tuple(Fr(p, q) for p, q in pairs)


DORMAND_PRINCE_54 = ButcherTableau(
    c=_fr((0, 1), (1, 5), (3, 10), (4, 5), (8, 9), (1, 1)),
    a=((), _fr((1, 5)), _fr((3, 40), (9, 40)), _fr((44, 45), (-56, 15), (32, 9)),
       _fr((19372, 6561), (-25360, 2187), (64448, 6561), (-212, 729)),
       _fr((9017, 3168), (-355, 33), (46732, 5247), (49, 176), (-5103, 18656))),
    b=_fr((35, 384), (0, 1), (500, 1113), (125, 192), (-2187, 6784), (11, 84)),
    e=_fr((-71, 57600), (0, 1), (71, 16695), (-71, 1920), (17253, 339200), (-22, 525), (1, 40)),
    dense=(_fr((1, 1), (-8048581381, 2820520608), (8663915743, 2820520608), (-12715105075, 11282082432)),
           _fr((0, 1), (0, 1), (0, 1), (0, 1)),
           _fr((0, 1), (131558114200, 32700410799), (-68118460800, 10900136933), (87487479700, 32700410799)),
           _fr((0, 1), (-1754552775, 470086768), (14199869525, 1410260304), (-10690763975, 1880347072)),
           _fr((0, 1), (127303824393, 49829197408), (-318862633887, 49829197408),
               (701980252875, 199316789632)),
           _fr((0, 1), (-282668133, 205662961), (2019193451, 616988883), (-1453857185, 822651844)),
           _fr((0, 1), (40617522, 29380423), (-110615467, 29380423), (69997945, 29380423))),
    error_order=4)


@dataclass(frozen=True)
class StepController:
    """The standard step-size controller (see the module docstring).  ``norm``: "rms" or "max";
    ``initial_step``: None for the Hairer–Nørsett–Wanner rule."""
    rtol: float
    atol: float
    norm: str = "rms"
    safety: Fr = Fr(9, 10)
    min_factor: Fr = Fr(1, 5)
    max_factor: Fr = Fr(10)
    no_growth_after_rejection: bool = True
    initial_step: float | None = None

    def __post_init__(self):
        if self.norm not in ("rms", "max"):
            raise ValueError(f"norm: 'rms' or 'max', got {self.norm!r}")
        if not (self.rtol >= 0 and self.atol >= 0 and self.rtol + self.atol > 0):
            raise ValueError(f"rtol, atol: non-negative, not both zero, got {self.rtol!r}, {self.atol!r}")




class IntegrationFailed(RuntimeError):
    """The step size fell below the resolution of t: at time ``t`` with step ``step``, the last
    scaled local error norm ``error_norm`` (inf where the right-hand side was not finite)."""

    def __init__(self, message: str, t: float = math.nan, step: float = math.nan,
                 error_norm: float = math.nan):
        super().__init__(message)
        self.t, self.step, self.error_norm = t, step, error_norm


class Solution:
    """The accepted steps: ``ts`` (boundaries), ``ys`` (states there), ``accepted``,
    ``rejected``, ``nfev``, ``status`` ("success"), the dense output ``sol(t)`` (a copy) and its
    derivative ``sol.derivative(t)`` (at a step boundary: the step's first stage, f(t_n, y_n))."""

    def __init__(self, arithmetic, P, t0, y0):
        self.arithmetic, self._P = arithmetic, P
        self.ts, self.ys = [t0], [y0]
        self._h, self._Q = [], []
        self.accepted = self.rejected = self.nfev = 0
        self.status = "running"

    def _add(self, t_new, y_new, h, K):
        self.ts.append(t_new)
        self.ys.append(y_new)
        self._h.append(h)
        self._Q.append(self.arithmetic.dense(K, self._P))
        self.accepted += 1

    def _step(self, t):
        t = self.arithmetic.scalar(t)
        i = min(max(bisect_left(self.ts, t) - 1, 0), len(self._h) - 1)
        return i, self._h[i], (t - self.ts[i]) / self._h[i]

    def __call__(self, t):
        i, h, x = self._step(t)
        return self.arithmetic.interpolate(self.ys[i], h, self._Q[i], x)

    def derivative(self, t):
        """d/dt of the dense output at t: h⁻¹ d/dθ of the step's polynomial."""
        i, h, x = self._step(t)
        return self.arithmetic.slope(self._Q[i], x)


def _initial_step(ar, f, t0, y0, f0, t_end, rtol, atol, order) -> float:
    """The starting-step rule (Hairer, Nørsett & Wanner, II.4): h0 = 0.01‖y0‖/‖f0‖, then
    h1 = (0.01 / max(‖f0‖, ‖f′‖))^{1/(q+1)} from one Euler step."""
    q = ar.scalar
    span = abs(t_end - t0)
    d0 = ar.step_norm(ar.scaled(y0, y0, y0, rtol, atol), "rms")
    d1 = ar.step_norm(ar.scaled(f0, y0, y0, rtol, atol), "rms")
    small, tiny = q(Fr(1, 10 ** 5)), q(Fr(1, 10 ** 15))
    h0 = q(Fr(1, 10 ** 6)) if d0 < small or d1 < small else q(Fr(1, 100)) * d0 / d1
    h0 = min(h0, span)
    f1 = f(t0 + h0, ar.axpy(y0, h0, f0))
    d2 = ar.step_norm(ar.scaled(ar.axpy(f1, -1, f0), y0, y0, rtol, atol), "rms") / h0
    if d1 <= tiny and d2 <= tiny:
        h1 = max(q(Fr(1, 10 ** 6)), h0 * q(Fr(1, 1000)))
    else:
        h1 = (q(Fr(1, 100)) / max(d1, d2)) ** q(Fr(1, order + 1))
    return min(100 * h0, h1, span)


def integrate(f, y0, t_end, *, controller: StepController, tableau: ButcherTableau = DORMAND_PRINCE_54,
              arithmetic=DOUBLE, t0=0, stops=(), on_step=None) -> Solution:
    """Integrate y' = f(t, y) from t0 to t_end (`Solution`); steps land on every time in
    ``stops``; ``on_step(t, y)`` after each accepted step.  Raises `IntegrationFailed` when the
    step size falls below the resolution of t (a singularity, or a right-hand side that is not
    finite there: such steps are rejected)."""
    ar, tab, ctl = arithmetic, tableau, controller
    c, b, e = ar.coefficients(tab.c), ar.coefficients(tab.b), ar.coefficients(tab.e)
    a = [ar.coefficients(row) for row in tab.a]
    safety, lo, hi = ar.scalar(ctl.safety), ar.scalar(ctl.min_factor), ar.scalar(ctl.max_factor)
    exponent = ar.scalar(Fr(-1, tab.error_order + 1))
    rtol, atol = ctl.rtol, ctl.atol
    t, t_end = ar.scalar(t0), ar.scalar(t_end)
    y = ar.vector(y0)
    S = tab.stages
    K = ar.stages(S + 1, len(y))
    K[0] = f(t, y)
    sol = Solution(ar, ar.matrix(tab.dense), t, y)
    sol.nfev = 1
    if ctl.initial_step is None:
        h = _initial_step(ar, f, t, y, K[0], t_end, rtol, atol, tab.error_order)
        sol.nfev += 1
    else:
        h = ar.scalar(ctl.initial_step)
    marks = sorted({ar.scalar(s) for s in stops if t < ar.scalar(s) < t_end} | {t_end})
    for stop in marks:
        while t < stop:
            min_step = ar.resolution(t)
            h = max(h, min_step)
            rejected, norm = False, 0.0
            while True:
                clipped = t + h >= stop
                t_new = stop if clipped else t + h
                hh = t_new - t
                for s in range(1, S):
                    K[s] = f(t + c[s] * hh, ar.axpy(y, hh, ar.stage_sum(a[s], K[:s])))
                y_new = ar.axpy(y, hh, ar.stage_sum(b, K[:S]))
                K[S] = f(t_new, y_new)
                sol.nfev += S
                norm = ar.step_norm(ar.scaled(ar.times(hh, ar.stage_sum(e, K)), y, y_new, rtol, atol), ctl.norm)
                if norm < 1:
                    factor = hi if norm == 0 else min(hi, safety * norm ** exponent)
                    if rejected and ctl.no_growth_after_rejection:
                        factor = min(1, factor)
                    if not clipped or t_new == t_end:
                        h = hh * factor
                    break
                h = hh * max(lo, safety * norm ** exponent)
                rejected = True
                sol.rejected += 1
                if h < min_step:
                    why = "" if ar.isfinite(norm) else " (the right-hand side is not finite there)"
                    raise IntegrationFailed(f"step size {float(h):.3g} below the resolution of t = {float(t):.6g}{why}",
                                            t=float(t), step=float(h), error_norm=float(norm))
            sol._add(t_new, y_new, hh, K.copy())
            t, y = t_new, y_new
            K[0] = K[S]
            if on_step is not None:
                on_step(t, y)
    sol.status = "success"
    return sol


def dormand_prince(f, y0, t_end: float, rtol: float, atol: float, t0: float = 0.0) -> Solution:
    """The double path's integration: Dormand–Prince 5(4), RMS norm, scipy's controller."""
    return integrate(f, y0, t_end, controller=StepController(rtol, atol), t0=t0)


def bounded_minimum(f, lo, hi, xatol=1e-5, maxiter: int = 500, arithmetic=DOUBLE):
    """(x, f(x)) at a local minimum of f on [lo, hi] by Brent's method (R. P. Brent, Algorithms
    for Minimization without Derivatives, 1973, ch. 5): a parabola through the three best points
    when it lands inside the bracket and shrinks the step, a golden section otherwise; stops
    when the bracket is within 2·(xatol/3 + √ε|x|) of the best point or after maxiter calls."""
    ar = arithmetic
    golden = ar.scalar(Fr(1, 2)) * (ar.scalar(3) - ar.scalar(ar.sqrt(ar.scalar(5))))
    a, b, xatol = ar.scalar(lo), ar.scalar(hi), ar.scalar(xatol)
    x = w = v = a + golden * (b - a)
    fx = fw = fv = f(x)
    d = e = 0 * a
    eps = ar.scalar(ar.sqrt(ar.eps))
    for _ in range(maxiter):
        m = 0.5 * (a + b)
        tol1 = eps * abs(x) + xatol / 3.0
        tol2 = 2.0 * tol1
        if abs(x - m) <= tol2 - 0.5 * (b - a):
            break
        use_golden = True
        if abs(e) > tol1:  # try a parabola through (v, w, x)
            r = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * r
            q = 2.0 * (q - r)
            if q > 0:
                p = -p
            q = abs(q)
            if abs(p) < abs(0.5 * q * e) and q * (a - x) < p < q * (b - x):
                e, d = d, p / q
                u = x + d
                if u - a < tol2 or b - u < tol2:
                    d = tol1 if m >= x else -tol1
                use_golden = False
        if use_golden:
            e = (b - x) if x < m else (a - x)
            d = golden * e
        u = x + (d if abs(d) >= tol1 else (tol1 if d > 0 else -tol1))
        fu = f(u)
        if fu <= fx:
            if u < x:
                b = x
            else:
                a = x
            v, fv, w, fw, x, fx = w, fw, x, fx, u, fu
        else:
            if u < x:
                a = u
            else:
                b = u
            if fu <= fw or w == x:
                v, fv, w, fw = w, fw, u, fu
            elif fu <= fv or v == x or v == w:
                v, fv = u, fu
    return x, fx

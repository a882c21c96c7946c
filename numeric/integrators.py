"""Small solver pieces of the double path: an explicit Runge–Kutta integrator with dense output
and a bounded scalar minimiser.

Both are the textbook methods that scipy implements (`scipy.integrate.RK45`,
`scipy.optimize.minimize_scalar(method="bounded")`), written out here because importing those
two scipy subpackages costs ≈ 0.17 s — a tenth of a whole `mtsp solve` of a small setup
(measured: `python -X importtime`; scipy.special, which the kernels need, is imported either
way).  The integrator takes the same steps as scipy's RK45 (same tableau, error norm, step
controller and initial-step rule; tested against it in tests/test_integrators.py).

`dormand_prince(f, y0, t_end, rtol, atol)` integrates y' = f(t, y) with the Dormand–Prince
5(4) pair (FSAL, 6 new stages per step):

    y_{n+1} = y_n + h Σ_i b_i k_i,     err = h Σ_i e_i k_i,
    ‖err / (atol + rtol·max(|y_n|, |y_{n+1}|))‖_RMS ≤ 1 accepts the step,
    h ← h · clip(0.9 ‖·‖^{−1/5}, 0.2, 10)  (no growth right after a rejection),

and returns a `DenseTrajectory`: on each step the 4th-order continuous extension
y(t_n + θh) = y_n + h Σ_i k_i (Σ_j P_ij θ^{j+1}).

`bounded_minimum(f, lo, hi, xatol)` is Brent's method (golden sections with parabolic
interpolation) for a minimum of a scalar function on [lo, hi].
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["dormand_prince", "DenseTrajectory", "IntegrationFailed", "bounded_minimum"]

# the Dormand–Prince 5(4) tableau as exact (numerator, denominator) pairs — shared with the mp
# integrator (`mp_solve.dormand_prince_mp`), which evaluates them at its working precision
DP_C = [(0, 1), (1, 5), (3, 10), (4, 5), (8, 9), (1, 1)]
DP_A = [[], [(1, 5)], [(3, 40), (9, 40)], [(44, 45), (-56, 15), (32, 9)],
        [(19372, 6561), (-25360, 2187), (64448, 6561), (-212, 729)],
        [(9017, 3168), (-355, 33), (46732, 5247), (49, 176), (-5103, 18656)]]
DP_B = [(35, 384), (0, 1), (500, 1113), (125, 192), (-2187, 6784), (11, 84)]
DP_E = [(-71, 57600), (0, 1), (71, 16695), (-71, 1920), (17253, 339200), (-22, 525), (1, 40)]


def _floats(pairs) -> np.ndarray:
    return np.array([a / b for a, b in pairs], dtype=float)


_C, _B, _E = _floats(DP_C), _floats(DP_B), _floats(DP_E)
_A = [_floats(row) for row in DP_A]
# continuous extension (Dormand & Prince 1986 / Shampine 1986): coefficients of θ, θ², θ³, θ⁴
_P = np.array([
    [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0, 0, 0, 0],
    [0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
    [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
    [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423]])
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0


class IntegrationFailed(RuntimeError):
    """The step size fell below the resolution of t: at time ``t`` with step ``step``, the last
    scaled local error norm ``error_norm`` (inf where the right-hand side was not finite)."""

    def __init__(self, message: str, t: float = math.nan, step: float = math.nan,
                 error_norm: float = math.nan):
        super().__init__(message)
        self.t, self.step, self.error_norm = t, step, error_norm


def _rms(x: np.ndarray) -> float:
    return float(np.linalg.norm(x) / math.sqrt(x.size))


class DenseTrajectory:
    """y(t) on [0, t_end] from the accepted steps: `traj(t)` (a copy of the packed state) and
    `traj.ts` (the step boundaries)."""

    def __init__(self):
        self.ts = [0.0]
        self._y0, self._h, self._Q = [], [], []

    def _add(self, t_new: float, y_old: np.ndarray, h: float, K: np.ndarray):
        self.ts.append(t_new)
        self._y0.append(y_old)
        self._h.append(h)
        self._Q.append(K.T @ _P)

    def __call__(self, t: float) -> np.ndarray:
        t = float(t)
        i = int(np.searchsorted(self.ts, t, side="left")) - 1
        i = min(max(i, 0), len(self._h) - 1)
        h = self._h[i]
        x = (t - self.ts[i]) / h
        return self._y0[i] + h * (self._Q[i] @ (x ** np.arange(1, 5)))


def _initial_step(f, t0, y0, f0, t_end, rtol, atol) -> float:
    """The usual starting-step rule for a 4th-order error estimate (Hairer, Nørsett & Wanner,
    II.4): h0 = 0.01‖y0‖/‖f0‖, then h1 = (0.01 / max(‖f0‖, ‖f′‖))^{1/5} from one Euler step."""
    span = abs(t_end - t0)
    scale = atol + np.abs(y0) * rtol
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, span)
    f1 = f(t0 + h0, y0 + h0 * f0)
    d2 = _rms((f1 - f0) / scale) / h0
    h1 = max(1e-6, h0 * 1e-3) if d1 <= 1e-15 and d2 <= 1e-15 else (0.01 / max(d1, d2)) ** 0.2
    return min(100 * h0, h1, span)


def dormand_prince(f, y0, t_end: float, rtol: float, atol: float, t0: float = 0.0):
    """Integrate y' = f(t, y) from t0 to t_end; returns a `DenseTrajectory`.  Raises
    `IntegrationFailed` when the step size underflows (a singularity, or a right-hand side that is
    not finite: such steps are rejected, as scipy does)."""
    y = np.asarray(y0, float).copy()
    t = float(t0)
    n = y.size
    K = np.empty((7, n))
    K[0] = f(t, y)
    h_abs = _initial_step(f, t, y, K[0], t_end, rtol, atol)
    traj = DenseTrajectory()
    while t < t_end:
        min_step = 10 * abs(np.nextafter(t, np.inf) - t)
        h_abs = max(h_abs, min_step)
        rejected, norm = False, 0.0
        while True:
            if h_abs < min_step:
                why = "" if math.isfinite(norm) else " (the right-hand side is not finite there)"
                raise IntegrationFailed(f"step size {h_abs:.3g} below the resolution of t = {t:.6g}{why}",
                                        t=t, step=h_abs, error_norm=norm)
            t_new = min(t + h_abs, t_end)
            h = t_new - t
            for s in range(1, 6):
                K[s] = f(t + _C[s] * h, y + h * (_A[s] @ K[:s]))
            y_new = y + h * (_B @ K[:6])
            K[6] = f_new = f(t_new, y_new)
            err = h * (_E @ K)
            norm = _rms(err / (atol + np.maximum(np.abs(y), np.abs(y_new)) * rtol))
            if norm < 1:
                factor = _MAX_FACTOR if norm == 0 else min(_MAX_FACTOR, _SAFETY * norm ** -0.2)
                if rejected:
                    factor = min(1.0, factor)
                h_abs = h * factor
                break
            h_abs = h * max(_MIN_FACTOR, _SAFETY * norm ** -0.2)
            rejected = True
        traj._add(t_new, y, h, K.copy())
        t, y = t_new, y_new
        K[0] = f_new
    return traj


_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))


def bounded_minimum(f, lo: float, hi: float, xatol: float = 1e-5, maxiter: int = 500):
    """(x, f(x)) at a local minimum of f on [lo, hi] by Brent's method (R. P. Brent, Algorithms
    for Minimization without Derivatives, 1973, ch. 5): a parabola through the three best points
    when it lands inside the bracket and shrinks the step, a golden section otherwise; stops
    when the bracket is within 2·(xatol/3 + √ε|x|) of the best point or after maxiter calls."""
    a, b = float(lo), float(hi)
    x = w = v = a + _GOLDEN * (b - a)
    fx = fw = fv = f(x)
    d = e = 0.0
    eps = math.sqrt(np.finfo(float).eps)
    for _ in range(maxiter):
        m = 0.5 * (a + b)
        tol1 = eps * abs(x) + xatol / 3.0
        tol2 = 2.0 * tol1
        if abs(x - m) <= tol2 - 0.5 * (b - a):
            break
        golden = True
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
                golden = False
        if golden:
            e = (b - x) if x < m else (a - x)
            d = _GOLDEN * e
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

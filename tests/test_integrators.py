"""The double path's own integrator and minimiser against scipy's (the same methods)."""
import numpy as np
import pytest
from scipy.integrate import RK45
from scipy.optimize import minimize_scalar

from mtsp.numeric.integrators import IntegrationFailed, bounded_minimum, dormand_prince


def _lotka(t, y):
    return np.array([1.1 * y[0] - 0.4 * y[0] * y[1], 0.1 * y[0] * y[1] - 0.4 * y[1] + 0.05 * np.sin(t)])


@pytest.mark.parametrize("rtol,atol", [(1e-4, 1e-6), (1e-8, 1e-10)])
def test_dormand_prince_takes_scipys_rk45_steps(rtol, atol):
    y0 = np.array([10.0, 5.0])
    ours = dormand_prince(_lotka, y0, 15.0, rtol, atol)
    ref = RK45(_lotka, 0.0, y0, 15.0, rtol=rtol, atol=atol)
    ts, dense = [0.0], []
    while ref.status == "running":
        ref.step()
        ts.append(ref.t)
        dense.append(ref.dense_output())
    assert len(ours.ts) == len(ts)
    np.testing.assert_allclose(ours.ts, ts, rtol=1e-12, atol=0)
    for t in np.linspace(0, 15, 97):
        k = min(max(int(np.searchsorted(ts, t)) - 1, 0), len(dense) - 1)
        np.testing.assert_allclose(ours(t), dense[k](t), rtol=1e-11, atol=1e-12)


def test_dormand_prince_accuracy_on_a_known_solution():
    # y' = −2 t y, y(0) = 1: y = exp(−t²); dense output between steps is 4th order
    traj = dormand_prince(lambda t, y: -2 * t * y, np.array([1.0]), 3.0, 1e-9, 1e-12)
    t = np.linspace(0, 3, 61)
    err = max(abs(traj(x)[0] - np.exp(-x * x)) for x in t)
    assert err < 1e-8


def test_dormand_prince_reports_singular_and_nonfinite_right_hand_sides():
    with pytest.raises(IntegrationFailed, match="step size") as info:
        dormand_prince(lambda t, y: y * y, np.array([1.0]), 2.0, 1e-3, 1e-6)  # blows up at t = 1
    e = info.value   # where it stopped, for ConvergenceError's status and residual
    assert abs(e.t - 1.0) < 1e-3 and 0 < e.step < 1e-12 and e.error_norm > 1
    with np.errstate(all="ignore"), pytest.raises(IntegrationFailed, match="not finite"):
        dormand_prince(lambda t, y: y * (np.nan if t > 0.5 else 1.0), np.array([1.0]), 2.0, 1e-6, 1e-9)


@pytest.mark.parametrize("f,lo,hi", [(lambda x: (x - 0.3) ** 2 + 1.0, 0.0, 1.0),
                                     (lambda x: np.cos(3 * x) + 0.1 * x, 0.0, 2.0),
                                     (lambda x: abs(x - 1.7), 1.0, 4.0),
                                     (lambda x: x, 0.0, 1.0)])   # minimum at a bound
def test_bounded_minimum_agrees_with_scipy(f, lo, hi):
    x, fx = bounded_minimum(f, lo, hi, xatol=1e-6)
    r = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    assert abs(x - r.x) < 1e-5 and abs(fx - f(x)) == 0
    assert fx <= r.fun + 1e-9


def test_mp_dormand_prince_reports_a_singular_right_hand_side():
    """The mp integrator stops with ConvergenceError (not an endless loop of shrinking steps)."""
    import mpmath

    from mtsp.errors import ConvergenceError
    from mtsp.numeric.mp_solve import dormand_prince_mp
    with mpmath.workdps(15), pytest.raises(ConvergenceError, match="did not converge") as info:
        dormand_prince_mp(lambda y: [y[0] * y[0]], [mpmath.mpf(1)], 2.0, [2.0], atol=1e-6, rtol=1e-3)
    assert abs(info.value.status["t"] - 1.0) < 1e-3 and info.value.residual > 1

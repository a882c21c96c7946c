"""The double path's own integrator and minimiser against scipy's (the same methods)."""
import math

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


def test_mp_integration_reports_a_singular_right_hand_side():
    """The integrator in mp arithmetic (the mp solve's controller) stops with IntegrationFailed
    where the solution blows up (not an endless loop of shrinking steps)."""
    import mpmath

    from mtsp.numeric.integrators import MP, integrate
    from mtsp.numeric.mp_solve import mp_controller
    with mpmath.workdps(15), pytest.raises(IntegrationFailed, match="step size") as info:
        integrate(lambda t, y: [y[0] * y[0]], [mpmath.mpf(1)], 2.0, controller=mp_controller(1e-3, 1e-6),
                  arithmetic=MP, stops=[2.0])
    assert abs(info.value.t - 1.0) < 1e-3 and info.value.error_norm > 1


def test_one_integrator_two_arithmetics_take_the_same_steps():
    """The same controller in float64 and in mp at 30 digits: the same accepted and rejected
    steps, the step boundaries equal up to the rounding of the double error estimate (measured
    3.3e-11 relative), both within the method's error of exp(−t²) (measured 2.1e-9), and the
    two dense outputs within 1e-15 of each other (measured 1.1e-16: the method's error is the
    same function in both arithmetics)."""
    import mpmath

    from mtsp.numeric.integrators import DOUBLE, MP, StepController, integrate
    ctl = StepController(1e-9, 1e-12)
    d = integrate(lambda t, y: -2 * t * y, np.array([1.0]), 3.0, controller=ctl, arithmetic=DOUBLE)
    with mpmath.workdps(30):
        m = integrate(lambda t, y: [-2 * t * y[0]], [mpmath.mpf(1)], 3, controller=ctl, arithmetic=MP)
        assert d.accepted == m.accepted and d.rejected == m.rejected and d.nfev == m.nfev
        np.testing.assert_allclose([float(x) for x in m.ts], d.ts, rtol=3e-10, atol=0)
        for x in np.linspace(0, 3, 31):
            exact = math.exp(-x * x)
            em, ed = abs(float(m(x)[0]) - exact), abs(d(x)[0] - exact)
            assert em < 2e-8 and ed < 2e-8 and abs(float(m(x)[0]) - d(x)[0]) < 1e-15


def test_mp_brent_finds_a_minimum_to_mp_digits():
    """Brent's method in mp arithmetic: x = 1/3 of (x − 1/3)² + 1 to 1e-19 at 40 digits (a
    minimum is located to √ε: measured 3.2e-21; the double arithmetic stops near 1e-8)."""
    import mpmath

    from mtsp.numeric.integrators import MP
    with mpmath.workdps(40):
        x, fx = bounded_minimum(lambda x: (x - mpmath.mpf(1) / 3) ** 2 + 1, 0, 1, xatol=mpmath.mpf(10) ** -26,
                                arithmetic=MP)
        assert abs(x - mpmath.mpf(1) / 3) < 1e-19 and fx == 1 + (x - mpmath.mpf(1) / 3) ** 2

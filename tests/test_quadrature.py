"""Tests of the Gaussian cone-expectation kernel (mtsp.numeric.quadrature) against independent
references: arcsine closed forms written out here, scipy's Genz integrator for 4-6 dimensional
orthants, one-dimensional mpmath integrals (mp.dps = 30) for one-factor orthants and for
smooth × cone expectations, elementary geometry for rank-deficient cones, and exact moments for
the one-dimensional rules.

Every tolerance sits a few times above the error measured when the test was written (the
measured value is quoted beside it), so a regression of the kernel's accuracy tier fails.
"""
import functools

import mpmath as mp
import numpy as np
import pytest
from scipy.special import ndtri

from mtsp.numeric.quadrature import (ConeResult, cone_expectation, gauss_hermite, gauss_legendre01,
                                     gaussian_factor, orthant_probability, tanh_sinh01)
from mtsp.numeric.sobol import MAX_DIM, sobol_points, splitmix64

from genz_reference import normal_cdf


def _ones(p):
    return np.ones((p.shape[0], 1)), None


def _sigmoid(p):
    return 1.0 / (1.0 + np.exp(-p))


def _none_rows(n):
    return np.zeros((0, n))


# ------------------------------------------------------------------------------------------
# Independent references

def arcsine_orthant(cov):
    """P(X > 0), X ~ N(0, cov), dim 1..3 (Sheppard's formula and its trivariate extension)."""
    cov = np.asarray(cov, float)
    m = len(cov)
    if m == 1:
        return 0.5
    d = np.sqrt(np.diag(cov))
    r = cov / np.outer(d, d)
    if m == 2:
        return 0.25 + np.arcsin(r[0, 1]) / (2 * np.pi)
    assert m == 3
    return 0.125 + (np.arcsin(r[0, 1]) + np.arcsin(r[0, 2]) + np.arcsin(r[1, 2])) / (4 * np.pi)


def scipy_orthant(cov, abseps=1e-7, seed=0):
    """P(X > 0) = P(-X < 0) by scipy's randomised Genz integrator (seeded: `genz_reference`)."""
    cov = np.asarray(cov, float)
    d = np.sqrt(np.diag(cov))
    return normal_cdf(np.zeros(len(cov)), cov / np.outer(d, d), abseps=abseps, seed=seed)


@functools.lru_cache(maxsize=None)
def one_factor_orthant(a: tuple):
    """P(X > 0) for corr(X) = diag(1 − a²) + a aᵀ: X_i = a_i Z + √(1 − a_i²) ε_i, so
    P = ∫ φ(z) Π_i Φ(a_i z / √(1 − a_i²)) dz — a 1-d integral, done by mpmath at 30 digits."""
    with mp.workdps(30):
        a = [mp.mpf(x) for x in a]
        return float(mp.quad(lambda z: mp.npdf(z) * mp.fprod(mp.ncdf(ai * z / mp.sqrt(1 - ai * ai))
                                                                 for ai in a), [-mp.inf, 0, mp.inf]))


def random_cov(rng, n, extra=2):
    G = rng.normal(size=(n, n + extra))
    return G @ G.T


# ------------------------------------------------------------------------------------------
# Closed-form tier (≤ 3 dims): orthant_probability and the pure-probability path

def _orthant_by_conditioning(cov):
    """P(X > 0), X ~ N(0, cov), independently of the arcsine formulas: m = 1 exactly, m = 2 by
    SciPy's bivariate normal cdf (Genz's deterministic bivariate routine), m = 3 as
    ∫₀^∞ φ(x) P(Y > 0 | X₁ = x) dx over SciPy's quad, the conditional Y | x ~ N(c x, S) of the
    other two correlated coordinates again by the bivariate cdf."""
    from scipy.integrate import quad
    from scipy.stats import norm
    cov = np.asarray(cov, float)
    m = len(cov)
    d = np.sqrt(np.diag(cov))
    r = cov / np.outer(d, d)
    if m == 1:
        return 0.5
    if m == 2:
        return normal_cdf(np.zeros(2), r, abseps=1e-14)
    c, S = r[0, 1:], r[1:, 1:] - np.outer(r[0, 1:], r[0, 1:])
    return quad(lambda x: norm.pdf(x) * normal_cdf(c * x, S, abseps=1e-14), 0, np.inf,
                epsabs=1e-14, epsrel=1e-13, limit=200)[0]


@pytest.mark.parametrize("m", [1, 2, 3])
def test_orthant_probability_closed_form(m):
    """The closed form against an independent evaluation (conditioning, SciPy's bivariate cdf and
    quad).  Measured max difference over the 5 covariances: m = 2 2.8e-17, m = 3 4.2e-17."""
    rng = np.random.default_rng(10 + m)
    for _ in range(5):
        cov = random_cov(rng, m) * rng.uniform(0.3, 3.0)   # not a correlation matrix: scale-free
        assert orthant_probability(cov) == pytest.approx(_orthant_by_conditioning(cov), abs=5e-16)


def test_orthant_probability_edge_cases():
    assert orthant_probability(np.zeros((0, 0))) == 1.0
    assert orthant_probability(np.eye(4)) is None                     # not a closed-form dim
    assert orthant_probability(np.array([[1.0, 1.0], [1.0, 1.0]])) is None   # singular
    assert orthant_probability(np.array([[1.0, 0.0], [0.0, 0.0]])) is None   # degenerate row
    # independent coordinates: 2^-m
    assert orthant_probability(np.diag([2.0, 0.5, 3.0])) == pytest.approx(0.125, abs=1e-15)
    # antithetic pair at ρ → −1: probability → 0 (1/4 + asin(−1+ε)/2π)
    c = np.array([[1.0, -0.999999], [-0.999999, 1.0]])
    assert orthant_probability(c) == pytest.approx(np.arccos(0.999999) / (2 * np.pi), abs=1e-15)


@pytest.mark.parametrize("m", [2, 3])
def test_cone_probability_general_rows_closed_form(m):
    """Cone rows A acting on fields with covariance Σ: P(A f > 0) = orthant of A Σ Aᵀ."""
    rng = np.random.default_rng(20 + m)
    n = m + 2
    for _ in range(3):
        cov = random_cov(rng, n)
        A = rng.normal(size=(m, n))
        ref = arcsine_orthant(A @ cov @ A.T)
        got = cone_expectation(gaussian_factor(cov), A, _none_rows(n), None).plain[0]
        assert got == pytest.approx(ref, abs=1e-13)   # measured ≤ 7e-17


def well_conditioned(rng, m, n, min_eig=0.2):
    """Random fields (covariance n × n) and m cone rows whose correlation matrix has smallest
    eigenvalue ≥ min_eig (see test_genz_ill_conditioned_cone for the other case)."""
    while True:
        cov = random_cov(rng, n)
        A = rng.normal(size=(m, n))
        C = A @ cov @ A.T
        d = np.sqrt(np.diag(C))
        if np.linalg.eigvalsh(C / np.outer(d, d))[0] >= min_eig:
            return cov, A


@pytest.mark.parametrize("m", [2, 3])
def test_genz_product_rule_on_low_dim_orthants(m):
    """Forcing the Genz + tanh–sinh product rule (fn given) on 2-/3-dim orthants with a closed form.
    Measured over 150 random well-conditioned cones (min eigenvalue of the cone correlation
    ≥ 0.2): max error 1.0e-7 (12 nodes/axis), 8.4e-10 (budget 6000), 6.3e-12 (budget 40000)."""
    rng = np.random.default_rng(30 + m)
    n = m + 2
    for _ in range(6):
        cov, A = well_conditioned(rng, m, n)
        ref = arcsine_orthant(A @ cov @ A.T)
        F = gaussian_factor(cov)
        assert cone_expectation(F, A, _none_rows(n), _ones).plain[0] == pytest.approx(ref, abs=5e-7)
        assert cone_expectation(F, A, _none_rows(n), _ones, budget=6000).plain[0] == \
            pytest.approx(ref, abs=5e-9)
        assert cone_expectation(F, A, _none_rows(n), _ones, budget=40000,
                                skip_last_cone=True).plain[0] == pytest.approx(ref, abs=5e-11)


ILL_CORR = np.array([[1.0, 0.9144, -0.1605], [0.9144, 1.0, -0.5428], [-0.1605, -0.5428, 1.0]])


def test_genz_ill_conditioned_cone():
    """A 3-row cone with a closed form, integrated by the product rule as the engine does for
    smooth × label-cone terms; the rows are given in the order that the engine keeps.

    A known limitation, pinned (it was a strict xfail): the Genz transform without variable
    reordering on this ill-conditioned cone (correlations 0.914, -0.543, -0.161; smallest
    eigenvalue 0.0015; P = 0.1583) errs by 5.16e-3 at budget 6000 and 1.37e-4 at 40000
    (measured).  Over 2000 random 3-row cones: smallest eigenvalue 0.003-0.01 -> errors up to
    3.1e-3 (b6000) / 3.4e-4 (b40000); 0.01-0.03 -> 7.7e-5 / 1.4e-5; > 0.1 -> 3.5e-8 / 1.5e-10.
    The test fails if the error leaves [measured / 2, 2 × measured]: grown, or fixed (then
    assert the new accuracy here and update the docs)."""
    F = np.linalg.cholesky(ILL_CORR)
    ref = arcsine_orthant(ILL_CORR)
    for budget, measured in ((6000, 5.16e-3), (40000, 1.37e-4)):
        got = cone_expectation(F, np.eye(3), _none_rows(3), _ones, budget=budget).plain[0]
        assert measured / 2 < abs(got - ref) < 2 * measured, (budget, got - ref)


# ------------------------------------------------------------------------------------------
# 4-6 dims: product rule (≤ 4 sampled coordinates) and fixed scrambled Sobol' above

@pytest.mark.parametrize("dim", [4, 5])
def test_orthant_4d_5d_vs_scipy(dim):
    rng = np.random.default_rng(40 + dim)
    for _ in range(2):
        cov = random_cov(rng, dim) * np.outer(s := rng.uniform(0.5, 2, dim), s)
        ref = scipy_orthant(cov, abseps=1e-7)
        F = gaussian_factor(cov)
        A = np.eye(dim)
        got = cone_expectation(F, A, _none_rows(dim), None).plain[0]
        got_b = cone_expectation(F, A, _none_rows(dim), None, budget=40000).plain[0]
        # The engine's rule here is deterministic (the product rule); the reference is not: scipy
        # at abseps 1e-7 scatters by ≤ 1.3e-7 over its seeds 0–5.  Measured |engine − scipy| over
        # those six reference seeds: 4-d ≤ 1.1e-7 (reference-limited; 12 nodes and budget 40000);
        # 5-d (smallest cone eigenvalue 0.02-0.03) ≤ 2.6e-7 (12 nodes) and ≤ 3.3e-7 (budget 40000).
        # (Over 16 other random covariances per dim: 4-d ≤ 2.7e-7; 5-d ≤ 3.6e-6 (12 nodes) and
        # ≤ 1.3e-5 (budget 40000, smallest eigenvalue 0.02) — these two are the test's cases.)
        tol = 3e-7 if dim == 4 else 2e-6
        assert got == pytest.approx(ref, abs=tol)
        assert got_b == pytest.approx(ref, abs=tol)


def test_orthant_6d_qmc_tier_vs_scipy():
    """6 sampled dimensions -> the fixed scrambled-Sobol' rule, whose error is that of one
    scrambling: checked over the scramblings 0–5.  Measured |engine − scipy| (scipy at abseps 1e-7
    scatters by ≤ 7.4e-8 over its seeds): default points ≤ 6.6e-7, budget 40000 ≤ 1.2e-7 (over 16
    other random 6-d covariances, one scrambling: ≤ 9.9e-6 at 2^14 points, ≤ 1.1e-6 at 2^16)."""
    rng = np.random.default_rng(6)
    for _ in range(3):
        cov = random_cov(rng, 6)
        ref = scipy_orthant(cov, abseps=1e-7)
        F = gaussian_factor(cov)
        for seed in range(6):
            got = cone_expectation(F, np.eye(6), _none_rows(6), None, seed=seed)
            assert not np.any(got.plain_se) and got.points >= 2 ** 13  # a fixed Sobol set: no SE
            assert got.plain[0] == pytest.approx(ref, abs=3e-6)
            got_b = cone_expectation(F, np.eye(6), _none_rows(6), None, budget=40000, seed=seed)
            assert got_b.points >= got.points
            assert got_b.plain[0] == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("a", [(0.7, -0.4, 0.5, 0.85),
                               (0.3, 0.6, -0.75, 0.5, 0.9),
                               (0.5, 0.5, 0.5, -0.6, 0.8, 0.2),
                               (0.4, -0.3, 0.6, 0.7, 0.2, 0.5, -0.5)])
def test_one_factor_orthants_vs_mpmath(a):
    """One-factor correlations, 4-7 dims, against a 30-digit 1-d mpmath integral."""
    a_ = np.array(a)
    dim = len(a_)
    corr = np.diag(1 - a_ ** 2) + np.outer(a_, a_)
    s = np.linspace(0.6, 1.7, dim)
    cov = corr * np.outer(s, s)
    ref = one_factor_orthant(tuple(a))
    F = gaussian_factor(cov)
    got = cone_expectation(F, np.eye(dim), _none_rows(dim), None).plain[0]
    got_b = cone_expectation(F, np.eye(dim), _none_rows(dim), None, budget=40000).plain[0]
    if dim <= 5:   # product rule: measured ≤ 3.8e-8 (12 nodes) and ≤ 3.2e-9 (budget 40000)
        assert got == pytest.approx(ref, abs=3e-7)
        assert got_b == pytest.approx(ref, abs=3e-8)
    else:          # scrambled Sobol': measured ≤ 3.2e-9 (2^14) and ≤ 4.9e-8 (2^16)
        assert got == pytest.approx(ref, abs=3e-7)
        assert got_b == pytest.approx(ref, abs=3e-7)


# ------------------------------------------------------------------------------------------
# Rank-deficient and singular cones

def _halfplane_arc(rows):
    """P(a_i · ζ > 0 ∀i) for ζ ~ N(0, I_2): the angular measure of the intersection / 2π, by
    elementary geometry (ζ's direction is uniform; each half-plane is an arc of length π whose
    ends are at the row's angle ± π/2: cut the circle there and test each piece's midpoint)."""
    rows = np.asarray(rows, float)
    th = np.arctan2(rows[:, 1], rows[:, 0])
    cuts = np.sort(np.mod(np.concatenate([th - np.pi / 2, th + np.pi / 2]), 2 * np.pi))
    cuts = np.append(cuts, cuts[0] + 2 * np.pi)
    total = 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        mid = 0.5 * (lo + hi)
        if np.all(rows @ np.array([np.cos(mid), np.sin(mid)]) > 0):
            total += hi - lo
    return total / (2 * np.pi)


def test_more_cone_rows_than_dimensions():
    """Three and four cone rows on two independent directions (rank 2 < m): an angular sector."""
    rows3 = np.array([[1.0, 0.2], [0.3, 1.0], [1.0, 1.0]])
    rows4 = np.array([[1.0, 0.2], [0.3, 1.0], [1.0, -0.1], [-0.2, 1.0]])
    for rows in (rows3, rows4):
        # fields: the two coordinates plus a dependent third (their sum), covariance singular
        L = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        cov = L @ L.T
        A = np.hstack([rows, np.zeros((len(rows), 1))])
        ref = _halfplane_arc(rows)
        F = gaussian_factor(cov)
        # rank 2 < m rows: the bounds switch inside the domain (kinks): a slower tier.
        # measured ≤ 1.7e-5 (12 nodes) and ≤ 9.0e-9 (budget 6000)
        assert cone_expectation(F, A, _none_rows(3), None).plain[0] == pytest.approx(ref, abs=1e-4)
        assert cone_expectation(F, A, _none_rows(3), None, budget=6000).plain[0] == \
            pytest.approx(ref, abs=5e-8)
    # the redundant third row of a rank-2 cone on a singular covariance: P(X>0, Y>0, X+Y>0)
    rho = 0.4
    cov = np.array([[1, rho, 1 + rho], [rho, 1, 1 + rho], [1 + rho, 1 + rho, 2 + 2 * rho]])
    got = cone_expectation(gaussian_factor(cov), np.eye(3), _none_rows(3), None).plain[0]
    assert got == pytest.approx(0.25 + np.arcsin(rho) / (2 * np.pi), abs=3e-7)   # measured 4.5e-8


def test_rank_one_cone_with_two_rows():
    cov = np.array([[1.0, 2.0], [2.0, 4.0]])     # f = (X, 2X)
    F = gaussian_factor(cov)
    assert F.shape == (2, 1)
    same = cone_expectation(F, np.eye(2), _none_rows(2), None).plain[0]
    opposite = cone_expectation(F, np.array([[1.0, 0.0], [0.0, -1.0]]), _none_rows(2), None).plain[0]
    assert same == pytest.approx(0.5, abs=1e-12)
    assert opposite == pytest.approx(0.0, abs=1e-12)
    # with a smooth integrand: E[1{X>0, 2X>0} X] = φ(0) = 1/√(2π); opposite rows: 0
    lin = cone_expectation(F, np.eye(2), np.array([[1.0, 0.0]]),
                           lambda p: (np.ones((len(p), 1)), np.ones((len(p), 1))),
                           np.array([[1.0, 0.0]]), budget=6000)
    assert lin.linear[0, 0] == pytest.approx(1 / np.sqrt(2 * np.pi), abs=1e-9)   # measured 5.4e-11
    lin0 = cone_expectation(F, np.array([[1.0, 0.0], [0.0, -1.0]]), np.array([[1.0, 0.0]]),
                            lambda p: (np.ones((len(p), 1)), np.ones((len(p), 1))),
                            np.array([[1.0, 0.0]]), budget=6000)
    assert abs(lin0.linear[0, 0]) < 1e-12 and abs(lin0.plain[0]) < 1e-12


def test_zero_row_cone_has_probability_zero():
    cov = np.array([[1.0, 0.0], [0.0, 0.0]])      # the second field is identically 0
    F = gaussian_factor(cov)
    assert F.shape == (2, 1)
    assert cone_expectation(F, np.array([[0.0, 1.0]]), _none_rows(2), None).plain[0] == 0.0
    assert cone_expectation(F, np.array([[1.0, 0.0], [0.0, 1.0]]), _none_rows(2), None).plain[0] == 0.0
    # two identical fields: {X − Y > 0} is the zero row, strict event of probability 0
    F2 = gaussian_factor(np.ones((2, 2)))
    r = cone_expectation(F2, np.array([[1.0, -1.0]]), np.array([[1.0, 0.0]]),
                         lambda p: (np.tanh(p), np.ones((len(p), 2))), np.eye(2))
    assert np.all(r.plain == 0.0) and r.linear.shape == (2, 2) and np.all(r.linear == 0.0)


def test_gaussian_factor_of_singular_covariances():
    rng = np.random.default_rng(50)
    for n, rank in ((4, 2), (5, 1), (6, 5), (3, 3)):
        L = rng.normal(size=(n, rank))
        cov = L @ L.T
        F = gaussian_factor(cov)
        assert F.shape == (n, rank)
        np.testing.assert_allclose(F @ F.T, cov, atol=1e-12 * np.abs(cov).max())
    assert gaussian_factor(np.zeros((3, 3))).shape == (3, 0)
    # a probability through the factor of a singular covariance: f = (X, Y, X − Y, 2X)
    rho = -0.3
    L = np.array([[1.0, 0.0], [rho, np.sqrt(1 - rho ** 2)]])
    M = np.array([[1, 0], [0, 1], [1, -1], [2, 0]]) @ L
    F = gaussian_factor(M @ M.T)
    got = cone_expectation(F, np.array([[0, 1.0, 0, 0], [0, 0, 1.0, 0]]), _none_rows(4), None).plain[0]
    # P(Y > 0, X − Y > 0): corr(Y, X − Y) = (ρ − 1)/√(2 − 2ρ)
    ref = arcsine_orthant(np.array([[1, rho - 1], [rho - 1, 2 - 2 * rho]]))
    assert got == pytest.approx(ref, abs=1e-13)


# ------------------------------------------------------------------------------------------
# Smooth × cone integrals vs mpmath (mp.dps = 30)
#
# (X, Y, Z) with X = sx·a, Y = sy·(ρ a + √(1−ρ²) b): conditioning on Y leaves X Gaussian, so
#   E[1{X>0} g(Y)]    = ∫ φ(u) g(sy u) Φ(κu) du,                        κ = ρ/√(1−ρ²)
#   E[1{X>0} g(Y) X]  = ∫ φ(u) g(sy u) sx (ρu Φ(κu) + √(1−ρ²) φ(κu)) du
#   E[1{X>0} g(Y) Y]  = ∫ φ(u) g(sy u) sy u Φ(κu) du
# 1-d integrals split at 0; the reduction was cross-checked against the nested 2-d mpmath.quad
# over the joint density (outer x ∈ (0, ∞), the discontinuity): agreement 1e-25.

@functools.lru_cache(maxsize=None)
def smooth_cone_refs(gname, sy, rho):
    with mp.workdps(30):
        g = {"tanh": mp.tanh, "sigmoid": lambda y: 1 / (1 + mp.exp(-y))}[gname]
        rho = mp.mpf(rho)
        c = mp.sqrt(1 - rho * rho)
        k = rho / c
        q = lambda f: mp.quad(f, [-mp.inf, 0, mp.inf])  # noqa: E731
        plain = q(lambda u: mp.npdf(u) * g(sy * u) * mp.ncdf(k * u))
        withx = q(lambda u: mp.npdf(u) * g(sy * u) * (rho * u * mp.ncdf(k * u) + c * mp.npdf(k * u)))
        withy = q(lambda u: mp.npdf(u) * g(sy * u) * sy * u * mp.ncdf(k * u))
        return float(plain), float(withx), float(withy)   # withx: per unit sx


SMOOTH_CASES = [(1.3, 0.7, 0.6), (0.8, 1.0, -0.4), (1.0, 1.2, 0.95), (1.6, 0.9, -0.8)]


@pytest.mark.parametrize("sx,sy,rho", SMOOTH_CASES)
def test_smooth_times_cone_vs_mpmath(sx, sy, rho):
    tanh_p, tanh_x, tanh_y = smooth_cone_refs("tanh", sy, rho)
    sig_p, sig_x, sig_y = smooth_cone_refs("sigmoid", sy, rho)
    # third field Z correlated with both: E[1{X>0} g(Y) Z] = b_x E[.. X] + b_y E[.. Y]
    # with (b_x, b_y) the regression coefficients of Z on (X, Y) — conditioning done here
    cxy = np.array([[sx * sx, rho * sx * sy], [rho * sx * sy, sy * sy]])
    cz = np.array([0.5 * sx, -0.3 * sy])        # Cov(Z, (X, Y))
    bx, by = np.linalg.solve(cxy, cz)
    cov = np.zeros((3, 3))
    cov[:2, :2] = cxy
    cov[2, :2] = cov[:2, 2] = cz
    cov[2, 2] = cz @ np.linalg.solve(cxy, cz) + 0.7     # plus independent noise
    F = gaussian_factor(cov)
    A = np.array([[1.0, 0, 0]])
    P = np.array([[0, 1.0, 0]])
    L = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])

    def fn(p):
        return np.concatenate([np.tanh(p), _sigmoid(p)], axis=1), \
            np.concatenate([np.tanh(p), _sigmoid(p)], axis=1)
    ref_plain = np.array([tanh_p, sig_p])
    ref_lin = np.array([[sx * tanh_x, tanh_y, bx * sx * tanh_x + by * tanh_y],
                        [sx * sig_x, sig_y, bx * sx * sig_x + by * sig_y]])
    engine = cone_expectation(F, A, P, fn, L, budget=6000)     # 24 × 24 nodes
    np.testing.assert_allclose(engine.plain, ref_plain, rtol=0, atol=1e-6)   # measured ≤ 1.2e-7
    np.testing.assert_allclose(engine.linear, ref_lin, rtol=0, atol=3e-8)    # measured ≤ 3.6e-9
    default = cone_expectation(F, A, P, fn, L)                 # 12 × 12 nodes
    np.testing.assert_allclose(default.plain, ref_plain, rtol=0, atol=1e-4)  # measured ≤ 2.4e-5
    np.testing.assert_allclose(default.linear, ref_lin, rtol=0, atol=5e-5)   # measured ≤ 7.6e-6


def test_smooth_function_of_a_cone_coordinate():
    """Φ depending only on the cone field (r2 = 0): E[1{X>0} tanh(2X)] = ∫_0^∞ φ(x) tanh(2x) dx,
    and E[1{X>0, Y>0} X Y] = ρ(1/4 + asin ρ/2π) + √(1−ρ²)/2π."""
    with mp.workdps(30):
        ref = float(mp.quad(lambda x: mp.npdf(x) * mp.tanh(2 * x), [0, mp.inf]))
    F = gaussian_factor(np.array([[1.0]]))
    got = cone_expectation(F, np.array([[1.0]]), np.array([[2.0]]), lambda p: (np.tanh(p), None),
                           budget=6000).plain[0]
    assert got == pytest.approx(ref, abs=1e-8)    # 24 nodes: measured 1.3e-9
    for rho in (0.3, -0.7, 0.9):
        F = gaussian_factor(np.array([[1.0, rho], [rho, 1.0]]))
        r = cone_expectation(F, np.eye(2), np.array([[1.0, 0]]),
                             lambda p: (np.ones_like(p), p), np.array([[0, 1.0]]), budget=6000)
        exact = rho * (0.25 + np.arcsin(rho) / (2 * np.pi)) + np.sqrt(1 - rho ** 2) / (2 * np.pi)
        assert r.linear[0, 0] == pytest.approx(exact, abs=1e-8)   # measured ≤ 6.0e-10


def test_smooth_times_cone_wide_field():
    """Same integral as above, E[1{X>0} tanh(Y)], for a wide field Y (std 2 and 3), as a tanh
    trunk meets once Q grows: the tier accuracy measured for narrow fields (≤ 1e-7) is lost.

    A known limitation, pinned (it was a strict xfail): the Gauss–Hermite tier is capped at 24
    nodes per axis, and tanh of a field of std ≥ 2 has its poles ±iπ/2 close to the real axis in
    units of the std.  Measured error: std 2 1.79e-4, std 3 1.45e-3, at budget 6000 and 40000
    alike.  The test fails if the error leaves [measured / 2, 2 × measured]."""
    for sy, rho, measured in ((2.0, 0.3, 1.79e-4), (3.0, 0.3, 1.45e-3)):
        ref = smooth_cone_refs("tanh", sy, rho)[0]
        F = gaussian_factor(np.array([[1.0, rho * sy], [rho * sy, sy * sy]]))
        for budget in (6000, 40000):
            got = cone_expectation(F, np.array([[1.0, 0]]), np.array([[0, 1.0]]),
                                   lambda p: (np.tanh(p), None), budget=budget).plain[0]
            assert measured / 2 < abs(got - ref) < 2 * measured, (sy, budget, got - ref)


# ------------------------------------------------------------------------------------------
# One-dimensional rules

def test_gauss_hermite_moments():
    for n in (6, 12, 24):
        x, w = gauss_hermite(n)
        assert w.sum() == pytest.approx(1.0, abs=1e-14)
        assert w @ x ** 2 == pytest.approx(1.0, abs=1e-12)
        assert w @ x ** 4 == pytest.approx(3.0, abs=1e-12)
        assert w @ x ** 6 == pytest.approx(15.0, abs=1e-11)
        assert abs(w @ x ** 5) < 1e-12
    x, w = gauss_hermite(12)
    assert w @ np.cos(x) == pytest.approx(np.exp(-0.5), abs=1e-13)       # measured 9e-16
    assert w @ np.exp(x) == pytest.approx(np.exp(0.5), abs=1e-13)        # measured 1.3e-15
    x, w = gauss_hermite(6)
    assert w @ np.cos(x) == pytest.approx(np.exp(-0.5), abs=1e-5)        # measured 1.2e-6


def test_gauss_legendre01():
    x, w = gauss_legendre01(12)
    assert np.all((x > 0) & (x < 1))
    assert w @ x ** 5 == pytest.approx(1 / 6, abs=1e-14)
    assert w @ np.exp(x) == pytest.approx(np.e - 1, abs=1e-14)


def test_tanh_sinh01():
    for n in (20, 24, 31, 40):
        x, xc, w = tanh_sinh01(n)
        assert np.all((x > 0) & (x < 1)) and w.sum() == pytest.approx(1.0, abs=1e-14)
        # endpoint singularities (the Genz coordinates are quantiles Φ⁻¹(u)):
        assert w @ np.log(x) == pytest.approx(-1.0, abs=1e-8)          # measured ≤ 4.9e-10
        assert w @ ndtri(x) ** 2 == pytest.approx(1.0, abs=1e-8)        # measured ≤ 1.9e-9
        assert w @ x ** 3 == pytest.approx(0.25, abs=1e-9)              # measured ≤ 4.3e-10
        # u and 1 − u each to full relative accuracy at both ends (the rule is symmetric, u_k = 1 − u_{n−1−k}):
        # measured ≤ 2.5e-14 (½(1 + tanh s) was 2.6e-3 off at u = 2.1e-14); u + (1 − u) = 1 within 1.1e-16
        assert np.abs(x / xc[::-1] - 1).max() < 1e-13 and np.abs(x + xc - 1).max() <= 2.3e-16
    x, _, w = tanh_sinh01(31)
    assert w @ np.log(x) == pytest.approx(-1.0, abs=1e-13)              # measured 6e-15
    # the engine's default 12-node rule (tmax = 2): a coarser but still convergent tier
    x, _, w = tanh_sinh01(12)
    assert w @ np.log(x) == pytest.approx(-1.0, abs=3e-5)               # measured 5.8e-6
    assert w @ ndtri(x) ** 2 == pytest.approx(1.0, abs=1e-4)            # measured 2.1e-5


# ------------------------------------------------------------------------------------------
# The project's own Sobol' points (mtsp.numeric.sobol)

def test_splitmix64_reference_outputs():
    """The scrambling's hash is SplitMix64: its first outputs from state 0 are the published
    reference values of the algorithm (Vigna's splitmix64.c)."""
    assert [int(w) for w in splitmix64(0, 3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4,
                                                  0x06C45D188009454F]


@pytest.mark.parametrize("dim,m", [(1, 0), (2, 8), (5, 12), (MAX_DIM, 12), (12, 18)])
def test_sobol_points_unscrambled_equal_scipy(dim, m):
    """The generator (Gray-code order, Joe–Kuo direction numbers stored in the repository) against
    scipy.stats.qmc.Sobol(scramble=False): the same points bit for bit — every stored dimension up
    to 2^12 points, 12 dimensions up to 2^18 (the most any rule uses)."""
    from scipy.stats import qmc
    ours = sobol_points(dim, 2 ** m)
    assert np.array_equal(ours, qmc.Sobol(dim, scramble=False).random(2 ** m))


def _interval_counts(u, k1, k2, j1, j2):
    """Sorted point counts of the elementary intervals [a/2^k1, (a+1)/2^k1) × [b/2^k2, …) of
    coordinates j1, j2."""
    a = np.floor(u[:, j1] * 2 ** k1).astype(np.int64)
    b = np.floor(u[:, j2] * 2 ** k2).astype(np.int64)
    return np.sort(np.bincount(a * 2 ** k2 + b, minlength=2 ** (k1 + k2)))


def test_sobol_scrambling_keeps_the_net():
    """Linear matrix scrambling + digital shift maps the first k digits of each coordinate by a
    bijection, so every two-dimensional projection of 2^m scrambled points has the same counts in
    the elementary intervals as the unscrambled sequence (its t-value; t = 0 for the first two
    coordinates: one point per interval of volume 2^−m), for every seed; each coordinate alone
    has one point in each [i/n, (i+1)/n).  The points lie inside (0, 1), depend on the seed, and
    the n-point set is the first half of the 2n-point set."""
    dim, m = 6, 10
    plain = sobol_points(dim, 2 ** m)
    sets = [sobol_points(dim, 2 ** m, seed) for seed in range(6)]
    for u in sets:
        assert 0 < u.min() and u.max() < 1
        for j in range(dim):
            assert np.array_equal(np.sort(np.floor(u[:, j] * 2 ** m)), np.arange(2 ** m))
        for j1 in range(dim):
            for j2 in range(j1 + 1, dim):
                for k1 in range(1, m):
                    for k2 in range(1, m + 1 - k1):
                        assert np.array_equal(_interval_counts(u, k1, k2, j1, j2),
                                              _interval_counts(plain, k1, k2, j1, j2))
        assert _interval_counts(u, 4, 6, 0, 1).max() == 1    # (0, m, 2)-net
    assert all(np.abs(sets[k] - sets[k + 1]).min(axis=0).max() > 0 for k in range(5))
    assert np.array_equal(sobol_points(dim, 2 ** (m - 1), 3), sets[3][:2 ** (m - 1)])
    assert np.array_equal(sobol_points(dim, 100, 3), sets[3][:100])


def test_sobol_scrambled_integration_error_over_seeds():
    """E[Π_j e^{u_j}] / (e − 1)^5 = 1 over [0, 1]^5 with 2^12 scrambled points, seeds 0–5:
    measured errors 3.4e-5, 6.7e-5, 2.7e-6, 7.5e-6, 9.7e-5, 1.8e-5 (Monte Carlo's standard error
    at this n: 1.1e-2), and the mean over the seeds within 3.1e-5 (the scrambling is unbiased)."""
    est = []
    for seed in range(6):
        u = sobol_points(5, 2 ** 12, seed)
        est.append(np.prod(np.exp(u), axis=1).mean() / (np.e - 1) ** 5)
    err = np.abs(np.array(est) - 1.0)
    assert err.max() < 5e-4
    assert abs(np.mean(est) - 1.0) < 2e-4


# ------------------------------------------------------------------------------------------
# Randomised QMC rule

def test_rqmc_standard_error_and_coverage():
    """A discontinuous integrand (the sign of a field outside the cone) with a known answer:
    E[1{X>0} 1{Y>0}] = 1/4 + asin ρ/2π, and E[1{X>0} 1{Y1+Y2>0} 1{Y2<0}] (a 3-d orthant)."""
    rho = 0.35
    F = gaussian_factor(np.array([[1.0, rho], [rho, 1.0]]))
    exact = 0.25 + np.arcsin(rho) / (2 * np.pi)
    for seed in range(4):
        r = cone_expectation(F, np.array([[1.0, 0]]), np.array([[0, 1.0]]),
                             lambda p: ((p > 0).astype(float), None), rule="rqmc",
                             n_qmc=2 ** 10, replicates=8, seed=100 * seed)
        assert isinstance(r, ConeResult) and r.points == 2 ** 13
        se = r.plain_se[0]
        assert 0 < se < 2e-3                      # measured 1.5e-4 .. 4.6e-4
        assert abs(r.plain[0] - exact) < 4 * se   # measured |z| ≤ 2.9 (z = 0.35, 2.23, -2.86, 0.10)
    cov = np.array([[1.0, 0.2, -0.3], [0.2, 1.0, 0.4], [-0.3, 0.4, 1.0]])
    F = gaussian_factor(cov)
    # fields (X, Y1, Y2); event X > 0, Y1 + Y2 > 0, −Y2 > 0
    B = np.array([[1, 0, 0], [0, 1, 1], [0, 0, -1]], float)
    exact = arcsine_orthant(B @ cov @ B.T)
    for seed in range(7, 13):
        r = cone_expectation(F, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 1.0], [0, 0, 1.0]]),
                             lambda p: (((p[:, 0] > 0) & (p[:, 1] < 0)).astype(float)[:, None], None),
                             rule="rqmc", n_qmc=2 ** 11, replicates=8, seed=seed)
        assert 0 < r.plain_se[0] < 2e-3               # measured 2.7e-4 .. 5.9e-4
        assert abs(r.plain[0] - exact) < 4 * r.plain_se[0]   # measured |z| ≤ 0.57


def test_node_parts_sum_to_the_whole():
    """cone_expectation(node_part=(i, n)): the n parts of an integral (every n-th node) add up to
    the whole — product rule with a cone, the fixed Sobol' tier, a sign batch of orthants, and a
    closed-form cone probability (counted once, in part 0)."""
    rng = np.random.default_rng(5)
    F = rng.standard_normal((4, 4))
    cone = rng.standard_normal((2, 4))
    proj = rng.standard_normal((2, 4))
    lin = rng.standard_normal((3, 4))

    def fn(p):
        return np.stack([np.tanh(p[:, 0]) ** 2, np.exp(-p[:, 1] ** 2)], axis=1), np.exp(0.3 * p[:, :1])
    cases = [dict(budget=3000), dict(rule="qmc", budget=4096),
             dict(budget=3000, sign_batch=np.array([[1, 1], [1, -1], [-1, 1], [-1, -1.0]]))]
    for kw in cases:
        whole = cone_expectation(F, cone, proj, fn, lin, **kw)
        parts = [cone_expectation(F, cone, proj, fn, lin, node_part=(i, 3), **kw) for i in range(3)]
        assert np.allclose(sum(p.plain for p in parts), whole.plain, rtol=1e-13, atol=1e-15)
        assert np.allclose(sum(p.linear for p in parts), whole.linear, rtol=1e-13, atol=1e-15)
        assert all(np.abs(p.plain).max() > 0 for p in parts)
    whole = cone_expectation(F, cone, np.zeros((0, 4)), None).plain[0]
    parts = [cone_expectation(F, cone, np.zeros((0, 4)), None, node_part=(i, 2)).plain[0] for i in range(2)]
    assert parts[0] == whole and parts[1] == 0.0


def test_one_executor_runs_both_arithmetics():
    """`cone_expectation` is one algorithm for both number types: on a smooth 2-dim integral
    (Gauss–Hermite axes only, whose 16-node rules are the same in double and mp) with linear
    fields, the double run and the `cone.MP` run at 30 digits differ by rounding alone (measured
    3.8e-16 and 2.2e-16 relative); the mp run, from rows given as floats, returns object arrays of mpf."""
    from mtsp.numeric.cone import MP
    rng = np.random.default_rng(11)
    X = rng.standard_normal((3, 3))
    F = gaussian_factor(X @ X.T / 3)
    P, L = rng.standard_normal((2, 3)), rng.standard_normal((1, 3))

    def fn(p):   # log(1 + e^{p0} + e^{p1}) and tanh(p0): elementwise in either arithmetic
        ex = np.frompyfunc(mp.exp, 1, 1) if p.dtype == object else np.exp
        th = np.frompyfunc(mp.tanh, 1, 1) if p.dtype == object else np.tanh
        lse = np.frompyfunc(mp.log, 1, 1)(1 + ex(p[:, 0]) + ex(p[:, 1])) if p.dtype == object else \
            np.log(1 + ex(p[:, 0]) + ex(p[:, 1]))
        return lse[:, None], th(p[:, :1])
    d = cone_expectation(F, None, P, fn, L, nodes={2: 16})
    with mp.workdps(30):
        m = cone_expectation(F, None, P, fn, L, nodes={2: 16}, ar=MP)
        assert m.plain.dtype == object and isinstance(m.plain[0], mp.mpf)
        for x, y in ((d.plain[0], m.plain[0]), (d.linear[0, 0], m.linear[0, 0])):
            assert abs(x - float(y)) <= 2e-15 * abs(float(y)), (x, y)


def test_truncated_normal_both_arithmetics():
    """`cone.truncated_normal` (one algorithm for both number types) in double against itself in mp (dps 40) on
    the 40-node tanh–sinh rule's u (ends at 2.1e-14 from 0 and 1) over one- and two-sided intervals in both tails,
    straddling 0, and empty: the quantile within 2.8e-16 (× (1 + |x|)) and the mass within 3.6e-15 relative
    (measured; with Φ⁻¹(q) formed from q near 1, as the double did before it took the complement, the quantile
    was 4.8e-5 off).  `interval_mass` is the same mass."""
    import mpmath

    from mtsp.numeric.cone import DOUBLE, MP, interval_mass, truncated_normal
    u, uc, _ = tanh_sinh01(40)
    pairs = [(-8, np.inf), (-1, np.inf), (0, np.inf), (0.5, np.inf), (6, np.inf), (-9, -7), (5, 7), (-1, 2),
             (-np.inf, -3), (-np.inf, 4), (3, 3.5), (-0.2, 0.1), (2, 1)]
    for one_sided in (True, False):
        sel = [(a, b) for a, b in pairs if (b == np.inf) == one_sided]
        lo, hi = np.repeat([a for a, _ in sel], len(u)), np.repeat([b for _, b in sel], len(u))
        U, UC = np.tile(u, len(sel)), np.tile(uc, len(sel))
        x, m = truncated_normal(DOUBLE, lo, hi, U, UC)
        assert np.array_equal(m, interval_mass(DOUBLE, lo, hi)) and np.all(np.isfinite(x))
        with mpmath.workdps(40):
            obj = lambda v: np.array([mpmath.mpf(float(t)) for t in v], dtype=object)  # noqa: E731
            xm, mm = truncated_normal(MP, obj(lo), obj(hi), obj(U), obj(UC))
            assert max(abs(mpmath.mpf(a) - b) / (1 + abs(b)) for a, b in zip(x, xm)) < 3e-15
            assert max(abs(mpmath.mpf(a) - b) / b if b else abs(a) for a, b in zip(m, mm)) < 4e-14

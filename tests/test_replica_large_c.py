"""The replica engine's loss channel for many classes (`numeric.replica_qmc`): the Genz orthant on
fixed points against scipy's, the QMC channel against the tensor route where both apply (C = 3, 4)
and against a plain Monte Carlo of the labels themselves (C = 5, 6)."""
from __future__ import annotations

import numpy as np
import pytest

from mtsp.numeric.replica import (
    ReplicaAccuracy,
    TaskChannel,
    loss_channel_hats,
    nodes_for,
    prox_cross_entropy,
    reduced_basis,
    teacher_factor,
)
from mtsp.numeric.replica_qmc import genz_orthant, qmc_channel_hats
from mtsp.numeric.sobol import sobol_points


def _random_orthant(m, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, m))
    return rng.standard_normal(m), A @ A.T + 0.5 * np.eye(m)


@pytest.mark.parametrize("m", [3, 4, 5, 6])
def test_genz_orthant_against_scipy(m):
    """The mean of `genz_orthant`'s samples over 2^14 Sobol' points against scipy's Genz CDF
    (an independent code, abseps 1e-6; measured 5e-7 from itself at 1e-9), and its gradient
    against the Stein form ∂P/∂μ_j = φ(μ_j/s_j)/s_j · P(u_{−j} > 0 | u_j = 0) by scipy.
    Measured (m = 3..6): |ΔP| ≤ 1.5e-6 (from scipy at 1e-9), |Δ∇P| ≤ 1.3e-6."""
    from scipy.stats import multivariate_normal
    mu, S = _random_orthant(m, m)
    w = sobol_points(m - 1, 2 ** 14, 7)
    P, grad = genz_orthant(np.tile(mu, (len(w), 1)), S, w)

    def orthant(mean, cov):
        return multivariate_normal(np.zeros(len(mean)), cov, abseps=1e-6, releps=0, maxpts=10 ** 6,
                                   seed=1).cdf(mean)
    assert abs(P.mean() - orthant(mu, S)) < 1e-5
    for j in range(m):
        o = [i for i in range(m) if i != j]
        k = S[o, j] / S[j, j]
        cond = S[np.ix_(o, o)] - np.outer(S[o, j], S[j, o]) / S[j, j]
        s = np.sqrt(S[j, j])
        stein = np.exp(-0.5 * (mu[j] / s) ** 2) / (np.sqrt(2 * np.pi) * s) * orthant(mu[o] - mu[j] * k, cond)
        assert abs(grad[:, j].mean() - stein) < 1e-5


def _state(C, noise, rank, q, m, v, class_map="aligned"):
    """A channel and a plausible (Q, M, V): Q = q I + 0.1 11ᵀ, M = m L (within Cauchy–Schwarz),
    V = v (I + 0.2 offdiag)."""
    from mtsp.setup import setup_from_dict
    from mtsp.numeric.model import theory_model
    task = {"name": "A", "classes": C, "noise": noise, "rank": rank}
    s = setup_from_dict({"tasks": [task], "teacher": {"class_map": class_map}, "student": {"kind": "glm"},
                         "training": {"protocol": "erm", "alpha": 2.0, "ridge": 0.1}})
    E = reduced_basis(C)
    L = teacher_factor(E @ theory_model(s).gram @ E.T)
    ch = TaskChannel(C, L, noise, 2.0)
    d = C - 1
    Q = q * np.eye(d) + 0.1
    V = v * (np.eye(d) + 0.2 * (np.ones((d, d)) - np.eye(d)) / d)
    return ch, Q, m * L, V


@pytest.mark.parametrize("C, noise, rank", [(3, 0.5, 3), (3, 0.0, 3), (3, 0.3, 1), (4, 0.3, 2)])
def test_qmc_channel_matches_the_tensor_route(C, noise, rank):
    """At one (Q, M, V), the QMC channel on 2^14 points (the default) against the tensor trapezoid
    route (`loss_channel_hats`, its own nodes) for C = 3, 4, noisy, clean, rank-deficient.
    Measured: relative difference of the hats ≤ 8.6e-5 (largest entry of each hat)."""
    ch, Q, M, V = _state(C, noise, rank, 1.5, 0.6, 1.2)
    acc = ReplicaAccuracy()
    tensor = loss_channel_hats([ch], np.eye(ch.r), Q, M, V, acc, nodes_for(ch, Q, M, acc))
    qmc = qmc_channel_hats(ch, Q, M, V, acc, 2 ** 14)
    for a, b in zip(tensor, qmc):
        assert np.abs(a - b).max() < 8e-4 * np.abs(a).max()


def test_qmc_fixed_point_matches_the_tensor_route():
    """The whole fixed point and predictions at MODEL.md's C = 3 point with the QMC channel (2^12
    points, seeds 0 and 1) against the tensor route.  Measured: |Δ gen_error| ≤ 2.3e-6,
    |Δ test_loss| ≤ 5e-5, |Δ train_error| ≤ 1.2e-4 (the QMC indicator)."""
    from mtsp.numeric.erm import solve_erm
    from mtsp.setup import setup_from_dict
    s = setup_from_dict({"tasks": [{"name": "A", "classes": 3, "noise": 0.5}], "student": {"kind": "glm"},
                         "training": {"protocol": "erm", "alpha": 2.0, "ridge": 0.1}})
    ref = solve_erm(s)["tasks"]["A"]
    for seed in (0, 1):
        got = solve_erm(s, ReplicaAccuracy(qmc_classes=3, qmc_points=2 ** 12, qmc_seed=seed))["tasks"]["A"]
        assert abs(got["gen_error"][0] - ref["gen_error"][0]) < 2e-5
        assert abs(got["test_loss"][0] - ref["test_loss"][0]) < 5e-4
        assert abs(got["train_error"][0] - ref["train_error"][0]) < 1e-3


@pytest.mark.parametrize("C, noise, rank, class_map", [(5, 0.4, 5, "aligned"), (6, 0.3, 3, "random")])
def test_qmc_channel_against_monte_carlo_of_the_labels(C, noise, rank, class_map):
    """At one (Q, M, V), the QMC channel (2^12 points) against plain Monte Carlo that draws the
    teacher and the label itself (u | ω ~ N(A ω, V⁰), y = argmax(Eᵀ L u + σ ξ)), 5·10^4 samples:
    Q̂ = α E f fᵀ, V̂ = α E (I + HV)⁻¹H, M̂ = α E f (u − Aω)ᵀ V⁰⁻¹ (the Stein form that the
    Genz gradient replaces).  Every entry within 5 Monte Carlo standard errors + 1e-4.
    Measured: largest |z| 3.0 (C = 5), 2.0 (C = 6)."""
    ch, Q, M, V = _state(C, noise, rank, 1.5, 0.5, 1.0, class_map)
    acc = ReplicaAccuracy()
    qmc = qmc_channel_hats(ch, Q, M, V, acc, 2 ** 12)
    rng = np.random.default_rng(11)
    n, d, E = 50_000, ch.d, reduced_basis(C)
    vals, vecs = np.linalg.eigh(Q)
    om = rng.standard_normal((n, d)) @ ((vecs * np.sqrt(vals)) @ vecs.T)
    A = np.linalg.solve(Q, M).T
    V0 = np.eye(ch.r) - M.T @ np.linalg.solve(Q, M)
    u = om @ A.T + rng.standard_normal((n, ch.r)) @ np.linalg.cholesky(V0).T
    y = np.argmax(u @ ch.L.T @ E + noise * rng.standard_normal((n, C)), axis=1)
    h, p, H = prox_cross_entropy(om, np.eye(C)[y], V, E)
    f = -(p - np.eye(C)[y]) @ E.T
    R = np.linalg.solve(np.eye(d) + H @ V, H)
    samples = [np.einsum("ni,nj->nij", f, f), np.einsum("ni,nj->nij", f, (u - om @ A.T) @ np.linalg.inv(V0)), R]
    for got, x in zip(qmc, samples):
        mean, se = ch.alpha * x.mean(0), ch.alpha * x.std(0) / np.sqrt(n)
        assert np.all(np.abs(got - mean) < 5 * se + 1e-4), np.abs(got - mean) / se


def test_check_erm_for_four_classes():
    """`mtsp check` for erm with C = 4 (`check_erm`: the QMC channel code on mp numbers, 16 points, the
    double solved on the same points): every term (fixed point, predictions, train_error too)
    within 1e-10.  Measured: ≤ 9.6e-12 (C = 4, 4.4 s); C = 5 at 32 points ≤ 2.9e-12, C = 6 at 16
    points ≤ 5.5e-11 (11 s, 12 s: not in the suite), mp residual ~2e-27."""
    from mtsp.numeric.check import check_erm
    from mtsp.setup import setup_from_dict
    s = setup_from_dict({"name": "C4", "tasks": [{"name": "A", "classes": 4, "noise": 0.5}],
                         "student": {"kind": "glm"}, "training": {"protocol": "erm", "alpha": 2.0, "ridge": 0.1}})
    rep = check_erm(s, dps=30, nodes=16)
    assert rep["passed"] and max(rep["terms"].values()) < 1e-10


def test_clean_labels_that_never_take_two_classes_are_refused():
    """C = 5, noise 0, rank 2, aligned class map: classes 3 and 4 tie with class 2 at λ = 0 and lose
    (first index), so the labels never take them; the student's rows for them are then equal at the
    minimiser (Q singular) and the fixed point stalled at residual 1e-8 after 600 iterations: refused
    naming `teacher` and the classes (`replica.dead_classes`).  With one such class (random map,
    seed 0) it is solved: gen_error 0.3760 against simulations 0.3766 ± 0.0014 (N = 1000, 16 seeds;
    benchmarks/results/erm_clean_low_rank.txt)."""
    from mtsp.errors import ReachError
    from mtsp.numeric.erm import solve_erm
    from mtsp.setup import setup_from_dict
    s = setup_from_dict({"tasks": [{"name": "A", "classes": 5, "noise": 0.0, "rank": 2}], "student": {"kind": "glm"},
                         "training": {"protocol": "erm", "alpha": 2.0, "ridge": 0.1}})
    with pytest.raises(ReachError, match=r"^teacher: task 'A': .* never take classes \[3, 4\]"):
        solve_erm(s)

"""The joint loss channel of coupled tasks on shared inputs on the QMC rule
(`numeric.replica_qmc.qmc_loss_channel_hats`): against the tensor route where both apply
(Σ_t (C_t − 1) = 3) and against a plain Monte Carlo that draws the joint label itself (Σ = 6)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import block_diag

from mtsp.numeric.erm import erm_problem
from mtsp.numeric.replica import (
    ReplicaAccuracy,
    ReplicaMap,
    SoftmaxBlocks,
    loss_channel_hats,
    nodes_for,
    prox_cross_entropy,
    reduced_basis,
)
from mtsp.numeric.replica_qmc import qmc_loss_channel_hats
from mtsp.setup import setup_from_dict


def _joint_state(C, T, noise, alignment):
    """The channels and joint teacher Gram of T coupled C-class tasks on shared inputs, and one
    admissible (Q, M, V) with off-diagonal task blocks (Q − M G⁻¹ Mᵀ ≻ 0, so G − Mᵀ Q⁻¹ M ≻ 0)."""
    s = setup_from_dict({"name": "j", "tasks": [{"name": n, "classes": C, "noise": noise} for n in "ABCD"[:T]],
                         "teacher": {"alignment": alignment}, "student": {"kind": "glm"},
                         "training": {"protocol": "erm", "ridge": 0.1, "coupling": 1.0,
                                      "inputs": "shared", "alpha": 2.0}})
    _, ch, _, G = erm_problem(s)
    D = sum(c.d for c in ch)
    M = 0.5 * block_diag(*[c.L / np.abs(c.L).max() for c in ch]) @ G
    Q = M @ np.linalg.solve(G, M.T) + 0.4 * np.eye(D) + 0.15 * np.ones((D, D))
    V = 0.9 * np.eye(D) + 0.1 * np.ones((D, D))
    return ch, G, Q, M, V


def test_qmc_joint_channel_matches_the_tensor_route():
    """Three coupled two-class tasks (Σ = 3, 8 joint labels, related teachers, noise 0.3): the QMC
    joint channel on 2^14 points against the tensor route (`loss_channel_hats`, its own nodes,
    closed-form joint labels).  Measured: relative difference of the hats ≤ 6.0e-5 (largest
    entry of each hat); a wrong joint label or gradient moves them by O(1)."""
    ch, G, Q, M, V = _joint_state(2, 3, 0.3, 0.7)
    acc = ReplicaAccuracy()
    tensor = loss_channel_hats(ch, G, Q, M, V, acc, nodes_for(ch, Q, M, acc))
    qmc = qmc_loss_channel_hats(ch, G, Q, M, V, acc, 2 ** 14)
    rel = [float(np.abs(a - b).max() / np.abs(a).max()) for a, b in zip(tensor, qmc)]
    print("relative differences", rel)
    assert max(rel) < 6e-4


@pytest.mark.parametrize("C,T", [(3, 3), (5, 2)])
def test_qmc_joint_channel_against_monte_carlo_of_the_joint_label(C, T):
    """Three coupled three-class tasks (Σ = 6, 27 joint labels) and two coupled five-class tasks
    (Σ = 8, 25 joint labels, a Sobol' set of 15 dims): the QMC joint channel (2^12
    points) against plain Monte Carlo that draws the joint teacher and every task's label
    (u | ω ~ N(A ω, V⁰), y_t = argmax(Eᵀ L_t u_t + σ ξ_t)), the prox of Σ_t CE under the full V:
    Q̂ = α E f fᵀ, V̂ = α E (I + HV)⁻¹H, M̂ = α E f (u − Aω)ᵀ V⁰⁻¹.  Every entry within 5 Monte
    Carlo standard errors + 1e-4.  Measured: largest |z| 3.5 (of 108 entries), 4 s (Σ = 6);
    largest |z| 2.6 (of 208), the same time as Σ = 6 (both 23 s at load 15)."""
    ch, G, Q, M, V = _joint_state(C, T, 0.3, 0.5)
    acc = ReplicaAccuracy()
    qmc = qmc_loss_channel_hats(ch, G, Q, M, V, acc, 2 ** 12)
    rng = np.random.default_rng(5)
    n, D, E = 50_000, Q.shape[0], reduced_basis(C)
    d = C - 1
    B = SoftmaxBlocks.of(E, [c.weight for c in ch])
    vals, vecs = np.linalg.eigh(Q)
    om = rng.standard_normal((n, D)) @ ((vecs * np.sqrt(vals)) @ vecs.T)
    A = np.linalg.solve(Q, M).T
    V0 = G - M.T @ np.linalg.solve(Q, M)
    u = om @ A.T + rng.standard_normal((n, len(G))) @ np.linalg.cholesky(V0).T
    Lb = block_diag(*[c.L for c in ch])
    nu = u @ Lb.T
    Y = np.concatenate([np.eye(C)[np.argmax(nu[:, d * t:d * t + d] @ E + c.sigma * rng.standard_normal((n, C)),
                                            axis=1)] for t, c in enumerate(ch)], axis=1)
    h, p, H = prox_cross_entropy(om, Y, V, B)
    f = (-(p.reshape(n, -1) - Y).reshape(n, len(ch), C) @ E.T).reshape(n, D)   # weights 1
    R = np.linalg.solve(np.eye(D) + H @ V, H)
    samples = [np.einsum("ni,nj->nij", f, f), np.einsum("ni,nj->nij", f, (u - om @ A.T) @ np.linalg.inv(V0)), R]
    zmax = 0.0
    for got, x in zip(qmc, samples):
        mean, se = ch[0].alpha * x.mean(0), ch[0].alpha * x.std(0) / np.sqrt(n)
        zmax = max(zmax, float((np.abs(got - mean) / se).max()))
        assert np.all(np.abs(got - mean) < 5 * se + 1e-4), np.abs(got - mean) / se
    print("largest |z|", zmax)


def test_joint_route_rule():
    """`ReplicaAccuracy.qmc_joint_dims` decides the route: Σ_t (C_t − 1) = 4 runs on the QMC rule by
    default and on the tensor rule with qmc_joint_dims = 5."""
    ch, G, *_ = _joint_state(3, 2, 0.3, 0.5)
    Lam = np.eye(2)
    assert ReplicaMap(ch, Lam, G, ReplicaAccuracy(), shared=True).qmc(ch)
    assert not ReplicaMap(ch, Lam, G, ReplicaAccuracy(qmc_joint_dims=5), shared=True).qmc(ch)


def test_joint_rule_points_by_dimension():
    """A joint channel's QMC points are `ReplicaAccuracy.qmc_joint_points` at its Σ_t (C_t − 1)
    (the default: 2^13 at Σ = 4, 5 and 2^14 from Σ = 6, where 2^13 was 3× farther from the
    reference, benchmarks/results/replica_joint_points.txt), one task's stay `qmc_points`; "high" and
    "fast" scale both alike; the mp route (`mp_accuracy`) puts every QMC channel, joint or not, on
    its one rule of ``nodes`` points."""
    from mtsp.numeric.erm import ACCURACIES
    from mtsp.numeric.erm import mp_accuracy
    Lam = np.eye(2)
    for C, T, n in ((3, 2, 2 ** 13), (2, 5, 2 ** 13), (3, 3, 2 ** 14), (5, 2, 2 ** 14)):
        ch, G, Q, M, V = _joint_state(C, T, 0.3, 0.5)
        fmap = ReplicaMap(ch, np.eye(T), G, ReplicaAccuracy(), shared=True)
        assert fmap.required_nodes(fmap.pack(Q, M, V)) == [n]
        assert ACCURACIES["high"].joint_points(fmap.D) == 4 * n and ACCURACIES["fast"].joint_points(fmap.D) == n // 4
    one = ReplicaMap(ch[:1], Lam[:1, :1], np.eye(ch[0].r), ReplicaAccuracy())
    assert one.required_nodes(one.pack(Q[:4, :4], M[:4, :4], V[:4, :4])) == [2 ** 14]
    ch, G, *_ = _joint_state(3, 2, 0.3, 0.5)
    acc, again = mp_accuracy(ch, ReplicaAccuracy(), 16, joint=True)
    assert again and acc.qmc_points == 16 and all(acc.joint_points(D) == 16 for D in range(3, 19))

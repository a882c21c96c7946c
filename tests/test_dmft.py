"""DMFT of full-batch gradient descent (numeric/dmft, docs/DMFT.md)."""
from __future__ import annotations

import numpy as np
import pytest
from mtsp.numeric.dmft.engine import run_dmft, standard_normals
from mtsp.numeric.dmft.losses import CrossEntropy, PathData, SampleLoss, centred_basis
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft, time_grid
from scipy.integrate import quad

from mtsp.setup import setup_from_dict


class SquareLoss(SampleLoss):
    """Test-only loss: linear regression ℓ = (h − y)²/2 on y = λ + σ ξ (one field, one teacher
    field): δ = h − y, D = 1."""
    dim = 1

    def __init__(self, noise):
        self.noise = noise

    def normals(self, gram):
        return 2

    def sample(self, gram, g):
        lam = g[:, :1] * np.sqrt(gram[0, 0])
        return PathData(lam, lam[:, 0] + self.noise * g[:, 1])

    def grad_hess(self, h, data, state=None):
        return h - data.label[:, None], np.ones((len(h), 1, 1))

    def train_metrics(self, h, data, state=None):
        r = h[:, 0] - data.label
        return 0.5 * r ** 2, r ** 2


def discrete_mp(alpha, T, sigma, s0, a, kappa, k):
    """(M, Q) after k steps a = η h of gradient descent on linear regression with P = αN samples:
    per eigenvalue s of Σ̂ = XᵀX/P (Marchenko–Pastur, ratio 1/α, atom 1 − α at 0 for α < 1),
    w_k = r w_0 + (1 − r)(s w* + noise)/(s + κ), r = (1 − a(s + κ))^k, noise variance σ² s/α:
    M = ∫ (1 − r) s T/(s + κ),  Q = ∫ r² σ₀² + (1 − r)² (s² T + σ² s/α)/(s + κ)²."""
    q = 1.0 / alpha
    lo, hi = (1 - np.sqrt(q)) ** 2, (1 + np.sqrt(q)) ** 2

    def rho(s):
        return np.sqrt(max((hi - s) * (s - lo), 0.0)) / (2 * np.pi * q * s)

    def r(s):
        return (1 - a * (s + kappa)) ** k
    M = quad(lambda s: rho(s) * (1 - r(s)) * s * T / (s + kappa), lo, hi, limit=200, epsabs=1e-13)[0]
    Q = quad(lambda s: rho(s) * (r(s) ** 2 * s0 ** 2 + (1 - r(s)) ** 2 * (s ** 2 * T + sigma ** 2 * s / alpha)
                                 / (s + kappa) ** 2), lo, hi, limit=200, epsabs=1e-13)[0]
    if q > 1:
        Q += (1 - alpha) * (1 - a * kappa) ** (2 * k) * s0 ** 2
    return M, Q


@pytest.mark.parametrize("alpha,kappa,s0", [(0.5, 0.0, 0.3), (2.0, 0.1, 0.0), (3.0, 0.05, 0.5)])
def test_square_loss_reproduces_marchenko_pastur(alpha, kappa, s0):
    """Linear regression: the DMFT of gradient descent (step a = 0.2) against the closed form of
    `discrete_mp`. With whitened normals every path average is exact for a linear model, so the
    solver must match to rounding (response in float64). Measured (2000 paths): |ΔM| ≤ 4e-13 for
    k ≤ 20, |ΔQ| ≤ 2.4e-11 for k ≤ 12; at k = 20 |ΔQ| ≤ 2.6e-8 — the Cholesky factor of the
    nearly deterministic late field loses digits (docs/DMFT.md §3), and there the float32
    response gives 1.1e-8 by chance of rounding."""
    T, sigma, lr, h, K = 1.3, 0.5, 1.0, 0.2, 20
    tr = run_dmft(SquareLoss(sigma), np.array([[T]]), lr=lr, weight_decay=kappa, alpha=alpha,
                  init_scale=s0, steps=np.full(K, h), n_paths=2000, n_response=300,
                  rng=np.random.default_rng(3), noise="cholesky", response_dtype=np.float64)
    for k, q_bound in ((1, 3e-10), (5, 3e-10), (12, 3e-10), (20, 2e-7)):
        M, Q = discrete_mp(alpha, T, sigma, s0, lr * h, kappa, k)
        Md = tr.M[k, 0, 0]
        assert abs(Md - M) < 4e-12
        assert abs(Md ** 2 / T + tr.Cperp[k, 0, 0] - Q) < q_bound


def test_square_loss_with_source_paths_is_an_unbiased_estimate():
    """The default noise construction (ζ from m source paths' gradients, no factorisation) on
    linear regression: Monte-Carlo estimates of the closed form. Measured over 8 seeds (4000
    paths, 2000 sources, 30 steps of 0.2, α = 2): |ΔM| ≤ 0.015, |ΔQ| ≤ 0.029, means
    −0.0018 ± 0.0022 and −0.0035 ± 0.0040 (SE)."""
    T, sigma, alpha, kappa, s0 = 1.0, 0.5, 2.0, 0.0, 0.3
    M, Q = discrete_mp(alpha, T, sigma, s0, 0.2, kappa, 30)
    dm, dq = [], []
    for seed in range(8):
        tr = run_dmft(SquareLoss(sigma), np.array([[T]]), lr=1.0, weight_decay=kappa, alpha=alpha,
                      init_scale=s0, steps=np.full(30, 0.2), n_paths=4000, n_response=200,
                      rng=np.random.default_rng(seed))
        dm.append(tr.M[30, 0, 0] - M)
        dq.append(tr.M[30, 0, 0] ** 2 / T + tr.Cperp[30, 0, 0] - Q)
    for d, bound in ((np.array(dm), 0.05), (np.array(dq), 0.1)):
        assert np.abs(d).max() < bound
        assert abs(d.mean()) < 4 * d.std(ddof=1) / np.sqrt(len(d))


def test_square_loss_without_whitening_is_a_monte_carlo_estimate():
    """Without the whitening control variate the same solve is a plain Monte-Carlo estimate:
    the error is of the sampling size (measured 2e-3–6e-3 in M at 5000 paths, k = 5), not zero."""
    tr = run_dmft(SquareLoss(0.5), np.array([[1.0]]), lr=1.0, weight_decay=0.0, alpha=3.0,
                  init_scale=0.5, steps=np.full(5, 0.2), n_paths=5000, n_response=500,
                  rng=np.random.default_rng(1), whiten=False)
    M, _ = discrete_mp(3.0, 1.0, 0.5, 0.5, 0.2, 0.0, 5)
    assert 1e-5 < abs(tr.M[5, 0, 0] - M) < 0.03


def test_whitened_normals_have_identity_covariance():
    g = standard_normals(np.random.default_rng(0), 500, 7, True)
    assert np.abs(g.mean(0)).max() < 1e-12
    assert np.abs(g.T @ g / 500 - np.eye(7)).max() < 1e-12
    # the first columns do not depend on how many follow (common random numbers across grids)
    g2 = standard_normals(np.random.default_rng(0), 500, 9, True)
    assert np.abs(g2[:, :7] - g).max() < 1e-12


def test_cross_entropy_gradient_and_hessian_in_centred_coordinates():
    """δ and D of the reduced loss against central differences of the cross-entropy."""
    for C in (2, 3, 4):
        U = centred_basis(C)
        assert np.abs(U.T @ U - np.eye(C - 1)).max() < 1e-14
        assert np.abs(U.sum(0)).max() < 1e-14
        loss = CrossEntropy(C, 0.0)
        rng = np.random.default_rng(C)
        h = rng.standard_normal((5, C - 1))
        data = PathData(np.zeros((5, C)), rng.integers(0, C, 5))
        delta, D = loss.grad_hess(h, data)
        eps = 1e-6
        for a in range(C - 1):
            e = np.zeros(C - 1)
            e[a] = eps
            ce_p, _ = loss.train_metrics(h + e, data)
            ce_m, _ = loss.train_metrics(h - e, data)
            assert np.abs((ce_p - ce_m) / (2 * eps) - delta[:, a]).max() < 1e-8
            dp, _ = loss.grad_hess(h + e, data)
            dm, _ = loss.grad_hess(h - e, data)
            assert np.abs((dp - dm) / (2 * eps) - D[:, :, a]).max() < 1e-8


def test_time_grid_hits_requested_times():
    steps, idx = time_grid([0.5, 3.0, 30.0], 0.2, 1.0)
    grid = np.concatenate([[0.0], np.cumsum(steps)])
    assert np.allclose(grid[idx], [0.5, 3.0, 30.0], atol=1e-12)
    assert steps.min() > 0 and steps.max() <= 1.3 * 0.2 + 1e-12   # a point near a requested time is dropped
    assert steps[0] == pytest.approx(0.2 / 16)
    with pytest.raises(ValueError, match="training.times"):
        time_grid([0.0], 0.2)
    # coarse late: the step grows ∝ t from t = late, up to 3 dt; the early grid is unchanged
    late, idx = time_grid([0.5, 3.0, 30.0], 0.2, 1.0, late=5.0)
    grid_late = np.concatenate([[0.0], np.cumsum(late)])
    assert np.allclose(grid_late[idx], [0.5, 3.0, 30.0], atol=1e-12)
    assert np.array_equal(late[:idx[1]], steps[:idx[1]])
    assert late.max() <= 3 * 0.2 * 1.3 and late.max() > 2.5 * 0.2 and late.size < 0.65 * steps.size
    with pytest.raises(ValueError, match="late"):
        time_grid([1.0], 0.2, late=0.0)
    # without early refinement (relu's Stein response): h = dt from t = 0, the times on the grid
    flat, idx = time_grid([1.0, 3.0, 30.0], 0.2, 1.0, early=False)
    assert np.allclose(flat, 0.2) and flat.size == 150 and idx.tolist() == [5, 15, 150]


def _public(times=(2.0, 10.0)):
    return setup_from_dict({"tasks": [{"name": "A", "classes": 2, "noise": 0.3}],
                            "student": {"kind": "glm", "init_scale": 0.0},
                            "training": {"protocol": "full_batch", "alpha": 3.0, "lr": 1.0,
                                         "times": list(times)}})


def test_public_full_batch_check():
    """MODEL.md: glm, C = 2, noise 0.3, σ₀ = 0, α = 3, lr 1: simulations at N = 1000 give
    0.1804 ± 0.0009 (t = 2) and 0.1593 ± 0.0007 (t = 10). Criterion 4·SE + 0.003; measured
    (8 × 4000 paths, the defaults) 0.1792 ± 0.0006, 0.1580 ± 0.0013; here 4 × 3000 paths."""
    res = solve_dmft(_public(), DmftOptions(n_paths=3000, n_response=600, batches=4, scan=8))
    A = res.tasks["A"]
    for g, se, ref, ref_se in zip(A["gen_error"], A["gen_error_se"], (0.1804, 0.1593), (0.0009, 0.0007)):
        assert abs(g - ref) <= 4 * np.hypot(se, ref_se) + 0.003
    assert A["best_gen_error"] <= min(A["gen_error"]) + 1e-12
    assert 0 < A["train_error"][1] < A["gen_error"][1]


def test_dt_convergence_is_first_order():
    """Euler grids of late step dt = 0.4, 0.2, 0.1 (same paths' data): gen_error at t = 1 changes
    by 3.0e-4 then 1.6e-4 (measured, 8000 paths), first order with the dense early grid."""
    s = _public((1.0,))
    vals = [solve_dmft(s, DmftOptions(dt=dt, n_paths=8000, n_response=1500, batches=1, scan=2,
                                      step_correction=0)).tasks["A"]["gen_error"][0] for dt in (0.4, 0.2, 0.1)]
    d1, d2 = vals[0] - vals[1], vals[1] - vals[2]
    assert 0 < d2 < 5e-4 and 1.3 < d1 / d2 < 3.0


def test_step_correction_extrapolates_every_output_to_the_flow():
    """Gradient descent at step dt has the flow's outputs plus O(dt), and it is large for the
    training metrics (docs/DMFT.md §4; benchmarks/results/dmft_train_gap.txt): glm C = 3,
    noise 1, norm 4, α = 0.71, κ = 0.05, σ₀ = 0.3, t = 0.5 and 1, one batch of 1000 paths, same
    normals throughout. Measured over seeds 0–2: the Euler value at dt = 0.2 sits 2.6e-3–2.8e-3
    (t = 0.5) and 3.1e-3–3.5e-3 (t = 1) below the extrapolated value of dt = 0.05 (the flow within
    ≈ 1e-4) in train_loss, 2.4e-4–5.3e-4 below it in gen_error, label_error, test_loss and the
    early-stopped minima; the extrapolated value of dt = 0.2 (the default step correction)
    1.9e-4–2.0e-4 and 3.4e-4–3.5e-4 (train_loss), ≤ 4.4e-5 (the test metrics and minima) from it.
    Before the correction covered the test metrics they kept the Euler offset (≥ 2.4e-4)."""
    s = setup_from_dict({"tasks": [{"name": "B", "classes": 3, "noise": 1.0, "norm": 4.0}],
                         "student": {"kind": "glm", "init_scale": 0.3},
                         "training": {"protocol": "full_batch", "alpha": 0.71, "lr": 1.0,
                                      "weight_decay": 0.05, "times": [0.5, 1.0]}})
    test = ("gen_error", "label_error", "test_loss", "best_gen_error", "best_test_loss")

    def outputs(dt, correction):
        opts = DmftOptions(dt=dt, n_paths=1000, n_response=300, batches=1, scan=2,
                           step_correction=correction)
        r = solve_dmft(s, opts).tasks["B"]
        return {k: np.atleast_1d(r[k]) for k in ("train_loss",) + test}
    flow = outputs(0.05, 1)
    euler, corrected = outputs(0.2, 0), outputs(0.2, 1)
    assert np.all(flow["train_loss"] - euler["train_loss"] > 2e-3), (flow, euler)
    assert np.all(np.abs(corrected["train_loss"] - flow["train_loss"]) < 1e-3), (flow, corrected)
    for k in test:
        assert np.all(flow[k] - euler[k] > 2e-4), (k, flow[k], euler[k])
        assert np.all(np.abs(corrected[k] - flow[k]) < 1.5e-4), (k, flow[k], corrected[k])
    with pytest.raises(ValueError, match="step_correction"):
        solve_dmft(s, DmftOptions(step_correction=-1))


def test_path_convergence_within_error_bars():
    """C = 3, α = 2, κ = 0.1, t = 1: 6 × 500 paths against 6 × 3000 (independent seeds); the
    difference is within 4 combined standard errors and the error bar shrinks (measured:
    see the assertion message on failure)."""
    s = setup_from_dict({"tasks": [{"name": "A", "classes": 3, "noise": 0.5}],
                         "student": {"kind": "glm", "init_scale": 0.1},
                         "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0,
                                      "weight_decay": 0.1, "times": [1.0]}})
    small = solve_dmft(s, DmftOptions(n_paths=500, n_response=200, batches=6, scan=2, seed=1,
                                      step_correction=0)).tasks["A"]
    big = solve_dmft(s, DmftOptions(n_paths=3000, n_response=600, batches=6, scan=2, seed=2,
                                    step_correction=0)).tasks["A"]
    msg = (small["gen_error"][0], small["gen_error_se"][0], big["gen_error"][0], big["gen_error_se"][0])
    diff = abs(small["gen_error"][0] - big["gen_error"][0])
    assert diff <= 4 * np.hypot(small["gen_error_se"][0], big["gen_error_se"][0]), msg
    assert 0 < big["gen_error_se"][0] < small["gen_error_se"][0], msg


def test_symbolic_reduced_loss_matches_the_numeric_one(tmp_path):
    """derive/dmft.py derives δ and D of the reduced cross-entropy with SymPy (and checks them
    against the closed forms); the numeric loss must agree at random points (measured ~1e-16)."""
    import sympy as sp
    from mtsp.derive.dmft import reduced_cross_entropy

    from mtsp.cli import main
    for C in (2, 3):
        h, per_label = reduced_cross_entropy(C)
        loss = CrossEntropy(C, 0.0)
        rng = np.random.default_rng(0)
        pts = rng.standard_normal((4, C - 1))
        for y, (_, delta, D) in per_label.items():
            fd = sp.lambdify(list(h), delta, "numpy")
            fD = sp.lambdify(list(h), D, "numpy")
            nd, nD = loss.grad_hess(pts, PathData(np.zeros((4, C)), np.full(4, y)))
            for i, p in enumerate(pts):
                assert np.abs(np.asarray(fd(*p), float).ravel() - nd[i]).max() < 1e-12
                assert np.abs(np.asarray(fD(*p), float) - nD[i]).max() < 1e-12
    setup = tmp_path / "fb.toml"
    setup.write_text('[[tasks]]\nname = "A"\nclasses = 2\n[student]\nkind = "glm"\n'
                     '[training]\nprotocol = "full_batch"\nalpha = 2\nlr = 1\ntimes = [1]\n')
    assert main(["derive", str(setup), "--out", str(tmp_path / "d")]) == 0
    text = (tmp_path / "d" / "dmft_equations.md").read_text()
    assert "Task A" in text and r"C_\perp(k,l)" in text


def test_linear_trunk_with_frozen_identity_heads_is_the_glm():
    """A shared linear trunk with K = C, identity heads and head_lr → 0 (1e-9) is the glm student: its
    DMFT (K fields, `trunk.Trunk`) must agree with the glm DMFT (C − 1 centred fields) within the
    sampling error. Measured at t = 2 (C = 2, α = 2, κ = 0.05, σ₀ = 0.2, 4 × 2000 paths each):
    gen_error 0.2151 ± 0.0003 vs 0.2155 ± 0.0006, test_loss 0.49774 vs 0.49770, train_loss
    0.3258 ± 0.0019 vs 0.3315 ± 0.0009 (2.8 SE; with the step correction, +0.0018 and +0.0017
    on both: 0.3240 vs 0.3298 without)."""
    base = {"tasks": [{"name": "A", "classes": 2, "noise": 0.3}],
            "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0, "weight_decay": 0.05,
                         "times": [2.0]}}
    glm = setup_from_dict({**base, "student": {"kind": "glm", "init_scale": 0.2}})
    trunk = setup_from_dict({**base, "student": {"kind": "shared", "hidden": 2, "activation": "linear",
                                                 "init_scale": 0.2, "head_init": [[[1.0, 0.0], [0.0, 1.0]]]},
                             "training": {**base["training"], "head_lr": 1e-9}})
    opts = DmftOptions(n_paths=2000, n_response=500, batches=4, scan=2)
    a, b = (solve_dmft(s, opts).tasks["A"] for s in (glm, trunk))
    for key in ("gen_error", "test_loss", "train_loss"):
        se = np.hypot(a[key + "_se"][0], b[key + "_se"][0])
        assert abs(a[key][0] - b[key][0]) <= 4 * se + 1e-4, (key, a[key][0], b[key][0], se)


def test_long_time_limit_is_the_replica_minimiser():
    """With weight decay κ > 0 gradient descent converges to the minimiser of the regularized
    empirical risk, whose N → ∞ limit is the replica engine's `erm` fixed point at ridge λ = ακ
    (MODEL.md). glm C = 2, noise 0.3, α = 2, κ = 0.5 (λ = 1); the fixed point of gradient descent
    does not depend on the step, so a late step of 0.5 reaches it by t = 20 (t = 10 and 20 agree
    to 4e-5). Measured (4 × 4000 paths): gen_error 0.20797 ± 0.00077 vs 0.20679 (+1.5 SE),
    test_loss 0.51173 ± 0.00090 vs 0.51050 (+1.4 SE), train_loss 0.36783 ± 0.00195 vs 0.36814
    (−0.2 SE). (train_error is left out: the replica's own value moves from 0.0580 to 0.0517
    between its default and high accuracy; simulations at N = 1000 give 0.0482 ± 0.0015, the
    DMFT 0.0454 ± 0.0008.)"""
    from mtsp.api import solve   # derive, then numeric
    base = {"tasks": [{"name": "A", "classes": 2, "noise": 0.3}],
            "student": {"kind": "glm", "init_scale": 0.1}}
    erm = solve(setup_from_dict({**base, "training": {"protocol": "erm", "alpha": 2.0,
                                                       "ridge": 1.0}})).tasks["A"]
    fb = setup_from_dict({**base, "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0,
                                               "weight_decay": 0.5, "times": [10.0, 20.0]}})
    A = solve_dmft(fb, DmftOptions(dt=0.5, n_paths=4000, n_response=1000, batches=4, scan=2)).tasks["A"]
    for key in ("gen_error", "test_loss", "train_loss"):
        assert abs(A[key][1] - A[key][0]) < 4e-4, (key, A[key])
        assert abs(A[key][1] - erm[key][0]) <= 4 * A[key + "_se"][1] + 2e-4, (key, A[key], erm[key])


def test_large_alpha_is_the_online_flow_without_its_eta2_term():
    """As α → ∞ the memory and noise terms of the DMFT vanish (both carry 1/α) and full-batch
    gradient flow becomes gradient flow on the population risk: the online equations without
    their η² E[δδᵀ] term (MODEL.md). Reference: the online engine's own expectations
    (`online.rhs_state`) with that term removed, integrated to rtol 1e-7. glm C = 3, noise 0.5,
    σ₀ = 0.3, κ = 0.1, lr 1, t = 1, α = 1e4 (the 1/α terms are then ~1e-4), late step 0.1.
    Measured: flow 0.26084, DMFT 0.26052 ± 0.00080 (4 × 4000 paths; −3.2e-4, the Euler step:
    −1.2e-3 at step 0.2), while the online equations with the η² term give 0.45311 and α = 100
    gives +4.2e-3 (step 0.2). Here (4 × 3000 paths) 0.26081 ± 0.00077."""
    from mtsp.numeric.metrics import task_metrics
    from mtsp.numeric.model import State, theory_model
    from mtsp.numeric.online import Accuracy, rhs_state
    from scipy.integrate import solve_ivp
    base = {"tasks": [{"name": "A", "classes": 3, "noise": 0.5}],
            "student": {"kind": "glm", "init_scale": 0.3}}
    train = {"lr": 1.0, "weight_decay": 0.1, "times": [1.0]}
    model = theory_model(setup_from_dict({**base, "training": {"protocol": "online", **train}}))

    def flow(y, keep_eta2):
        def f(t, y):
            st = model.unpack(y)
            dQ, dR, _, mo = rhs_state(model, st, Accuracy())
            eta2 = model.lr ** 2 * model.weights[0] ** 2 * mo.m2[0, 0]
            return model.pack(State(dQ - (0 if keep_eta2 else eta2), dR, st.V))
        y1 = solve_ivp(f, (0, 1.0), y, rtol=1e-7, atol=1e-9).y[:, -1]
        return task_metrics(model, model.unpack(y1), Accuracy())[0].gen_error
    y0 = model.pack(model.initial_state())
    ref, online = flow(y0, False), flow(y0, True)
    fb = setup_from_dict({**base, "training": {"protocol": "full_batch", "alpha": 1e4, **train}})
    A = solve_dmft(fb, DmftOptions(dt=0.1, n_paths=3000, n_response=400, batches=4, scan=2,
                                   step_correction=0)).tasks["A"]
    bound = 4 * A["gen_error_se"][0] + 5e-4
    assert abs(A["gen_error"][0] - ref) <= bound, (A["gen_error"], A["gen_error_se"], ref)
    assert abs(A["gen_error"][0] - online) > 20 * bound, (A["gen_error"], online)


def test_torch_arrays_give_the_numpy_numbers():
    """`device`: the path-sized arrays as torch tensors (here on the CPU) — the same algorithm on
    the same normals, so the same numbers up to rounding (measured: largest difference 2.4e-9
    over every output, two tasks on a linear trunk, 46 steps, float32 response; ~3 s here,
    plus torch's import); an unknown device is refused naming the key."""
    s = setup_from_dict({
        "tasks": [{"name": "A", "classes": 2, "noise": 0.2}, {"name": "B", "classes": 3, "noise": 1.0}],
        "teacher": {"alignment": 0.5},
        "student": {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.2},
        "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0, "weight_decay": 0.05,
                     "times": [2.0]}})
    a, b = (solve_dmft(s, DmftOptions(n_paths=600, n_response=200, batches=2, scan=2, device=dev))
            for dev in (None, "cpu"))
    diff = max(abs(x - y) for t in ("A", "B") for key in ("gen_error", "test_loss", "train_loss",
                                                           "train_error", "best_gen_error")
               for x, y in zip(np.ravel(a.tasks[t][key]), np.ravel(b.tasks[t][key])))
    assert diff < 3e-8, diff
    with pytest.raises(ValueError, match="device"):
        solve_dmft(s, DmftOptions(n_paths=600, n_response=200, batches=1, device="nodevice"))


def test_batches_from_a_target_standard_error():
    """target_se: batches are added (from `batches` up to `max_batches`) until every gen_error_se
    is at most the target. Measured (C = 2, α = 2, t = 1, 500 paths per batch): 3 batches give
    SE 0.0030; target 0.001 took 17 batches (SE 0.00095)."""
    s = setup_from_dict({"tasks": [{"name": "A", "classes": 2, "noise": 0.3}],
                         "student": {"kind": "glm", "init_scale": 0.1},
                         "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0, "times": [1.0]}})
    opts = DmftOptions(n_paths=500, n_response=100, batches=3, scan=2, step_correction=0)
    few = solve_dmft(s, opts)
    more = solve_dmft(s, DmftOptions(**{**opts.__dict__, "target_se": 0.001}))
    assert few.stats["batches"] == 3 and few.tasks["A"]["gen_error_se"][0] > 0.002
    assert 3 < more.stats["batches"] < 32 and more.tasks["A"]["gen_error_se"][0] <= 0.001
    capped = solve_dmft(s, DmftOptions(**{**opts.__dict__, "target_se": 1e-6, "max_batches": 5}))
    assert capped.stats["batches"] == 5
    with pytest.raises(ValueError, match="target_se"):
        solve_dmft(s, DmftOptions(**{**opts.__dict__, "target_se": 0.0}))


def _shared_linear_trunk(times, heads_b=((0.5, -0.1), (-0.5, 0.2))):
    """benchmarks/dmft_speed.py's two related tasks on a shared linear trunk (by default both
    tasks start with the same heads: a reflection symmetry of the trunk space, docs/DMFT.md §4)."""
    heads = [[[0.5, -0.1], [-0.5, 0.2]], [list(r) for r in heads_b]]
    return setup_from_dict({
        "tasks": [{"name": "A", "classes": 2, "noise": 0.2}, {"name": "B", "classes": 2, "noise": 1.0}],
        "teacher": {"alignment": 0.9},
        "student": {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.2,
                    "head_init": heads},
        "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0, "weight_decay": 0.05,
                     "times": list(times)}})


def test_trunk_reflection_symmetry_and_mirrored_paths():
    """Equal centred heads (1, −0.3) for both tasks: `trunk_mirror` is the reflection across that
    line; mirrored paths (`mirrored_normals`: exactly whitened over all paths) keep the heads'
    antisymmetric part at rounding (measured ≤ 1e-9 … 1e-7) while unpaired paths seed it at
    O(paths^-1/2) (measured, t = 3: 7e-3 … 1e-2 at 600 paths), and both give the same gen_error
    at t = 3 within the error bars (measured, 3 × 600 paths: B 0.2087 ± 0.0035 unpaired, 0.2181 ±
    0.0025 mirrored); a trunk whose heads span both directions has no symmetry. ~4 s."""
    from mtsp.numeric.dmft.engine import mirrored_normals
    from mtsp.numeric.dmft.solve import trunk_loss, trunk_mirror
    s = _shared_linear_trunk([3.0])
    S = trunk_mirror(trunk_loss(s)[0])
    u = np.array([1.0, -0.3]) / np.hypot(1.0, 0.3)
    assert np.allclose(S @ u, u) and np.allclose(S @ S, np.eye(2)) and abs(np.trace(S)) < 1e-12
    assert trunk_mirror(trunk_loss(_shared_linear_trunk([3.0], ((0.1, 0.5), (-0.2, -0.5))))[0]) is None
    G = mirrored_normals(np.random.default_rng(0), 400, 3, 2, 2, S, True, 1)
    assert np.allclose(G.T @ G / 400, np.eye(5), atol=1e-12) and np.allclose(G.mean(0), 0, atol=1e-12)
    assert np.allclose(G[1::2, :3], G[::2, :3]) and np.allclose(G[1::2, 3:], G[::2, 3:] @ S)
    opts = DmftOptions(n_paths=600, n_response=200, batches=3, scan=2)
    plain = solve_dmft(s, opts)
    mirr = solve_dmft(s, DmftOptions(**{**opts.__dict__, "mirror": True}))
    assert plain.stats["symmetry"] == "sampled" and mirr.stats["symmetry"] == "mirrored"
    assert mirr.stats["asymmetry"] < 1e-6 < 1e-3 < plain.stats["asymmetry"], (
        mirr.stats["asymmetry"], plain.stats["asymmetry"])
    for t in ("A", "B"):
        a, b = plain.tasks[t], mirr.tasks[t]
        assert abs(a["gen_error"][0] - b["gen_error"][0]) <= 4 * np.hypot(a["gen_error_se"][0],
                                                                          b["gen_error_se"][0])
    with pytest.raises(ValueError, match="n_paths"):
        solve_dmft(s, DmftOptions(n_paths=601, n_response=200, batches=1, mirror=True))
    # separate inputs (α = 1, 3): pairs within each task's population (measured 4e-11)
    sep = setup_from_dict({**s.to_dict(), "tasks": [{**t, "alpha": a} for t, a in
                                                     zip(s.to_dict()["tasks"], (1.0, 3.0))],
                           "training": {**s.to_dict()["training"], "inputs": "separate"}})
    assert sep.training.inputs == "separate"
    res = solve_dmft(sep, DmftOptions(n_paths=400, n_response=100, batches=1, scan=2, mirror=True))
    assert res.stats["asymmetry"] < 1e-6


def test_glm_task_of_weight_zero_is_untrained_and_measured():
    """A glm task of weight 0 beside a trained one (issue 17, benchmarks/dmft_random_setups.py
    seed 1 setup 2 crashed: its single-task model was built from an invalid all-zero-weight
    setup). Its weights never see the data: W Wᵀ/N = σ₀² I, so its training metrics are its test
    metrics, train_error = 1 − 1/C and train_loss = E[logsumexp z], z ~ N(0, σ₀² I_C), here by
    Monte Carlo (1e6 draws, SE 3.6e-4; measured difference 3e-5) — not log C = 1.0986 and nan,
    as before. The trained task is the same as alone (same paths). The default early-stopping scan
    (60 points) on this grid of 23 steps: over (0, 0.5] like the online engine's, not from t = 0
    (where the constant untrained task had its minimum, and the step correction's grid refused
    t* = 0 with a RequestError). 4 s."""
    s0, C = 0.6, 3
    d = {"tasks": [{"name": "A", "classes": C, "noise": 0.5, "weight": 0.0},
                   {"name": "B", "classes": 2, "noise": 0.3}],
         "student": {"kind": "glm", "init_scale": s0},
         "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0, "times": [0.5]}}
    opts = DmftOptions(n_paths=300, n_response=100, batches=2)
    res = solve_dmft(setup_from_dict(d), opts)
    A = res.tasks["A"]
    assert res.stats["steps"] < 2 * opts.scan and 0 < res.scan_times[0] and res.scan_times[-1] == 0.5
    assert A["best_gen_error_time"] > 0
    z = np.random.default_rng(0).standard_normal((1000000, C)) * s0
    lse = float(np.mean(np.log(np.exp(z).sum(axis=1))))
    assert abs(A["train_error"][0] - (1 - 1 / C)) < 1e-4
    assert abs(A["train_loss"][0] - lse) < 2e-3
    assert abs(A["gen_error"][0] - (1 - 1 / C)) < 1e-4
    alone = solve_dmft(setup_from_dict({**d, "tasks": d["tasks"][1:]}), opts)
    assert res.tasks["B"]["gen_error"] == alone.tasks["B"]["gen_error"]


def test_glm_baselines_on_shared_inputs_are_the_multitask_tasks():
    """glm tasks on shared inputs decouple, so `solve_full_batch(single=True)` takes each task's
    baseline from the multitask run (no second solve); it must equal the solve of the task alone
    (setup.single: same learning rate, weight decay, α and paths) exactly, every output and the
    early-stopping curve; separate inputs (other learning rates) are solved again. 2 s."""
    from mtsp.numeric.dmft.solve import solve_full_batch
    d = {"tasks": [{"name": "A", "classes": 2, "noise": 0.3, "weight": 0.5},
                   {"name": "B", "classes": 2, "noise": 1.0, "norm": 2.0}],
         "teacher": {"alignment": 0.5, "class_map": "random"},
         "student": {"kind": "glm", "init_scale": 0.2},
         "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0, "weight_decay": 0.1,
                      "times": [0.5, 1.0]}}
    opts = DmftOptions(n_paths=300, n_response=100, batches=2, scan=6)
    s = setup_from_dict(d)
    res = solve_full_batch(s, single=True, opts=opts)
    for k, name in enumerate("AB"):
        alone = solve_dmft(s.single(k), opts)
        assert res.single[name] == alone.tasks[name]
        assert res.single_results[name].scan_gen_error[name] == alone.scan_gen_error[name]
        assert res.single_results[name].scan_times == alone.scan_times
    sep = setup_from_dict({**d, "training": {**d["training"], "inputs": "separate"},
                           "tasks": [{**t, "alpha": a} for t, a in zip(d["tasks"], (1.0, 3.0))]})
    res = solve_full_batch(sep, single=True, opts=opts)
    alone = solve_dmft(sep.single(1), opts)
    assert res.single["B"] == alone.tasks["B"] != res.tasks["B"]

"""Tests of the online theory engine (mtsp.numeric.online / metrics / solve) against independent
evaluations: MODEL.md's public check, closed forms for C = 2 glm students, and direct Monte Carlo
of MODEL.md's formulas (fields sampled with numpy from a factorisation built here, labels, softmax,
δ and the losses computed per sample — nothing from mtsp.numeric is used to produce the reference).
"""
import dataclasses

import numpy as np
import pytest
from scipy.special import erf, logsumexp, softmax

from mtsp.numeric.metrics import task_metrics
from mtsp.numeric.model import State, theory_model
from mtsp.numeric.online import rhs_state
from mtsp.api import solve   # derive, then numeric
from mtsp.setup import setup_from_dict

from genz_reference import normal_cdf


def mm(x, Y):
    """x @ Y for a tall x, without BLAS: multithreaded BLAS on skinny products is slow on a
    loaded machine, and these Monte-Carlo loops are all skinny products."""
    return np.einsum("ni,ij->nj", x, Y)


def setup_dict(tasks, student, training=None, teacher=None):
    return {"name": "test", "tasks": tasks, "teacher": teacher or {"alignment": 0.6},
            "student": student,
            "training": {"protocol": "online", "lr": 0.7, "head_lr": 0.4, "weight_decay": 0.05,
                         "times": [1.0]} | (training or {})}


def model_of(*args, **kw):
    return theory_model(setup_from_dict(setup_dict(*args, **kw)))


# ------------------------------------------------------------------------------------------
# MODEL.md's public check

def test_public_check_glm_c2():
    d = {"name": "public", "tasks": [{"name": "A", "classes": 2, "noise": 0.3, "norm": 1.0}],
         "student": {"kind": "glm", "init_scale": 0.0},
         "training": {"protocol": "online", "lr": 0.5, "times": [1, 2, 4, 8]}}
    res = solve(setup_from_dict(d))
    got = np.array(res.tasks["A"]["gen_error"])
    # measured 0.284113, 0.222272, 0.161170, 0.111116
    np.testing.assert_array_equal(np.round(got, 4), [0.2841, 0.2223, 0.1612, 0.1111])
    np.testing.assert_allclose(got, [0.2841, 0.2223, 0.1612, 0.1111], atol=5e-5)
    assert res.engine == "ode" and res.protocol == "online"


def test_unsolved_protocols_are_refused_naming_the_key():
    """full_batch goes to the dmft engine (tests/test_dmft.py) and erm to the replica engine
    (tests/test_replica.py); what they do not cover (a DMFT grid beyond MAX_STEPS steps; coupled
    tasks on shared inputs beyond 128 joint labels: three six-class tasks, 216 labels) is refused
    naming the key, before any work."""
    d = {"name": "fb", "tasks": [{"name": "A", "classes": 2, "noise": 0.3}],
         "student": {"kind": "shared", "hidden": 2, "activation": "relu", "init_scale": 0.1},
         "training": {"protocol": "full_batch", "alpha": 3.0, "lr": 1.0, "times": [2, 1000]}}
    with pytest.raises(NotImplementedError, match=r"training\.times"):
        solve(setup_from_dict(d))
    d = {"name": "erm", "tasks": [{"name": "A", "classes": 6, "noise": 0.3}, {"name": "B", "classes": 6},
                                  {"name": "C", "classes": 6}],
         "student": {"kind": "glm"},
         "training": {"protocol": "erm", "alpha": 3.0, "ridge": 0.1, "coupling": 1.0}}
    with pytest.raises(NotImplementedError, match=r"training\.coupling"):
        solve(setup_from_dict(d))


# ------------------------------------------------------------------------------------------
# Random valid states: fields built from independent Gaussians, so Cov(h, λ) is PSD by
# construction.  λ = L a (L Lᵀ = T), h = A a + B b, ν = λ + σ ξ  (a, b, ξ standard normal).

class Fields:
    def __init__(self, model, rng, scale_a=0.6, scale_b=0.5, scale_v=0.9):
        self.model = model
        w, U = np.linalg.eigh(model.gram)
        self.L = U * np.sqrt(np.clip(w, 0, None))          # M × M, L Lᵀ = T
        K, M = model.K, model.M
        self.A = scale_a * rng.normal(size=(K, M))
        self.B = scale_b * rng.normal(size=(K, K))
        self.sigma = np.concatenate([np.full(c, s) for c, s in zip(model.classes, model.noise)])
        Q = self.A @ self.A.T + self.B @ self.B.T
        R = self.A @ self.L.T
        if model.train_heads:
            V = tuple(scale_v * rng.normal(size=(c, K)) for c in model.classes)
        else:
            V = model.heads0
        self.state = State(Q, R, V)

    def sample(self, rng, n):
        K, M = self.model.K, self.model.M
        a = rng.standard_normal((n, M))
        b = rng.standard_normal((n, K))
        xi = rng.standard_normal((n, M))
        lam = mm(a, self.L.T)
        h = mm(a, self.A.T) + mm(b, self.B.T)
        nu = lam + xi * self.sigma
        return h, lam, nu


def g_and_dg(name, h):
    """MODEL.md's activations, written out here."""
    if name == "linear":
        return h, np.ones_like(h)
    if name == "relu":
        return np.maximum(h, 0), (h > 0).astype(float)
    if name == "erf":
        return erf(h / np.sqrt(2)), np.sqrt(2 / np.pi) * np.exp(-h * h / 2)
    if name == "tanh":
        t = np.tanh(h)
        return t, 1 - t * t
    raise ValueError(name)


class Acc:
    """Running mean and standard error of per-sample arrays."""

    def __init__(self):
        self.n, self.s, self.s2 = 0, 0.0, 0.0

    def add(self, x):                     # per-sample values x: (n, ...)
        self.n += len(x)
        self.s = self.s + x.sum(0)
        self.s2 = self.s2 + (x * x).sum(0)

    def add_outer(self, x, y):            # per-sample outer products x_i y_jᵀ, not formed
        self.n += len(x)
        self.s = self.s + np.einsum("ni,nj->ij", x, y)
        self.s2 = self.s2 + np.einsum("ni,nj->ij", x * x, y * y)

    def result(self):
        m = self.s / self.n
        var = np.maximum(self.s2 / self.n - m * m, 0)
        return m, np.sqrt(var / (self.n - 1))


def mc_rhs(fields, n, seed, chunk=250_000):
    """Monte-Carlo estimate (mean, SE) of dQ/dt, dR/dt, dV_t/dt from MODEL.md's per-sample
    formulas; separate inputs: each sample draws its task τ ~ π and carries only that loss term."""
    model = fields.model
    st = fields.state
    eta, etav, kappa = model.lr, model.head_lr, model.weight_decay
    w = model.weights
    offs = np.concatenate([[0], np.cumsum(model.classes)])
    rng = np.random.default_rng(seed)
    accQ, accR = Acc(), Acc()
    accV = [Acc() for _ in model.classes]
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        h, lam, nu = fields.sample(rng, m)
        if model.kind == "glm":
            gh, dg = h, np.ones_like(h)
        else:
            gh, dg = g_and_dg(model.activation, h)
        if model.inputs == "separate":
            tau = rng.choice(len(model.classes), size=m, p=model.shares)
        delta = np.zeros_like(h)
        for t, C in enumerate(model.classes):
            z = mm(gh, st.V[t].T)
            s = softmax(z, axis=1)
            y = np.argmax(nu[:, offs[t]:offs[t + 1]], axis=1)
            r = s.copy()
            r[np.arange(m), y] -= 1.0                                # softmax(z_t) − e_{y_t}
            on = np.ones(m) if model.inputs == "shared" else (tau == t).astype(float)
            if model.kind == "glm":      # h is the stack of the z_t: ∂L/∂h_t = w_t (s_t − e_y)
                delta[:, offs[t]:offs[t + 1]] += (w[t] * on)[:, None] * r
            else:
                delta += (w[t] * on)[:, None] * dg * mm(r, st.V[t])
            accV[t].add_outer(-etav * w[t] * on[:, None] * r, gh)
        accR.add_outer(-eta * delta, lam)                                      # −η δ λᵀ
        dQ = -eta * (delta[:, :, None] * h[:, None, :] + h[:, :, None] * delta[:, None, :]) \
            + eta ** 2 * delta[:, :, None] * delta[:, None, :]
        accQ.add(dQ)
    (Q, Qse), (R, Rse) = accQ.result(), accR.result()
    Q = Q - 2 * eta * kappa * st.Q
    R = R - eta * kappa * st.R
    V = [a.result() for a in accV]
    return (Q, Qse), (R, Rse), V


def assert_mc(engine, mc, se, what, nse=5.0, floor=1e-6):
    engine, mc, se = np.asarray(engine), np.asarray(mc), np.asarray(se)
    bad = np.abs(engine - mc) > nse * se + floor
    assert not bad.any(), (f"{what}: engine {engine[bad]} vs MC {mc[bad]} ± {se[bad]} "
                           f"(z = {((engine - mc) / se)[bad]})")


def check_rhs(model, seed, n=2_000_000):
    rng = np.random.default_rng(seed)
    fields = Fields(model, rng)
    dQ, dR, dV, _ = rhs_state(model, fields.state)
    (Qm, Qse), (Rm, Rse), V = mc_rhs(fields, n, seed + 1000)
    assert_mc(dQ, Qm, Qse, "dQ/dt")
    assert_mc(dR, Rm, Rse, "dR/dt")
    if model.train_heads:
        for t, (Vm, Vse) in enumerate(V):
            assert_mc(dV[t], Vm, Vse, f"dV_{t}/dt")
    else:
        assert dV == ()
    return fields


# ------------------------------------------------------------------------------------------
# ODE right-hand side vs Monte Carlo (2e6 samples each).  Measured max |z| over all entries:
# linear shared 1.5, linear separate 1.7, glm 2.4, tanh 1.7, relu 1.8 (SE 1e-4 .. 1e-3).
# Power: evaluating the separate-inputs case with the engine's shared-input equations (and
# weights π_t w_t, i.e. only the missing "no cross terms") gives z = 62 in dQ; a 2 % error in
# η gives z = 24; a tanh trunk evaluated as erf z = 237; σ off by 10 % z = 18.

def test_rhs_shared_linear_two_tasks_shared_inputs():
    model = model_of([{"name": "A", "classes": 3, "noise": 0.5},
                      {"name": "B", "classes": 2, "weight": 0.7, "noise": 0.2}],
                     {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.3})
    check_rhs(model, seed=1)


def test_rhs_shared_linear_two_tasks_separate_inputs():
    model = model_of([{"name": "A", "classes": 3, "noise": 0.5, "share": 1.0},
                      {"name": "B", "classes": 2, "weight": 0.7, "share": 3.0}],
                     {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.3},
                     {"inputs": "separate"})
    assert np.allclose(model.shares, [0.25, 0.75])
    check_rhs(model, seed=2)


def test_rhs_glm_two_tasks_shared_inputs():
    model = model_of([{"name": "A", "classes": 2, "noise": 0.3}, {"name": "B", "classes": 3}],
                     {"kind": "glm", "init_scale": 0.0})
    check_rhs(model, seed=3)


def test_rhs_tanh_trunk_one_task():
    model = model_of([{"name": "A", "classes": 3, "noise": 0.5}],
                     {"kind": "shared", "hidden": 2, "activation": "tanh", "init_scale": 0.3})
    check_rhs(model, seed=4)


def test_rhs_relu_trunk_one_task():
    model = model_of([{"name": "A", "classes": 3, "noise": 0.4}],
                     {"kind": "shared", "hidden": 2, "activation": "relu", "init_scale": 0.3})
    check_rhs(model, seed=5)


# ------------------------------------------------------------------------------------------
# Metrics

def _closed_form_c2(Q, R, T, sigma):
    """One glm task with C = 2: every metric's events are half-planes of the logit differences
    u = z₁ − z₀ and v = λ₁ − λ₀ (or ν₁ − ν₀), so P(sign u ≠ sign v) = arccos(ρ)/π."""
    e = np.array([-1.0, 1.0])
    var_u = e @ Q @ e
    cov_uv = e @ R @ e
    var_v = e @ T @ e
    gen = np.arccos(cov_uv / np.sqrt(var_u * var_v)) / np.pi
    lab = np.arccos(cov_uv / np.sqrt(var_u * (var_v + 2 * sigma ** 2))) / np.pi
    return gen, lab


def test_glm_c2_metrics_closed_form():
    rng = np.random.default_rng(11)
    for noise in (0.0, 0.3, 1.5):
        model = model_of([{"name": "A", "classes": 2, "noise": noise}], {"kind": "glm"},
                         teacher={"norm": 1.7})
        T = model.gram
        for _ in range(4):
            st = Fields(model, rng, scale_a=rng.uniform(0.2, 2), scale_b=rng.uniform(0.05, 1)).state
            gen, lab = _closed_form_c2(st.Q, st.R, T, noise)
            m = task_metrics(model, st)[0]
            # the engine's bivariate-orthant closed form: measured ≤ 6e-16
            assert m.gen_error == pytest.approx(gen, abs=1e-12)
            assert m.label_error == pytest.approx(lab, abs=1e-12)


def mc_metrics(fields, t, n, seed, chunk=500_000):
    model, st = fields.model, fields.state
    o = model.offsets[t]
    sl = slice(o, o + model.classes[t])
    rng = np.random.default_rng(seed)
    acc = Acc()
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        h, lam, nu = fields.sample(rng, m)
        gh = h if model.kind == "glm" else g_and_dg(model.activation, h)[0]
        z = mm(gh, st.V[t].T)
        zmax = z.argmax(1)
        y = nu[:, sl].argmax(1)
        ce = logsumexp(z, axis=1) - z[np.arange(m), y]
        acc.add(np.stack([zmax != lam[:, sl].argmax(1), zmax != y, ce], axis=1).astype(float))
    return acc.result()


def metrics_case(activation, hidden=2, **scales):
    model = model_of([{"name": "A", "classes": 3, "noise": 0.5},
                      {"name": "B", "classes": 2, "noise": 0.0, "weight": 0.5}],
                     {"kind": "shared", "hidden": hidden, "activation": activation, "init_scale": 0.3})
    fields = Fields(model, np.random.default_rng(21), **scales)
    ms = task_metrics(model, fields.state)
    for t in range(model.n_tasks):
        mc, se = mc_metrics(fields, t, 2_000_000, seed=22 + t)
        eng = np.array([ms[t].gen_error, ms[t].label_error, ms[t].test_loss])
        qse = np.array([ms[t].gen_error_se, ms[t].label_error_se, 0.0])
        if activation == "linear" or model.K <= 2:  # cones, or the cut rule of K ≤ 2 trunks: exact tiers
            assert ms[t].gen_error_se == 0.0
        else:
            assert ms[t].gen_error_se > 0 and ms[t].label_error_se > 0
        assert_mc(eng, mc, np.sqrt(se ** 2 + qse ** 2), f"task {t} metrics")


@pytest.mark.parametrize("activation", ["linear", "erf"])
def test_metrics_vs_monte_carlo(activation):
    """gen_error, label_error, test_loss of both tasks at a random state with fields of moderate
    width (Q_kk ≈ 2-3), 2e6 samples.  Measured max |z| 2.6 (linear) and 2.7 (erf, which includes
    the engine's randomised-QMC standard error); differences ≤ 1.7e-3.  (Rerun with 8e6 samples
    and two other seeds: |z| ≤ 1.4 (linear), ≤ 2.4 (erf).)"""
    metrics_case(activation, scale_a=0.6, scale_b=0.4, scale_v=1.0)


_WIDE_ERF_REASON = ("test_loss at wide fields: the smooth tier (Gauss–Hermite, "
                   "24-32 nodes/axis) is not accurate for E[logsumexp z]. Linear trunk, logit "
                   "differences of variance 6.4 and 106: engine test_loss 2.2050 (commit 0f01ce2; "
                   "2.1915 at 871b05c with spread-aware node counts) vs MC 2.1737 ± 0.0027 "
                   "(z = 11.7 / 6.6; an independent 200×200 Gauss–Hermite puts E[lse] 0.0287 below "
                   "the 0f01ce2 value). erf trunk, Q_11 = 7.0: engine 1.2082 vs MC 1.1834 ± 0.0010 "
                   "(z = 26); E[lse] engine 2.18372 vs independent 200×200 GH 2.16078. "
                   "gen_error / label_error agree (|z| ≤ 2.4)")


@pytest.mark.parametrize("activation", [
    "linear",  # passes since linear-trunk softmax integrals are split by the student argmax cones
    "erf",     # passes since nonlinear trunks are split into sign orthants of h (was _WIDE_ERF_REASON)
])
def test_metrics_vs_monte_carlo_wide_fields(activation):
    metrics_case(activation, scale_a=0.9, scale_b=0.4, scale_v=1.5)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_metrics_vs_monte_carlo_wide_trunk(activation):
    """K = 4: Rao–Blackwellised randomised-QMC errors, test loss on the fixed-Sobol' tier (tanh)
    or Sobol' inside the 16 sign orthants (relu), against 2e6 Monte-Carlo samples."""
    metrics_case(activation, hidden=4, scale_a=0.6, scale_b=0.4, scale_v=1.0)


def _scipy_gen_error(Q, R, T, abseps=1e-6, seed=0):
    """1 − Σ_c P(z_c > z_j, λ_c > λ_j ∀ j ≠ c) for (z, λ) ~ N(0, [[Q, R], [Rᵀ, T]]), each term a
    2(C−1)-dim orthant by scipy's Genz integrator (which reorders the variables).  At abseps 1e-6
    its results scatter by ≤ 2.6e-6 between seeds (1 s); 1e-7 would cost 9 s."""
    C = len(T)
    cov = np.block([[Q, R], [R.T, T]])
    total = 0.0
    for c in range(C):
        rows = []
        for off in (0, C):
            for j in range(C):
                if j != c:
                    r = np.zeros(2 * C)
                    r[off + c], r[off + j] = 1.0, -1.0
                    rows.append(r)
        rows = np.array(rows)
        S = rows @ cov @ rows.T
        d = np.sqrt(np.diag(S))
        total += normal_cdf(np.zeros(len(S)), S / np.outer(d, d), abseps=abseps, seed=seed)
    return 1.0 - total


def _glm_c3():
    d = {"name": "c3", "tasks": [{"name": "A", "classes": 3, "noise": 0.5}],
         "student": {"kind": "glm"}, "training": {"protocol": "online", "lr": 0.5, "times": [1]}}
    return theory_model(setup_from_dict(d))


def test_glm_c3_gen_error_vs_scipy_moderate_state():
    """C = 3: gen_error = 1 − Σ_c P(4-row cone).  A moderately trained student z = λ + 0.3 ε."""
    model = _glm_c3()
    T = model.gram
    Q, R = T + 0.09 * np.eye(3), T.copy()
    ref = _scipy_gen_error(Q, R, T)
    got = task_metrics(model, State(Q, R, model.heads0))[0].gen_error
    # measured 7e-8 against scipy at abseps 1e-8; the tolerance is the reference's scatter
    assert got == pytest.approx(ref, abs=1e-5)


def test_glm_c3_gen_error_vs_scipy_well_trained_state():
    """A known limitation, pinned (it was a strict xfail): gen_error of a well-trained C = 3 glm
    student (z = 3λ + 0.05ε, gen_error 0.00795) from the Genz product rule on the nearly
    degenerate student × teacher cone (no variable reordering).  Measured: engine 0.0079167 vs
    scipy 0.0079490 (abseps 1e-8, 3 seeds within 2.6e-7), error 3.2e-5 (0.4 % relative); a
    4e6-sample MC gives 0.00799 ± 0.00004.  Fails if the error leaves [measured / 2, 2 × measured]:
    grown, or fixed (then assert the new accuracy here)."""
    model = _glm_c3()
    T = model.gram
    Q, R = 9.0 * T + 0.0025 * np.eye(3), 3.0 * T
    ref = _scipy_gen_error(Q, R, T)
    got = task_metrics(model, State(Q, R, model.heads0))[0].gen_error
    assert 1.6e-5 < abs(got - ref) < 6.4e-5, got - ref


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
@pytest.mark.parametrize("inputs,hidden", [("shared", 2), ("separate", 2), ("shared", 3)])
def test_label_terms_given_h_match_label_cones(activation, inputs, hidden):
    """Nonlinear trunks: the closed forms of P(y|h), E[1{y=c} ℓ|h] and, for two tasks on shared
    inputs, P(y_t = c | h, Δ_u) inside the cones of y_u (C ≤ 3) against the exact label-cone
    integrals they replace.  K = 2: sign orthants with product rules; K = 3: the fixed-Sobol'
    tier (tanh, erf) and Sobol' inside the orthants (relu).  Measured max difference ≤ 1.4e-4 at
    RHS scale ~0.1 (both agree with 4e6-sample Monte Carlo to its noise)."""
    import mtsp.numeric.online as online
    from mtsp.numeric.model import theory_model
    d = {"tasks": [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 2, "noise": 0.2}],
         "teacher": {"alignment": 0.5},
         "student": {"kind": "shared", "hidden": hidden, "activation": activation, "init_scale": 0.3},
         "training": {"protocol": "online", "lr": 0.5, "times": [1], "inputs": inputs}}
    model = theory_model(setup_from_dict(d))
    rng = np.random.default_rng(11)
    from mtsp.numeric.quadrature import gaussian_factor
    F = gaussian_factor(model.gram)
    B = np.hstack([F, np.zeros((model.M, model.K))])
    W = 0.5 * rng.standard_normal((model.K, B.shape[1]))
    st = State(W @ W.T, W @ B.T, tuple(v + 0.3 * rng.standard_normal(v.shape) for v in model.heads0))
    assert online.label_given_h(model, gaussian_factor(model.field_cov(st)), 0) is not None
    fast = online.rhs(model, model.pack(st), online.Accuracy())
    cones = online.rhs(model, model.pack(st), online.Accuracy(fast_labels=False))
    print("max |fast − cones| =", np.abs(fast - cones).max(), "scale", np.abs(cones).max())
    assert np.abs(fast - cones).max() < 5e-4 * max(1.0, np.abs(cones).max() / 0.1)


def test_bivariate_normal_cdf_against_mpmath():
    """Φ₂(a, b; ρ) of the label closed forms (`bivariate.bivariate_cdf` in double: Sheppard's formula,
    Gauss–Legendre nodes following ρ, Owen's T above |ρ| ≈ 0.955) against mpmath at 30 digits, over ρ
    from −0.97 to 0.99; measured ≤ 1.1e-16 (2.9e-14 with the former fixed node tiers)."""
    import mpmath as mp
    from mtsp.numeric.bivariate import bivariate_normal_cdf
    rng = np.random.default_rng(5)
    worst = 0.0
    with mp.workdps(30):
        for rho in (-0.97, -0.9, -0.6, -0.3, -0.2, 0.0, 0.35, 0.55, 0.7, 0.8, 0.85, 0.95, 0.99):
            a, b = rng.uniform(-5, 5, 6), rng.uniform(-5, 5, 6)
            got = bivariate_normal_cdf(a, b, rho)
            r = mp.sqrt(1 - mp.mpf(rho) ** 2)
            for ai, bi, gi in zip(a, b, got):
                ref = mp.quad(lambda x: mp.npdf(x) * mp.ncdf((bi - rho * x) / r), [-mp.inf, 0, ai])
                worst = max(worst, abs(gi - float(ref)))
    print("worst", worst)
    assert worst < 1e-15, worst


@pytest.mark.parametrize("engine", ["ode", "reference"])
@pytest.mark.parametrize("activation", ["linear", "tanh"])
def test_two_processes_give_the_same_numbers(activation, engine):
    """`solve_online(processes=2)` computes half of every right-hand side (the executor passed
    down as ``helper``) and half of the metrics in a forked worker: the numbers must be
    identical to those of one process, for the generated module and the reference engine."""
    from mtsp.derive import GENERATED
    from mtsp.numeric.solve import solve_online
    d = {"tasks": [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 2}],
         "teacher": {"alignment": 0.5},
         "student": {"kind": "shared", "hidden": 2, "activation": activation, "init_scale": 0.3},
         "training": {"protocol": "online", "lr": 0.5, "times": [0.5, 1.5]}}
    s = setup_from_dict(d)
    a, b = (solve_online(s, processes=p, engine=engine, generated=GENERATED) for p in (2, 1))
    assert a.tasks == b.tasks and a.stats["nfev"] == b.stats["nfev"]


def test_minima_at_steps_option_of_the_one_driver():
    """`solve_online(minima="steps")` — the mp solve's way to the minima (metrics at every accepted
    step, steps landing on the reported times) — in double: the same numbers with one process or
    two (the worker takes every other evaluation), the reported values within the ODE tolerance of
    the default scan-and-refine solve (measured ≤ 5.3e-7; rtol 3e-5), each minimum the smallest
    value over its evaluated points, the states at the reported times kept.  ≈ 8 s (2 busy cores)."""
    from mtsp.derive import GENERATED
    from mtsp.errors import RequestError
    from mtsp.numeric.solve import solve_online
    s = setup_from_dict({"tasks": [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 2}],
                         "teacher": {"alignment": 0.5},
                         "student": {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.3},
                         "training": {"protocol": "online", "lr": 0.5, "times": [0.5, 1.5]}})
    one, two = (solve_online(s, processes=p, minima="steps", generated=GENERATED) for p in (1, 2))
    ref = solve_online(s, processes=1, generated=GENERATED)
    assert one.tasks == two.tasks and sorted(one.states) == [0.5, 1.5] and ref.states is None
    for name, task in one.tasks.items():
        for key in ("gen_error", "label_error", "test_loss"):
            assert max(abs(a - b) for a, b in zip(task[key], ref.tasks[name][key])) < 5e-6
        assert task["best_gen_error"] <= min(task["gen_error"]) and task["best_test_loss"] <= min(task["test_loss"])
    with pytest.raises(RequestError, match="minima"):
        solve_online(s, minima="grid", generated=GENERATED)


def test_helper_receives_half_of_every_right_hand_side():
    """The executor passed as ``helper`` is given one part of the integrals (and only that); the
    sum of the parts is the right-hand side computed without it, to the last bit."""
    from concurrent.futures import Future

    from mtsp.derive.codegen import load_module
    from mtsp.numeric import online
    from mtsp.setup import default_setup
    calls = []

    class Here:  # an executor that runs the job in this process and records it
        def submit(self, fn, *args):
            calls.append((fn.__name__, args[-1]))
            f = Future()
            f.set_result(fn(*args))
            return f
    for act in ("linear", "tanh"):
        m = theory_model(default_setup().replace(**{"student.activation": act, "student.hidden": 2}))
        y = m.pack(m.initial_state())
        mod = load_module(m)
        np.testing.assert_array_equal(mod.rhs(m, y, online.Accuracy(), Here()), mod.rhs(m, y, online.Accuracy()))
        np.testing.assert_array_equal(online.rhs(m, y, online.Accuracy(), Here()), online.rhs(m, y, online.Accuracy()))
    assert calls == [("_linear_part", (1, 2))] * 2 + [("_nonlinear_part", (1, 2))] * 2


def test_one_blas_thread_here_and_in_the_forked_worker():
    """While a solve runs, BLAS has one thread in this process and in a worker forked inside
    (the limit is a state of the BLAS library, inherited by the fork); restored afterwards."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from threadpoolctl import threadpool_info

    from mtsp.numeric.solve import one_blas_thread
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    assert before, "no BLAS library found by threadpoolctl"
    with one_blas_thread():
        here = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        with ProcessPoolExecutor(1, mp_context=mp.get_context("fork")) as pool:
            there = pool.submit(_blas_threads).result()
    assert here == there == [1] * len(before)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


def _blas_threads():
    from threadpoolctl import threadpool_info
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_processes_option_is_validated():
    """`processes` is 1 or 2; anything else is refused with the key, before any work."""
    from mtsp.numeric.solve import check_processes, default_processes
    from mtsp.setup import default_setup
    assert check_processes(1) == 1 and check_processes(None) == default_processes() in (1, 2)
    for bad in (0, 3, 2.0, True, "2"):
        with pytest.raises(ValueError, match="^processes: "):
            solve(default_setup(), processes=bad)


def _model_example_at_20(student):
    """MODEL.md's example setup with `student`, solved to t = 20: (model, state, field factor)."""
    from mtsp.numeric.quadrature import gaussian_factor
    d = setup_dict([{"name": "A", "classes": 3, "noise": 1.0}, {"name": "B", "classes": 3}], student,
                   {"lr": 0.5, "head_lr": 0.5, "weight_decay": 0.0, "times": [20.0]},
                   {"norm": 1.0, "alignment": 0.9})
    res = solve(setup_from_dict(d), processes=1)
    model, st = res.model, res.state(20.0)
    return model, st, gaussian_factor(model.field_cov(st))


def _term_differences(fast: dict, ref: dict):
    """(term, key, max |fast − ref|) for every named integral of two term dictionaries."""
    for k, v in fast.items():
        items = v.items() if isinstance(v, dict) else enumerate(v)
        for key, x in items:
            err = float(np.abs(np.asarray(x) - np.asarray(ref[k][key])).max())
            print(k, key, f"{err:.1e}")
            yield k, key, err


def test_linear_trunk_terms_well_trained_wide_logits():
    """Linear trunks late in training (MODEL.md's example setup, K = 4, at t = 20): the clean
    task's labels are nearly determined by the student's logits (residual variance of the label
    cones given them ≈ 2 % of the total) and its logits spread widely (std ≈ 4.4).  The fast
    path — P(y_t | u_s) in closed form, the domain split by the argmax cones of E[ν_t | u_s] and
    of the wide logits, per-axis nodes — against the label cones integrated directly (an
    independent route) and every integral with 33× the points.  Measured max difference 2.3e-7 (the
    pair term E[s_t s_sᵀ], a convergence check: same split, more nodes; its split was also checked
    against splitting both tasks' cones at 1e6 points: 3e-6), label terms ≤ 5e-8; the route
    before this one erred by 1.7e-4 in the label terms here."""
    import mtsp.numeric.online as online
    model, st, factor = _model_example_at_20({"kind": "shared", "hidden": 4, "activation": "linear",
                                              "init_scale": 0.1})
    diffs = [online._diff_rows(model.rows_logits(st, t)) for t in range(2)]
    spread = np.linalg.norm(diffs[1] @ factor, 2)
    steep = online.label_given_h(model, factor, 1, stein=False, cond=diffs[1])
    assert spread > online.SPLIT_SPREAD and steep is None  # the regime this test is about
    fast = online.linear_terms(model, st, factor, online.Accuracy())
    ref = online.linear_terms(model, st, factor, online.Accuracy(budget=200_000, fast_labels=False))
    for k, key, err in _term_differences(fast, ref):
        assert err < (5e-7 if k == "Y" else 2e-6), (k, key, err)


def test_nonlinear_steep_labels_split_by_conditional_mean():
    """A tanh trunk (K = 2) late in training, MODEL.md's example at t = 20: the clean task's
    P(y | h) is steep (residual variance of its label cones given h below 5 % of the total), so
    its label terms are integrated in closed form given h over the argmax cones of E[ν | h] (the
    steep layer on the pieces' faces).  Against the label cones integrated directly with 10× the
    points (an independent route): measured max difference 2.0e-5 at term scale ~0.05–0.2.
    The label–label term Ebb2 (O(η²), 4-dim: fixed Sobol' points, so its error is that of one
    scrambling) at scale 0.025, over the scramblings 0–5 against the same route with 16× the
    points (which scatters by ≤ 5e-6 over its own scramblings): measured 4.6e-5, 4.9e-5, 3.0e-5,
    4.9e-5, 6.3e-5, 4.6e-5; that reference against the label-cone route (2^14 Sobol' points per
    cone): 7.2e-5 (scramblings 1, 2: 4.6e-5, 1.8e-5)."""
    import mtsp.numeric.online as online
    model, st, factor = _model_example_at_20({"kind": "shared", "hidden": 2, "activation": "tanh",
                                              "init_scale": 0.1})
    assert online.label_given_h(model, factor, 1, stein=False) is None  # steep: the regime tested
    assert online.label_given_h(model, factor, 1, min_residual=online.LABEL_MIN_RESIDUAL_SPLIT) is not None
    fast = [online.nonlinear_terms(model, st, factor, online.Accuracy(qmc_seed=seed)) for seed in range(6)]
    many = online._label_label_term(model, st, factor, online.Accuracy(sobol_points=2 ** 18), 0, 1, "tanh")
    ref = online.nonlinear_terms(model, st, factor, online.Accuracy(budget=60000, fast_labels=False))
    for k, key, err in _term_differences(fast[0], ref):
        if k != "Ebb2":
            assert err < 3e-5, (k, key, err)
    errs = [float(np.abs(f["Ebb2"][0, 1] - many).max()) for f in fast]
    print("Ebb2 over scramblings:", errs)
    assert max(errs) < 2e-4, errs
    assert np.abs(ref["Ebb2"][0, 1] - many).max() < 4e-4


def test_rhs_sobol_spread_only_where_the_sobol_tier_is_used():
    """`stats.rhs_sobol_spread` (the fixed-Sobol' tier's error, from a second scrambling): zero
    when every integral used a deterministic rule (tanh K = 2: sign orthants, product rules),
    positive and small where the tier is used (tanh K = 3: Sobol' over h)."""
    def run(K):
        d = setup_dict([{"name": "A", "classes": 3, "noise": 0.5}],
                       {"kind": "shared", "hidden": K, "activation": "tanh", "init_scale": 0.3},
                       {"times": [0.5]})
        return solve(setup_from_dict(d), processes=1).stats["rhs_sobol_spread"]
    assert run(2) == 0.0
    assert 0.0 < run(3) < 1e-2


def test_pair_softmax_term_of_wide_three_class_tasks():
    """E[s_t s_sᵀ] of two three-class tasks on a shared K = 4 trunk with strong teachers (4
    logit dimensions, one task wider than PAIR_SOBOL_SPREAD): fixed Sobol' over the whole space
    (PAIR_SOBOL_DIMS) against randomised QMC with 2^19 × 8 points (SE 1.3e-7).  The fixed points'
    error is that of one scrambling: over the scramblings 0–5, 1.2e-5, 3.2e-5, 2.2e-5, 1.1e-5,
    1.0e-5, 1.9e-5 (the split product-rule pieces it replaced: 5.5e-4)."""
    from mtsp.numeric.online import PAIR_SOBOL_SPREAD, Accuracy, _diff_rows, _softmax_expectation, _softmax_from_diffs
    from mtsp.numeric.quadrature import cone_expectation, gaussian_factor
    from mtsp.api import solve   # derive, then numeric
    su = setup_from_dict({
        "tasks": [{"name": "clean", "classes": 3}, {"name": "noisy", "classes": 3, "noise": 1.0}],
        "teacher": {"alignment": 0.9, "norm": 4.0},
        "student": {"kind": "shared", "hidden": 4, "activation": "linear", "init_scale": 0.1},
        "training": {"protocol": "online", "lr": 1.0, "times": [10.0]}})
    m = theory_model(su)
    st = m.unpack(solve(su, processes=1).trajectory(10.0))
    F = gaussian_factor(m.field_cov(st))
    P = np.vstack([_diff_rows(m.rows_logits(st, 0)), _diff_rows(m.rows_logits(st, 1))])
    assert max(np.linalg.norm(_diff_rows(m.rows_logits(st, t)) @ F, 2) for t in (0, 1)) > PAIR_SOBOL_SPREAD

    def fn2(u):
        a, b = _softmax_from_diffs(u[:, :2]), _softmax_from_diffs(u[:, 2:])
        return (a[:, :, None] * b[:, None, :]).reshape(len(u), -1), None
    ref = cone_expectation(F, None, P, fn2, rule="rqmc", n_qmc=2 ** 19, replicates=8)
    for seed in range(6):
        got = _softmax_expectation(m, st, F, None, [0, 1], P, fn2, None, Accuracy(qmc_seed=seed)).plain
        err = np.abs(got - ref.plain).max()
        print("pair term error", err, "reference SE", ref.plain_se.max())
        assert err < 5e-5 + 4 * ref.plain_se.max()


def test_linear_softmax_terms_across_the_split_spread():
    """E[s_B s_Bᵀ] and E[lse z_B] of a linear K = 2 trunk (examples/model_example.toml at t = 13.3,
    where `mtsp check` found the clean task's B11 2e-5 off: its logits spread 2.88, just below the
    old SPLIT_SPREAD = 3, and the smooth Gauss–Hermite rule missed), task B's head scaled to
    spreads 1.7–3.5, against an independent reference: the trapezoid rule over h on a 400² grid
    (exponentially convergent; 300², 600² and 1200² agree to 4e-13).  Measured (benchmarks/results/
    split_spread.txt): smooth at spread 1.73 3.2e-8, split at 2.30 / 2.88 / 3.46 ≤ 3.9e-10; the
    old routes at 2.30 / 2.88: 1.7e-6 / 2.1e-5."""
    from mtsp.numeric.online import Accuracy, linear_terms
    from mtsp.numeric.quadrature import gaussian_factor
    from mtsp.setup import load_setup
    import pathlib
    res = solve(load_setup(pathlib.Path(__file__).parents[1] / "examples" / "model_example.toml"), processes=1)
    model, st0 = res.model, res.state(40 / 3)
    x = np.linspace(-13.0, 13.0, 400)
    w = np.exp(-x ** 2 / 2)
    W = np.outer(w, w).ravel() / w.sum() ** 2
    X = np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    for k in (0.6, 0.8, 1.0, 1.2):
        V = [np.asarray(v, float) for v in st0.V]
        V[1] = V[1] * k
        st = State(st0.Q, st0.R, tuple(V))
        z = (X @ np.linalg.cholesky(np.asarray(st.Q, float)).T) @ V[1].T
        s = softmax(z, axis=1)
        B_ref, lse_ref = np.einsum("p,pi,pj->ij", W, s, s), W @ logsumexp(z, axis=1)
        got = linear_terms(model, st, gaussian_factor(model.field_cov(st)), Accuracy())
        errs = (np.abs(got["B"][1, 1] - B_ref).max() / np.abs(B_ref).max(), abs(got["Lse"][1] - lse_ref) / lse_ref)
        print(f"scale {k}: E[ssᵀ] {errs[0]:.1e}, E[lse] {errs[1]:.1e}")
        assert max(errs) < 3e-7, (k, errs)


@pytest.mark.parametrize("K", [1, 2])
def test_nonlinear_errors_of_a_silent_trunk(K):
    """σ₀ = 0: h ≡ 0 at t = 0, every logit is 0 and the student predicts class 0 (ties → first
    index), so gen_error = 1 − P(argmax λ = 0) — the cut rule must not split a point mass."""
    from mtsp.numeric.quadrature import cone_expectation, gaussian_factor
    from mtsp.numeric.model import argmax_cone
    su = setup_from_dict({"tasks": [{"name": "A", "classes": 3, "noise": 0.5}],
                          "student": {"kind": "shared", "hidden": K, "activation": "tanh", "init_scale": 0.0},
                          "training": {"protocol": "online", "lr": 0.5, "times": [1.0]}})
    m = theory_model(su)
    st = m.initial_state()
    got = task_metrics(m, st)[0].gen_error
    F = gaussian_factor(m.field_cov(st))
    p0 = cone_expectation(F, argmax_cone(m.rows_lambda(0), 0), np.zeros((0, m.n_fields)), None).plain[0]
    assert abs(got - (1 - p0)) < 1e-9


def test_cut_rule_on_random_states():
    """The K ≤ 2 cut rule at its default nodes (the innermost coordinate exact, `slab_cone`) against
    the route with nodes on that coordinate at 160 nodes (`independent_checks.agreement_by_inner_nodes`,
    teacher lines cut there) and against randomised
    QMC (4 SE), on random states of random two-class / three-class trunks with teachers of norm
    1 and 3 (strong teachers make P(y | h) steep along lines the rule must cut).  Measured on these
    12 states: ≤ 1.4e-9 (trial 9, relu K = 2; the others ≤ 3e-13), QMC |z| ≤ 1.7; over 240 states:
    ≤ 1.3e-8 (K = 2, 40 nodes), ≤ 1e-13 (K = 1, 64).  Bound 2e-8 (was 1e-7)."""
    from mtsp.numeric.independent_checks import agreement_by_inner_nodes
    from mtsp.numeric.online import Accuracy
    from mtsp.numeric.quadrature import gaussian_factor
    rng = np.random.default_rng(2)
    worst = 0.0
    for trial in range(12):
        act = ["relu", "tanh", "erf"][trial % 3]
        K = 1 + trial % 2
        C = 2 + (trial // 2) % 2
        su = setup_from_dict({"tasks": [{"name": "A", "classes": C, "noise": [0.0, 0.3][trial % 2]}],
                              "teacher": {"norm": [1.0, 3.0][(trial // 3) % 2]},
                              "student": {"kind": "shared", "hidden": K, "activation": act, "init_scale": 0.5},
                              "training": {"protocol": "online", "lr": 0.5, "times": [1.0]}})
        m = theory_model(su)
        Lt = np.linalg.cholesky(m.gram + 1e-12 * np.eye(m.M))
        A = rng.normal(size=(K, m.M)) * rng.uniform(0.3, 1.5)
        B = rng.normal(size=(K, K)) * rng.uniform(0.05, 1.0)
        st = State(A @ A.T + B @ B.T, A @ Lt.T, (rng.normal(size=(C, K)) * rng.uniform(0.3, 3),))
        F = gaussian_factor(m.field_cov(st))
        got = task_metrics(m, st, Accuracy(), loss=False)[0]
        ref = 1 - agreement_by_inner_nodes(m, st, F, 0, 160)
        qmc = task_metrics(m, st, Accuracy(cut_errors=False, qmc_points=2 ** 15), loss=False)[0]
        worst = max(worst, abs(got.gen_error - ref))
        assert abs(got.gen_error - ref) < 2e-8, (trial, got.gen_error, ref)
        assert abs(qmc.gen_error - ref) < 4 * qmc.gen_error_se + 1e-9, (trial, qmc.gen_error, ref)
    print("worst", worst)


CUT3 = (24, 32, 24)   # the K = 3 cut rule's nodes in these tests (`Accuracy.cut_nodes3`)


def _random_k3_case(rng, act, C, norm, noise, V=None):
    su = setup_from_dict({"tasks": [{"name": "A", "classes": C, "noise": noise}], "teacher": {"norm": norm},
                          "student": {"kind": "shared", "hidden": 3, "activation": act, "init_scale": 0.5},
                          "training": {"protocol": "online", "lr": 0.5, "times": [1.0]}})
    m = theory_model(su)
    Lt = np.linalg.cholesky(m.gram + 1e-12 * np.eye(m.M))
    A = rng.normal(size=(3, m.M)) * rng.uniform(0.3, 1.5)
    B = rng.normal(size=(3, 3)) * rng.uniform(0.05, 1.0)
    V = rng.normal(size=(C, 3)) * rng.uniform(0.3, 3) if V is None else V
    return m, State(A @ A.T + B @ B.T, A @ Lt.T, (V,))


@pytest.mark.parametrize("act,C,norm,seed,bound", [("tanh", 3, 3.0, 5, 2e-7), ("erf", 3, 1.0, 1, 1e-9)])
def test_k3_cut_rule_on_random_states(act, C, norm, seed, bound):
    """The K = 3 cut rule (`tie_cuts`) at (24, 32, 24) nodes against itself at (40, 48, 32) and
    against the randomised QMC tier (4 SE) on a random state each (noiseless teachers, C = 3):
    tanh with a teacher of norm 3 — steep planes, the worst case: η₃ converges last — and erf.
    Measured |difference| of gen_error and label_error: tanh 1.0e-7, erf 1.4e-10 (QMC |z| 1.5,
    1.1); cost (2 loaded cores) tanh 3 + 7 s, erf 3.5 + 9 s.  Over 30 random states see
    benchmarks/k3_cut_rule.py.  (The erf state was drawn from default_rng(5) after two others
    until 2026-12; that state took 13 + 43 s for a difference of 3.6e-9.)"""
    from mtsp.numeric.online import Accuracy
    m, st = _random_k3_case(np.random.default_rng(seed), act, C, norm, 0.0)
    got = task_metrics(m, st, Accuracy(cut_nodes3=CUT3), loss=False)[0]
    ref = task_metrics(m, st, Accuracy(cut_nodes3=(40, 48, 32)), loss=False)[0]
    qmc = task_metrics(m, st, Accuracy(cut_nodes3=()), loss=False)[0]
    assert got.gen_error_se == 0.0 and qmc.gen_error_se > 0
    d = max(abs(got.gen_error - ref.gen_error), abs(got.label_error - ref.label_error))
    print(act, got.gen_error, d, (qmc.gen_error - ref.gen_error) / qmc.gen_error_se)
    assert d < bound, (got, ref)
    assert abs(qmc.gen_error - ref.gen_error) < 4 * qmc.gen_error_se, (qmc, ref)
    assert abs(qmc.label_error - ref.label_error) < 4 * qmc.label_error_se, (qmc, ref)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_k3_cut_rule_with_a_silent_unit_is_the_k2_rule(act):
    """Heads that ignore the third hidden unit (V[:, 2] = 0): the student's decision depends on
    (h₁, h₂) alone, so the K = 3 cut rule (which still integrates h₃, the teacher's planes
    included) must give the K = 2 rule's errors on the first two units — an independent rule
    (`metrics.cut_rule_hits`, K = 2).  Measured: ≤ 2e-11."""
    rng = np.random.default_rng(9)
    V = rng.normal(size=(3, 3)) * 1.5
    V[:, 2] = 0.0
    m3, st3 = _random_k3_case(rng, act, 3, 3.0, 0.3, V=V)
    su2 = setup_from_dict({"tasks": [{"name": "A", "classes": 3, "noise": 0.3}], "teacher": {"norm": 3.0},
                           "student": {"kind": "shared", "hidden": 2, "activation": act, "init_scale": 0.5},
                           "training": {"protocol": "online", "lr": 0.5, "times": [1.0]}})
    m2 = theory_model(su2)
    st2 = State(st3.Q[:2, :2], st3.R[:2], (V[:, :2],))
    from mtsp.numeric.online import Accuracy
    a = task_metrics(m3, st3, Accuracy(cut_nodes3=CUT3), loss=False)[0]
    b = task_metrics(m2, st2, loss=False)[0]
    print(a, b)
    assert a.gen_error_se == 0.0 and b.gen_error_se == 0.0
    assert abs(a.gen_error - b.gen_error) < 1e-9 and abs(a.label_error - b.label_error) < 1e-9


@pytest.mark.parametrize("activation,K", [("relu", 2), ("tanh", 2), ("erf", 1), ("tanh", 3)])
def test_label_label_joint_route_matches_label_cones(activation, K):
    """Two two-class tasks on shared inputs: the label–label term by P(y_t, y_u | h) in closed form
    (one integral over h) against the label-cone route (P(y_t | h, Δ_u) inside the cones of y_u)
    at `--accuracy high`, and against Monte Carlo.  relu matters here: its g′ is not even in h, so
    a class-orientation error of the joint cone would show (it did, while being written).
    Measured: K = 1, 2 within 5.1e-12 of the cone route at high accuracy (the default cone route
    is 2.8e-8 off for tanh K = 2, the joint route at default accuracy 2e-12 from mp).  K = 3: the
    joint route integrates over h on fixed Sobol' points, so its error is that of one scrambling:
    over the scramblings 0–5, 1.4e-5, 1.9e-5, 1.9e-5, 9.6e-6, 1.8e-5, 1.3e-5 at scale 0.12, and
    their mean 2.9e-6 from the cone route."""
    import mtsp.numeric.online as online
    from mtsp.numeric.model import theory_model
    from mtsp.numeric.quadrature import gaussian_factor
    from mtsp.numeric.solve import HIGH_ACCURACY
    setup = setup_from_dict({"tasks": [{"name": "A", "classes": 2, "noise": 0.5}, {"name": "B", "classes": 2}],
                             "teacher": {"alignment": 0.6},
                             "student": {"kind": "shared", "hidden": K, "activation": activation, "init_scale": 0.3},
                             "training": {"protocol": "online", "lr": 0.5, "times": [1.0], "inputs": "shared"}})
    model = theory_model(setup)
    rng = np.random.default_rng(K)
    st = model.initial_state()
    st = State(st.Q + 0.5 * np.eye(K), st.R + 0.2 * rng.normal(size=st.R.shape),
               [v + 0.5 * rng.normal(size=v.shape) for v in st.V])
    factor = gaussian_factor(model.field_cov(st))
    seeds = range(6) if K == 3 else (0,)      # K = 3: the scramblings of its fixed Sobol' points
    joints = [online._label_label_joint2(model, st, factor, online.Accuracy(qmc_seed=seed), 0, 1,
                                         online.activation(activation)) for seed in seeds]
    assert all(j is not None for j in joints)
    joint = joints[0]
    cones = online._label_label_term(model, st, factor, dataclasses.replace(HIGH_ACCURACY, joint_labels=False),
                                     0, 1, activation)
    tol = 1e-10 if K <= 2 else 1e-4
    for j in joints:
        np.testing.assert_allclose(j, cones, atol=tol, rtol=0)
    if K == 3:
        np.testing.assert_allclose(np.mean(joints, axis=0), cones, atol=1.5e-5, rtol=0)
    # Monte Carlo of the definition
    from mtsp.numeric.activations import activation as act_fn
    f = rng.normal(size=(400000, factor.shape[1])) @ factor.T
    h = f @ model.rows_h().T
    yt, yu = np.argmax(f @ model.rows_nu(0).T, 1), np.argmax(f @ model.rows_nu(1).T, 1)
    _, dg = act_fn(activation)(h)
    prod = (dg * st.V[0][yt])[:, :, None] * (dg * st.V[1][yu])[:, None, :]
    mc, se = prod.mean(0), prod.std(0) / np.sqrt(len(h))
    assert np.all(np.abs(joint - mc) < 5 * se + 1e-12)

"""The online right-hand side of nonlinear trunks (relu, erf, tanh) at arbitrary precision.

The same named integrals as `online.nonlinear_terms` (Eal, Ebl, Esg, Eyg, Ebb, Lse, Eyz per task;
Eaa, Eab, Ebb2 per pair of tasks), by the same reduction: integrals over the trunk fields h,
split into the 2^K sign orthants of h (Genz coordinates, tanh–sinh nodes, mp), with the labels
in closed form given h — the event y_t = c is the cone u_c = (ν_tc − ν_tj)_{j≠c} > 0 and
u_c | h ~ N(A_c h, S_c): P(y_t = c | h) = Φ(μ/s) (C_t = 2) or Φ₂ (C_t = 3, `bivariate_ncdf`),
and by Stein's lemma E[1{y_t = c} λ | h] = E[λ | h] P + Cov(λ, u_c | h) v with
v_j = φ(μ_j/s_j)/s_j · P(u_{−j} > 0 | u_j = 0, h) — and, for two tasks on shared inputs,
P(y_a = c | h, Δ_b) inside the cones of y_b.  Everything (the Gaussian conditioning included)
is done in mp arithmetic from the mp field covariance.  The integrand of every named integral is
the derivation's (`derive.integrands`, printed for mpmath into the structure's mp module:
`_h_integrand_mp`, `LABEL_LABEL_MP`) and the pointwise formulas (g, g′, Φ, Φ₂, Stein vectors) are
`mp_pointwise`'s, printed from the same SymPy as the double path's; what this module adds is the
route: orthants, label cones, conditioning.

The label–label term of two tasks on shared inputs takes a route of its own (independent of the
double path's): when the joint label cone is small, C_a + C_b − 2 ≤ 3, one integral over h
(K dims) of Σ_{c,d} P(y_a = c, y_b = d | h) b_ac b_bdᵀ with the joint probabilities given h
in closed form (Φ, Φ₂, or for a 3-dim joint cone one smooth 1-d integral of Φ₂:
`_orthant_given`, 1e-12 at 48 nodes, 1e-9 at 32); otherwise P(y_a = c | h, Δ_b) inside the
cones of y_b (K + C_b − 1 dims).  Measured (tanh, t = 1): K = 2, C = (2, 2): the joint route at
40 and 64 nodes and the double path's `--accuracy high` agree within 3e-12, the default double
tier is 4.2e-7 relative off; K = 2, C = (2, 3): the joint route agrees with itself to 8 digits
between 24 and 32 nodes (180 / 330 s for this term), the double path is 5.4e-6 absolute off by
default and 1.1e-6 at `--accuracy high`, where the 4-dim route at 12 nodes erred by ~5e-5.

Scope: C_t ≤ 3, K ≤ 3, and for two tasks on shared inputs the joint route (C_a + C_b − 2 ≤ 2,
or 3 with K ≤ 2) or K + C_b − 1 ≤ 4 (the mp kernel integrates at most 4 dimensions).  This is
what `mtsp check` uses to certify the double kernel's tiers for nonlinear trunks: the product
rule inside sign orthants (K ≤ 2) and the fixed-Sobol' tier (tanh / erf with K = 3).  The
errors of nonlinear trunks (the student's argmax region is not a cone in h) are in `mp_errors`
(K ≤ 3), so `solve --precision mp` covers nonlinear trunks with K ≤ 3 (K = 3 is slow: a
right-hand side takes tens of seconds per task at 16 nodes, each error up to minutes; two tanh
tasks to t = 0.2: 16 min).
"""
from __future__ import annotations

import itertools

import mpmath
import numpy as np

from .model import TheoryModel
from .mp_pointwise import ACTIVATION_PAIRS, cone1_probability, cone1_stein, cone2_probability, cone2_stein
from .mp_quadrature import _truncated_normal, cone_expectation_mp, tanh_sinh01_mp

__all__ = ["nonlinear_terms_mp", "check_nonlinear_mp"]



def check_nonlinear_mp(model: TheoryModel) -> None:
    if max(model.classes) > 3:
        raise NotImplementedError("the mp back-end of nonlinear trunks covers C_t ≤ 3 (labels in closed "
                                  "form given h); got classes " + str(list(model.classes)))
    if model.K > 3:
        raise NotImplementedError(f"the mp back-end of nonlinear trunks covers K ≤ 3 (got K = {model.K})")
    if model.inputs == "shared" and model.n_tasks > 1:
        for t in range(model.n_tasks):
            for u in range(t + 1, model.n_tasks):
                Ct, Cu = model.classes[t], model.classes[u]
                if not _joint_route(model.K, Ct, Cu) and model.K + max(Ct, Cu) - 1 > 4:
                    raise NotImplementedError(
                        f"the mp back-end integrates at most 4 dimensions: the label–label term of two "
                        f"tasks on shared inputs with C = ({Ct}, {Cu}) needs K + C − 1 = "
                        f"{model.K + max(Ct, Cu) - 1} here (K = {model.K}; the joint route takes "
                        f"C_t + C_u − 2 ≤ 2, or 3 with K ≤ 2)")


def _g(name: str, x):
    """(g(x), g′(x)) in mp (`mp_pointwise`, printed from the same SymPy formulas as the double)."""
    if name not in ACTIVATION_PAIRS or name == "linear":
        raise ValueError(f"student.activation: {name!r} is not a nonlinear trunk")
    return ACTIVATION_PAIRS[name](x)


def _softmax(z):
    m = max(z)
    e = [mpmath.exp(x - m) for x in z]
    s = mpmath.fsum(e)
    return [x / s for x in e], m + mpmath.log(s)


def _vec(rows_np):
    return [[mpmath.mpf(float(x)) for x in r] for r in np.atleast_2d(rows_np)]


def _cov(C, a, b):
    """a C bᵀ for field rows a, b (lists of mpf)."""
    n = len(C)
    return mpmath.fsum(a[i] * C[i][j] * b[j] for i in range(n) for j in range(n) if a[i] and b[j])


class _Conditional:
    """Gaussian conditioning in mp: X | x ~ N(A x, S) for field rows X given field rows x."""

    def __init__(self, C, X, x):
        Sxx = mpmath.matrix([[_cov(C, a, b) for b in x] for a in x])
        SXx = mpmath.matrix([[_cov(C, a, b) for b in x] for a in X])
        SXX = mpmath.matrix([[_cov(C, a, b) for b in X] for a in X])
        inv = mpmath.inverse(Sxx)
        self.A = SXx * inv
        self.S = SXX - SXx * inv * SXx.T
        self.SXx, self.inv = SXx, inv


def _labels_given(C, rows_nu, rows_lam, cond):
    """Per class c of a task with C_t ≤ 3 classes: the event y = c is the cone u_c > 0,
    u_c = (ν_c − ν_j)_{j≠c}, Gaussian given the conditioning fields x: u_c | x ~ N(A_c x, S_c).
    Returns (A_c, S_c, Cλu_c) with Cλu_c = Cov(λ, u_c | x) (None without λ rows)."""
    Ct = len(rows_nu)
    out = []
    for c in range(Ct):
        u = [[p - q for p, q in zip(rows_nu[c], rows_nu[j])] for j in range(Ct) if j != c]
        cu = _Conditional(C, u, cond)
        clu = None
        if rows_lam is not None:
            cl = _Conditional(C, rows_lam + u, cond)
            m = len(rows_lam)
            clu = [[cl.S[i, m + j] for j in range(len(u))] for i in range(m)]
        out.append(([[cu.A[i, j] for j in range(len(cond))] for i in range(len(u))], cu.S, clu))
    return out


def _cone_given(A, S, x, stein: bool):
    """P(u > 0 | x) for u | x ~ N(A x, S) of dimension 1 or 2 (Φ, or Φ₂ in mp), and with
    `stein` the vector v with E[1{u > 0} (u − μ) | x] = S v: v_j = φ(μ_j/s_j)/s_j ·
    P(u_{−j} > 0 | u_j = 0, x) — `mp_pointwise.cone*`, the double path's formulas printed for mp."""
    mu = [mpmath.fsum(a * y for a, y in zip(row, x)) for row in A]
    if len(mu) == 1:
        return cone1_probability(mu[0], S[0, 0]), ([cone1_stein(mu[0], S[0, 0])] if stein else None)
    args = (mu[0], mu[1], S[0, 0], S[0, 1], S[1, 1])
    return cone2_probability(*args), (list(cone2_stein(*args)) if stein else None)


JOINT_MAX_DIM = 3   # label–label term by the joint label probabilities given h up to this cone dimension
JOINT_NODES = 48    # tanh–sinh nodes of the 1-d integral of a 3-dim joint cone
JOINT_OUTER_NODES = {1: 64, 2: 24}   # default nodes over h with a 3-dim joint cone (K = 2: 24 and 32
#                                     nodes agree to 8 digits, tanh C = (2, 3) at t = 1)


def _joint_route(K: int, Ca: int, Cb: int) -> bool:
    """Whether the label–label term of tasks with Ca, Cb classes takes the joint route: a joint cone
    of C_a + C_b − 2 ≤ 2 dims (Φ, Φ₂), or 3 dims (a 1-d integral per node) on a trunk of K ≤ 2
    (with K = 3 that is ~10⁷ mp Φ₂ evaluations: hours)."""
    D = Ca + Cb - 2
    return D <= min(JOINT_MAX_DIM, 2) or (D <= JOINT_MAX_DIM and K <= 2)


def _orthant_given(A, S, x, nodes: int = JOINT_NODES):
    """P(u > 0 | x) for u | x ~ N(A x, S) of dimension 1–3: Φ, Φ₂ (`_cone_given`), and for three
    dimensions one smooth integral — u₀ = μ₀ + s₀z, z > −μ₀/s₀ a truncated normal (tanh–sinh
    nodes in its quantile), times Φ₂ of (u₁, u₂) | u₀, whose conditional covariance is fixed:

        P = ∫_{−μ₀/s₀}^∞ φ(z) Φ₂(m₁(z)/σ₁, m₂(z)/σ₂; ρ₁₂|₀) dz,  m_i(z) = μ_i + S_i0 z/s₀."""
    if len(A) <= 2:
        return _cone_given(A, S, x, False)[0]
    mu = [mpmath.fsum(a * y for a, y in zip(row, x)) for row in A]
    s0 = mpmath.sqrt(S[0, 0])
    c11 = S[1, 1] - S[1, 0] ** 2 / S[0, 0]
    c12 = S[1, 2] - S[1, 0] * S[2, 0] / S[0, 0]
    c22 = S[2, 2] - S[2, 0] ** 2 / S[0, 0]
    u, uc, w = tanh_sinh01_mp(nodes)
    lo = -mu[0] / s0
    tot = mpmath.mpf(0)
    for k in range(nodes):
        z, mass = _truncated_normal(lo, mpmath.inf, u[k], uc[k])
        if mass > 0:
            m1 = mu[1] + S[1, 0] / s0 * z
            m2 = mu[2] + S[2, 0] / s0 * z
            tot += w[k] * mass * cone2_probability(m1, m2, c11, c12, c22)
    return tot


def _label_label_joint(C, F, H, nu_a, nu_b, V, act, integrands, a_, b_, orthant, signs, nodes):
    """Ebb2_ab = E_h[Σ_{c,d} P(y_a = c, y_b = d | h) b_ac b_bdᵀ] — one integral over h (sign
    orthants) with the joint label probabilities given h in closed form (a joint cone of
    dimension C_a + C_b − 2 ≤ 3: Φ, Φ₂, or one smooth 1-d integral, `_orthant_given`), the
    last class of a by P(y_b = d | h) − Σ_{c < C_a−1} P(c, d | h).  The integrand is the
    derivation's (`LABEL_LABEL_MP[a, b, d]` is linear in q_c = P(y_a = c, y_b = d | h)).  An
    independent route from the double path's (P(y_a | h, Δ_b) inside the cones of y_b), and
    lower-dimensional: K dims instead of K + C_b − 1."""
    K = len(H)
    Ca, Cb = len(nu_a), len(nu_b)

    def diffs(rows, c):
        return [[p - q for p, q in zip(rows[c], rows[j])] for j in range(len(rows)) if j != c]
    joint = {}
    for c in range(Ca - 1):
        for d in range(Cb):
            cj = _Conditional(C, diffs(nu_a, c) + diffs(nu_b, d), H)
            joint[c, d] = ([[cj.A[i, j] for j in range(K)] for i in range(cj.A.rows)], cj.S)
    marg_b = _labels_given(C, nu_b, None, H)

    def fn(h):
        dg = [_g(act, y)[1] for y in h]
        pb = []
        for d, (A, S, _) in enumerate(marg_b):
            pb.append(1 - mpmath.fsum(pb) if d == Cb - 1 else _cone_given(A, S, h, False)[0])
        out = None
        for d in range(Cb):
            q = [_orthant_given(*joint[c, d], h) for c in range(Ca - 1)]
            q.append(pb[d] - mpmath.fsum(q))
            vals = integrands[a_, b_, d](V, dg, q)[0]
            out = vals if out is None else [x + y for x, y in zip(out, vals)]
        return out, None
    if nodes is None and Ca + Cb - 2 == 3:       # each node costs (C_a − 1) C_b 1-d integrals
        nodes = JOINT_OUTER_NODES
    acc = mpmath.matrix(K, K)
    for sg in signs:
        r = cone_expectation_mp(F, orthant(sg), H, fn, nodes=nodes)
        acc += mpmath.matrix([[r.plain[i * K + j] for j in range(K)] for i in range(K)])
    return acc


def nonlinear_terms_mp(model: TheoryModel, st, F, C, nodes=None) -> dict:
    """`online.nonlinear_terms` in mp, as the derivation's named integrals (mpmath matrices / mpf).
    ``F``: mp factor of the field covariance ``C`` (nested lists)."""
    from mtsp.derive.codegen import load_mp_module
    from mtsp.derive.integrands import label_label_tasks
    check_nonlinear_mp(model)
    mod = load_mp_module(model)
    T, K, M = model.n_tasks, model.K, model.M
    V = st.V
    act = model.activation
    H = _vec(model.rows_h())
    lam_all = _vec(model.rows_lambda())
    ell = _vec(np.vstack([model.rows_h(), model.rows_lambda()]))
    pairs = [(t, s) for t in range(T) for s in range(T)] if model.inputs == "shared" else \
        [(t, t) for t in range(T)]
    cond_h = _Conditional(C, lam_all, H)
    labs = [_labels_given(C, _vec(model.rows_nu(t)), lam_all, H) for t in range(T)]
    signs = list(itertools.product((1, -1), repeat=K))

    def orthant(sg, extra=None):
        rows = [[s * x for x in H[k]] for k, s in enumerate(sg)]
        ns = [s < 0 for s in sg]
        if extra is not None:
            rows, ns = extra[0] + rows, list(extra[1]) + ns
        return rows, ns

    lam_A = [[cond_h.A[i, k] for k in range(K)] for i in range(M)]
    Cl = [[clu for (_, _, clu) in labs[t]] for t in range(T)]

    def fn0(h):
        """The derivation's integrands (`derive.integrands`, printed for mp) at the node h."""
        gd = [_g(act, x) for x in h]
        p, v = [], []
        for t in range(T):
            pt, vt = [], []
            for c, (A, S, _) in enumerate(labs[t]):
                pc, vc = _cone_given(A, S, h, stein=True)
                pt.append(1 - mpmath.fsum(pt) if c == len(labs[t]) - 1 else pc)  # the classes partition
                vt.append(vc)
            p.append(pt)
            v.append(vt)
        return mod._h_integrand_mp(V, h, [x for x, _ in gd], [y for _, y in gd], p, v, lam_A, Cl)

    plain, linear = None, None
    for sg in signs:
        r = cone_expectation_mp(F, orthant(sg), H, fn0, ell, nodes=nodes)
        plain = r.plain if plain is None else [x + y for x, y in zip(plain, r.plain)]
        linear = r.linear if linear is None else [[x + y for x, y in zip(p, q)] for p, q in zip(linear, r.linear)]
    out = {}
    pos = 0
    for name, rows, cols in mod.H_LAYOUT:
        vals = plain[pos:pos + rows * cols]
        pos += rows * cols
        out[name] = vals[0] if name.startswith(("Lse", "Eyz")) else \
            mpmath.matrix([[vals[i * cols + j] for j in range(cols)] for i in range(rows)])
    pos = 0
    for name, rows in mod.H_LINEAR_LAYOUT:
        out[name] = mpmath.matrix(linear[pos:pos + rows])
        pos += rows

    def mat(vals, r, c):
        return mpmath.matrix([[vals[i * c + j] for j in range(c)] for i in range(r)])
    # label–label terms: P(y_a = c | h, Δ_b) in closed form inside the cones of y_b, with a the
    # task of fewer classes (Φ rather than Φ₂ at every node)
    for t, u in pairs:
        if t < u:
            a_, b_ = label_label_tasks(model.classes, t, u)
            nu_a, nu_b = _vec(model.rows_nu(a_)), _vec(model.rows_nu(b_))
            Cb = len(nu_b)
            if _joint_route(K, len(nu_a), Cb):
                acc = _label_label_joint(C, F, H, nu_a, nu_b, V, act, mod.LABEL_LABEL_MP, a_, b_, orthant, signs,
                                         nodes)
                if a_ != t:
                    acc = acc.T
                out[f"Ebb2{t}{u}"] = acc
                out[f"Ebb2{u}{t}"] = acc.T
                continue
            db = [[p - q for p, q in zip(nu_b[j], nu_b[0])] for j in range(1, Cb)]
            cond = H + db
            la = _labels_given(C, nu_a, None, cond)
            acc = mpmath.matrix(K, K)
            for d in range(Cb):
                cone_b = ([[p - q for p, q in zip(nu_b[d], nu_b[j])] for j in range(Cb) if j != d],
                          [j > d for j in range(Cb) if j != d])  # ties to the first index
                integrand = mod.LABEL_LABEL_MP[a_, b_, d]

                def fn(x, integrand=integrand):
                    dg = [_g(act, y)[1] for y in x[:K]]
                    q = []
                    for c, (A, S, _) in enumerate(la):
                        q.append(1 - mpmath.fsum(q) if c == len(la) - 1 else _cone_given(A, S, x, False)[0])
                    return integrand(V, dg, q)[0], None
                for sg in signs:
                    r = cone_expectation_mp(F, orthant(sg, cone_b), cond, fn, nodes=nodes)
                    acc += mat(r.plain, K, K)
            if a_ != t:
                acc = acc.T
            out[f"Ebb2{t}{u}"] = acc
            out[f"Ebb2{u}{t}"] = acc.T
    return out

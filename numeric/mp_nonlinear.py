"""The online right-hand side of nonlinear trunks (relu, erf, tanh) at arbitrary precision.

The same named integrals as `online.nonlinear_terms` (Eal, Ebl, Esg, Eyg, Ebb, Lse, Eyz per task;
Eaa, Eab, Ebb2 per pair of tasks), by the same reduction: integrals over the trunk fields h —
for relu split into the 2^K sign orthants of h at its kink (Genz coordinates, tanh–sinh nodes,
mp), for the analytic tanh and erf one Gauss–Hermite product rule over all of h while the spread
of h is small (measured, two tanh tasks with K = 3 at t ≤ 0.5: every term within 2.1e-8 of the
double at `--accuracy high` at 24 nodes in 14 s, where the orthant split at 16 nodes was 6.2e-5 off
in 39 s) and the orthant split too once that rule's model error exceeds SPLIT_TOL (`_take_split`:
at Q ≈ 6 the one rule was 7–27 % off) — with
the labels in closed form given h — the event y_t = c is the cone u_c = (ν_tc − ν_tj)_{j≠c} > 0 and
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
double path's P(y_a | h, Δ_b) inside the cones of y_b): its (k, l) entry depends on h only
through (h_k, h_l), so it is an integral over those two fields (one on the diagonal) of the
joint label probabilities P(y_a = c, y_b = d | h_k, h_l) — Φ₂ for two two-class tasks, and for
a joint cone of 3 or 4 dims Plackett's identity along the cross-task covariance, one smooth
1-d integral of Φ or Φ₂ (`_JointOrthant`; graded Gauss–Legendre pieces toward the covariance's
singularity, `_plackett_rule`).  So every K ≤ 3 and C ≤ 3 integrates at most 2 dimensions here.

Scope: C_t ≤ 3, K ≤ 3.  This is what `mtsp check` uses to certify the double kernel's tiers for
nonlinear trunks: the product rule inside sign orthants (K ≤ 2) and the fixed-Sobol' tier
(tanh / erf with K = 3).  The errors of nonlinear trunks (the student's argmax region is not a
cone in h) are in `mp_errors` (K ≤ 3), so `solve --precision mp` covers nonlinear trunks with
K ≤ 3 (seconds per task and evaluation).
"""
from __future__ import annotations

import itertools

import mpmath
import numpy as np

from mtsp.errors import ReachError, RequestError

from .cone import MP, condition, label_cones
from .model import TheoryModel
from .mp_pointwise import ACTIVATION_PAIRS, cone1_probability, cone1_stein, cone2_probability, cone2_stein
from .mp_quadrature import (DEFAULT_NODES, _obj, bivariate_ncdf, cone_expectation_mp, gauss_hermite_mp, ncdf,
                            tanh_sinh01_mp, truncated_normal_nodes)

__all__ = ["nonlinear_terms_mp", "check_nonlinear_mp"]



def check_nonlinear_mp(model: TheoryModel) -> None:
    if max(model.classes) > 3:
        raise ReachError("precision", "the mp back-end of nonlinear trunks covers C_t ≤ 3 (labels in closed "
                         "form given h); got classes " + str(list(model.classes)))
    if model.K > 3:
        raise ReachError("precision", f"the mp back-end of nonlinear trunks covers K ≤ 3 (got K = {model.K})")


def _g(name: str, x):
    """(g(x), g′(x)) in mp (`mp_pointwise`, printed from the same SymPy formulas as the double)."""
    if name not in ACTIVATION_PAIRS or name == "linear":
        raise RequestError("student.activation", f"{name!r} is not a nonlinear trunk")
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


def _rows_factor(F, rows):
    """(rows F) as an object array (``F``: the mp factor of the field covariance, lists or array)."""
    F = F if isinstance(F, np.ndarray) else _obj(F, len(F[0]))
    return MP.matmul(_obj(rows, F.shape[0]), F)


class _Conditional:
    """Gaussian conditioning in mp (`cone.condition`, the double path's algorithm): X | x ~ N(A x, S)
    for field rows X given field rows x; ``F``: the mp factor of the field covariance."""

    def __init__(self, F, X, x):
        A, S, _, _ = condition(MP, _rows_factor(F, X), _rows_factor(F, x))
        self.A, self.S = mpmath.matrix(A.tolist()), mpmath.matrix(S.tolist())


def _labels_given(F, rows_nu, rows_lam, cond):
    """Per class c of a task with C_t ≤ 3 classes: the event y = c is the cone u_c > 0,
    u_c = (ν_c − ν_j)_{j≠c}, Gaussian given the conditioning fields x: u_c | x ~ N(A_c x, S_c)
    (`cone.label_cones`, as the double path's `online.label_given_h`).
    Returns (A_c, S_c, Cλu_c) with Cλu_c = Cov(λ, u_c | x) (None without λ rows)."""
    cones, _ = label_cones(MP, _rows_factor(F, rows_nu), _rows_factor(F, cond),
                           None if rows_lam is None else _rows_factor(F, rows_lam))
    return [(A.tolist(), mpmath.matrix(S.tolist()), None if Cl is None else Cl.tolist()) for A, S, Cl in cones]


def _cone_given(A, S, x, stein: bool):
    """P(u > 0 | x) for u | x ~ N(A x, S) of dimension 1 or 2 (Φ, or Φ₂ in mp), and with
    `stein` the vector v with E[1{u > 0} (u − μ) | x] = S v: v_j = φ(μ_j/s_j)/s_j ·
    P(u_{−j} > 0 | u_j = 0, x) — `mp_pointwise.cone*`, the double path's formulas printed for mp."""
    mu = [mpmath.fsum(a * y for a, y in zip(row, x)) for row in A]
    if len(mu) == 1:
        return cone1_probability(mu[0], S[0, 0]), ([cone1_stein(mu[0], S[0, 0])] if stein else None)
    args = (mu[0], mu[1], S[0, 0], S[0, 1], S[1, 1])
    return cone2_probability(*args), (list(cone2_stein(*args)) if stein else None)


def _sign_splits(act: str, n: int, split: bool = False) -> list:
    """The sign patterns of n trunk fields to integrate over separately: all 2^n for relu (its
    kink at 0) or with `split` (sign orthants for the smooth tanh / erf too), else the one
    empty pattern (one rule over all of R^n)."""
    return list(itertools.product((1, -1), repeat=n)) if split or act == "relu" else [()]


SPLIT_TOL = 1e-8   # the one-rule route's largest model error (`one_rule_error`) before the split is taken


def one_rule_error(act: str, spread, n: int):
    """Relative error of the n-point Gauss–Hermite rule over all of h on the model integral
    E[g′(s z)²], z ~ N(0, 1), s = ``spread`` (g′² is the sharpest factor of the integrands: sech⁴
    for tanh, e^{−h²} for erf; its scale in h is 1 whatever Q is), against the sign-orthant split
    at 2n nodes (Genz coordinates, tanh–sinh; converged to ≤ 1e-13 for s ≤ 3 at n ≥ 20).  The
    Gauss–Hermite nodes lie ~π/√(2n) apart in units of s, so once s ≳ 1 they under-resolve
    g′ (measured, tanh at 40 nodes: 2e-5 at s = 1, 9e-2 at s = 2.5 — the strong-teacher state of
    docs/PRECISION.md, whose Eaa was 12–27 % off)."""
    f = lambda x: _g(act, spread * x)[1] ** 2   # noqa: E731
    x, w = gauss_hermite_mp(n)
    one = mpmath.fsum(wi * f(xi) for xi, wi in zip(x, w))
    u, uc, wt = tanh_sinh01_mp(2 * n)
    split = mpmath.mpf(0)
    for lo, hi in ((mpmath.mpf(0), mpmath.inf), (-mpmath.inf, mpmath.mpf(0))):
        split += mpmath.fsum(wk * m * f(y) for (y, m), wk in zip(truncated_normal_nodes(lo, hi, u, uc), wt))
    return abs(one / split - 1)


def _rule_nodes(nodes, dims: int, default: dict) -> int:
    """The nodes per dimension `cone_expectation_mp` takes for ``dims`` integrated dimensions."""
    if nodes is None:
        return default[dims]
    return nodes.get(dims, default[dims]) if isinstance(nodes, dict) else int(nodes)


def _take_split(act: str, C, rows, n: int, split_smooth) -> bool:
    """Whether to integrate over the sign orthants of the trunk fields ``rows``: always for relu;
    as ``split_smooth`` says when it is a bool; by default (None) when the one-rule route's model
    error at the fields' largest spread √max Q_kk exceeds SPLIT_TOL (`one_rule_error`)."""
    if act == "relu" or split_smooth is not None:
        return act == "relu" or split_smooth
    spread = mpmath.sqrt(max(_cov(C, r, r) for r in rows))
    return one_rule_error(act, spread, n) > SPLIT_TOL


def _probabilities(labs, h):
    """P(y = c | h) for every class of `_labels_given` (the classes partition the space: the
    last is 1 − the rest)."""
    p = []
    for c, (A, S, _) in enumerate(labs):
        p.append(1 - mpmath.fsum(p) if c == len(labs) - 1 else _cone_given(A, S, h, False)[0])
    return p
JOINT_OUTER_NODES = {1: 64, 2: 32}   # default nodes over (h_k, h_l) of the label–label term


PLACKETT_NODES = 10   # Gauss–Legendre nodes per graded piece of `_plackett_rule` (measured, 12 4-dim
#                       cones of smallest eigenvalue down to 1e-5: ≤ 3e-18 at 10, 5e-15 at 8, 1e-11 at 6)


def _plackett_rule(S, na: int, per_piece: int = PLACKETT_NODES):
    """Nodes and weights in s ∈ [0, 1] for `_JointOrthant`: its integrand is analytic except where
    S(s) is singular, at s = ±s*, s* = 1/max|λ| with λ the eigenvalues of L⁻¹ (S − S(0)) L⁻ᵀ
    (S(0) = L Lᵀ the block-diagonal part; the λ come in ± pairs, and s* > 1 since S(1) = S is
    positive definite).  Gauss–Legendre pieces graded toward s = 1 — [0, 1/2], [1/2, 3/4], …
    while the gap to 1 exceeds s* − 1, then the rest — so that every piece is at least its own
    width away from s* and one node count serves all (the error per piece is uniform)."""
    from .mp_quadrature import _gl
    n = S.rows
    S0 = mpmath.matrix(n, n)
    for p in range(n):
        for q in range(n):
            if (p < na) == (q < na):
                S0[p, q] = S[p, q]
    diag = [S[k, k] for k in range(n)]
    try:
        L = mpmath.cholesky(S0)
        ok = min(L[k, k] ** 2 / diag[k] for k in range(n)) > MP.rank_tol()
    except (ZeroDivisionError, ValueError):
        ok = False
    if not ok:
        raise ReachError("precision", "the joint label covariance of two tasks given the trunk fields is singular "
                         "within a task (a teacher of rank < classes without label noise): the mp "
                         "joint cone needs it positive definite")
    Li = mpmath.inverse(L)
    lam = mpmath.eigsy(Li * (S - S0) * Li.T, eigvals_only=True)
    top = max(abs(x) for x in lam)
    s_star = 1 / top if top > 0 else mpmath.inf
    pieces, lo = [], mpmath.mpf(0)
    while s_star - 1 < 1 - lo and 1 - lo > mpmath.eps ** mpmath.mpf("0.5"):
        mid = (1 + lo) / 2
        pieces.append((lo, mid))
        lo = mid
    pieces.append((lo, mpmath.mpf(1)))
    xs, ws = _gl(per_piece, mpmath.mp.dps)
    X, W = [], []
    for a, b in pieces:
        half = (b - a) / 2
        X += [a + half * (y + 1) for y in xs]
        W += [half * w for w in ws]
    return X, W


class _JointOrthant:
    """P(u > 0 | x) for u | x ~ N(A x, S) of dimension 3 or 4, split into the blocks a = u[:na] and
    b = u[na:] (the cones of two tasks' labels), by Plackett's identity
    ∂P/∂S_ij = φ_ij(0, 0) · P(u_{−ij} > 0 | u_i = u_j = 0) along S(s) = [[S_aa, s S_ab],
    [s S_ba, S_bb]] for s from 0 to 1 (positive definite throughout: a convex combination of two
    positive definite matrices):

        P = P(u_a > 0) P(u_b > 0) + ∫_0^1 Σ_{i∈a, j∈b} S_ij φ₂(μ_i, μ_j; B_ij(s)) P_r(s) ds,

    B_ij(s) the covariance of (u_i, u_j) under S(s), P_r = Φ or Φ₂ of the other rows given
    u_i = u_j = 0 (1 if none).  The s-integral is analytic up to S(s)'s singularity beyond s = 1
    (`_plackett_rule`); everything but the means is fixed by S, so it is precomputed once per cone
    and a call costs Σ_{ij} (one exp and one Φ or Φ₂) per s-node, a term skipped where its density
    factor is below the working precision.  Independent of the conditioning route
    (`_orthant_given`): the tests compare the two, and both with mp.quad."""

    def __init__(self, A, S, na: int, per_piece: int = PLACKETT_NODES):
        n = S.rows
        self.A, self.na = A, na
        self.blocks = [(list(range(na)), [[S[p, q] for q in range(na)] for p in range(na)]),
                       (list(range(na, n)), [[S[p, q] for q in range(na, n)] for p in range(na, n)])]
        X, W = _plackett_rule(S, na, per_piece)
        self.terms = []
        for s, w in zip(X, W):
            Ss = mpmath.matrix(n, n)
            for p in range(n):
                for q in range(n):
                    Ss[p, q] = S[p, q] if (p < na) == (q < na) else s * S[p, q]
            for i in range(na):
                for j in range(na, n):
                    r = [k for k in range(n) if k not in (i, j)]
                    B = mpmath.matrix([[Ss[i, i], Ss[i, j]], [Ss[j, i], Ss[j, j]]])
                    det = B[0, 0] * B[1, 1] - B[0, 1] ** 2
                    Binv = mpmath.inverse(B)
                    if r:
                        Crb = mpmath.matrix([[Ss[k, i], Ss[k, j]] for k in r])
                        G = Crb * Binv                               # m_r = μ_r − G μ_ij
                        Cr = mpmath.matrix([[Ss[k, m] for m in r] for k in r]) - G * Crb.T
                        # standardised: z_k = t_k (μ_k − G_k μ_ij), t_k = 1/√Cr_kk
                        t = [1 / mpmath.sqrt(Cr[k, k]) for k in range(len(r))]
                        G = [[t[k], t[k] * G[k, 0], t[k] * G[k, 1]] for k in range(len(r))]
                        Cr = () if len(r) == 1 else (Cr[0, 1] * t[0] * t[1],)
                    else:
                        G, Cr = [], ()
                    norm = w * S[i, j] / (2 * mpmath.pi * mpmath.sqrt(det))
                    if norm:
                        self.terms.append((i, j, r, norm, Binv[0, 0] / 2, Binv[0, 1], Binv[1, 1] / 2, G, Cr))
        self.cut = -(mpmath.mp.prec * mpmath.log(2) + 10)    # exp below this: below the precision

    @staticmethod
    def _cone(mu, Cr):
        if not Cr:
            return 1
        if len(Cr) == 1:
            return cone1_probability(mu[0], Cr[0])
        return cone2_probability(mu[0], mu[1], *Cr)

    def __call__(self, x):
        mu = [mpmath.fsum(a * y for a, y in zip(row, x)) for row in self.A]
        tot = 1
        for idx, Sb in self.blocks:
            m = [mu[k] for k in idx]
            tot *= self._cone(m, (Sb[0][0],) if len(idx) == 1 else (Sb[0][0], Sb[0][1], Sb[1][1]))
        for i, j, r, norm, q00, q01, q11, G, Cr in self.terms:
            mi, mj = mu[i], mu[j]
            e = -(q00 * mi * mi + q01 * mi * mj + q11 * mj * mj)
            if e < self.cut:
                continue
            z = [tk * mu[k] - g0 * mi - g1 * mj for k, (tk, g0, g1) in zip(r, G)]
            p = 1 if not z else ncdf(z[0]) if len(z) == 1 else bivariate_ncdf(z[0], z[1], Cr[0])
            tot += norm * mpmath.exp(e) * p
        return tot


def _label_label_joint(C, F, H, nu_a, nu_b, V, act, integrands, a_, b_, nodes, split_smooth=None,
                       processes: int = 1):
    """Ebb2_ab = E_h[Σ_{c,d} P(y_a = c, y_b = d | h) b_ac b_bdᵀ], entry by entry: b_ac,k b_bd,l
    depends on h only through (h_k, h_l), so by the tower property the (k, l) entry is an
    integral over (h_k, h_l) alone (one dimension on the diagonal; sign orthants for relu's kink)
    of the joint label probabilities given those two fields in closed form — Φ₂ for a joint cone
    of C_a + C_b − 2 = 2 dims, Plackett's 1-d integral (`_JointOrthant`) for 3 or 4 — whatever
    K is (K ≤ 3 needs no more than 2 dims).  P(c, C_b − 1) and P(C_a − 1, d) come from the
    marginals.  The integrand is the derivation's (`LABEL_LABEL_MP[a, b, d]` is linear in
    q_c = P(y_a = c, y_b = d | ·)).  An independent route from the double path's (P(y_a | h, Δ_b)
    inside the cones of y_b, over all K fields)."""
    K = len(H)
    Ca, Cb = len(nu_a), len(nu_b)

    def diffs(rows, c):
        return [[p - q for p, q in zip(rows[c], rows[j])] for j in range(len(rows)) if j != c]
    if nodes is None:
        nodes = JOINT_OUTER_NODES
    acc = mpmath.matrix(K, K)
    for k in range(K):
        for k2 in range(k, K):
            idx = [k] if k == k2 else [k, k2]
            Hs = [H[i] for i in idx]
            joint = {}
            for c in range(Ca - 1):
                for d in range(Cb - 1):
                    cj = _Conditional(F, diffs(nu_a, c) + diffs(nu_b, d), Hs)
                    A = [[cj.A[i, j] for j in range(len(idx))] for i in range(cj.A.rows)]
                    joint[c, d] = (A, cj.S) if Ca + Cb == 4 else _JointOrthant(A, cj.S, Ca - 1)
            marg_a = _labels_given(F, nu_a, None, Hs)
            marg_b = _labels_given(F, nu_b, None, Hs)

            def fn(x, idx=idx, joint=joint, marg_a=marg_a, marg_b=marg_b):
                dg = [mpmath.mpf(0)] * K
                for i, y in zip(idx, x):
                    dg[i] = _g(act, y)[1]
                pa, pb = _probabilities(marg_a, x), _probabilities(marg_b, x)
                P = [[(_cone_given(*joint[c, d], x, False)[0] if isinstance(joint[c, d], tuple)
                       else joint[c, d](x)) for d in range(Cb - 1)] for c in range(Ca - 1)]
                for c in range(Ca - 1):
                    P[c].append(pa[c] - mpmath.fsum(P[c]))
                P.append([pb[d] - mpmath.fsum(P[c][d] for c in range(Ca - 1)) for d in range(Cb)])
                out = [mpmath.mpf(0)] * (K * K)
                for d in range(Cb):
                    vals = integrands[a_, b_, d](V, dg, [P[c][d] for c in range(Ca)])[0]
                    out = [x_ + y_ for x_, y_ in zip(out, vals)]
                return ([out[idx[0] * K + idx[-1]], out[idx[-1] * K + idx[0]]]), None
            split = _take_split(act, C, Hs, _rule_nodes(nodes, len(idx), DEFAULT_NODES), split_smooth)
            for sg in _sign_splits(act, len(idx), split):
                rows = [[s_ * x for x in h] for s_, h in zip(sg, Hs)]
                r = cone_expectation_mp(F, (rows, [s_ < 0 for s_ in sg]), Hs, fn, nodes=nodes,
                                        processes=processes)
                acc[k, k2] += r.plain[0]
                if k2 != k:
                    acc[k2, k] += r.plain[1]
    return acc


def nonlinear_terms_mp(model: TheoryModel, st, F, C, nodes=None, split_smooth: bool | None = None,
                       processes: int = 1) -> dict:
    """`online.nonlinear_terms` in mp, as the derivation's named integrals (mpmath matrices / mpf).
    ``F``: mp factor of the field covariance ``C`` (nested lists); ``split_smooth``: integrate
    tanh / erf trunks over the sign orthants of h too (as relu's), a check of the one-rule route."""
    if split_smooth is not None and not isinstance(split_smooth, bool):
        raise RequestError("split_smooth", f"expected None, True or False, got {split_smooth!r}")
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
    cond_h = _Conditional(F, lam_all, H)
    labs = [_labels_given(F, _vec(model.rows_nu(t)), lam_all, H) for t in range(T)]
    signs = _sign_splits(act, K, _take_split(act, C, H, _rule_nodes(nodes, K, DEFAULT_NODES), split_smooth))

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
        r = cone_expectation_mp(F, orthant(sg), H, fn0, ell, nodes=nodes, processes=processes)
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

    # label–label terms by the joint label probabilities given two trunk fields (`_label_label_joint`)
    for t, u in pairs:
        if t < u:
            a_, b_ = label_label_tasks(model.classes, t, u)
            nu_a, nu_b = _vec(model.rows_nu(a_)), _vec(model.rows_nu(b_))
            acc = _label_label_joint(C, F, H, nu_a, nu_b, V, act, mod.LABEL_LABEL_MP, a_, b_, nodes,
                                     split_smooth, processes)
            if a_ != t:
                acc = acc.T
            out[f"Ebb2{t}{u}"] = acc
            out[f"Ebb2{u}{t}"] = acc.T
    return out

"""Deliberately independent mp routes: checks of the kernel's algorithm, not part of it.

The online engine's terms are one code in two arithmetics (`online`, run in mp by
`mp_online.MpRules`).  What is here computes some of the same quantities by *other* routes, so
that `mtsp check` and the tests compare two algorithms, not one algorithm with itself:

- the label–label term of two tasks on shared inputs (`label_label_joint`): its (k, l) entry as
  an integral over (h_k, h_l) alone of the joint label probabilities given those two fields —
  Φ₂, or Plackett's identity along the cross-task covariance for a joint cone of 3 or 4 dims
  (`_JointOrthant`, `_plackett_rule`) — where the double path integrates P(y_a | h, Δ_b) inside
  the cones of y_b over all K fields (`online._label_label_term`); it is the mp path's
  label–label term (`MpRules.label_label`), so every `mtsp check` of two tasks on shared inputs
  compares the two routes;
- the agreement of a nonlinear trunk with K ≤ 2 by nodes on the innermost coordinate
  (`agreement_by_inner_nodes`, either arithmetic): the teacher's tie lines cut there too and the
  label probabilities given h at every node, where the errors' route
  (`metrics.cut_rule_hits`) integrates that coordinate exactly (`slab_cone`).

Keep it independent of `online`'s term code: a change there must not change a check.
"""
from __future__ import annotations

import mpmath
import numpy as np

from mtsp.errors import ReachError, RequestError

from .bivariate import bivariate_cdf
from .cone import MP, condition, label_cones
from .mp_pointwise import ACTIVATION_PAIRS, cone1_probability, cone1_stein, cone2_probability, cone2_stein
from .mp_quadrature import mp_rule, ncdf
from .quadrature import cone_expectation

__all__ = ["label_label_joint", "agreement_by_route", "agreement_by_inner_nodes", "pointwise"]


def pointwise(fn):
    """An integrand of one point (a list of mpf to (list, list or None)) in the reducing protocol of
    `quadrature.cone_expectation` (``reduce=True``): called at every point, (Σ weight·φ, weight·γ) summed in order."""
    def reduced(p, weight):
        plain = gam = None
        for i, (row, w) in enumerate(zip(p, weight)):
            f, g = fn(list(row))
            if plain is None:
                plain = [mpmath.mpf(0)] * len(f)
                gam = None if g is None else np.empty((p.shape[0], len(g)), dtype=object)
            plain = [s + w * x for s, x in zip(plain, f)]
            if g is not None:
                gam[i] = [w * x for x in g]
        return np.array(plain, dtype=object), gam
    return reduced


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
    F = F if isinstance(F, np.ndarray) else MP.rows(F, len(F[0]))
    return MP.matmul(MP.rows(rows, F.shape[0]), F)


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
    xs, ws = MP.legendre(per_piece)
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
            p = 1 if not z else ncdf(z[0]) if len(z) == 1 else bivariate_cdf(MP, z[0], z[1], Cr[0])
            tot += norm * mpmath.exp(e) * p
        return tot


def label_label_joint(C, F, H, nu_a, nu_b, V, act, a_, b_, nodes, split_smooth=None, processes: int = 1):
    """Ebb2_ab = E_h[Σ_{c,d} P(y_a = c, y_b = d | h) b_ac b_bdᵀ], entry by entry: b_ac,k b_bd,l
    depends on h only through (h_k, h_l), so by the tower property the (k, l) entry is an
    integral over (h_k, h_l) alone (one dimension on the diagonal; sign orthants for relu's kink)
    of the joint label probabilities given those two fields in closed form — Φ₂ for a joint cone
    of C_a + C_b − 2 = 2 dims, Plackett's 1-d integral (`_JointOrthant`) for 3 or 4 — whatever
    K is (K ≤ 3 needs no more than 2 dims).  P(c, C_b − 1) and P(C_a − 1, d) come from the
    marginals.  An independent route from the double path's (P(y_a | h, Δ_b) inside the cones of
    y_b, over all K fields: `online._label_label_term`).  ``V``: the heads (object arrays of mpf)."""
    from .mp_online import sign_patterns   # the mp route over h
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

                def entry(k, m):   # (Σ_cd P(c, d) b_ac b_bdᵀ)_km, b_ac = g′ ⊙ V_a[c]
                    return dg[k] * dg[m] * mpmath.fsum(P[c][d] * V[a_][c, k] * V[b_][d, m]
                                                       for c in range(Ca) for d in range(Cb))
                return [entry(idx[0], idx[-1]), entry(idx[-1], idx[0])], None
            for sg in sign_patterns(act, C, Hs, nodes, split_smooth):
                rows = [[s_ * x for x in h] for s_, h in zip(sg, Hs)]
                cone = (rows, [s_ < 0 for s_ in sg])
                r = cone_expectation(F, cone, Hs, pointwise(fn), reduce=True, **mp_rule(cone, fn, nodes, processes))
                acc[k, k2] += r.plain[0]
                if k2 != k:
                    acc[k2, k] += r.plain[1]
    return acc


def _mp_cone(rows, c: int):
    """{argmax = c} of mp rows (lists) as (rows, nonstrict): ties to the first index (`model.argmax_cone`)."""
    return ([[a - b for a, b in zip(rows[c], rows[j])] for j in range(len(rows)) if j != c],
            [j > c for j in range(len(rows)) if j != c])


def agreement_by_route(model, st, F, t: int, fields: str, nodes, double, processes: int = 1):
    """Σ_c P(argmax z_t = c, argmax x_t = c) for x = λ (fields "lambda") or ν ("nu") of a linear
    trunk (``st``: a `State` of object arrays of mpf, `mp_online.mp_state`), as one (C_t − 1)-dim integral per class instead of the
    double path's 2(C_t − 1)-dim cone (`metrics.linear_agreement`): over the logit differences u
    (an independent subset when the trunk is narrower), inside the student's cone of c, of
    P(argmax x_t = c | u) in closed form (Φ or Φ₂ in mp); where that probability is steep (judged
    in double at ``double`` = (state, factor), as `online.label_given_h` does) the cone is split by
    the argmax cones of E[x_t | u] (in 2 dimensions every such intersection is again a sector).
    None where the conditional is degenerate (C_t > 3, zero logits, labels decided by the
    logits): then the cones.  Measured on a two-task C = 3, K = 2 trunk: the 4-dim cones at
    16 / 24 / 32 mp nodes err by 1.2e-4 / 1.4e-7 / 1.4e-8."""
    from . import online
    fs, factor = double
    u = online._diff_rows(model.rows_logits(fs, t))
    ind = online._independent_rows(u @ factor) if model.classes[t] <= 3 else []
    if not ind or online.label_given_h(model, factor, t, fields, stein=False, cond=u,
                                       min_residual=online.LABEL_MIN_RESIDUAL_SPLIT) is None:
        return None
    steep = online.label_given_h(model, factor, t, fields, stein=False, cond=u) is None
    V = st.V[t]
    z = [[V[c, k] if k < model.K else mpmath.mpf(0) for k in range(model.n_fields)] for c in range(V.shape[0])]
    u_rows = [[a - b for a, b in zip(r, z[0])] for r in z[1:]]
    cond = [u_rows[i] for i in ind]
    rows = _vec(model.rows_lambda(t) if fields == "lambda" else model.rows_nu(t))
    pieces = [None]
    if steep:   # the argmax cones of E[x | u] = A·u
        A = _Conditional(F, rows, cond).A
        mean = [[mpmath.fsum(A[c, j] * cond[j][k] for j in range(len(cond))) for k in range(len(cond[0]))]
                for c in range(len(rows))]
        pieces = [_mp_cone(mean, c) for c in range(len(rows))]
    total = mpmath.mpf(0)
    for c, (A_c, S_c, _) in enumerate(_labels_given(F, rows, None, cond)):
        def fn(p, A_c=A_c, S_c=S_c):
            return [_cone_given(A_c, S_c, [p[i] for i in ind], False)[0]], None
        whole = _mp_cone(z, c)
        cones = [whole if piece is None else (whole[0] + piece[0], whole[1] + piece[1]) for piece in pieces]
        total += mpmath.fsum(cone_expectation(F, cone, u_rows, pointwise(fn), reduce=True,
                                              **mp_rule(cone, fn, nodes, processes)).plain[0] for cone in cones)
    return total


def agreement_by_inner_nodes(model, st, factor, t: int, n: int, fields: str = "lambda", n_inner: int | None = None,
                             rules=None):
    """Σ P(x_t = ĉ) (x = ȳ for fields "lambda", y for "nu") of a nonlinear trunk with K ≤ 2 by the
    K ≤ 2 cut rule (`tie_cuts.cut_rule_k2`, ``n`` outer nodes) with the tie lines of E[x_t | h] as inner
    cuts and ``n_inner`` (default ``n``) tanh–sinh nodes on every innermost piece, the label
    probabilities given h at each (`online.label_given_h`) — the route the double path took until
    the innermost coordinate was integrated in closed form (`metrics.cut_rule_hits`); None where the
    rule has no cut domain.  ``rules``: the arithmetic (default double)."""
    from .online import DOUBLE_RULES, label_given_h
    from .tie_cuts import cut_rule_k2, cut_rule_k2_nodes, teacher_tie_slopes
    rules = rules or DOUBLE_RULES
    ar = rules.ar
    rows = rules.rows(model.rows_lambda(t) if fields == "lambda" else model.rows_nu(t))
    kappas = teacher_tie_slopes(ar, factor, rules.rows(model.rows_h()), [rows]) if model.K == 2 else []
    rule = cut_rule_k2(ar, model.activation, st.Q, st.V[t], kappas, n, teacher_inner=True)
    if rule is None:
        return None
    pts, w, c_hat = cut_rule_k2_nodes(ar, rule, n_inner or n)
    p = label_given_h(model, factor, t, fields, min_residual=None, stein=False, rules=rules)(pts)
    return w @ np.take_along_axis(p, c_hat[:, None], axis=1)[:, 0]

"""The errors and test loss of nonlinear trunks (K ≤ 3) at arbitrary precision.

For a trunk h ∈ R^K (h ~ N(0, Q)) the student's logits of task t are z(h) = V_t g(h) and its
decision ĉ(h) = argmax_c z_c(h) (ties → the first index).  Given h the teacher's fields are
Gaussian, so with the label probabilities in closed form (C_t ≤ 3: Φ or Φ₂ of the conditional
label cones, `mp_nonlinear._labels_given`)

    gen_error   = 1 − E_h[P(argmax λ_t = ĉ(h) | h)],
    label_error = 1 − E_h[P(y_t = ĉ(h) | h)],
    test_loss   = E_h[logsumexp z(h) − Σ_c P(y_t = c | h) z_c(h)].

ĉ(h) is not a cone in h (g is nonlinear), so no cone kernel applies; but ĉ changes only where
two logits tie, (V_c − V_c′)·g(h) = 0.  With h = L η (L the Cholesky factor of Q, lower
triangular) the domain is cut exactly along those curves:

* K = 1: ĉ is constant on h < 0 and on h > 0 (g(0) = 0, g monotone);
* K = 2: η₁ is split at 0 (every tie curve passes through h = 0) and where a tie curve appears
  (below); given η₁, the ties in h₂ are
  at g(h₂) = −ΔV₀ g(h₁)/ΔV₁ for each class pair, i.e. h₂ = g⁻¹(·) (atanh for tanh, √2·erfinv
  for erf, the value itself for relu when positive), plus h₂ = 0 (where relu and the signs of g
  change).  Between consecutive cuts ĉ is constant (read off at an interior point).

The innermost coordinate is integrated in closed form: on a piece lo < η_K < hi with ĉ fixed,
u_ĉ | η ~ N(α η₁ + β η_K, S) is linear in η_K, so E[1{lo < η_K < hi} P(u_ĉ > 0 | η)] is an
orthant probability of (u_ĉ, hi − η_K) minus that of (u_ĉ, lo − η_K) (`_SlabCone`: Φ₂ for
C_t = 2, Plackett's 1-d integral of a 3-dim orthant for C_t = 3) — exact, however steep the
labels are across the teacher's tie lines, so K = 1 needs no quadrature at all and K = 2 only
the outer one.  The outer integrand (a function of η₁) is analytic between its cuts: 0, for
tanh / erf the points |ΔV₀ g(h₁)/ΔV₁| = 1 where a tie curve enters from h₂ = ±∞ — there the
inner integral changes by a Gaussian tail beyond h₂ ≈ −½ log(1 − |x|), which vanishes with all
its derivatives but so slowly (≈ e^{−(log δ)²/8}) that a rule across it converges like a
low-order one (measured: 1e-5 between 24 and 32 nodes without that cut) — and where a line
h₂ = κh₁ on which two classes of E[λ_t | h] or E[ν_t | h] tie crosses a student tie curve away
from 0: the labels switch steeply along such a line (a strong teacher), so the outer integrand
has a near-kink there (the crossing found in double, refined by bisection in mp).  These cuts are
`tie_cuts.cut_rule_k2`, the double path's rule executed in the `cone.MP` arithmetic.  The outer
rule is the Genz transform of the kernel (`mp_quadrature`: η₁ a truncated normal on each
interval, tanh–sinh nodes on [0, 1]), ERROR_NODES = 48 per interval.  Measured on 40 random
states (tanh / erf / relu, K = 1, 2, C = 2, 3, teacher norm 1 to 6, alignment 0 to 0.95, t up
to 8, logits ×1 or ×3; `benchmarks/mp_errors_random_states.py`) against 128 outer nodes: the
errors within 3.0e-13 at 48 nodes (5.1e-11 at 32, 3.6e-15 at 64).

The test loss splits into E[logsumexp z(h)] — on the same pieces, as many tanh–sinh nodes per
innermost piece as outer ones (no label probability at these points; with 48 inner nodes the
loss was within 1e-14 on those states, with 32 within 7.3e-10: widely spread logits make
logsumexp vary fast between the cuts) — and the label part
E[z_y(h)] = Σ_{c,k} V_ck E_{h_k}[g(h_k) P(y = c | h_k)], K one-dimensional integrals by the
tower property (`_label_logits_mp`).

Cost (two three-class tanh tasks, K = 2, dps 20): ≈ 16 s per task with label error and loss,
where the nested rule (64 × 64 nodes per pair of pieces, three mp Φ₂ per point) took ≈ 260 s.

* K = 3: the three-level cut rule `tie_cuts.cut_rule_k3` (read there why every cut is exact: in
  a = g(h) the tie surfaces are planes) executed in the `cone.MP` arithmetic: its cuts computed in
  mp (the crossings of teacher rays with level-2 lines bracketed in double, bisected in mp), on
  mp tanh–sinh rules whose span follows their node count (`span_for_nodes`) and whose node count
  follows each piece's weight (`tie_cuts.nodes_for_weight`).  With the double's rules substituted it
  reproduces the double rule to 3e-16 (tanh, erf); on its own rules at ERROR_NODES3 =
  (16, 24, 16) it agrees with the double at (40, 48, 32) to 3e-9 (tanh, C = 2, t = 2, 12 s per
  task) and a wide random tanh state to ~1e-8 at (12, 16, 12) in ≈ 2 min — each point costs
  one mp Φ₂ per error (≈ 0.5 ms), so K = 3 mp errors take minutes.  K ≥ 4 is refused
  (`check_errors_mp`).
"""
from __future__ import annotations

import mpmath
import numpy as np

from mtsp.errors import ReachError

from .cone import MP
from .model import TheoryModel
from .mp_nonlinear import _JointOrthant, _cone_given, _labels_given, _probabilities, _softmax, _vec
from .mp_nonlinear import _g as _g_and_derivative
from .mp_pointwise import cone1_probability, cone2_probability
from .mp_quadrature import _obj, bivariate_ncdf, mp_factor
from .tie_cuts import Pieces, cut_rule_k2, cut_rule_k3, piece_nodes, teacher_tie_slopes, tie_planes

__all__ = ["nonlinear_metrics_mp", "check_errors_mp", "ERROR_NODES"]

ERROR_NODES = 48  # K ≤ 2: tanh–sinh nodes per outer piece (the innermost coordinate is exact)
LABEL_LOGIT_NODES = 96   # per half-line of h_k in the label part of the test loss (`_label_logits_mp`)
ERROR_NODES3 = (16, 24, 16)  # K = 3: per level (η₁, η₂, η₃); ≈ 1e-8, minutes per task


def check_errors_mp(model: TheoryModel) -> None:
    if model.K > 3:
        raise ReachError("precision", f"the mp errors of nonlinear trunks cover K ≤ 3 (got K = {model.K}): "
                         "for K ≥ 4 the cut rule would need cut hypersurfaces of 3 dimensions")
    if max(model.classes) > 3:
        raise ReachError("precision", "the mp errors of nonlinear trunks cover C_t ≤ 3 (labels in closed form given h)")


def _g(name: str, x):
    return _g_and_derivative(name, x)[0]


class _SlabCone:
    """Ψ(a, b) = P(u > 0, η < b) for η ~ N(0, 1) and u | η ~ N(a + β η, S), u of 1 or 2 dims —
    the exact integral over one trunk coordinate η of a label-cone probability, between cuts
    where the student's decision does not change: P(u > 0, lo < η < hi) = Ψ(a, hi) − Ψ(a, lo).

    (u, b − η) is Gaussian with mean (a, b) and covariance [[S + ββᵀ, −β], [−βᵀ, 1]], so Ψ is
    an orthant probability: Φ₂(a/s, b; −β/s) with s² = S + β² for one row, Plackett's 1-d
    integral (`mp_nonlinear._JointOrthant`, blocks u and b − η) for two; its covariance is fixed
    by (β, S), so the rule is built once per class and a call costs its s-nodes' Φ."""

    def __init__(self, beta, S):
        m = len(beta)
        self.Sj = [[S[i, j] + beta[i] * beta[j] for j in range(m)] for i in range(m)]
        if m == 1:
            self.sd = mpmath.sqrt(self.Sj[0][0])
            self.rho = -beta[0] / self.sd
            self.orthant = None
        else:
            full = mpmath.matrix(3, 3)
            for i in range(2):
                for j in range(2):
                    full[i, j] = self.Sj[i][j]
                full[i, 2] = full[2, i] = -beta[i]
            full[2, 2] = 1
            eye = [[mpmath.mpf(int(i == j)) for j in range(3)] for i in range(3)]
            self.orthant = _JointOrthant(eye, full, 2)

    def __call__(self, a, b):
        if b == -mpmath.inf:
            return mpmath.mpf(0)
        Sj = self.Sj
        if b == mpmath.inf:           # P(u > 0) with u ~ N(a, S + ββᵀ)
            if self.orthant is None:
                return cone1_probability(a[0], Sj[0][0])
            return cone2_probability(a[0], a[1], Sj[0][0], Sj[0][1], Sj[1][1])
        if self.orthant is None:
            return bivariate_ncdf(a[0] / self.sd, b, self.rho)
        return self.orthant([a[0], a[1], b])


def _label_logits_mp(F, rows, H, V, act, Q, n):
    """E[z_y(h)] = Σ_{c,k} V_ck E[1{y = c} g(h_k)] = Σ_{c,k} V_ck E_{h_k}[g(h_k) P(y = c | h_k)]
    (tower property: each term depends on h only through h_k), so the label part of the test
    loss is K one-dimensional integrals of closed-form label probabilities given one field
    (Φ or Φ₂; their means are linear in h_k, so every steep layer sits at h_k = 0, the cut),
    rather than a K-dim integral with C − 1 of them at every point."""
    K = len(H)
    tot = mpmath.mpf(0)
    halves = Pieces(np.zeros(2, int), np.array([-mpmath.inf, mpmath.mpf(0)], dtype=object),
                    np.array([mpmath.mpf(0), mpmath.inf], dtype=object), None)
    for k in range(K):
        if not Q[k, k] > 0:           # h_k ≡ 0 and g(0) = 0
            continue
        labs = _labels_given(F, rows, None, [H[k]])
        _, hs, ws = piece_nodes(MP, halves, np.full(2, n), MP.full(1, mpmath.mpf(1)), mpmath.sqrt(Q[k, k]), MP.zeros(1))
        for h, w in zip(hs, ws):
            if w <= 0:
                continue
            p = _probabilities(labs, [h])
            tot += w * _g(act, h) * mpmath.fsum(V[c, k] * pc for c, pc in enumerate(p))
    return tot


def nonlinear_metrics_mp(model: TheoryModel, st, C, t: int, nodes: int | None = None,
                         label: bool = True, loss: bool = True, loss_nodes: int | None = None):
    """(gen_error, label_error, test_loss) of task t in mp for a nonlinear trunk with K ≤ 3
    (``nodes``: K ≤ 2 the outer nodes per interval, default ERROR_NODES; K = 3 per level, one
    count or (n₁, n₂, n₃), default ERROR_NODES3; ``loss_nodes``: K ≤ 2, the nodes per innermost
    piece of E[logsumexp z(h)], default ``nodes``).
    ``st``: mp state (Q, R, V); ``C``: the mp field covariance (nested lists)."""
    check_errors_mp(model)
    K, act = model.K, model.activation
    n = nodes or (ERROR_NODES3 if K == 3 else ERROR_NODES)
    H = _vec(model.rows_h())
    V = st.V[t]
    Ct = V.rows
    F = mp_factor(C)
    try:           # the labels given h: Gaussian conditioning on h, which needs Q invertible
        lab_clean = _labels_given(F, _vec(model.rows_lambda(t)), None, H)
        lab_noisy = _labels_given(F, _vec(model.rows_nu(t)), None, H) if label else None
    except ZeroDivisionError:
        raise ReachError("precision", f"the mp errors of nonlinear trunks need a nonsingular Q (K = {K}): "
                         "the hidden fields are linearly dependent here") from None
    noiseless = model.noise[t] == 0           # then y_t = ȳ_t: one label probability serves both errors
    for labs in (lab_clean, lab_noisy or []):
        for _, S, _ in labs:
            if min(S[j, j] for j in range(S.rows)) <= mpmath.mpf(10) ** (-mpmath.mp.dps + 5):
                raise ReachError("precision", "the mp errors of nonlinear trunks need labels that are not "
                                 "decided by h (a conditional label variance is zero here)")
            if S.rows == 2 and (S[0, 0] * S[1, 1] - S[0, 1] ** 2) <= mpmath.mpf(10) ** (-mpmath.mp.dps + 5) * S[0, 0] * S[1, 1]:
                raise ReachError("precision", "the mp errors of nonlinear trunks need a nonsingular conditional label "
                                 "covariance (two logit differences of the teacher are dependent given h)")
    Qm = st.Q
    if not Qm[0, 0] > 0:
        raise ReachError("precision", "the mp errors of nonlinear trunks need h₁ with nonzero variance "
                         "(Q₁₁ = 0: the student's output is a tie, not a cut domain)")
    Qo, Vo, Fo, Ho = _obj(Qm, K), _obj(V, K), np.array(F, dtype=object), _obj(H, len(F))
    acc = [mpmath.mpf(0)] * 3     # Σ P(ȳ = ĉ), Σ P(y = ĉ), E[logsumexp z(h)]

    def lse(g):
        return _softmax([mpmath.fsum(V[c, k] * g[k] for k in range(K)) for c in range(Ct)])[1]

    def finish():
        tl = (acc[2] - _label_logits_mp(F, _vec(model.rows_nu(t)), H, V, act, Qm, LABEL_LOGIT_NODES)
              if loss else None)
        return _finish(acc, label, tl)

    if K == 3:
        rule = cut_rule_k3(MP, act, Qo, Vo, tie_planes(MP, Fo, Ho, _obj(model.rows_lambda(t), len(F))), n)
        if rule is None:
            raise ReachError("precision", "the mp errors of nonlinear trunks need a nonsingular Q (K = 3)")
        for h, weight, c_hat in zip(*rule):
            h = list(h)
            p_hat = _cone_given(*lab_clean[c_hat][:2], h, False)[0]                 # P(ȳ = ĉ | h)
            acc[0] += weight * p_hat
            if label:     # P(y = ĉ | h): the same as P(ȳ = ĉ | h) for a noiseless task
                acc[1] += weight * (p_hat if noiseless else _cone_given(*lab_noisy[c_hat][:2], h, False)[0])
            if loss:
                acc[2] += weight * lse([_g(act, x) for x in h])
        return finish()

    # K ≤ 2: the cut rule's outer level (K = 2) and innermost pieces (`tie_cuts.cut_rule_k2`); on
    # a piece u_ĉ | η ~ N(α η₁ + β η_K, S), so it contributes Ψ(α η₁, hi) − Ψ(α η₁, lo) exactly
    # (`_SlabCone`); K = 1 is the same with no outer level (two pieces, h < 0 and h > 0).
    kappas = teacher_tie_slopes(MP, Fo, Ho, [_obj(r, len(F)) for r in [model.rows_lambda(t)] + (
        [model.rows_nu(t)] if label else [])]) if K == 2 else []
    rule = cut_rule_k2(MP, act, Qo, Vo, kappas, n, teacher_inner=False)
    if rule is None:
        raise ReachError("precision", "the mp errors of nonlinear trunks need a nonsingular Q (K = 2)")
    L, inner_sd = rule.L, rule.sd

    def slabs(labs):
        out = []
        for A, S, _ in labs:
            alpha = [A[i][0] * L[0, 0] + A[i][1] * L[1, 0] for i in range(len(A))] if K == 2 else [0] * len(A)
            beta = [A[i][K - 1] * inner_sd for i in range(len(A))]
            out.append((alpha, _SlabCone(beta, S)))
        return out
    slab_clean = slabs(lab_clean)
    slab_noisy = slabs(lab_noisy) if (label and not noiseless) else None

    def piece_probability(sl, c_hat, x1, lo, hi):
        alpha, psi = sl[c_hat]
        a = [al * x1 for al in alpha]
        return psi(a, hi) - psi(a, lo)

    pc = rule.pieces
    for i, c_hat in enumerate(rule.c_hat):
        x1, w1 = rule.x1[pc.parent[i]], rule.w1[pc.parent[i]]
        p = piece_probability(slab_clean, c_hat, x1, pc.lo[i], pc.hi[i])
        acc[0] += w1 * p
        if label:
            acc[1] += w1 * (p if noiseless else piece_probability(slab_noisy, c_hat, x1, pc.lo[i], pc.hi[i]))
    if loss:     # E[logsumexp z(h)]: Genz / tanh–sinh nodes on each innermost piece
        g1 = MP.g(act, rule.h1)
        i, hs, ws = piece_nodes(MP, pc, np.full(len(pc.lo), loss_nodes or n), rule.w1, inner_sd, rule.mean)
        for par, h, w in zip(pc.parent[i], hs, ws):
            if w > 0:
                acc[2] += w * lse(([g1[par]] if K == 2 else []) + [_g(act, h)])
    return finish()


def _finish(acc, label, test_loss):
    gen = 1 - acc[0]
    lab = (1 - acc[1]) if label else mpmath.nan
    return gen, lab, (mpmath.nan if test_loss is None else test_loss)

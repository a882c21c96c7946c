"""The errors and test loss of nonlinear trunks (K ≤ 3) at arbitrary precision.

For a trunk h ∈ R^K (h ~ N(0, Q)) the student's logits of task t are z(h) = V_t g(h) and its
decision ĉ(h) = argmax_c z_c(h) (ties → the first index).  Given h the teacher's fields are
Gaussian, so with the label probabilities in closed form (C_t ≤ 3: Φ or Φ₂ of the conditional
label cones, `mp_nonlinear._labels_given`)

    gen_error   = 1 − E_h[P(argmax λ_t = ĉ(h) | h)],
    label_error = 1 − E_h[P(y_t = ĉ(h) | h)],
    test_loss   = E_h[logsumexp z(h) − Σ_c P(y_t = c | h) z_c(h)].

ĉ(h) is not a cone in h, but it changes only where two logits tie; the h-domain is cut along
those ties by the cut rules of `tie_cuts` (the double path's, executed in the `cone.MP`
arithmetic: its cuts in mp, crossings bracketed in double and bisected in mp, mp tanh–sinh rules):

* K ≤ 2 (`tie_cuts.cut_rule_k2`): η₁ (h = L η) on Genz / tanh–sinh nodes between its cuts, and
  the innermost coordinate integrated in closed form: on a piece lo < η_K < hi with ĉ fixed,
  u_ĉ | η ~ N(α η₁ + β η_K, S) is linear in η_K, so E[1{lo < η_K < hi} P(u_ĉ > 0 | η)] is an
  orthant probability of (u_ĉ, hi − η_K) minus that of (u_ĉ, lo − η_K) (`_SlabCone`: Φ₂ for
  C_t = 2, Plackett's 1-d integral of a 3-dim orthant for C_t = 3) — exact however steep the
  labels are, so the teacher's tie lines need no inner cut (the double path, which puts nodes on
  the innermost pieces, cuts them) and K = 1 needs no quadrature.  E[logsumexp z(h)] takes
  tanh–sinh nodes on the same innermost pieces; the label part E[z_y(h)] is K one-dimensional
  integrals (`_label_logits_mp`).
* K = 3 (`tie_cuts.cut_rule_k3`): three nested levels of nodes, every cut exact, the node count
  of a piece following its weight.  K ≥ 4 is refused (`check_errors_mp`).

Node counts, accuracy and cost: docs/PRECISION.md ("The errors of nonlinear trunks with K ≤ 2"),
benchmarks/results/mp_errors_random_states_seed1.txt (K ≤ 2: within 3.0e-13 of 128 outer nodes at
ERROR_NODES = 48) and the K = 3 tests in tests/test_mp.py (≈ 1e-8 at ERROR_NODES3, minutes per task).
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

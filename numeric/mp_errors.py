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
has a near-kink there (the crossing found in double, refined by bisection in mp).  The outer
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

* K = 3 (`_cut_rule_k3`): the three-level cut rule of `tie_cuts` (read there why every cut is
  exact: in a = g(h) the tie surfaces are planes), its cuts computed in mp (the crossings of
  teacher rays with level-2 lines bracketed in double, bisected in mp), on mp tanh–sinh rules
  whose span follows their node count (`span_for_nodes`) and whose node count follows each
  piece's weight (`tie_cuts.nodes_for_weight`).  With the double's rules substituted it
  reproduces the double rule to 3e-16 (tanh, erf); on its own rules at ERROR_NODES3 =
  (16, 24, 16) it agrees with the double at (40, 48, 32) to 3e-9 (tanh, C = 2, t = 2, 12 s per
  task) and a wide random tanh state to ~1e-8 at (12, 16, 12) in ≈ 2 min — each point costs
  one mp Φ₂ per error (≈ 0.5 ms), so K = 3 mp errors take minutes.  K ≥ 4 is refused
  (`check_errors_mp`).
"""
from __future__ import annotations

import mpmath

from mtsp.errors import ReachError

from .model import TheoryModel
from .metrics import _crossings, _tie_pairs
from .mp_nonlinear import _Conditional, _JointOrthant, _cone_given, _labels_given, _probabilities, _softmax, _vec
from .mp_nonlinear import _g as _g_and_derivative
from .mp_pointwise import ACTIVATION_INVERSES, cone1_probability, cone2_probability
from .mp_quadrature import _truncated_normal, bivariate_ncdf, mp_factor, span_for_nodes, tanh_sinh01_mp, truncated_normal_nodes

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


def _g_inverse(name: str, x):
    """h with g(h) = x (`mp_pointwise`), or None when x is outside g's open range (relu: x > 0
    only; x = 0 is the whole half-line h ≤ 0, already a cut at 0)."""
    inside = x > 0 if name == "relu" else abs(x) < 1
    return ACTIVATION_INVERSES[name](x) if inside else None


def _crossings_mp(act: str, dv0, dv1, kappa, scale) -> list:
    """h₁ > 0 where dv0·g(h₁) + dv1·g(κh₁) = 0 (a student tie curve meets a teacher tie line):
    brackets from the double search (`metrics._crossings`), bisection in mp to the working
    precision."""
    from .activations import activation
    f = lambda y: dv0 * _g(act, y) + dv1 * _g(act, kappa * y)  # noqa: E731
    return [_bisect_mp(f, x) for x in _crossings(activation(act), float(dv0), float(dv1), float(kappa),
                                                  float(scale))]


def _bisect_mp(f, x: float):
    """The root of f near the double root x, by bisection in mp to the working precision on
    x(1 ± 1e-6); x itself where that does not bracket it."""
    lo, hi = sorted([mpmath.mpf(x) * (1 - mpmath.mpf(10) ** -6), mpmath.mpf(x) * (1 + mpmath.mpf(10) ** -6)])
    flo = f(lo)
    if flo * f(hi) > 0:
        return mpmath.mpf(x)
    for _ in range(int(3.5 * mpmath.mp.dps) + 10):
        mid = (lo + hi) / 2
        fm = f(mid)
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    return (lo + hi) / 2


def _ray_crossing_mp(act: str, a, b, c, kappa, scale) -> list:
    """h₁ where a g(h₁) + b g(κh₁) = c (a teacher ray crossing a level-2 line of the K = 3 rule):
    brackets from the double search (`tie_cuts.ray_crossings`), bisection in mp."""
    from .activations import activation
    from .tie_cuts import ray_crossings
    f = lambda y: a * _g(act, y) + b * _g(act, kappa * y) - c  # noqa: E731
    return [_bisect_mp(f, x) for x in ray_crossings(activation(act), [(float(a), float(b), float(c))],
                                                    [float(kappa)], float(scale))]


def _argmax(z) -> int:
    best = 0
    for c in range(1, len(z)):
        if z[c] > z[best]:
            best = c
    return best


def _outer_nodes(n, cuts=()):
    """Genz nodes of η ~ N(0, 1) on the intervals between 0 and the `cuts`: [(η, weight)], the
    weights summing to each interval's mass."""
    u, uc, w = tanh_sinh01_mp(n)
    edges = [-mpmath.inf] + sorted({mpmath.mpf(0), *cuts}) + [mpmath.inf]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        out += [(x, wk * mass) for (x, mass), wk in zip(truncated_normal_nodes(lo, hi, u, uc), w)]
    return out


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
    for k in range(K):
        if not Q[k, k] > 0:           # h_k ≡ 0 and g(0) = 0
            continue
        labs = _labels_given(F, rows, None, [H[k]])
        sd = mpmath.sqrt(Q[k, k])
        for x, w in _outer_nodes(n):
            if w <= 0:
                continue
            h = sd * x
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
    L11 = mpmath.sqrt(Qm[0, 0])
    if K == 2:
        L21 = Qm[1, 0] / L11
        L22 = mpmath.sqrt(Qm[1, 1] - L21 ** 2)
        if not L22 > 0:
            raise ReachError("precision", "the mp errors of nonlinear trunks need a nonsingular Q (K = 2)")
    acc = [mpmath.mpf(0)] * 3     # Σ P(ȳ = ĉ), Σ P(y = ĉ), E[logsumexp z(h)]

    def logits_of(g):
        return [mpmath.fsum(V[c, k] * g[k] for k in range(K)) for c in range(Ct)]

    def logits(h):
        return logits_of([_g(act, x) for x in h])

    def decision(h):
        return _argmax(logits(h))

    def finish():
        tl = (acc[2] - _label_logits_mp(F, _vec(model.rows_nu(t)), H, V, act, Qm, LABEL_LOGIT_NODES)
              if loss else None)
        return _finish(acc, label, tl)

    if K == 3:
        def add(h, c_hat, weight):
            p_hat = _cone_given(*lab_clean[c_hat][:2], h, False)[0]                 # P(ȳ = ĉ | h)
            acc[0] += weight * p_hat
            if label:     # P(y = ĉ | h): the same as P(ȳ = ĉ | h) for a noiseless task
                acc[1] += weight * (p_hat if noiseless else _cone_given(*lab_noisy[c_hat][:2], h, False)[0])
            if loss:
                acc[2] += weight * _softmax(logits(h))[1]

        planes = []           # the teacher's steep layers: ties of E[λ_t | h] = A h (the same for ν_t)
        A = _Conditional(F, _vec(model.rows_lambda(t)), H).A
        for c, d in _tie_pairs(A.rows):
            planes.append([A[c, k] - A[d, k] for k in range(3)])
        _cut_rule_k3(act, Qm, V, planes, n, add, decision)
        return finish()

    # K ≤ 2: the innermost coordinate in closed form.  h = L η; given η₁ (K = 2) the decision is
    # constant between the student's tie cuts in η₂, and there u_ĉ | η ~ N(α η₁ + β η₂, S), so
    # the piece contributes Ψ(α η₁, hi) − Ψ(α η₁, lo) exactly (`_SlabCone`); K = 1 is the
    # same with no outer level (two pieces, h < 0 and h > 0).
    inner_sd = L22 if K == 2 else L11

    def slabs(labs):
        out = []
        for A, S, _ in labs:
            alpha = [A[i][0] * L11 + A[i][1] * L21 for i in range(len(A))] if K == 2 else [0] * len(A)
            beta = [A[i][K - 1] * inner_sd for i in range(len(A))]
            out.append((alpha, _SlabCone(beta, S)))
        return out
    slab_clean = slabs(lab_clean)
    slab_noisy = slabs(lab_noisy) if (label and not noiseless) else None
    u, uc, w = tanh_sinh01_mp(loss_nodes or n)

    def piece_probability(sl, c_hat, x1, lo, hi):
        alpha, psi = sl[c_hat]
        a = [al * x1 for al in alpha]
        return psi(a, hi) - psi(a, lo)

    def inner(x1, w1, cuts, mean2, h_outer):
        """The pieces of the innermost coordinate: exact label probabilities, and (with the
        loss) E[logsumexp z] by Genz / tanh–sinh nodes on each piece."""
        g_outer = [_g(act, x) for x in h_outer]     # once per outer node, not at every inner one
        for lo, hi, rep in _pieces(cuts, mean2, inner_sd):
            c_hat = _argmax(logits_of(g_outer + [_g(act, rep)]))
            p = piece_probability(slab_clean, c_hat, x1, lo, hi)
            acc[0] += w1 * p
            if label:
                acc[1] += w1 * (p if noiseless else piece_probability(slab_noisy, c_hat, x1, lo, hi))
            if loss:
                for (x2, mass), wk in zip(truncated_normal_nodes(lo, hi, u, uc), w):
                    if mass > 0:
                        g = g_outer + [_g(act, mean2 + inner_sd * x2)]
                        acc[2] += w1 * wk * mass * _softmax(logits_of(g))[1]

    if K == 1:
        inner(0, mpmath.mpf(1), {mpmath.mpf(0)}, mpmath.mpf(0), [])
        return finish()
    # outer cuts: η₁ = 0, and (tanh, erf) where a tie curve in h₂ comes in from ±∞,
    # |ΔV₀ g(h₁)/ΔV₁| = 1 — there the inner integral is smooth but far from analytic
    dvs = [(V[c, 0] - V[d, 0], V[c, 1] - V[d, 1]) for c, d in _tie_pairs(Ct)]
    outer = []
    kappas = []
    # the teacher's steep layers: ties of E[λ_t | h] and E[ν_t | h], lines h₂ = κh₁
    for rows in [model.rows_lambda(t)] + ([model.rows_nu(t)] if label else []):
        A = _Conditional(F, _vec(rows), H).A
        for c, d in _tie_pairs(A.rows):
            b0, b1 = A[c, 0] - A[d, 0], A[c, 1] - A[d, 1]
            if abs(b1) > mpmath.mpf(10) ** (-mpmath.mp.dps + 5) * max(abs(b0), abs(b1)):
                kappas.append(-b0 / b1)
    if act != "relu":
        for dv0, dv1 in dvs:
            if dv0 != 0 and dv1 != 0 and abs(dv1 / dv0) < 1:
                h1 = _g_inverse(act, abs(dv1 / dv0))
                outer += [h1 / L11, -h1 / L11]
            for kappa in kappas:       # a teacher line crossing a student tie curve
                for x in _crossings_mp(act, dv0, dv1, kappa, L11):
                    outer += [x / L11, -x / L11]
    for x1, w1 in _outer_nodes(n, outer):
        if w1 <= 0:
            continue
        h1 = L11 * x1
        g1 = _g(act, h1)
        cuts = {mpmath.mpf(0)} | ({_g_inverse(act, -dv0 * g1 / dv1) for dv0, dv1 in dvs if dv1 != 0} - {None})
        inner(x1, w1, cuts, L21 * x1, [h1])
    return finish()


def _finish(acc, label, test_loss):
    gen = 1 - acc[0]
    lab = (1 - acc[1]) if label else mpmath.nan
    return gen, lab, (mpmath.nan if test_loss is None else test_loss)


def _pieces(cuts, mean, sd):
    """The intervals between sorted ``cuts`` of h = mean + sd·x, as (lo, hi, rep) in x units
    with a representative h inside each (its decision is constant there); empty ones dropped."""
    edges = [-mpmath.inf] + sorted(cuts) + [mpmath.inf]
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        if not b > a:
            continue
        rep = (a + b) / 2 if (a != -mpmath.inf and b != mpmath.inf) else (b - 1 if a == -mpmath.inf else a + 1)
        lo = (a - mean) / sd if a != -mpmath.inf else a
        hi = (b - mean) / sd if b != mpmath.inf else b
        out.append((lo, hi, rep))
    return out


def _cut_rule_k3(act, Q, V, planes, n, add, decision):
    """The K = 3 cut rule in mp (the twin of `tie_cuts.nonlinear_errors_cut3`, see there): hidden
    units reordered so the innermost carries the ties, h = L η, three nested levels of Genz /
    tanh–sinh nodes on the pieces between exact cuts —
    η₁: 0 and g⁻¹ of every a₁ where two level-2 cut lines cross (`tie_cuts._crossings_a1`);
    η₂ given h₁: 0 and g⁻¹ of each level-2 line's a₂ (`tie_cuts._level2_lines`);
    η₃ given (h₁, h₂): 0, the student's ties g⁻¹(−(ΔV₁g₁ + ΔV₂g₂)/ΔV₃) and the teacher's
    steep planes b·h = 0.  ``add(h, ĉ, weight)`` accumulates at h in the model's unit order."""
    import numpy as np

    from .tie_cuts import (_TINY, _crossings_a1, _level2_lines, _merge, _teacher_lines, _unit_order,
                            nodes_for_weight)
    order = _unit_order(np.array([[float(V[c, k]) for k in range(3)] for c in range(V.rows)]))
    back = [order.index(k) for k in range(3)]
    Vp = [[V[c, k] for k in order] for c in range(V.rows)]
    Qp = mpmath.matrix([[Q[i, j] for j in order] for i in order])
    try:
        L = mpmath.cholesky(Qp)
    except ValueError:           # not positive definite: a singular Q
        L = mpmath.zeros(3, 3)
    if not min(L[k, k] for k in range(3)) > mpmath.mpf(10) ** (-mpmath.mp.dps // 2) * mpmath.sqrt(max(Qp[k, k] for k in range(3))):
        raise ReachError("precision", "the mp errors of nonlinear trunks need a nonsingular Q (K = 3)")
    Ct = len(Vp)
    dvs = [[Vp[c][k] - Vp[d][k] for k in range(3)] for c, d in _tie_pairs(Ct)]
    scale = max(abs(x) for dv in dvs for x in dv)
    slanted = [dv for dv in dvs if abs(dv[2]) > _TINY * scale]
    vert = [dv for dv in dvs if abs(dv[2]) <= _TINY * scale]
    planes = [[b[k] for k in order] for b in planes]
    planes = [b for b in planes if abs(b[2]) > _TINY * max(abs(x) for x in b)]
    lines = _level2_lines(slanted, vert, scale, act == "relu")
    tlines = _teacher_lines(planes, slanted, act == "relu")
    cuts1 = []
    if act != "relu":
        for a1 in _crossings_a1(lines + [(0, 1, 1), (0, 1, -1)]):
            h1 = _g_inverse(act, a1)
            if h1 is not None:
                cuts1.append(h1 / L[0, 0])
        rays = [p for p, _ in _teacher_lines(planes, slanted, False)]
        for a, b, c in lines:            # teacher rays h₂ = κh₁ crossing a level-2 line
            for kappa in rays:
                for x in _ray_crossing_mp(act, a, b, c, kappa, L[0, 0]):
                    cuts1.append(x / L[0, 0])
    n1, n2, n3 = (n, n, n) if isinstance(n, int) else n
    tol = mpmath.mpf(10) ** (-mpmath.mp.dps + 5)

    def level(cuts, mean, sd, weight, nodes):
        """(x, weight · node weight · piece mass, rep) on the pieces of this level, with the nodes
        per piece set by the piece's weight (`tie_cuts.nodes_for_weight`)."""
        for lo, hi, rep in _pieces(_merge(cuts, tol), mean, sd):
            _, mass = _truncated_normal(lo, hi, mpmath.mpf(0.5), mpmath.mpf(0.5))
            m = int(nodes_for_weight(float(weight * mass), nodes))
            if not m:
                continue
            u, uc, w = tanh_sinh01_mp(m, span_for_nodes(m))
            for (x, mass), wk in zip(truncated_normal_nodes(lo, hi, u, uc), w):
                if mass > 0:
                    yield x, weight * wk * mass, rep

    for x1, wt1, _ in level({mpmath.mpf(0)} | {L[0, 0] * c for c in cuts1}, 0, L[0, 0], mpmath.mpf(1), n1):
        h1 = L[0, 0] * x1
        g1 = _g(act, h1)
        cuts2 = {mpmath.mpf(0)} | ({_g_inverse(act, (c - a * g1) / b) for a, b, c in lines if b != 0} - {None})
        cuts2 |= {p * h1 + q * g1 for p, q in tlines}
        mean2 = L[1, 0] * x1
        for x2, wt2, _ in level(cuts2, mean2, L[1, 1], wt1, n2):
            h2 = mean2 + L[1, 1] * x2
            g2 = _g(act, h2)
            cuts3 = {mpmath.mpf(0)}
            cuts3 |= {_g_inverse(act, -(dv[0] * g1 + dv[1] * g2) / dv[2]) for dv in slanted} - {None}
            cuts3 |= {-(b[0] * h1 + b[1] * h2) / b[2] for b in planes}
            mean3 = L[2, 0] * x1 + L[2, 1] * x2
            rep_hat = {}
            for x3, wt3, rep in level(cuts3, mean3, L[2, 2], wt2, n3):
                if rep not in rep_hat:
                    hp = [h1, h2, rep]
                    rep_hat[rep] = decision([hp[b] for b in back])
                hp = [h1, h2, mean3 + L[2, 2] * x3]
                add([hp[b] for b in back], rep_hat[rep], wt3)

"""The errors and test loss of nonlinear trunks (K ≤ 2) at arbitrary precision.

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
  change).  Between consecutive cuts ĉ is constant (read off at an interior point) and the
  integrand is smooth — but steep, for a strong teacher, across the lines h₂ = κh₁ where two
  classes of E[λ_t | h] or E[ν_t | h] tie: those are cuts too, and where such a line crosses a
  student tie curve away from 0 the outer integrand has a kink, so η₁ is cut there as well
  (the crossing found in double, refined by bisection in mp).

Each piece is integrated by the Genz transform of the kernel (`mp_quadrature`: η_k a truncated
normal on its interval, tanh–sinh nodes on [0, 1]), so every integrand the rule sees is
analytic on its piece — no indicator is fed to a smooth rule.  The outer integrand over η₁ is
analytic between its cuts: 0, and for tanh / erf the points |ΔV₀ g(h₁)/ΔV₁| = 1 where a tie
curve enters from h₂ = ±∞ — there the inner integral changes by a Gaussian tail beyond
h₂ ≈ −½ log(1 − |x|), which vanishes with all its derivatives but so slowly (≈ e^{−(log δ)²/8})
that a rule across it converges like a low-order one (measured: 1e-5 between 24 and 32 nodes
without that cut); at an interval's end the tanh–sinh rule absorbs it.  Measured on the worst
of 240 random states (a strong tanh teacher): 1.4e-5 / 3e-9 / 1e-12 at 32 / 48 / 64 nodes with
the teacher cuts.

Cost: (outer cuts + 1) n outer nodes × (cuts + 1) n inner nodes, each one closed-form label
probability (mp Φ or Φ₂); n = 64 per level by default (ERROR_NODES), ≈ 6 s per task for K = 2.  K ≥ 3 (cut surfaces in 3 dimensions) is not
covered: `check_errors_mp` says so.
"""
from __future__ import annotations

import mpmath

from .model import TheoryModel
from .metrics import _crossings, _tie_pairs
from .mp_nonlinear import _Conditional, _cone_given, _labels_given, _softmax, _vec
from .mp_nonlinear import _g as _g_and_derivative
from .mp_pointwise import ACTIVATION_INVERSES
from .mp_quadrature import _truncated_normal, tanh_sinh01_mp

__all__ = ["nonlinear_metrics_mp", "check_errors_mp", "ERROR_NODES"]

ERROR_NODES = 64  # tanh–sinh nodes per level of the nested rule


def check_errors_mp(model: TheoryModel) -> None:
    if model.K > 2:
        raise NotImplementedError(f"the mp errors of nonlinear trunks cover K ≤ 2 (got K = {model.K}): "
                                  "for K ≥ 3 the student's decision regions are bounded by curved surfaces")
    if max(model.classes) > 3:
        raise NotImplementedError("the mp errors of nonlinear trunks cover C_t ≤ 3 (labels in closed form given h)")


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
    out = []
    for x in _crossings(activation(act), float(dv0), float(dv1), float(kappa), float(scale)):
        a, b = mpmath.mpf(x) * (1 - mpmath.mpf(10) ** -6), mpmath.mpf(x) * (1 + mpmath.mpf(10) ** -6)
        f = lambda y: dv0 * _g(act, y) + dv1 * _g(act, kappa * y)  # noqa: E731
        fa, fb = f(a), f(b)
        if fa * fb > 0:        # the double root was not bracketed this tightly: keep its value
            out.append(mpmath.mpf(x))
            continue
        for _ in range(int(3.5 * mpmath.mp.dps) + 10):
            mid = (a + b) / 2
            fm = f(mid)
            if (fm > 0) == (fa > 0):
                a, fa = mid, fm
            else:
                b = mid
        out.append((a + b) / 2)
    return out


def _argmax(z) -> int:
    best = 0
    for c in range(1, len(z)):
        if z[c] > z[best]:
            best = c
    return best


def _probabilities(labs, h):
    """P(y = c | h) for every class (the classes partition the space: the last is 1 − the rest)."""
    p = []
    for c, (A, S, _) in enumerate(labs):
        p.append(1 - mpmath.fsum(p) if c == len(labs) - 1 else _cone_given(A, S, h, False)[0])
    return p


def _outer_nodes(n, cuts=()):
    """Genz nodes of η ~ N(0, 1) on the intervals between 0 and the `cuts`: [(η, weight)], the
    weights summing to each interval's mass."""
    u, uc, w = tanh_sinh01_mp(n)
    edges = [-mpmath.inf] + sorted({mpmath.mpf(0), *cuts}) + [mpmath.inf]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        for k in range(n):
            x, mass = _truncated_normal(lo, hi, u[k], uc[k])
            out.append((x, w[k] * mass))
    return out


def nonlinear_metrics_mp(model: TheoryModel, st, C, t: int, nodes: int | None = None,
                         label: bool = True, loss: bool = True):
    """(gen_error, label_error, test_loss) of task t in mp for a nonlinear trunk with K ≤ 2.
    ``st``: mp state (Q, R, V); ``C``: the mp field covariance (nested lists)."""
    check_errors_mp(model)
    n = nodes or ERROR_NODES
    K, act = model.K, model.activation
    H = _vec(model.rows_h())
    V = st.V[t]
    Ct = V.rows
    lab_clean = _labels_given(C, _vec(model.rows_lambda(t)), None, H)
    lab_noisy = _labels_given(C, _vec(model.rows_nu(t)), None, H) if (label or loss) else None
    for labs in (lab_clean, lab_noisy or []):
        for _, S, _ in labs:
            if min(S[j, j] for j in range(S.rows)) <= mpmath.mpf(10) ** (-mpmath.mp.dps + 5):
                raise NotImplementedError("the mp errors of nonlinear trunks need labels that are not "
                                          "decided by h (a conditional label variance is zero here)")
    Qm = st.Q
    if not Qm[0, 0] > 0:
        raise NotImplementedError("the mp errors of nonlinear trunks need h₁ with nonzero variance "
                                  "(Q₁₁ = 0: the student's output is a tie, not a cut domain)")
    L11 = mpmath.sqrt(Qm[0, 0])
    if K == 2:
        L21 = Qm[1, 0] / L11
        L22 = mpmath.sqrt(Qm[1, 1] - L21 ** 2)
        if not L22 > 0:
            raise NotImplementedError("the mp errors of nonlinear trunks need a nonsingular Q (K = 2)")
    u, uc, w = tanh_sinh01_mp(n)
    acc = [mpmath.mpf(0)] * 3

    def add(h, c_hat, weight):
        g = [_g(act, x) for x in h]
        z = [mpmath.fsum(V[c, k] * g[k] for k in range(K)) for c in range(Ct)]
        p_clean = _probabilities(lab_clean, h)
        acc[0] += weight * p_clean[c_hat]
        if lab_noisy is not None:
            p = _probabilities(lab_noisy, h)
            if label:
                acc[1] += weight * p[c_hat]
            if loss:
                acc[2] += weight * (_softmax(z)[1] - mpmath.fsum(pc * zc for pc, zc in zip(p, z)))

    def decision(h):
        g = [_g(act, x) for x in h]
        return _argmax([mpmath.fsum(V[c, k] * g[k] for k in range(K)) for c in range(Ct)])

    # outer cuts: η₁ = 0, and (tanh, erf) where a tie curve in h₂ comes in from ±∞,
    # |ΔV₀ g(h₁)/ΔV₁| = 1 — there the inner integral is smooth but far from analytic
    dvs = [(V[c, 0] - V[d, 0], V[c, 1] - V[d, 1] if K == 2 else 0) for c, d in _tie_pairs(Ct)]
    outer = []
    kappas = []
    if K == 2:
        # the teacher's steep layers: ties of E[λ_t | h] and E[ν_t | h], lines h₂ = κh₁
        for rows in [model.rows_lambda(t)] + ([model.rows_nu(t)] if (label or loss) else []):
            A = _Conditional(C, _vec(rows), H).A
            for c, d in _tie_pairs(A.rows):
                b0, b1 = A[c, 0] - A[d, 0], A[c, 1] - A[d, 1]
                if abs(b1) > mpmath.mpf(10) ** (-mpmath.mp.dps + 5) * max(abs(b0), abs(b1)):
                    kappas.append(-b0 / b1)
    if K == 2 and act != "relu":
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
        if K == 1:
            add([h1], decision([mpmath.sign(x1)]), w1)
            continue
        g1 = _g(act, h1)
        cuts = {mpmath.mpf(0)} | {kappa * h1 for kappa in kappas}
        cuts |= {_g_inverse(act, -dv0 * g1 / dv1) for dv0, dv1 in dvs if dv1 != 0} - {None}
        cuts = sorted(cuts)
        edges = [-mpmath.inf] + cuts + [mpmath.inf]
        mean2 = L21 * x1
        for a, b in zip(edges[:-1], edges[1:]):
            if not b > a:
                continue
            rep = (a + b) / 2 if (a != -mpmath.inf and b != mpmath.inf) else (b - 1 if a == -mpmath.inf else a + 1)
            c_hat = decision([h1, rep])
            lo = (a - mean2) / L22 if a != -mpmath.inf else a
            hi = (b - mean2) / L22 if b != mpmath.inf else b
            for k in range(n):
                x2, mass = _truncated_normal(lo, hi, u[k], uc[k])
                if mass > 0:
                    add([h1, mean2 + L22 * x2], c_hat, w1 * w[k] * mass)
    gen = 1 - acc[0]
    lab = (1 - acc[1]) if label else mpmath.nan
    tl = acc[2] if loss else mpmath.nan
    return gen, lab, tl

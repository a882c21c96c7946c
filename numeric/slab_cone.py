"""The innermost coordinate of the errors of K ≤ 2 nonlinear trunks in closed form, in either
arithmetic (``rules``: `online.DoubleRules` or `mp_online.MpRules`, vectorised over pieces).

On a piece lo < η < hi of the innermost trunk coordinate η ~ N(0, 1) (the student's decision
fixed there, `tie_cuts.cut_rule_k2`) a label cone u > 0 (u of 1 or 2 dims) is Gaussian given η,
u | η ~ N(a + β η, S), so

    P(u > 0, lo < η < hi) = Ψ(a, hi) − Ψ(a, lo),   Ψ(a, b) = P(u > 0, w > 0),  w = b − η,

an orthant probability of (u, w) ~ N((a, b), Σ), Σ = [[S + ββᵀ, −β], [−βᵀ, 1]] — exact however
steep the labels are in η:

* one row: Φ₂ (`rules.cone2`);
* two rows: Plackett's identity along Σ(s) (the cross block −β scaled by s ∈ [0, 1]),

      Ψ = P(u > 0) Φ(b) + ∫_0^1 Σ_i (−β_i) φ₂(μ_i, b; B_i(s)) Φ(z_i(s)) ds,

  B_i(s) the covariance of (u_i, w) under Σ(s), z_i the standardised mean of the other row given
  u_i = w = 0.  The s-integrand is analytic up to Σ(s)'s singularity s* = 1/max|λ| > 1 (λ the
  eigenvalues of L⁻¹(Σ − Σ(0))L⁻ᵀ, Σ(0) = L Lᵀ), so Gauss–Legendre pieces graded toward s = 1 —
  [0, ½], [½, ¾], … while the gap to 1 exceeds s* − 1, then the rest — keep every piece its own
  width away from s*, and one node count serves all.  (Tanh–sinh pieces, `ar.rule01`, were
  measured too: 1e-9 at 16 nodes per piece, where Gauss–Legendre reaches 1e-20 at 10.)
  Everything but the means is fixed by (β, S): built once per class.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SlabCone", "PLACKETT_NODES"]

PLACKETT_NODES = 10   # Gauss–Legendre nodes per graded piece of the s-integral (two rows)


def _gauss_legendre01(ar, n: int):
    """The n-point Gauss–Legendre rule on [0, 1] in the arithmetic's numbers (NumPy's in double,
    mpmath's at the working precision)."""
    x, w = ar.legendre(n)
    return (x + 1) / 2, w / 2


def _graded_pieces(Sig) -> list:
    """[0, 1] in pieces graded toward 1 down to the distance of Σ(s)'s singularity (double: only
    the rule's layout is decided here, the numbers are the arithmetic's)."""
    Sig = np.asarray(Sig, float)
    S0 = Sig.copy()
    S0[:2, 2] = S0[2, :2] = 0
    Li = np.linalg.inv(np.linalg.cholesky(S0))
    top = np.abs(np.linalg.eigvalsh(Li @ (Sig - S0) @ Li.T)).max()
    s_star = 1 / top if top > 0 else np.inf
    edges = [0.0]
    while s_star - 1 < 1 - edges[-1] and 1 - edges[-1] > 1e-12:
        edges.append((1 + edges[-1]) / 2)
    return list(zip(edges, edges[1:] + [1.0]))


class SlabCone:
    """Ψ(a, b) = P(u > 0, η < b) (module docstring) for a (N × m) and b (N,) in ``rules``' numbers;
    ``beta`` (m,) and ``S`` (m × m) in them too, m = 1 or 2."""

    def __init__(self, rules, beta, S, per_piece: int = PLACKETT_NODES):
        ar = self.ar = rules.ar
        self.rules, m = rules, len(beta)
        self.Sa = [[S[i, j] + beta[i] * beta[j] for j in range(m)] for i in range(m)]   # Cov(u)
        self.beta = beta
        if m == 1:
            return
        sqrt = lambda x: ar.sqrt(np.array([x]))[0]   # noqa: E731
        Sig = [[*self.Sa[0], -beta[0]], [*self.Sa[1], -beta[1]], [-beta[0], -beta[1], ar.const(1)]]
        self.terms = []          # (i, k, weight · Σ_iw / 2π√det B, B⁻¹/2 entries, z_k coefficients)
        u, w = _gauss_legendre01(ar, per_piece)
        for lo, hi in _graded_pieces([[float(x) for x in r] for r in Sig]):
            lo, hi = ar.const(lo), ar.const(hi)
            for s, ws in zip(lo + (hi - lo) * u, (hi - lo) * w):
                for i, k in ((0, 1), (1, 0)):
                    siw, skw = s * Sig[i][2], s * Sig[k][2]
                    det = Sig[i][i] - siw * siw                    # B = [[Σ_ii, s Σ_iw], [s Σ_iw, 1]]
                    bi = (1 / det, -siw / det, Sig[i][i] / det)    # B⁻¹
                    g0, g1 = Sig[k][i] * bi[0] + skw * bi[1], Sig[k][i] * bi[1] + skw * bi[2]
                    t = 1 / sqrt(Sig[k][k] - g0 * Sig[k][i] - g1 * skw)
                    self.terms.append((i, k, ws * Sig[i][2] / (2 * ar.pi * sqrt(det)),
                                       (bi[0] / 2, bi[1], bi[2] / 2), (t, t * g0, t * g1)))
        prec = ar.precision() or 53
        self.cut = -(prec * 0.6931471805599453 + 10)      # exp below this: below the precision

    def _finite(self, a, b):
        r = self.rules
        one = r.scalar(1)
        if len(self.beta) == 1:
            return r.cone2(a[:, 0], b, self.Sa[0][0], -self.beta[0], one)
        Sa = self.Sa
        tot = r.cone2(a[:, 0], a[:, 1], Sa[0][0], Sa[0][1], Sa[1][1]) * r.cone1(b, one)
        for i, k, norm, (q00, q01, q11), (t, g0, g1) in self.terms:
            e = -(q00 * a[:, i] * a[:, i] + q01 * a[:, i] * b + q11 * b * b)
            live = np.nonzero(np.asarray(e > self.cut, bool))[0]
            if len(live):
                z = t * a[live, k] - g0 * a[live, i] - g1 * b[live]
                tot[live] = tot[live] + norm * r.exp(e[live]) * r.cone1(z, one)
        return tot

    def __call__(self, a, b):
        ar, r = self.ar, self.rules
        out = ar.zeros(len(b))
        up = np.asarray(b == ar.inf, bool)
        fin = np.nonzero(~up & ~np.asarray(b == -ar.inf, bool))[0]
        if up.any():        # P(u > 0), u ~ N(a, S + ββᵀ)
            Sa = self.Sa
            out[up] = (r.cone1(a[up, 0], Sa[0][0]) if len(self.beta) == 1
                       else r.cone2(a[up, 0], a[up, 1], Sa[0][0], Sa[0][1], Sa[1][1]))
        if len(fin):
            out[fin] = self._finite(a[fin], b[fin])
        return out

"""Closed forms of zero-mean Gaussian cone integrals (SymPy).

All argmax events of the model are cones {u > 0} of zero-mean Gaussian vectors u (no biases).

Orthant probabilities (Sheppard, Plackett):

    P(u > 0) = 1/2                                  (dim 1)
             = 1/4 + asin ρ₁₂ / 2π                   (dim 2)
             = 1/8 + (asin ρ₁₂ + asin ρ₁₃ + asin ρ₂₃) / 4π   (dim 3)

Linear fields in a cone, by Stein's lemma (ℓ jointly Gaussian with u, zero mean):

    E[1{u > 0} ℓ] = Σ_j Cov(ℓ, u_j) · φ(0)/√S_jj · P(u_{−j} > 0 | u_j = 0)

where the conditional vector u_{−j} | u_j = 0 is zero-mean with covariance
S_{−j,−j} − S_{−j,j} S_{j,−j} / S_jj, so the last factor is again an orthant probability, of one
dimension less.  Hence E[1{y_t = c} λ] and E[1{y_t = c} h] — the label terms of dR/dt and dQ/dt
for linear trunks — are closed forms whenever C_t ≤ 4.
"""
from __future__ import annotations

import sympy as sp

__all__ = ["orthant_probability", "stein_linear", "MAX_CLOSED_ORTHANT"]

MAX_CLOSED_ORTHANT = 3


def orthant_probability(S: sp.Matrix):
    """P(u > 0) for u ~ N(0, S), dim ≤ 3, as a SymPy expression (None above)."""
    m = S.shape[0]
    if m == 0:
        return sp.Integer(1)
    if m == 1:
        return sp.Rational(1, 2)
    if m > MAX_CLOSED_ORTHANT:
        return None

    def rho(i, j):
        return S[i, j] / sp.sqrt(S[i, i] * S[j, j])
    if m == 2:
        return sp.Rational(1, 4) + sp.asin(rho(0, 1)) / (2 * sp.pi)
    return sp.Rational(1, 8) + (sp.asin(rho(0, 1)) + sp.asin(rho(0, 2)) + sp.asin(rho(1, 2))) / (4 * sp.pi)


def stein_linear(S: sp.Matrix, C_lu: sp.Matrix):
    """E[1{u > 0} ℓ] for (u, ℓ) zero-mean Gaussian, S = Cov(u), C_lu = Cov(ℓ, u) (l × m).

    Returns an (l × 1) SymPy Matrix, or None when a conditional orthant exceeds dim 3."""
    m = S.shape[0]
    out = sp.zeros(C_lu.shape[0], 1)
    for j in range(m):
        others = [i for i in range(m) if i != j]
        if others:
            Sj = S.extract(others, others) - S.extract(others, [j]) * S.extract([j], others) / S[j, j]
            p = orthant_probability(Sj)
            if p is None:
                return None
        else:
            p = sp.Integer(1)
        out += C_lu[:, j] * (p / sp.sqrt(2 * sp.pi * S[j, j]))
    return out

"""Bivariate standard normal CDF Φ₂(a, b; ρ) = P(X < a, Y < b), vectorised over a, b (double).

The one special function of the label closed forms beyond Φ (the mp twin is
`mp_quadrature.bivariate_ncdf`, an independent evaluation at the working precision)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import ndtr, owens_t

__all__ = ["bivariate_normal_cdf"]


def _owen_bivariate_cdf(a, b, rho):
    """P(X < a, Y < b) by Owen's T:
    Φ₂ = ½(Φ(a) + Φ(b)) − T(a, (b − ρa)/(a√(1−ρ²))) − T(b, (a − ρb)/(b√(1−ρ²))) − β,
    β = ½ when a·b < 0 (or one is 0 and a + b < 0), else 0."""
    a = np.where(a == 0, 1e-300, a)
    b = np.where(b == 0, 1e-300, b)
    r = np.sqrt(max(1.0 - rho * rho, 1e-300))
    beta = np.where(a * b < 0, 0.5, 0.0)
    return 0.5 * (ndtr(a) + ndtr(b)) - owens_t(a, (b - rho * a) / (a * r)) \
        - owens_t(b, (a - rho * b) / (b * r)) - beta


@lru_cache(maxsize=256)
def _sheppard_nodes(rho: float):
    """Gauss–Legendre nodes of θ ∈ (0, asin ρ): (sin θ, 2cos²θ, weights/2π); more nodes as |ρ| → 1
    where the integrand peaks at θ → ±π/2 (measured vs Owen's T on 400 000 points, |a|, |b| ≤ 12
    uniform and N(0, 4): ≤ 1e-13 at each tier's largest |ρ| — 5, 7, 9, 12, 18 nodes up to |ρ| =
    0.3, 0.55, 0.7, 0.85, 0.95)."""
    r = abs(rho)
    n = 5 if r <= 0.3 else 7 if r <= 0.55 else 9 if r <= 0.7 else 12 if r <= 0.85 else 18
    x, w = np.polynomial.legendre.leggauss(n)
    half = 0.5 * np.arcsin(rho)
    th = half * (x + 1.0)
    return np.sin(th), 2.0 * np.cos(th) ** 2, half * w / (2.0 * np.pi)


def bivariate_normal_cdf(a, b, rho):
    """P(X < a, Y < b) for standard normals of correlation rho (one ρ, vectorised over a, b):
    Sheppard's formula Φ₂ = Φ(a)Φ(b) + (1/2π) ∫_0^{asin ρ} exp(−(a² + b² − 2ab sin θ)/(2cos²θ)) dθ
    by Gauss–Legendre in θ for |ρ| ≤ 0.95 (3× faster than Owen's T), Owen's T above."""
    rho = float(rho)
    if abs(rho) > 0.95:
        return _owen_bivariate_cdf(a, b, rho)
    sn, c2, w = _sheppard_nodes(round(rho, 15))
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    s = (a * a + b * b)[..., None]
    p = (2.0 * a * b)[..., None]
    return ndtr(a) * ndtr(b) + np.exp(-(s - p * sn) / c2) @ w

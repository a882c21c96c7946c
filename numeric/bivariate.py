"""Bivariate standard normal CDF Φ₂(a, b; ρ) = P(X < a, Y < b), written once over the number type
(`cone.DOUBLE`: vectorised over a, b; `cone.MP`: mpf at the working precision).

Sheppard's formula Φ₂ = Φ(a)Φ(b) + (1/2π) ∫_0^{asin ρ} exp(−(a² + b² − 2ab sin θ)/(2cos²θ)) dθ
by an n-point Gauss–Legendre rule in θ whose n follows ρ and the arithmetic's digits
(`sheppard_node_count`).  As |ρ| → 1 the integrand peaks at θ → ±π/2 and n grows; beyond the
arithmetic's cap (`MAX_NODES`) each type has its own route: Owen's T in double, the 1-d integral
∫_{−∞}^a φ(x) Φ((b − ρx)/√(1−ρ²)) dx by `mp.quad` in mp.  Accuracy: docs/PRECISION.md ("Φ₂")."""
from __future__ import annotations

import math

import mpmath
import numpy as np
from scipy.special import ndtr, owens_t

from .cone import DOUBLE

__all__ = ["bivariate_cdf", "bivariate_normal_cdf", "sheppard_node_count", "MAX_NODES"]

MAX_NODES = {"double": 28, "mp": 400}   # double: |ρ| ≈ 0.95 at 15 digits


def sheppard_node_count(rho, digits: int) -> int:
    """Gauss–Legendre nodes of Sheppard's sum for an error ≈ 10^-digits: its integrand, mapped to
    x ∈ [−1, 1] by θ = asin(ρ)(x + 1)/2, is analytic up to cos θ = 0, i.e. x* = π/|asin ρ| − 1, so
    the n-point rule converges like r^{−2n} with r = x* + √(x*² − 1) (the Bernstein ellipse through
    x*): n = ⌈1.25 (digits + 2)/log₁₀ r²⌉ + 2 (0 at ρ = 0; above any cap at |ρ| ≥ 1)."""
    r = abs(float(rho))
    if r == 0:
        return 0
    if r >= 1:
        return max(MAX_NODES.values()) + 1
    x = math.pi / math.asin(r) - 1
    rate = 2 * math.log10(x + math.sqrt(x * x - 1))
    return int(math.ceil(1.25 * (digits + 2) / rate)) + 2


_NODES: dict = {}


def _sheppard_nodes(ar, rho):
    """(sin θ_k, 1/(2cos²θ_k), w_k·asin(ρ)/4π) of one ρ in ``ar``'s numbers — one correlation serves
    every point of an integral, so they are computed once per ρ; None beyond the arithmetic's cap."""
    key = (ar.name, getattr(rho, "_mpf_", rho), ar.digits)   # (an mpf's own hash costs 8× its tuple's)
    out = _NODES.get(key, False)
    if out is False:
        n = sheppard_node_count(rho, ar.digits)
        out = None
        if n <= MAX_NODES[ar.name]:
            x, w = ar.legendre(n)
            half = ar.asin(rho) / 2
            st = ar.sin(half * (x + 1))
            out = st, 1 / (2 * (1 - st * st)), w * half / (2 * ar.pi)
        if len(_NODES) > 4096:
            _NODES.clear()
        _NODES[key] = out
    return out


def _owen(a, b, rho):
    """Φ₂ in double by Owen's T:
    Φ₂ = ½(Φ(a) + Φ(b)) − T(a, (b − ρa)/(a√(1−ρ²))) − T(b, (a − ρb)/(b√(1−ρ²))) − β,
    β = ½ when a·b < 0 (or one is 0 and a + b < 0), else 0."""
    a = np.where(a == 0, 1e-300, a)
    b = np.where(b == 0, 1e-300, b)
    r = np.sqrt(max(1.0 - rho * rho, 1e-300))
    beta = np.where(a * b < 0, 0.5, 0.0)
    return 0.5 * (ndtr(a) + ndtr(b)) - owens_t(a, (b - rho * a) / (a * r)) \
        - owens_t(b, (a - rho * b) / (b * r)) - beta


def _by_quadrature(a, b, rho):
    """Φ₂ in mp as ∫_{−∞}^a φ(x) Φ((b − ρx)/c) dx, c = √(1−ρ²), by `mp.quad` split where the inner
    Φ turns (x = b/ρ, over a width c)."""
    c = mpmath.sqrt(1 - rho * rho)
    f = lambda x: mpmath.npdf(x) * mpmath.ncdf((b - rho * x) / c)  # noqa: E731
    steep = b / rho
    pts = sorted({mpmath.mpf(0), steep - 10 * c, steep, steep + 10 * c})
    return mpmath.quad(f, [-mpmath.inf] + [x for x in pts if x < a] + [a])


_NEAR_ONE = {"double": _owen, "mp": _by_quadrature}


def bivariate_cdf(ar, a, b, rho):
    """P(X < a, Y < b) for standard normals of correlation ``rho`` (one ρ; a, b arrays in double,
    mpf in mp): Sheppard's sum (module docstring), or the arithmetic's route near |ρ| = 1."""
    rho = ar.scalar(rho)
    if rho == 0:
        return ar.ndtr(a) * ar.ndtr(b)
    nodes = _sheppard_nodes(ar, rho)
    if nodes is None:
        return _NEAR_ONE[ar.name](a, b, rho)
    sn, c, w = nodes
    s, p = (np.asarray(v, ar.dtype)[..., None] for v in (a * a + b * b, 2 * a * b))
    return ar.ndtr(a) * ar.ndtr(b) + ar.exp((p * sn - s) * c) @ w


def bivariate_normal_cdf(a, b, rho):
    """`bivariate_cdf` in double."""
    return bivariate_cdf(DOUBLE, a, b, rho)

"""What the cone-expectation kernel needs at arbitrary precision (mpmath) beyond `cone.MP`'s
arithmetic: the node sets and special functions of the working precision.

`quadrature.cone_expectation` runs in `cone.MP` (object arrays of mpf at ``mp.dps`` digits) with
`mp_rule`'s keywords: a product rule of a fixed count per dimension (`DEFAULT_NODES`; more
dimensions than it covers are refused) — tanh–sinh nodes on [0, 1] for the Genz coordinates
(`tanh_sinh01_mp`: `cone.tanh_sinh01` at this precision, its span following the node count),
Gauss–Hermite nodes from ``mp.gauss_quadrature`` for the smooth ones (`gauss_hermite_mp`).  Φ
(`ncdf`), Φ⁻¹ (`ndtri_mp`: Halley on Φ from the double quantile, since erfinv(2p − 1) loses every
digit of p ≪ 1) and Φ₂ (`bivariate_ncdf`, Sheppard's formula).  Cost and accuracy:
docs/PRECISION.md ("The mp kernel").
"""
from __future__ import annotations

import math
from functools import lru_cache

import mpmath
import numpy as np
from scipy.special import ndtri

from .cone import MP, gaussian_factor, tanh_sinh01
from .workers import mp_executor

mp = mpmath.mp

__all__ = ["mp_factor", "mp_rule", "ncdf", "ndtri_mp", "bivariate_ncdf", "gauss_hermite_mp", "span_for_nodes", "tanh_sinh01_mp",
           "to_mp", "DEFAULT_NODES"]

DEFAULT_NODES = {0: 1, 1: 64, 2: 40, 3: 20, 4: 12}
to_mp = MP.to_mp        # floats / nested lists / mpmath matrices to mpf (`cone.MP`)


def ncdf(x):
    """Φ(x) with full relative accuracy in the lower tail."""
    if x == mpmath.inf:
        return mpmath.mpf(1)
    if x == -mpmath.inf:
        return mpmath.mpf(0)
    return mpmath.erfc(-x / mpmath.sqrt(2)) / 2


@lru_cache(maxsize=None)
def _gl(n: int, dps: int):
    with mpmath.workdps(dps + 10):
        X, W = mp.gauss_quadrature(n, "legendre")
    return tuple(+x for x in X), tuple(+w for w in W)


def bivariate_ncdf(a, b, rho):
    """Φ₂(a, b; ρ) = P(X < a, Y < b) for standard normals of correlation ρ, in mp.

    Sheppard's formula Φ₂ = Φ(a)Φ(b) + (1/2π) ∫_0^{asin ρ} exp(−(a² + b² − 2ab sin θ)/(2cos²θ)) dθ
    by an n-point Gauss–Legendre rule in mp whose n follows ρ and the working precision
    (`sheppard_node_count`), and for |ρ| so near 1 that n would exceed SHEPPARD_MAX_NODES the
    1-d integral ∫_{−∞}^a φ(x) Φ((b − ρx)/√(1−ρ²)) dx by `mp.quad` (slower)."""
    a, b, rho = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(rho)
    if rho == 0:
        return ncdf(a) * ncdf(b)
    nodes = _sheppard_nodes_mp(rho, mp.dps)
    if nodes is None:
        c = mpmath.sqrt(1 - rho * rho)
        f = lambda x: mpmath.npdf(x) * ncdf((b - rho * x) / c)  # noqa: E731
        steep = b / rho          # where the inner Φ turns, over a width √(1−ρ²)
        pts = sorted({mpmath.mpf(0), steep - 10 * c, steep, steep + 10 * c})
        return mpmath.quad(f, [-mpmath.inf] + [x for x in pts if x < a] + [a])
    s, p = a * a + b * b, 2 * a * b
    tot = mpmath.mpf(0)
    for st, c, w in nodes:
        tot += w * mpmath.exp((p * st - s) * c)
    return ncdf(a) * ncdf(b) + tot


SHEPPARD_MAX_NODES = 400


def sheppard_node_count(rho, dps: int) -> int:
    """Gauss–Legendre nodes of `bivariate_ncdf` for an error ≈ 10^-dps: Sheppard's integrand,
    mapped to x ∈ [−1, 1] by θ = asin(ρ)(x + 1)/2, is analytic up to cos θ = 0, i.e.
    x* = π/|asin ρ| − 1, so the n-point rule converges like r^{−2n} with r = x* + √(x*² − 1)
    (the Bernstein ellipse through x*): n = ⌈1.25 (dps + 2)/log₁₀ r²⌉ + 2.  Measured against
    50-digit `mp.quad` on 13 (a, b) per ρ, |ρ| from 0.1 to 0.99999, dps 15 to 40: error
    ≤ 3 × 10^-(dps+1) (e.g. dps 20: 15 nodes at ρ = 0.5, 54 at 0.99, 299 at 0.99999)."""
    r = abs(float(rho))
    if r == 0:
        return 0
    if r >= 1:
        return SHEPPARD_MAX_NODES + 1
    x = math.pi / math.asin(r) - 1
    rate = 2 * math.log10(x + math.sqrt(x * x - 1))
    return int(math.ceil(1.25 * (dps + 2) / rate)) + 2


_SHEPPARD_CACHE: dict = {}


def _sheppard_nodes_mp(rho, dps: int):
    """The nodes of `bivariate_ncdf` for one ρ: (sin θ_k, 1/(2cos²θ_k), w_k·asin(ρ)/4π) — one
    correlation serves every point of an integral (the conditional label covariance is fixed),
    so the sines are computed once per ρ rather than at every call.  None where the rule would
    need more than SHEPPARD_MAX_NODES."""
    key = (rho, dps)
    out = _SHEPPARD_CACHE.get(key, False)
    if out is False:
        n = sheppard_node_count(rho, dps)
        if n > SHEPPARD_MAX_NODES:
            _SHEPPARD_CACHE[key] = None
            return None
        X, W = _gl(n, dps)
        half = mpmath.asin(rho) / 2
        out = []
        for x, w in zip(X, W):
            st = mpmath.sin(half * (x + 1))
            out.append((st, 1 / (2 * (1 - st * st)), w * half / (2 * mpmath.pi)))
        if len(_SHEPPARD_CACHE) > 4096:
            _SHEPPARD_CACHE.clear()
        _SHEPPARD_CACHE[key] = out
    return out


def ndtri_mp(q):
    """Φ⁻¹(q) for 0 < q ≤ 1/2 (Halley on Φ from the double quantile); relative accuracy mp.eps.

    Halley converges cubically, the error after a step δ being ≈ K δ³ with |K| ≤ (1 + x²)/2
    (from Φ″ = −xφ, Φ‴ = (x² − 1)φ), so the loop stops once that bound is below the
    tolerance — at dps ≤ 40 one step from the double start, where confirming it by a second
    step cost a second Φ per quantile."""
    if q <= 0:
        return -mpmath.inf
    qf = float(q)
    if qf > 1e-300:
        x = mpmath.mpf(float(ndtri(qf)))
    else:  # asymptotic start: Φ(x) ≈ φ(x)/|x|
        L = -mpmath.log(q)
        x = -mpmath.sqrt(2 * L - mpmath.log(4 * mpmath.pi * L))
    tol = mpmath.mpf(2) ** (-mp.prec + 4)
    for _ in range(60):
        pdf = mpmath.exp(-x * x / 2) / mpmath.sqrt(2 * mpmath.pi)
        step = (ncdf(x) - q) / pdf
        # Halley correction (Φ'' = −x φ) keeps the tails fast
        step = step / (1 + x * step / 2)
        x -= step
        if abs(step) <= tol * (1 + abs(x)) or (1 + x * x) * abs(step) ** 3 <= tol * (1 + abs(x)) / 64:
            break
    return x


@lru_cache(maxsize=None)
def _gh(n: int, dps: int):
    with mpmath.workdps(dps + 10):
        X, W = mp.gauss_quadrature(n, "hermite")
        s2 = mpmath.sqrt(2)
        sp = mpmath.sqrt(mpmath.pi)
        x = [X[i] * s2 for i in range(n)]
        w = [W[i] / sp for i in range(n)]
        tot = mpmath.fsum(w)
        w = [wi / tot for wi in w]
    return tuple(+xi for xi in x), tuple(+wi for wi in w)


def gauss_hermite_mp(n: int):
    """n-point rule for E[f(x)], x ~ N(0, 1), in mp (weights sum to 1)."""
    return _gh(n, mp.dps)


@lru_cache(maxsize=None)
def _ts(n: int, dps: int, span: int):
    """`cone.tanh_sinh01` at dps + 10 digits with its nodes out to where 1 − u ≈ 10^-span,
    exp(−π sinh t_max) = 10^-span, rounded to dps digits: (u, 1 − u, w) as read-only object arrays."""
    with mpmath.workdps(dps + 10):
        rule = tanh_sinh01(MP, n, mpmath.asinh(span * mpmath.log(10) / mpmath.pi))
    out = tuple(np.array([+x for x in v], dtype=object) for v in rule)
    for v in out:
        v.setflags(write=False)
    return out


def span_for_nodes(n: int) -> int:
    """The tanh–sinh span that n nodes can resolve: nodes out to 10^-(5n/8) from the ends
    (≥ 10^-4) — about where the n-point rule's discretisation error meets its truncation
    error (step h = 2 t_max/(n − 1) with t_max = asinh(span · ln 10/π): e^{−π²/h} ≈ 10^-span
    near span ≈ 5n/8 for n = 16 to 32; for larger n a little beyond)."""
    return max(4, (5 * n) // 8)


def tanh_sinh01_mp(n: int, span: int | None = None):
    """n-point tanh–sinh rule on [0, 1] in mp: (u, 1 − u, weights summing to 1).  Its nodes reach
    10^-span from the ends, by default 10^-min(dps, `span_for_nodes`(n)): a span beyond what n
    nodes resolve spreads them thinner for nothing (the mass it leaves out is ~10^-span), which
    made a 24-node mp integral less accurate at dps 30 than at dps 20."""
    return _ts(n, mp.dps, span if span is not None else min(mp.dps, span_for_nodes(n)))


def mp_factor(cov, tol=None):
    """F (n × d lists of mpf, d = numerical rank) with F Fᵀ = cov (`cone.gaussian_factor`, mp.eigsy)."""
    return gaussian_factor(MP, MP.rows(cov), tol).tolist() if len(cov) else []


def mp_rule(cone_rows, fn, nodes=None, processes=1) -> dict:
    """`quadrature.cone_expectation`'s keywords for the mp product rule: ``ar=MP``, ``nodes`` points per
    integrated dimension (default `DEFAULT_NODES` by dimension; one count for all, or a dict over the
    default), the executor of ``processes`` (`workers.mp_executor`: 1, 2 or an executor, which tallies
    the rule's points), and a cone of two rows with an integrand ``fn`` integrated as its two halves
    when wider than 90° (`cone.wide_sector_halves`; at fixed node counts the wide sector stalls)."""
    rows = cone_rows[0] if isinstance(cone_rows, tuple) else cone_rows
    table = {d: int(nodes) for d in DEFAULT_NODES} if isinstance(nodes, (int, float)) else {**DEFAULT_NODES, **(nodes or {})}
    return dict(ar=MP, nodes=table, executor=mp_executor(processes),
                split_wide=fn is not None and rows is not None and len(rows) == 2)

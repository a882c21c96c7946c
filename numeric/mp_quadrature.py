"""What the cone-expectation kernel needs at arbitrary precision (mpmath) beyond `cone.MP`'s
arithmetic: the node sets and special functions of the working precision.

`cone_expectation_mp` is `quadrature.cone_expectation` executed in `cone.MP` (object arrays of
mpf at ``mp.dps`` digits) with this module's rules: tanh–sinh nodes on [0, 1] for the Genz
coordinates (`tanh_sinh01_mp`, carrying u and 1 − u), Gauss–Hermite nodes from
``mp.gauss_quadrature`` for the smooth ones (`gauss_hermite_mp`), a fixed count per dimension
(`DEFAULT_NODES`; more dimensions than it covers are refused).  Φ (`ncdf`), Φ⁻¹ (`ndtri_mp`:
Halley on Φ from the double quantile, since erfinv(2p − 1) loses every digit of p ≪ 1), the
truncated-normal quantile (`truncated_normal_nodes`, each tail through complements, so no
probability near 1 is formed) and Φ₂ (`bivariate_ncdf`, Sheppard's formula).  Cost and
accuracy: docs/PRECISION.md ("The mp kernel").
"""
from __future__ import annotations

import math
from functools import lru_cache

import mpmath
import numpy as np
from scipy.special import ndtri

from .cone import MP, gaussian_factor
from .quadrature import ConeResult, cone_expectation
from .workers import mp_executor

mp = mpmath.mp

__all__ = ["mp_factor", "cone_expectation_mp", "ncdf", "ndtri_mp", "bivariate_ncdf", "gauss_hermite_mp", "span_for_nodes", "tanh_sinh01_mp", "to_mp", "DEFAULT_NODES"]

DEFAULT_NODES = {0: 1, 1: 64, 2: 40, 3: 20, 4: 12}
to_mp, _obj = MP.to_mp, MP.rows        # floats / nested lists / mpmath matrices to mpf (`cone.MP`)


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
def _ts(n: int, dps: int, span: int | None = None):
    with mpmath.workdps(dps + 10):
        # nodes out to where 1 − u ≈ 10^-span (default 10^-dps): exp(−π sinh t) = 10^-span
        tmax = mpmath.asinh((span or dps) * mpmath.log(10) / mpmath.pi)
        h = 2 * tmax / (n - 1) if n > 1 else mpmath.mpf(1)
        xs, xcs, ws = [], [], []
        for k in range(n):
            t = -tmax + k * h if n > 1 else mpmath.mpf(0)
            s = mpmath.pi / 2 * mpmath.sinh(t)
            xs.append(1 / (1 + mpmath.exp(-2 * s)))
            xcs.append(1 / (1 + mpmath.exp(2 * s)))
            ws.append(h * mpmath.pi / 4 * mpmath.cosh(t) / mpmath.cosh(s) ** 2)
        tot = mpmath.fsum(ws)
        ws = [w / tot for w in ws]
    return tuple(+x for x in xs), tuple(+x for x in xcs), tuple(+w for w in ws)


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


def truncated_normal_nodes(lo, hi, us, ucs) -> list:
    """[(x_k, mass)]: P(X < x_k | lo < X < hi) = u_k for X ~ N(0, 1), mass = P(lo < X < hi), for
    every u_k of a rule (uc_k = 1 − u_k); the interval's probabilities are formed once.

    Works on the side of the interval nearer 0's lower tail, so that no probability is formed
    as 1 − (something small).  An empty interval (lo ≥ hi: a cone of more rows than dimensions,
    empty at this node) has mass 0."""
    zero = mpmath.mpf(0)
    if lo >= hi:
        return [(lo, zero)] * len(us)
    if lo > 0:  # mirror: X' = −X ∈ (−hi, −lo), P(X' < −x) = 1 − u
        return [(-x, m) for x, m in truncated_normal_nodes(-hi, -lo, ucs, us)]
    a = ncdf(lo)
    if hi > 0:
        bc = ncdf(-hi)
        mass = 1 - bc - a
    else:
        bc = None
        mass = ncdf(hi) - a
    if mass <= 0:
        return [(lo if lo != -mpmath.inf else hi, zero)] * len(us)
    half = mpmath.mpf(1) / 2
    out = []
    for u, uc in zip(us, ucs):
        q = a + u * mass
        if q <= half or bc is None:
            x = ndtri_mp(q) if q <= half else -ndtri_mp(1 - q)
        else:
            x = -ndtri_mp(bc + uc * mass)
        out.append((min(max(x, lo), hi), mass))
    return out


def _pointwise(fn):
    """An integrand of one point (a list of mpf to (list, list or None)) in the reducing protocol
    of `quadrature.cone_expectation`: called at every point, (Σ weight·φ, weight·γ) summed in order."""
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


def cone_expectation_mp(factor, cone_rows, proj_rows, fn, lin_rows=None, *, nodes=None,
                        skip_last_cone: bool = False, closed: bool = True,
                        split_wide: bool = True, processes: int = 1, part=None,
                        batch: bool = False, reduce: bool = False) -> ConeResult:
    """E[1{A f > 0} φ(P f)] and E[1{A f > 0} γ(P f) (L f)ᵀ] in mp: `quadrature.cone_expectation`
    in the `cone.MP` arithmetic (object arrays of mpf), its product rule of tanh–sinh nodes on the
    cone coordinates and Gauss–Hermite on the smooth ones at the working precision (see the
    module docstring); the `quadrature.ConeResult` of object arrays of mpf.

    ``factor``: F (n × d nested lists of mpf, e.g. from `mp_factor`); rows act on the n fields
    (numpy arrays or nested lists; floats convert exactly).  ``nodes``: points per integrated
    dimension (default `DEFAULT_NODES` by dimension), or a dict {dim: n}.  ``fn=None``: a pure
    cone probability (closed form for ≤ 3 nonsingular rows when ``closed``).  ``split_wide``:
    a two-row cone wider than 90° is integrated as its two halves (`cone.wide_sector_halves`).
    ``part=(i, m)``: only every m-th point from the i-th (the parts of an integral add up to it);
    ``processes``: with 2, half the points in a forked process (`workers.ForkedPair.split`) where
    the product rule is worth it (`workers.PARALLEL_MIN_POINTS` points or more); an executor
    (`workers.mp_executor`) is used as it is and tallies the rule's n^d points.  ``batch``: ``fn``
    takes all points at once, an (npts × p) object array, and returns (npts × q) object arrays (the
    double path's integrand protocol); with ``reduce`` it takes the weights too and returns
    (Σ weight·Φ, weight·Γ) itself; else ``fn(p)`` takes one point (a list) and returns lists."""
    table = {d: int(nodes) for d in DEFAULT_NODES} if isinstance(nodes, (int, float)) else \
        {**DEFAULT_NODES, **(nodes or {})}
    rows = cone_rows[0] if isinstance(cone_rows, tuple) else cone_rows
    two_rows = rows is not None and len(rows) == 2
    return cone_expectation(MP.rows(factor), cone_rows, proj_rows, fn if batch or fn is None else _pointwise(fn),
                            lin_rows, ar=MP, nodes=table, skip_last_cone=skip_last_cone, closed=closed,
                            split_wide=split_wide and fn is not None and two_rows, executor=mp_executor(processes),
                            node_part=part, reduce=reduce or not batch)

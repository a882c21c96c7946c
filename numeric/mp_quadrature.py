"""What the cone-expectation kernel needs at arbitrary precision (mpmath) beyond `cone.MP`'s
arithmetic: the node sets and special functions of the working precision.

`quadrature.cone_expectation` runs in `cone.MP` (object arrays of mpf at ``mp.dps`` digits) with
`mp_rule`'s keywords: a product rule of a fixed count per dimension (`DEFAULT_NODES`; more
dimensions than it covers are refused) — tanh–sinh nodes on [0, 1] for the Genz coordinates
(`tanh_sinh01_mp`: `cone.tanh_sinh01` at this precision, its span following the node count),
Gauss–Hermite nodes from ``mp.gauss_quadrature`` for the smooth ones (`gauss_hermite_mp`).  Φ
(`ncdf`), Φ⁻¹ (`ndtri_mp`: Halley on Φ from the double quantile, since erfinv(2p − 1) loses every
digit of p ≪ 1) and Gauss–Legendre nodes (`gauss_legendre`; Φ₂ is `bivariate`'s).  Cost and accuracy:
docs/PRECISION.md ("The mp kernel").
"""
from __future__ import annotations

from functools import lru_cache

import mpmath
import numpy as np
from scipy.special import ndtri

from .cone import MP, tanh_sinh01
from .workers import mp_executor

mp = mpmath.mp

__all__ = ["mp_rule", "ncdf", "ndtri_mp", "gauss_legendre", "gauss_hermite_mp", "span_for_nodes", "tanh_sinh01_mp", "DEFAULT_NODES"]

DEFAULT_NODES = {0: 1, 1: 64, 2: 40, 3: 20, 4: 12}


def ncdf(x):
    """Φ(x) with full relative accuracy in the lower tail."""
    if x == mpmath.inf:
        return mpmath.mpf(1)
    if x == -mpmath.inf:
        return mpmath.mpf(0)
    return mpmath.erfc(-x / mpmath.sqrt(2)) / 2


@lru_cache(maxsize=None)
def gauss_legendre(n: int, dps: int):
    """The n-point Gauss–Legendre rule on [−1, 1] from ``mp.gauss_quadrature`` at dps + 10 digits."""
    with mpmath.workdps(dps + 10):
        X, W = mp.gauss_quadrature(n, "legendre")
    return tuple(+x for x in X), tuple(+w for w in W)


def ndtri_mp(q):
    """Φ⁻¹(q) for 0 < q ≤ 1/2 (Halley on Φ from the double quantile); relative accuracy mp.eps.
    The error after a step δ is ≈ K δ³, |K| ≤ (1 + x²)/2, so the loop stops once that bound is
    below the tolerance (docs/PRECISION.md, "The mp kernel")."""
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
    """The tanh–sinh span that n nodes can resolve, 10^-(5n/8) from the ends (≥ 10^-4): where the
    discretisation error e^{−π²/h} (h = 2 t_max/(n − 1)) meets the truncation error (docs/PRECISION.md)."""
    return max(4, (5 * n) // 8)


def tanh_sinh01_mp(n: int):
    """n-point tanh–sinh rule on [0, 1] in mp: (u, 1 − u, weights summing to 1), its nodes
    reaching 10^-min(dps, `span_for_nodes`(n)) from the ends."""
    return _ts(n, mp.dps, min(mp.dps, span_for_nodes(n)))


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

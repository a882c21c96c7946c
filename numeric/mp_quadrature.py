"""The cone kernel's rules at arbitrary precision: `mp_rule`, the keywords that run
`quadrature.cone_expectation` in `cone.MP` (a product rule of `DEFAULT_NODES` per dimension),
and the node sets and special functions of the working precision (`cone.MP` takes them from
here). Node policies and their measurements: docs/PRECISION.md ("The mp kernel").
"""
from __future__ import annotations

from functools import lru_cache

import mpmath
import numpy as np
from scipy.special import ndtri

from .cone import MP, tanh_sinh01
from .workers import mp_executor

__all__ = ["mp_rule", "ncdf", "ndtri_mp", "gauss_rule", "tanh_sinh01_mp", "DEFAULT_NODES"]

DEFAULT_NODES = {0: 1, 1: 64, 2: 40, 3: 20, 4: 12}


def ncdf(x):
    """Φ(x) = erfc(−x/√2)/2: full relative accuracy in the lower tail."""
    return mpmath.erfc(-x / mpmath.sqrt(2)) / 2


def ndtri_mp(q):
    """Φ⁻¹(q) for 0 < q ≤ 1/2: Halley's step δ = r/(1 + xr/2), r = (Φ(x) − q)/φ(x), from the double
    quantile (or Φ(x) ≈ φ(x)/|x| below 1e-300), until the cubic error bound (1 + x²)|δ|³/2 is below
    the working precision (relative accuracy mp.eps)."""
    if q <= 0:
        return -mpmath.inf
    if float(q) > 1e-300:
        x = mpmath.mpf(float(ndtri(float(q))))
    else:
        L = -mpmath.log(q)
        x = -mpmath.sqrt(2 * L - mpmath.log(4 * mpmath.pi * L))
    tol = mpmath.mpf(2) ** (-mpmath.mp.prec + 4)
    for _ in range(60):
        step = (ncdf(x) - q) / (mpmath.exp(-x * x / 2) / mpmath.sqrt(2 * mpmath.pi))
        step = step / (1 + x * step / 2)
        x -= step
        if abs(step) <= tol * (1 + abs(x)) or (1 + x * x) * abs(step) ** 3 <= tol * (1 + abs(x)) / 64:
            break
    return x


@lru_cache(maxsize=None)
def gauss_rule(kind: str, n: int, dps: int):
    """``mp.gauss_quadrature``'s n-point rule at dps + 10 digits, rounded to dps: "legendre" on
    [−1, 1]; "hermite" for E[f(x)], x ~ N(0, 1) (nodes ×√2, weights normalised to sum 1)."""
    with mpmath.workdps(dps + 10):
        X, W = mpmath.mp.gauss_quadrature(n, kind)
        if kind == "hermite":
            tot = mpmath.fsum(W)
            X, W = [x * mpmath.sqrt(2) for x in X], [w / tot for w in W]
    return tuple(+x for x in X), tuple(+w for w in W)


@lru_cache(maxsize=None)
def tanh_sinh01_mp(n: int, dps: int):
    """`cone.tanh_sinh01` at dps + 10 digits, rounded to dps, as read-only object arrays (u, 1 − u, w):
    its nodes reach 10^-span from the ends (exp(−π sinh t_max) = 10^-span), span = min(dps, max(4,
    ⌊5n/8⌋)), where the rule's discretisation error meets its truncation error."""
    span = min(dps, max(4, (5 * n) // 8))
    with mpmath.workdps(dps + 10):
        rule = tanh_sinh01(MP, n, mpmath.asinh(span * mpmath.log(10) / mpmath.pi))
    out = tuple(np.array([+x for x in v], dtype=object) for v in rule)
    for v in out:
        v.setflags(write=False)
    return out


def mp_rule(cone_rows, fn, nodes=None, processes=1) -> dict:
    """`quadrature.cone_expectation`'s keywords for the mp product rule: ``ar=MP``, ``nodes`` per
    integrated dimension (one count, or a dict over `DEFAULT_NODES`), the executor of ``processes``
    (`workers.mp_executor`, which tallies the points), and a two-row cone with an integrand split
    into its halves when wider than 90° (`cone.wide_sector_halves`)."""
    rows = cone_rows[0] if isinstance(cone_rows, tuple) else cone_rows
    table = {d: int(nodes) for d in DEFAULT_NODES} if isinstance(nodes, (int, float)) else {**DEFAULT_NODES, **(nodes or {})}
    return dict(ar=MP, nodes=table, executor=mp_executor(processes),
                split_wide=fn is not None and rows is not None and len(rows) == 2)

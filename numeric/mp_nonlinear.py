"""The mp route over the trunk fields h of a nonlinear trunk (relu, erf, tanh), `mp_online.MpRules`:

- relu: the 2^K sign orthants of h at its kink (Genz coordinates, tanh–sinh nodes, mp);
- tanh, erf: one Gauss–Hermite product rule over all of h while the spread of h is small, the
  orthant split once that rule's model error exceeds SPLIT_TOL (`one_rule_error`; measurements in
  docs/PRECISION.md).
"""
from __future__ import annotations

import mpmath

from .mp_pointwise import ACTIVATION_PAIRS
from .mp_quadrature import DEFAULT_NODES, gauss_hermite_mp, tanh_sinh01_mp, truncated_normal_nodes
from .online import _orthant_signs

__all__ = ["sign_patterns", "one_rule_error", "SPLIT_TOL"]

SPLIT_TOL = 1e-8   # the one-rule route's largest model error (`one_rule_error`) before the split is taken


def one_rule_error(act: str, spread, n: int):
    """Relative error of the n-point Gauss–Hermite rule over all of h on the model integral
    E[g′(s z)²], z ~ N(0, 1), s = ``spread`` (g′² is the sharpest factor of the integrands; its
    scale in h is 1 whatever Q is), against the sign-orthant split at 2n nodes (Genz coordinates,
    tanh–sinh)."""
    f = lambda x: ACTIVATION_PAIRS[act](spread * x)[1] ** 2   # noqa: E731
    x, w = gauss_hermite_mp(n)
    one = mpmath.fsum(wi * f(xi) for xi, wi in zip(x, w))
    u, uc, wt = tanh_sinh01_mp(2 * n)
    split = mpmath.mpf(0)
    for lo, hi in ((mpmath.mpf(0), mpmath.inf), (-mpmath.inf, mpmath.mpf(0))):
        split += mpmath.fsum(wk * m * f(y) for (y, m), wk in zip(truncated_normal_nodes(lo, hi, u, uc), wt))
    return abs(one / split - 1)


def sign_patterns(act: str, C, rows, nodes, split_smooth: bool | None = None) -> list:
    """The sign patterns of the trunk fields ``rows`` (lists of mpf on the fields of covariance ``C``)
    to integrate over separately: all of them (`online._orthant_signs`) for relu, with
    ``split_smooth``, or by default where the one-rule route's model error at the fields' largest
    spread exceeds SPLIT_TOL (at the nodes `cone_expectation_mp` takes for len(rows) dimensions);
    else [()], one rule over all of h."""
    n = len(rows)
    if act != "relu" and split_smooth is None:
        dims = DEFAULT_NODES[n] if nodes is None else nodes.get(n, DEFAULT_NODES[n]) if isinstance(nodes, dict) else int(nodes)
        var = max(mpmath.fsum(r[i] * C[i][j] * r[j] for i in range(len(C)) for j in range(len(C))) for r in rows)
        split_smooth = one_rule_error(act, mpmath.sqrt(var), dims) > SPLIT_TOL
    return _orthant_signs(n) if act == "relu" or split_smooth else [()]

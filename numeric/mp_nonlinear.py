"""The online right-hand side of nonlinear trunks (relu, erf, tanh) at arbitrary precision: the
double path's term code (`online._nonlinear_part`) executed by `mp_online.MpRules`, with the mp
route over the trunk fields h decided here.

- relu: the 2^K sign orthants of h at its kink (Genz coordinates, tanh–sinh nodes, mp);
- tanh, erf: one Gauss–Hermite product rule over all of h while the spread of h is small
  (measured, two tanh tasks with K = 3 at t ≤ 0.5: every term within 2.1e-8 of the double at
  `--accuracy high` at 24 nodes in 14 s, where the orthant split at 16 nodes was 6.2e-5 off in
  39 s), the orthant split once that rule's model error exceeds SPLIT_TOL (`_take_split`: at
  Q ≈ 6 the one rule was 7–27 % off);
- the labels in closed form given h everywhere (`online.label_given_h`; no steep split);
- the label–label term of two tasks on shared inputs by the independent route
  `independent_checks.label_label_joint`.

Scope: C_t ≤ 3, K ≤ 3.  This is what `mtsp check` uses to certify the double kernel's tiers for
nonlinear trunks: the product rule inside sign orthants (K ≤ 2) and the fixed-Sobol' tier
(tanh / erf with K = 3).  The errors of nonlinear trunks are in `mp_errors` (K ≤ 3).
"""
from __future__ import annotations

import itertools

import mpmath
import numpy as np

from mtsp.errors import ReachError, RequestError

from .independent_checks import _g, _vec
from .independent_checks import (PLACKETT_NODES, _Conditional, _cone_given, _cov, _JointOrthant,  # noqa: F401
                                 _labels_given, _probabilities, _softmax)   # (imported from here by mp_errors, mp_solve)
from .model import TheoryModel
from .mp_quadrature import DEFAULT_NODES, gauss_hermite_mp, tanh_sinh01_mp, truncated_normal_nodes

__all__ = ["nonlinear_terms_mp", "check_nonlinear_mp"]


def check_nonlinear_mp(model: TheoryModel) -> None:
    if max(model.classes) > 3:
        raise ReachError("precision", "the mp back-end of nonlinear trunks covers C_t ≤ 3 (labels in closed "
                         "form given h); got classes " + str(list(model.classes)))
    if model.K > 3:
        raise ReachError("precision", f"the mp back-end of nonlinear trunks covers K ≤ 3 (got K = {model.K})")


def _sign_splits(act: str, n: int, split: bool = False) -> list:
    """The sign patterns of n trunk fields to integrate over separately: all 2^n for relu (its
    kink at 0) or with `split` (sign orthants for the smooth tanh / erf too), else the one
    empty pattern (one rule over all of R^n)."""
    return list(itertools.product((1, -1), repeat=n)) if split or act == "relu" else [()]


SPLIT_TOL = 1e-8   # the one-rule route's largest model error (`one_rule_error`) before the split is taken


def one_rule_error(act: str, spread, n: int):
    """Relative error of the n-point Gauss–Hermite rule over all of h on the model integral
    E[g′(s z)²], z ~ N(0, 1), s = ``spread`` (g′² is the sharpest factor of the integrands: sech⁴
    for tanh, e^{−h²} for erf; its scale in h is 1 whatever Q is), against the sign-orthant split
    at 2n nodes (Genz coordinates, tanh–sinh; converged to ≤ 1e-13 for s ≤ 3 at n ≥ 20).  The
    Gauss–Hermite nodes lie ~π/√(2n) apart in units of s, so once s ≳ 1 they under-resolve
    g′ (measured, tanh at 40 nodes: 2e-5 at s = 1, 9e-2 at s = 2.5 — the strong-teacher state of
    docs/PRECISION.md, whose Eaa was 12–27 % off)."""
    f = lambda x: _g(act, spread * x)[1] ** 2   # noqa: E731
    x, w = gauss_hermite_mp(n)
    one = mpmath.fsum(wi * f(xi) for xi, wi in zip(x, w))
    u, uc, wt = tanh_sinh01_mp(2 * n)
    split = mpmath.mpf(0)
    for lo, hi in ((mpmath.mpf(0), mpmath.inf), (-mpmath.inf, mpmath.mpf(0))):
        split += mpmath.fsum(wk * m * f(y) for (y, m), wk in zip(truncated_normal_nodes(lo, hi, u, uc), wt))
    return abs(one / split - 1)


def _rule_nodes(nodes, dims: int, default: dict) -> int:
    """The nodes per dimension `cone_expectation_mp` takes for ``dims`` integrated dimensions."""
    if nodes is None:
        return default[dims]
    return nodes.get(dims, default[dims]) if isinstance(nodes, dict) else int(nodes)


def _take_split(act: str, C, rows, n: int, split_smooth) -> bool:
    """Whether to integrate over the sign orthants of the trunk fields ``rows``: always for relu;
    as ``split_smooth`` says when it is a bool; by default (None) when the one-rule route's model
    error at the fields' largest spread √max Q_kk exceeds SPLIT_TOL (`one_rule_error`)."""
    if act == "relu" or split_smooth is not None:
        return act == "relu" or split_smooth
    spread = mpmath.sqrt(max(_cov(C, r, r) for r in rows))
    return one_rule_error(act, spread, n) > SPLIT_TOL


def nonlinear_terms_mp(model: TheoryModel, st, F, C, nodes=None, split_smooth: bool | None = None,
                       processes: int = 1) -> dict:
    """`online.nonlinear_terms` in mp, as the derivation's named integrals (mpmath matrices / mpf).
    ``F``: mp factor of the field covariance ``C`` (nested lists); ``split_smooth``: integrate
    tanh / erf trunks over the sign orthants of h too (as relu's), a check of the one-rule route."""
    from . import online
    from .mp_online import MpRules, _named, _obj_state
    if split_smooth is not None and not isinstance(split_smooth, bool):
        raise RequestError("split_smooth", f"expected None, True or False, got {split_smooth!r}")
    check_nonlinear_mp(model)
    act, H = model.activation, _vec(model.rows_h())
    signs = _sign_splits(act, model.K, _take_split(act, C, H, _rule_nodes(nodes, model.K, DEFAULT_NODES), split_smooth))
    rules = MpRules(nodes, processes, signs=signs, cov=C, split_smooth=split_smooth)
    F = np.array(F, dtype=object).reshape(len(F), -1)
    return _named(model, online._nonlinear_part(model, _obj_state(st), F, online.Accuracy(), None, rules))

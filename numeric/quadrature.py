"""Gaussian expectations restricted to polyhedral cones — the one numerical kernel of mtsp.

Every quantity of the theory is an expectation over a jointly Gaussian vector of *fields*
``f = F ζ`` (``ζ`` standard normal, ``F`` a factor of the field covariance) of the form

    E[ 1{A f > 0} · Φ(P f) ]            and        E[ 1{A f > 0} · Γ(P f) · (L f)ᵀ ]

where ``A f > 0`` is an argmax event (a label, a teacher class, a student prediction: all are
cones because the model has no biases), ``Φ, Γ`` are smooth functions of a few projections
``p = P f`` (softmax outputs, activations) and ``L f`` are fields that enter linearly.

The reduction (done once per call, in closed form):

1. Orthonormalise the cone rows in order (Gram–Schmidt with rank detection):
   ``A F = Λ E₁`` with ``E₁`` orthonormal rows and ``Λ`` lower-trapezoidal, so the event is a
   sequence of one-sided bounds on ``η₁ = E₁ ζ``: row ``i`` bounds the last coordinate it uses.
2. The part of ``P F`` orthogonal to ``E₁`` spans ``η₂ = E₂ ζ`` (SVD, rank detected);
   every other direction of ``ζ`` is independent of the integrand and averages out — in
   particular the linear fields ``L f`` are replaced by their conditional mean given
   ``(η₁, η₂)`` (Gaussian conditioning eliminates every variable that enters linearly).
3. ``η₁`` is integrated by the Genz separation-of-variables transform (each coordinate a
   truncated normal, the truncation mass a factor of the weight; nodes Gauss–Legendre on
   [0, 1]), ``η₂`` by tensor Gauss–Hermite.  The indicator never meets a smooth rule.

A randomised quasi-Monte Carlo rule (scrambled Sobol' points through the same transform, with
a standard error from independent scramblings) serves integrands that are themselves
discontinuous in ``p`` (the argmax of a nonlinear trunk's logits).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtri

from mtsp.errors import ReachError

from .cone import DOUBLE, RANK_TOL, cone_plan, drop_sure_rows, genz
from .cone import gaussian_factor as _gaussian_factor
from .cone import orthant_probability as _orthant_probability
from .cone import tanh_sinh01 as _tanh_sinh01
from .cone import wide_sector_halves as _wide_sector_halves
from .sobol import sobol_points

__all__ = ["gaussian_factor", "cone_expectation", "cone_expectation_union", "orthant_probability", "ConeResult", "gauss_hermite", "gauss_legendre01",
           "RANK_TOL"]

MAX_NODES = 24
PRODUCT_MAX_DIM = 4
MAX_SPREAD_NODES = 32
MAX_PRODUCT_POINTS = 1 << 18
QMC_FACTOR = 1  # Sobol' points per unit of budget (measured: 4× more points changed no RHS by > MC noise)


@lru_cache(maxsize=None)
def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point rule for E[f(x)], x ~ N(0, 1) (weights sum to 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()


@lru_cache(maxsize=None)
def gauss_legendre01(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss–Legendre rule on [0, 1] (weights sum to 1)."""
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


@lru_cache(maxsize=None)
def tanh_sinh01(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n-point tanh–sinh rule on [0, 1] in double (`cone.tanh_sinh01`): (u, 1 − u, w), t_max 2.0 /
    2.6 / 3.0 for n ≤ 12 / ≤ 30 / more (nodes to 1.1e-5 / 7e-10 / 2.1e-14 from the ends)."""
    out = _tanh_sinh01(DOUBLE, n, 3.0 if n > 30 else 2.6 if n > 12 else 2.0)
    for a in out:
        a.setflags(write=False)
    return out


def gaussian_factor(cov: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """A factor F (n × d, d = numerical rank) with F Fᵀ = cov, for PSD (possibly singular) cov
    (`cone.gaussian_factor`)."""
    return _gaussian_factor(DOUBLE, np.asarray(cov, float), tol)


@dataclass
class ConeResult:
    """E[1{cone} Φ] (``plain``), E[1{cone} Γ (L f)ᵀ] (``linear``), and the standard error of
    ``plain`` (nonzero for the randomised rule only; exact and deterministic results carry 0)."""
    plain: np.ndarray
    linear: np.ndarray | None
    plain_se: np.ndarray | None = None
    points: int = 0

    def __post_init__(self):
        if self.plain_se is None:
            self.plain_se = np.zeros_like(np.asarray(self.plain, dtype=float))


def orthant_probability(corr_cov: np.ndarray) -> float | None:
    """Closed form P(X > 0) for a zero-mean Gaussian X of dimension ≤ 3 with nonsingular
    covariance (`cone.orthant_probability`); None otherwise."""
    return _orthant_probability(DOUBLE, corr_cov)


@lru_cache(maxsize=256)
def _points_product(r1: int, r2: int, n_cone, n_gh, ar=DOUBLE, precision=None):
    """The product rule as its two tensor grids, last axis fastest: (u ∈ [0,1]^r1, 1 − u where the
    arithmetic's rule carries it (else None), their weights) and (y ∈ R^r2, their weights); the
    rule's points are every pair.  ``n_cone``, ``n_gh``: nodes per axis, one count for all axes or
    a tuple with one per axis; the 1-d rules are the arithmetic's (``ar.rule01``,
    ``ar.gauss_hermite``; ``precision``: its working precision, which they depend on)."""
    n_cone = (n_cone,) * r1 if isinstance(n_cone, int) else tuple(n_cone)
    n_gh = (n_gh,) * r2 if isinstance(n_gh, int) else tuple(n_gh)

    def tensor(rules, parts):
        if not rules:
            return tuple(ar.zeros((1, 0)) for _ in parts[:-1]) + (ar.full(1, ar.const(1.0)),)
        idx = np.indices([len(r[-1]) for r in rules]).reshape(len(rules), -1)
        cols = [np.stack([r[k][i] for r, i in zip(rules, idx)], axis=1) for k in parts]
        return tuple(cols[:-1]) + (np.prod(cols[-1], axis=1),)
    cone = [ar.rule01(n) for n in n_cone]
    out = tensor(cone, (0, 1, 2) if cone and cone[0][1] is not None else (0, 2)) + \
        tensor([ar.gauss_hermite(n) for n in n_gh], (0, 1))
    if len(out) == 4:
        out = out[:1] + (None,) + out[1:]
    for a in out:
        if a is not None:
            a.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _points_sobol(r1: int, r2: int, n: int, seed: int):
    """n scrambled Sobol' points (`sobol.sobol_points`: the project's own, a fixed set for a
    given seed) as Genz coordinates u ∈ [0,1]^r1 and standard normals y ∈ R^r2, with equal weights."""
    dim = r1 + r2
    if dim == 0:
        return np.zeros((1, 0)), np.zeros((1, 0)), np.ones(1)
    u = sobol_points(dim, n, seed)
    out = (np.ascontiguousarray(u[:, :r1]), ndtri(u[:, r1:]), np.full(n, 1.0 / n))
    for a in out:
        a.setflags(write=False)
    return out


def _weighted(fn, p, weight, reduce: bool, linear: bool):
    """(Σ weight·Φ, weight·Γ) of the integrand at the nodes: from ``fn(p, weight)`` itself when it
    reduces (``reduce``), else from ``fn(p) = (Φ, Γ)``."""
    if reduce:
        return fn(p, weight)
    phi, gam = fn(p)
    return weight @ phi, (gam * weight[:, None] if linear else None)


def cone_expectation(factor: np.ndarray, cone_rows: np.ndarray | None, proj_rows: np.ndarray,
                     fn, lin_rows: np.ndarray | None = None, *, n_cone: int = 12, n_gh: int = 12,
                     rule: str = "auto", n_qmc: int = 2 ** 14, replicates: int = 8,
                     seed: int = 0, skip_last_cone: bool = False,
                     budget: int | None = None,
                     spread_nodes: bool = True, min_nodes: int = 0, reduce: bool = False,
                     sign_batch: np.ndarray | None = None, spread_rows: np.ndarray | None = None,
                     node_part: tuple | None = None, split_wide: bool = False, ar=DOUBLE,
                     nodes: dict | None = None, closed: bool = True, executor=None,
                     _collect: list | None = None) -> ConeResult:
    """E[1{A f > 0} Φ(P f)] and E[1{A f > 0} Γ(P f) (L f)ᵀ] for Gaussian fields f = factor·ζ.

    ``cone_rows`` (m × n) = A, or a pair (A, nonstrict) marking rows where ≥ is meant (ties),
    ``proj_rows`` (p × n) = P, ``lin_rows`` (l × n) = L, all acting
    on the n fields.  ``fn(p)`` receives an (npts × p) array of projections and returns
    ``(Φ, Γ)`` of shapes (npts × q) and (npts × q') (Γ may be None when ``lin_rows`` is None).
    ``skip_last_cone``: when Φ does not depend on η₁ at all (pure probabilities) the last cone
    coordinate needs no nodes — its truncation mass is integrated exactly.
    ``budget``: if given, the nodes per dimension of the product rule are chosen after the
    reduction so that the tensor grid has at most about ``budget`` points (4 to 24 per axis);
    ``spread_nodes`` raises them with the spread of the projections (softmax-type integrands),
    ``min_nodes`` sets a floor per axis; ``spread_rows`` (rows on the fields): the spread that
    sets the nodes is that of these rows instead of the projections' (the smooth part alone, when
    a split into cones has already taken care of the rest).
    ``node_part`` = (i, n): only every n-th node of the deterministic rules, from the i-th — the
    n parts of an integral sum to the whole (two processes can share one integral exactly).
    ``reduce``: ``fn(p, weight)`` receives the node weights too and returns ``(Σ weight·Φ, weight·Γ)``
    itself — integrands built of outer products then reduce by matrix products instead of
    materialising (npts × q) arrays.
    ``sign_batch`` (B × m of ±1): the union of the B disjoint cones diag(s_b) A (e.g. the sign
    orthants of a trunk).  Gram–Schmidt of diag(s) A is that of A with basis vector j flipped by
    the sign of the row that introduced it, so one reduction serves every piece and all their
    nodes go through the Genz transform and the integrand together.  (Cones with a zero-variance
    row, whose strictness then matters, are evaluated piece by piece.)
    ``ar``: the arithmetic (`cone.DOUBLE`, or `cone.MP`: object arrays of mpf, the rows given as
    anything `MP.rows` converts); ``nodes`` ({dims: n}): the product rule with n nodes per axis
    for an integral of ``dims`` dimensions (instead of the rule/budget choice; more dimensions than
    the table covers are refused); ``closed``: pure cone probabilities of ≤ 3 nonsingular rows in
    closed form; ``executor`` (`workers.mp_executor`): tallies the product rule's points and
    splits an integral it finds worth it into two ``node_part``s.
    """
    if sign_batch is not None:
        sign_batch = np.asarray(sign_batch, dtype=float)
        base = cone_rows[0] if isinstance(cone_rows, tuple) else cone_rows
        Ab = base @ factor
        if rule not in ("auto", "product", "qmc") or fn is None:
            raise ValueError("sign_batch: needs an integrand and a deterministic rule")
        if (np.abs(Ab).max(axis=1) <= RANK_TOL * max(np.abs(Ab).max(), 1e-300) * 1e3).any():
            flags = None if not isinstance(cone_rows, tuple) else np.asarray(cone_rows[1], bool)
            pieces = [(sb[:, None] * base, (sb < 0) if flags is None else (flags | (sb < 0)))
                      for sb in sign_batch]
            kw = dict(n_cone=n_cone, n_gh=n_gh, rule=rule, n_qmc=n_qmc, replicates=replicates, seed=seed,
                      skip_last_cone=skip_last_cone, budget=budget, spread_nodes=spread_nodes,
                      min_nodes=min_nodes, node_part=node_part)
            return cone_expectation_union(factor, pieces, proj_rows, fn, lin_rows, reduce=reduce, **kw)
    factor = ar.rows(factor)
    n_fields, d = factor.shape
    nonstrict = None
    if isinstance(cone_rows, tuple):
        cone_rows, nonstrict = cone_rows
    cone_rows, proj_rows = ar.rows(cone_rows, n_fields), ar.rows(proj_rows, n_fields)
    lin_rows = None if lin_rows is None else ar.rows(lin_rows, n_fields)
    if split_wide and _collect is None and sign_batch is None and rule in ("auto", "product") and \
            cone_rows.shape[0] >= 2:
        halves = _wide_sector_halves(ar, cone_rows, ar.matmul(cone_rows[:2], factor), nonstrict)
        if halves is not None:
            kw = dict(n_cone=n_cone, n_gh=n_gh, rule=rule, n_qmc=n_qmc, replicates=replicates, seed=seed,
                      skip_last_cone=skip_last_cone, budget=None if budget is None else max(budget // 2, 1),
                      spread_nodes=spread_nodes, min_nodes=min_nodes, reduce=reduce,
                      spread_rows=spread_rows, node_part=node_part, ar=ar, nodes=nodes, closed=closed,
                      executor=executor)
            return _add(*(cone_expectation(factor, h, proj_rows, fn, lin_rows, **kw) for h in halves))
    A = drop_sure_rows(ar, ar.matmul(cone_rows, factor), nonstrict)
    P = ar.matmul(proj_rows, factor)
    plan = cone_plan(ar, A, P, skip_last_cone, pure=fn is None)
    if plan.empty:
        # a cone row that is identically zero: the strict event {0 > 0} has probability zero
        if _collect is not None or fn is None:
            return ConeResult(ar.zeros(1), None)
        if reduce:
            phi0, gam0 = fn(ar.zeros((1, P.shape[0])), ar.zeros(1))
            phi0, gam0 = np.asarray(phi0)[None], gam0
        else:
            phi0, gam0 = fn(ar.zeros((1, P.shape[0])))
        lin = None if lin_rows is None else ar.zeros((np.asarray(gam0).shape[1], lin_rows.shape[0]))
        return ConeResult(ar.zeros(np.asarray(phi0).shape[1]), lin)
    r1 = plan.r1
    if fn is None:  # a pure cone probability
        whole = 1.0 if node_part is None or node_part[0] == 0 else 0.0  # closed forms: in part 0
        if A.shape[0] == 0:
            return ConeResult(ar.full(1, ar.const(whole)), None)
        pc = _orthant_probability(ar, ar.matmul(A, A.T)) if (closed and r1 == A.shape[0]) else None
        if pc is not None:
            return ConeResult(ar.full(1, pc * whole), None, None, 0)
        fn = lambda p: (ar.full((p.shape[0], 1), ar.const(1.0)), None)  # noqa: E731
        reduce = False
    P1, C2 = plan.P1, plan.C2
    r2 = plan.r2
    sample_r1 = plan.sample_r1

    def evaluate(U1, U1c, W1, Y2, W2, ii, kk):
        """The integral over the points (U1[ii], Y2[kk]) of weights W1[ii] W2[kk]: the Genz
        transform on the cone coordinates' nodes alone (a product rule repeats each of them at
        every smooth node)."""
        S = None
        if sign_batch is not None:  # every piece on the same nodes; S: each node's row signs
            B, n1 = sign_batch.shape[0], W1.shape[0]
            S = np.repeat(sign_batch, n1, axis=0)
            U1, W1 = np.tile(U1, (B, 1)), np.tile(W1, B)
            U1c = None if U1c is None else np.tile(U1c, (B, 1))
            ii, kk = (np.arange(B)[:, None] * n1 + ii).ravel(), np.tile(kk, B)
        eta1, w1 = genz(ar, plan, U1, W1, U1c, signs=S)
        weight = w1[ii] * W2[kk]
        nonzero = np.flatnonzero((weight != 0).astype(bool))   # points of an empty truncation: no integrand
        if len(nonzero) < len(weight):
            keep = nonzero if len(nonzero) else np.arange(1)
            ii, kk, weight = ii[keep], kk[keep], weight[keep]
        p = _mm(ar, eta1, P1.T)[ii] + _mm(ar, Y2, C2.T)[kk]
        lin_vals = None
        if lin_rows is not None:   # the linear fields' conditional mean at the nodes (npts × l)
            LE1, LE2 = plan.linear(ar, ar.matmul(lin_rows, factor))
            lin_vals = _mm(ar, eta1, LE1.T)[ii] + _mm(ar, Y2, LE2.T)[kk]
        if _collect is not None:  # nodes for cone_expectation_union
            _collect.append((p, weight, lin_vals))
            return np.zeros(1), None
        plain, gam_w = _weighted(fn, p, weight, reduce, lin_rows is not None)
        return plain, None if lin_rows is None else gam_w.T @ lin_vals

    def sobol(n, seed, parted=True):   # pairs (u_i, y_i) of equal weights
        U1, Y2, W = _points_sobol(sample_r1, r2, n, seed)
        idx = np.arange(W.shape[0])[node_part[0]::node_part[1]] if node_part and parted else np.arange(W.shape[0])
        return evaluate(U1, None, W, Y2, np.ones(W.shape[0]), idx, idx)

    if nodes is not None:   # a fixed node count per dimension
        if plan.dims not in nodes:
            raise ReachError("precision", f"the {ar.name} product rule integrates at most {max(nodes)} "
                             f"dimensions, got {plan.dims}")
        rule, n_cone, n_gh = "product", nodes[plan.dims], nodes[plan.dims]
    if rule == "auto":
        # tensor rules up to PRODUCT_MAX_DIM dimensions; above, a fixed scrambled Sobol' set
        # (deterministic and smooth in the parameters, so ODE integrators are not disturbed)
        rule = "product" if sample_r1 + r2 <= PRODUCT_MAX_DIM else "qmc"
    if rule == "product" and budget is not None and sample_r1 + r2 > 0:
        n = int(np.clip(np.floor(budget ** (1.0 / (sample_r1 + r2)) + 1e-9), 4, MAX_NODES))
        n = max(n, min_nodes)
        # softmax-type integrands have poles at distance ~π from the real axis in the logits, so a
        # rule must resolve the spread s of the projections: measured Gauss–Hermite error of
        # E[log(1 + e^{s x})] is 4e-6 at s = 2 with 16 nodes, 2e-5 at s = 3 with 24: ~4 + 6 s nodes,
        # with s the spread along each axis (the norm of the projections' column for that axis:
        # the Gauss–Hermite axes are the singular directions of the smooth part)
        # (Gauss–Hermite axes: one count per axis; the Genz coordinates of the cone, which are
        # conditioned one on another, share the count of their largest spread)
        def per_axis(cols, r, shared=False):
            if not (P.size and spread_nodes) or cols.size == 0:  # (NumPy < 2: no norm of an empty matrix)
                return (n,) * r
            s = np.full(r, np.linalg.norm(cols, 2)) if shared else np.linalg.norm(cols, axis=0)
            return tuple(max(n, min(int(np.ceil(4 + 6 * v)), MAX_SPREAD_NODES)) for v in s)
        if spread_rows is None:
            cols1, cols2 = P1[:, :sample_r1], C2
        else:
            Sf = np.asarray(spread_rows, float).reshape(-1, n_fields) @ factor
            cols1, cols2 = (Sf @ plan.E1.T)[:, :sample_r1], Sf @ plan.E2.T
        n_cone = per_axis(cols1, sample_r1, shared=True)
        n_gh = per_axis(cols2, r2)
        if float(np.prod(n_cone, dtype=float)) * float(np.prod(n_gh, dtype=float)) > MAX_PRODUCT_POINTS:
            rule, budget = "qmc", MAX_PRODUCT_POINTS // QMC_FACTOR
    if rule == "qmc":
        n = 1 << int(np.ceil(np.log2(max(QMC_FACTOR * (budget or n_qmc), 256))))
        plain, linear = sobol(n, seed)
        return ConeResult(plain, linear, None, n)
    if rule == "product":
        U1, U1c, W1, Y2, W2 = _points_product(sample_r1, r2, n_cone, n_gh, ar, ar.precision())
        npts = W1.shape[0] * W2.shape[0]
        if executor is not None and node_part is None:
            executor.ran(npts, plan.dims)
            if executor.worth(npts):
                kw = dict(n_cone=n_cone, n_gh=n_gh, rule=rule, skip_last_cone=skip_last_cone, reduce=reduce, ar=ar,
                          nodes=nodes, closed=closed)
                return executor.split(lambda pt: cone_expectation(
                    factor, (cone_rows, nonstrict), proj_rows, fn, lin_rows, node_part=pt, **kw), _add)
        ii, kk = np.divmod(np.arange(npts) if node_part is None else np.arange(npts)[node_part[0]::node_part[1]],
                           W2.shape[0])
        plain, linear = evaluate(U1, U1c, W1, Y2, W2, ii, kk)
        return ConeResult(plain, linear, None, ii.shape[0])
    if rule == "rqmc":
        outs = [sobol(n_qmc, seed + k, parted=False) for k in range(replicates)]
        plains = np.array([o[0] for o in outs])
        linear = None if lin_rows is None else np.mean([o[1] for o in outs], axis=0)
        se = plains.std(axis=0, ddof=1) / np.sqrt(replicates)
        return ConeResult(plains.mean(axis=0), linear, se, n_qmc * replicates)
    raise ValueError(f"unknown quadrature rule {rule!r}")


def _mm(ar, X, M):
    """X @ M (the arithmetic's zeros where the inner dimension is empty)."""
    return X @ M if X.shape[1] else ar.zeros((X.shape[0], M.shape[1]))


def _add(a: ConeResult, b: ConeResult) -> ConeResult:
    """The result of an integral split into two disjoint parts a and b."""
    lin = None if a.linear is None else a.linear + b.linear
    se = None if a.plain_se is None else np.sqrt(a.plain_se ** 2 + b.plain_se ** 2)
    return ConeResult(a.plain + b.plain, lin, se, a.points + b.points)


def cone_expectation_union(factor: np.ndarray, cones: list, proj_rows: np.ndarray, fn,
                           lin_rows: np.ndarray | None = None, *, reduce: bool = False, **kw) -> ConeResult:
    """`cone_expectation` over a union of disjoint cones (e.g. the sign orthants of a trunk): the
    nodes of every piece (each with its own rule, as `cone_expectation` would choose it) are
    gathered and the integrand is evaluated once on all of them."""
    nodes: list = []
    for cone in cones:
        cone_expectation(factor, cone, proj_rows, fn, lin_rows, reduce=reduce, _collect=nodes, **kw)
    if not nodes:
        return cone_expectation(factor, cones[0], proj_rows, fn, lin_rows, reduce=reduce, **kw)
    p = np.vstack([n[0] for n in nodes])
    w = np.concatenate([n[1] for n in nodes])
    plain, gam_w = _weighted(fn, p, w, reduce, lin_rows is not None)
    linear = None if lin_rows is None else gam_w.T @ np.vstack([n[2] for n in nodes])
    return ConeResult(np.asarray(plain, dtype=float), linear, None, len(w))

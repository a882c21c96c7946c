"""The cone-expectation kernel of `quadrature` at arbitrary precision (mpmath).

Same inputs, same reductions, same tiers as `quadrature.cone_expectation`, evaluated in ``mp``
arithmetic at ``mp.dps`` digits:

1. the field factor F from the mp eigen-decomposition (``mp.eigsy``) of the field covariance;
2. the cone rows ``A F`` orthonormalised in order (Gram–Schmidt, twice), so the event is a
   sequence of one-sided bounds on ``η₁``;
3. the part of ``P F`` orthogonal to ``E₁`` spans ``η₂`` (eigen-decomposition of its Gram);
   fields entering linearly are replaced by their conditional mean given (η₁, η₂);
4. ``η₁`` by the Genz transform (each coordinate a truncated normal) with tanh–sinh nodes on
   [0, 1] computed in mp, ``η₂`` by Gauss–Hermite nodes from ``mp.gauss_quadrature``; pure cone
   probabilities of ≤ 3 nonsingular rows in closed form (Sheppard/Plackett, ``mp.asin``).

Φ⁻¹ is computed by Newton's method on Φ(x) = erfc(−x/√2)/2 from the double-precision quantile
(two to three steps reach 30 digits) rather than as √2·erfinv(2p − 1): erfinv(2p − 1) loses all
digits of p ≪ 1 (2p − 1 rounds to −1) and mpmath's erfinv is itself a root search 20× slower
than one erfc.  Both tails are handled through complements (each node carries u and 1 − u), so
no probability near 1 is ever formed.

**Integrand protocol.**  ``fn(p)`` receives one point's projections as a Python list of mpf and
returns ``(phi, gamma)``: two lists of mpf (``gamma`` may be None when ``lin_rows`` is None).
The result carries ``plain[k] = E[1{cone} φ_k]`` and ``linear[k][l] = E[1{cone} γ_k (L f)_l]``.

**Cost.**  Everything is pure-Python mpf arithmetic (≈ 3 µs per multiply–add, 14 µs per erfc at
30 digits); one quadrature point costs 0.1–0.4 ms.  The product rule has ``n^d`` points for
``d`` integrated dimensions, so the default nodes per dimension shrink with d (`DEFAULT_NODES`:
1 → 64, 2 → 40, 3 → 20, 4 → 12): ≈ 10 ms, 0.5 s, 3 s, 8 s per integral.  Above 4 integrated
dimensions the mp kernel refuses (the double kernel switches to scrambled Sobol' there, which
has no meaningful mp counterpart).  The quadrature error of the mp rules, not the 30 digits, is
what limits the mp values: `cone_expectation_mp(..., nodes=n)` against a larger n measures it
(see tests/test_mp.py for measured levels).
"""
from __future__ import annotations

import itertools
import math
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache

import mpmath
import numpy as np
from scipy.special import ndtri

from mtsp.errors import ReachError

mp = mpmath.mp

__all__ = ["mp_factor", "cone_expectation_mp", "orthant_probability_mp", "MpConeResult", "ncdf", "ndtri_mp",
           "bivariate_ncdf",
           "gauss_hermite_mp", "span_for_nodes", "tanh_sinh01_mp", "to_mp", "DEFAULT_NODES", "MAX_DIM"]

DEFAULT_NODES = {0: 1, 1: 64, 2: 40, 3: 20, 4: 12}
MAX_DIM = 4
PARALLEL_MIN_POINTS = 512   # below this a forked second process costs more than it saves


def rank_tol():
    """Relative rank tolerance of the mp reductions: 1e-20 at 30 digits (10^-(dps-10), at most 1e-11)."""
    return mpmath.mpf(10) ** (-max(11, mp.dps - 10))


def to_mp(a):
    """A (nested) array/list of floats as nested lists of mpf (exact conversion)."""
    if isinstance(a, mpmath.matrix):
        return [[a[i, j] for j in range(a.cols)] for i in range(a.rows)]
    if isinstance(a, np.ndarray):
        a = a.tolist()
    if isinstance(a, (list, tuple)):
        return [to_mp(x) for x in a]
    return mpmath.mpf(a)


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
    """F (n × d lists of mpf, d = numerical rank) with F Fᵀ = cov, from mp.eigsy."""
    C = to_mp(cov)
    n = len(C)
    if n == 0:
        return []
    M = mpmath.matrix(n, n)
    for i in range(n):
        for j in range(n):
            M[i, j] = (C[i][j] + C[j][i]) / 2
    E, Qm = mpmath.eigsy(M)
    tol = rank_tol() if tol is None else tol
    scale = max(max(E[i] for i in range(n)), 0)
    if scale == 0:
        return [[] for _ in range(n)]
    keep = [k for k in range(n) if E[k] > tol * scale]
    return [[Qm[i, k] * mpmath.sqrt(E[k]) for k in keep] for i in range(n)]


def _matmul(A, B):
    """A (m × k) @ B (k × n) on nested lists."""
    if not A:
        return []
    if not B:
        return [[] for _ in A]
    n = len(B[0])
    return [[mpmath.fsum(a[k] * B[k][j] for k in range(len(B))) if B else mpmath.mpf(0)
             for j in range(n)] for a in A]


def _dot(a, b):
    return mpmath.fsum(x * y for x, y in zip(a, b))


def _orthonormalise(rows, tol):
    """Gram–Schmidt on rows in order: rows = coef @ basis (coef lower-trapezoidal); `last`."""
    basis = []
    coefs = []
    last = []
    d = len(rows[0]) if rows else 0
    scale = max([abs(x) for r in rows for x in r] + [mpmath.mpf(10) ** -300])
    thr = tol * scale * 1000
    for r in rows:
        v = list(r)
        c = [mpmath.mpf(0)] * min(len(rows), d)
        for _ in range(2):
            for j, b in enumerate(basis):
                cj = _dot(b, v)
                c[j] += cj
                v = [vi - cj * bi for vi, bi in zip(v, b)]
        nv = mpmath.sqrt(_dot(v, v))
        if nv > thr and len(basis) < d:
            basis.append([vi / nv for vi in v])
            c[len(basis) - 1] = nv
        nz = [j for j in range(len(basis)) if abs(c[j]) > thr]
        last.append(nz[-1] if nz else -1)
        coefs.append(c)
    r = len(basis)
    return [c[:r] for c in coefs], basis, last


def orthant_probability_mp(S):
    """P(X > 0), X ~ N(0, S), dim ≤ 3 and S nonsingular (mp); None otherwise."""
    S = to_mp(S)
    m = len(S)
    if m == 0:
        return mpmath.mpf(1)
    if m > 3 or any(S[i][i] <= 0 for i in range(m)):
        return None
    if m == 1:
        return mpmath.mpf(1) / 2
    d = [mpmath.sqrt(S[i][i]) for i in range(m)]
    rho = [[S[i][j] / (d[i] * d[j]) for j in range(m)] for i in range(m)]
    ev = mpmath.eigsy(mpmath.matrix(rho), eigvals_only=True)
    if min(ev[i] for i in range(m)) < mpmath.mpf(10) ** -12:
        return None
    if m == 2:
        return mpmath.mpf(1) / 4 + mpmath.asin(rho[0][1]) / (2 * mpmath.pi)
    s = mpmath.asin(rho[0][1]) + mpmath.asin(rho[0][2]) + mpmath.asin(rho[1][2])
    return mpmath.mpf(1) / 8 + s / (4 * mpmath.pi)


def _truncated_normal(lo, hi, u, uc):
    """(x, mass): P(X < x | lo < X < hi) = u for X ~ N(0, 1), mass = P(lo < X < hi); uc = 1 − u
    (one node of `truncated_normal_nodes`)."""
    return truncated_normal_nodes(lo, hi, (u,), (uc,))[0]


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


@dataclass
class MpConeResult:
    plain: list
    linear: list | None
    points: int = 0
    dims: int = 0
    tier: str = ""


def _add_results(a: MpConeResult, b: MpConeResult) -> MpConeResult:
    """The MpConeResult of an integral split into two disjoint parts a and b."""
    plain = [x + y for x, y in zip(a.plain, b.plain)]
    lin = None if a.linear is None else [[x + y for x, y in zip(u, v)] for u, v in zip(a.linear, b.linear)]
    return MpConeResult(plain, lin, a.points + b.points, a.dims, a.tier)


def _fork(child):
    """child() in a forked process (inheriting the mp context); returns collect(), which waits for
    it and returns its result, or raises a RuntimeError naming its exception."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                        # the child: compute, send, leave at once
        os.close(r)
        try:
            payload = pickle.dumps(("ok", child()))
        except BaseException as e:                      # noqa: BLE001 — reported by the parent
            payload = pickle.dumps(("error", f"{type(e).__name__}: {e}"))
        with os.fdopen(w, "wb") as f:
            f.write(payload)
        os._exit(0)
    os.close(w)

    def collect():
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        status, value = pickle.loads(data) if data else ("error", "no result")
        if status != "ok":
            raise RuntimeError(f"mp helper process failed: {value}")
        return value
    return collect


def map_two(fn, items: list, processes: int = 1) -> list:
    """[fn(x) for x in items], the second half in a forked process when ``processes`` is 2."""
    items = list(items)
    if processes < 2 or len(items) < 2:
        return [fn(x) for x in items]
    half = (len(items) + 1) // 2
    collect = _fork(lambda: [fn(x) for x in items[half:]])
    try:
        mine = [fn(x) for x in items[:half]]
    finally:
        theirs = collect()
    return mine + theirs


def _in_two_processes(run):
    """run((0, 2)) here and run((1, 2)) in a forked child, their MpConeResults added: the two
    halves of one integral's points (`cone_expectation_mp(part=...)`), on two cores."""
    collect = _fork(lambda: run((1, 2)))
    try:
        mine = run((0, 2))
    finally:
        theirs = collect()
    return _add_results(mine, theirs)


def _rows(x, n_fields):
    if x is None:
        return []
    if isinstance(x, np.ndarray) and x.size == 0:
        return []
    r = to_mp(x)
    return [list(row) for row in r]


def _wide_sector_halves(Ar, A, nonstrict, tol):
    """A cone whose first two rows {a₁f > 0, a₂f > 0} open wider than 90° (unit normals at an
    acute angle — an argmax cone of three classes, typically) as its two halves on either side
    of the bisecting hyperplane: {â₂ > 0, m > 0, rest} and {â₁ > 0, −m > 0, rest} with
    m = â₁ − â₂ (â = a/‖aF‖; on m > 0, â₂ > 0 implies â₁ > 0), each narrower than 90°.
    `cone_expectation_mp` applies it to two-row cones only: with more rows (the label–label
    cones of nonlinear trunks) it doubled the cost for no measured gain (3 dims at 20 nodes:
    6.0e-7 against 7.2e-7 relative).  A sector near 180°
    puts a steep layer at the Genz rule's end (the inner bound's slope diverges): measured on a
    165° student cone, the 2-dim rule erred by 3.8e-4 / 2e-7 / 5e-8 at 16 / 24 / 32 nodes, its
    halves by 3.9e-10 / 1.5e-12 / 4e-17.
    None when the cone is not such a sector (rank < 2, or already ≤ 90°)."""
    n1, n2 = mpmath.sqrt(_dot(A[0], A[0])), mpmath.sqrt(_dot(A[1], A[1]))
    if n1 == 0 or n2 == 0:
        return None
    cos = _dot(A[0], A[1]) / (n1 * n2)
    if not (0 < cos < 1 - 1000 * tol):
        return None
    m = [x / n1 - y / n2 for x, y in zip(Ar[0], Ar[1])]
    ns = list(nonstrict) if nonstrict is not None else [False] * len(Ar)
    rest, ns_rest = Ar[2:], ns[2:]
    return ([Ar[1], m] + rest, [ns[1], False] + ns_rest), ([Ar[0], [-x for x in m]] + rest, [ns[0], True] + ns_rest)


def cone_expectation_mp(factor, cone_rows, proj_rows, fn, lin_rows=None, *, nodes=None,
                        skip_last_cone: bool = False, closed: bool = True,
                        split_wide: bool = True, processes: int = 1, part=None) -> MpConeResult:
    """E[1{A f > 0} φ(P f)] and E[1{A f > 0} γ(P f) (L f)ᵀ] in mp (see the module docstring).

    ``factor``: F (n × d nested lists of mpf, e.g. from `mp_factor`); rows act on the n fields
    (numpy arrays or nested lists; floats convert exactly).  ``nodes``: points per integrated
    dimension (default `DEFAULT_NODES` by dimension), or a dict {dim: n}.  ``fn=None``: a pure
    cone probability (closed form for ≤ 3 nonsingular rows when ``closed``).  ``split_wide``:
    a two-row cone wider than 90° is integrated as its two halves (`_wide_sector_halves`).
    ``part=(i, m)``: only every m-th point from the i-th (the parts of an integral add up to it);
    ``processes``: with 2, half the points in a forked process (`_in_two_processes`)
    where the product rule has at least PARALLEL_MIN_POINTS points."""
    F = factor if (factor and isinstance(factor[0], list)) else to_mp(factor)
    n_fields = len(F)
    d = len(F[0]) if F else 0
    nonstrict = None
    if isinstance(cone_rows, tuple):  # (rows, nonstrict): ≥ rows, ties resolved in the event's favour
        cone_rows, nonstrict = cone_rows
    Ar = _rows(cone_rows, n_fields)
    Pr = _rows(proj_rows, n_fields)
    Lr = _rows(lin_rows, n_fields) if lin_rows is not None else None
    A = _matmul(Ar, F) if Ar else []
    P = _matmul(Pr, F) if Pr else []
    tol = rank_tol()
    if fn is not None and len(A) == 2 and split_wide:
        halves = _wide_sector_halves(Ar, A, nonstrict, tol)
        if halves is not None:
            rs = [cone_expectation_mp(F, h, Pr, fn, Lr, nodes=nodes, skip_last_cone=skip_last_cone,
                                      closed=closed, split_wide=False, processes=processes, part=part)
                  for h in halves]
            return _add_results(*rs)
    if nonstrict is not None and A:
        # a non-strict row of zero variance holds surely: drop it (a strict one fails surely)
        top = max([abs(x) for r in A for x in r] + [mpmath.mpf(10) ** -300])
        A = [r for r, ns in zip(A, list(nonstrict))
             if not (bool(ns) and max([abs(x) for x in r] + [mpmath.mpf(0)]) <= tol * top * 1000)]
    coef, E1, last = _orthonormalise(A, tol)
    if A and any(l < 0 for l in last):
        if fn is None:
            return MpConeResult([mpmath.mpf(0)], None, 0, 0, "zero")
        phi0, gam0 = fn([mpmath.mpf(0)] * len(P))
        lin = None if Lr is None else [[mpmath.mpf(0)] * len(Lr) for _ in gam0]
        return MpConeResult([mpmath.mpf(0)] * len(phi0), lin, 0, 0, "zero")
    r1 = len(E1)
    if fn is None:
        if not A:
            return MpConeResult([mpmath.mpf(1)], None, 0, 0, "trivial")
        if closed and r1 == len(A):
            S = _matmul(A, [list(col) for col in zip(*A)])
            pc = orthant_probability_mp(S)
            if pc is not None:
                return MpConeResult([pc], None, 0, 0, "closed")
        fn = lambda p: ([mpmath.mpf(1)], None)  # noqa: E731
        P = []
        skip_last_cone = True
    # projections onto E1 and the orthogonal remainder
    P1 = [[_dot(p, e) for e in E1] for p in P]
    Pperp = [[p[k] - mpmath.fsum(P1[i][j] * E1[j][k] for j in range(r1)) for k in range(d)]
             for i, p in enumerate(P)]
    E2, C2 = [], [[] for _ in P]
    if P and d:
        G = mpmath.matrix(len(P), len(P))
        for i in range(len(P)):
            for j in range(len(P)):
                G[i, j] = _dot(Pperp[i], Pperp[j])
        ev, U = mpmath.eigsy(G)
        order = sorted(range(len(P)), key=lambda k: -ev[k])
        # rank relative to the projections themselves, not to their residual (a residual that
        # is rounding noise must not become integrated dimensions), as in the double kernel
        top = max(abs(x) for row in P for x in row) ** 2
        for k in order:
            if top > 0 and ev[k] > (tol * 1000) ** 2 * top:
                s = mpmath.sqrt(ev[k])
                E2.append([mpmath.fsum(U[i, k] * Pperp[i][c] for i in range(len(P))) / s for c in range(d)])
                for i in range(len(P)):
                    C2[i].append(U[i, k] * s)
    r2 = len(E2)
    sample_r1 = r1 - 1 if (skip_last_cone and r1 > 0 and r2 == 0) else r1
    dims = sample_r1 + r2
    if dims > MAX_DIM:
        raise ReachError("precision", f"the mp kernel integrates at most {MAX_DIM} dimensions, got {dims}")
    if nodes is None:
        n = DEFAULT_NODES[dims]
    elif isinstance(nodes, dict):
        n = nodes.get(dims, DEFAULT_NODES[dims])
    else:
        n = int(nodes)
    if processes > 1 and part is None and n ** dims >= PARALLEL_MIN_POINTS:
        return _in_two_processes(lambda pt: cone_expectation_mp(
            F, (cone_rows, nonstrict) if nonstrict is not None else cone_rows, Pr if P else [], fn, Lr, nodes=nodes,
            skip_last_cone=skip_last_cone, closed=closed, split_wide=False, part=pt))
    ts = tanh_sinh01_mp(n) if sample_r1 else None
    gh = gauss_hermite_mp(n) if r2 else None
    LE1 = LE2 = None
    if Lr is not None:
        Lf = _matmul(Lr, F)
        LE1 = [[_dot(l, e) for e in E1] for l in Lf]
        LE2 = [[_dot(l, e) for e in E2] for l in Lf]
    rows_at = [[i for i in range(len(A)) if last[i] == j] for j in range(r1)]
    np_ = len(P)
    acc = {"plain": None, "linear": None, "pts": 0, "seen": -1}
    mine, every = part if part is not None else (0, 1)
    zero = mpmath.mpf(0)
    gh_pts = list(itertools.product(range(n), repeat=r2)) if r2 else [()]

    def leaf(eta1, weight):
        base = [mpmath.fsum(P1[i][j] * eta1[j] for j in range(r1)) for i in range(np_)]
        lbase = None if Lr is None else [mpmath.fsum(LE1[l][j] * eta1[j] for j in range(r1))
                                         for l in range(len(Lr))]
        for idx in gh_pts:
            acc["seen"] += 1
            if acc["seen"] % every != mine:
                continue
            if r2:
                y = [gh[0][k] for k in idx]
                w = weight
                for k in idx:
                    w = w * gh[1][k]
                p = [base[i] + mpmath.fsum(C2[i][k] * y[k] for k in range(r2)) for i in range(np_)]
            else:
                y, w, p = [], weight, base
            phi, gam = fn(p)
            acc["pts"] += 1
            if acc["plain"] is None:
                acc["plain"] = [zero] * len(phi)
                if Lr is not None:
                    acc["linear"] = [[zero] * len(Lr) for _ in gam]
            pl = acc["plain"]
            for k in range(len(phi)):
                pl[k] += w * phi[k]
            if Lr is not None:
                lv = [lbase[l] + mpmath.fsum(LE2[l][k] * y[k] for k in range(r2)) for l in range(len(Lr))]
                li = acc["linear"]
                for k in range(len(gam)):
                    wg = w * gam[k]
                    row = li[k]
                    for l in range(len(Lr)):
                        row[l] += wg * lv[l]

    def bounds(j, eta1):
        lo, hi = -mpmath.inf, mpmath.inf
        for i in rows_at[j]:
            c = coef[i][j]
            rest = mpmath.fsum(coef[i][k] * eta1[k] for k in range(j))
            b = -rest / c
            if c > 0:
                lo = max(lo, b)
            else:
                hi = min(hi, b)
        return lo, hi

    def rec(j, eta1, weight):
        if j == r1:
            leaf(eta1, weight)
            return
        lo, hi = bounds(j, eta1)
        if j >= sample_r1:  # last cone coordinate integrated exactly
            if lo > 0:
                mass = ncdf(-lo) - ncdf(-hi)
            else:
                mass = ncdf(hi) - ncdf(lo)
            if mass > 0:
                rec(j + 1, eta1 + [zero], weight * mass)
            return
        for (x, mass), wk in zip(truncated_normal_nodes(lo, hi, ts[0], ts[1]), ts[2]):
            if mass > 0:
                rec(j + 1, eta1 + [x], weight * wk * mass)

    rec(0, [], mpmath.mpf(1))
    plain = acc["plain"]
    if plain is None:  # every point had zero mass
        phi0, gam0 = fn([zero] * np_)
        plain = [zero] * len(phi0)
        if Lr is not None:
            acc["linear"] = [[zero] * len(Lr) for _ in (gam0 or [])]
    return MpConeResult(plain, acc["linear"], acc["pts"], dims, "product")

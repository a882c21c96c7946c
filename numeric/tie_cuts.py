"""The cut rules for the errors of nonlinear trunks: the h-domain cut along the student's ties.

1 − gen_error = E_h[P(ȳ_t = ĉ(h) | h)] with ĉ(h) = argmax_c V_c·g(h) and the teacher's class
probability given h in closed form (`metrics.cut_rule_hits`, run in double and, with `mp_online.MpRules`, in mp).  ĉ is not a cone in
h (g is nonlinear) but changes only where two logits tie, (V_c − V_c′)·g(h) = 0.  With h = L η (L
the Cholesky factor of Q) the levels are integrated one inside the other, each coordinate a
truncated normal on the pieces between its cuts (Genz coordinates, tanh–sinh nodes), so every
integrand a rule sees is analytic on its piece; ĉ is read off inside each piece.

Every rule here is written once over an arithmetic of `cone` (`DOUBLE`: float64 arrays; `MP`:
object arrays of mpf) — its tanh–sinh rules, g and g⁻¹, Cholesky factor and tolerances; roots
(crossings) are bracketed on a double grid and refined in the arithmetic (`MP.refine_roots`:
bisection to the working precision).

K ≤ 2 (`cut_rule_k2`):

* η₂ given η₁: 0 (relu's kink, where g changes sign) and the student's ties
  h₂ = g⁻¹(−ΔV₀ g(h₁)/ΔV₁) per class pair (atanh for tanh, √2·erfinv for erf, the value itself for
  relu when positive); when the innermost coordinate is integrated by nodes (``teacher_inner``: the
  check `independent_checks.agreement_by_inner_nodes`; the errors take it in closed form,
  `slab_cone`), the teacher's tie lines h₂ = κh₁ too, where two classes of E[λ_t | h] or E[ν_t | h]
  tie and the labels switch steeply (a strong teacher).  K = 1: h split at 0 only.
* η₁: 0; for tanh / erf where a tie curve enters from h₂ = ±∞, |ΔV₀ g(h₁)/ΔV₁| = 1 — there the
  inner integral changes by a Gaussian tail beyond h₂ ≈ −½ log(1 − |x|), smooth but so far from
  analytic that a rule across it converges like a low-order one — and where a teacher tie line
  crosses a student tie curve away from 0 (the outer integrand's near-kink, `_crossings`).

K = 3 (`cut_rule_k3`), hidden units reordered so the innermost carries the ties.  The key fact:
in a = g(h) the student's tie surfaces are planes ΔV·a = 0, so every curve where the piece
structure of an inner level changes is a *line* in (a₁, a₂), and the points where those lines
cross are solved exactly.

* η₃ given (h₁, h₂): the decision changes only at the student's ties,
  h₃ = g⁻¹(−(ΔV₁g₁ + ΔV₂g₂)/ΔV₃) where that lies in g's range, and at h₃ = 0 (relu's kink).
  The teacher's steep planes b·h = 0 (b = A_c − A_d, E[λ_t | h] = A h, `tie_planes`) are cut
  too, linear in h₃.
* η₂ given h₁: where a level-3 cut appears, merges or goes vertical — the lines of
  `_level2_lines` (a tie entering from h₃ = ±∞, α a₁ + β a₂ = ∓ΔV₃ for tanh/erf; crossing
  h₃ = 0 for relu; the three-way tie; a vertical tie) — plus h₂ = 0 and the teacher lines of
  `_teacher_lines` (two steep planes meeting; for relu, whose ties are planes in each orthant,
  a plane meeting h₃ = 0 or a tie).
* η₁: 0, every crossing of two level-2 lines or of one with a₂ = ±1 (`_crossings_a1`, tanh /
  erf; relu's lines all pass through 0), and where a teacher ray crosses a level-2 line
  (`_ray_crossings`).

The nodes per piece follow the piece's weight (`nodes_for_weight`: a piece that can contribute
< 1e-6 gets half the nodes, < 1e-10 a quarter, < 1e-15 none).  What each cut bought, measured
on random states: the η₁ line crossings took a tanh state from 1.5e-8 to 8e-13 at (24, 32, 24);
the η₃ teacher planes an erf state's level-3 error from 3.8e-7 to 5e-10; the relu teacher lines
its level-2 error from 2.5e-8 to 4e-11; the η₁ ray crossings an erf state from 9.6e-7 to 7e-9.
What remains is slow convergence of steep noiseless teachers in η₃ (1.1e-7 at 24 nodes, 1.3e-8
at 32).  Accuracy over 30 random states: benchmarks/results/k3_cut_rule.txt.  Deterministic; cost
≈ (η₁ pieces · n₁)(pieces₂ · n₂)(pieces₃ · n₃) label probabilities, 0.2–8 s per task and state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import g_inverse_values, g_values
from .cone import DOUBLE, condition, interval_mass, truncated_normal

__all__ = ["cut_rule_k2", "cut_rule_k2_nodes", "cut_rule_k3", "nodes_for_weight", "piece_nodes", "teacher_tie_slopes", "tie_planes"]

_TINY = 1e-12


def _isinf(x):
    return np.asarray((x == np.inf) | (x == -np.inf), bool)


def _sorted_cuts(ar, cuts):
    """Each row of cuts (N × m, +inf = absent) sorted; in an arithmetic with a merge tolerance,
    cuts within it (relative) of the one before are merged (replaced by +inf)."""
    cuts = np.sort(cuts, axis=1)
    tol = ar.merge_tol()
    if tol is None or not cuts.size:
        return cuts
    out = ar.full(cuts.shape, ar.inf)
    for i, row in enumerate(cuts):
        kept = []
        for c in row:
            if c != ar.inf and (not kept or c - kept[-1] > tol * max(abs(c), 1)):
                kept.append(c)
        out[i, :len(kept)] = kept
    return out


@dataclass
class Pieces:
    """The pieces of one level: the intervals between the sorted cuts of each parent, in units of
    x = (h − mean)/sd, with a representative h inside each (the decision is constant there)."""
    parent: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    rep: np.ndarray


def _pieces(ar, mean, sd, cuts) -> Pieces:
    """The non-empty intervals between the cuts (N × m in h units, +inf = absent) of each of N
    parents with h = mean + sd·x."""
    cuts = _sorted_cuts(ar, cuts)
    N = len(mean)
    e = np.hstack([ar.full((N, 1), -ar.inf), cuts, ar.full((N, 1), ar.inf)])
    a, b = e[:, :-1], e[:, 1:]
    keep = np.asarray(b > a, bool)
    keep[:, 1:] &= ~_isinf(a[:, 1:])          # the trailing +inf padding gives no pieces
    parent, piece = np.nonzero(keep)
    a, b = a[parent, piece], b[parent, piece]
    m = mean[parent]
    ia, ib = _isinf(a), _isinf(b)
    with np.errstate(invalid="ignore"):
        lo = np.where(ia, a, (a - m) / sd)
        hi = np.where(ib, b, (b - m) / sd)
        rep = np.where(~ia & ~ib, 0.5 * (a + b), np.where(~ia, a + 1.0, np.where(~ib, b - 1.0, 0.0)))
    return Pieces(parent, lo, hi, rep)


def piece_nodes(ar, pc: Pieces, counts, parent_weight, sd, mean):
    """Nodes on the pieces (``counts[i]`` tanh–sinh nodes on piece i, `ar.rule01`): (piece index,
    h = mean + sd·x, parent weight × weight × piece mass), grouped by node count."""
    out = []
    for k in sorted(set(np.asarray(counts).tolist()) - {0}):
        sel = np.nonzero(counts == k)[0]
        u, uc, w = ar.rule01(k)
        x, ms = truncated_normal(ar, np.repeat(pc.lo[sel], k), np.repeat(pc.hi[sel], k), np.tile(u, len(sel)),
                                 np.tile(uc, len(sel)))
        par = pc.parent[sel]
        out.append((np.repeat(sel, k), np.repeat(mean[par], k) + sd * x,
                    np.repeat(parent_weight[par], k) * np.tile(w, len(sel)) * ms))
    if not out:
        return np.zeros(0, int), ar.zeros(0), ar.zeros(0)
    return tuple(np.concatenate(col) for col in zip(*out))


def _level(ar, mean, sd, cuts, n: int, parent_weight):
    """Nodes of h_j = mean + sd·x, x ~ N(0, 1), on the pieces between the cuts (N × m, h units,
    +inf = absent) of each of N parents: (`Pieces`, piece index, h_j, weight × parent weight),
    with `nodes_for_weight` tanh–sinh nodes on each piece."""
    pc = _pieces(ar, mean, sd, cuts)
    mass = interval_mass(ar, pc.lo, pc.hi)
    counts = nodes_for_weight(np.asarray(parent_weight[pc.parent] * mass, float), n)
    return (pc,) + piece_nodes(ar, pc, counts, parent_weight, sd, mean)


def _unit_order(V: np.ndarray) -> list:
    """An order of the hidden units (outer → inner) whose innermost unit carries every student tie
    as much as possible: max over orders of min over class pairs of |ΔV_inner|/‖ΔV‖ (a tie
    surface nearly parallel to the innermost axis sweeps through the inner Gaussian as the outer
    coordinates move: a steep, not singular, level-2 integrand), then the middle unit likewise."""
    import itertools
    C = V.shape[0]
    dv = np.array([V[c] - V[d] for c in range(C) for d in range(c + 1, C)])
    norm = np.linalg.norm(dv, axis=1)[:, None]
    frac = np.abs(dv) / np.where(norm > 0, norm, 1.0)
    best = max(itertools.permutations(range(V.shape[1])),
               key=lambda p: (frac[:, p[2]].min(), frac[:, p[1]].min()))
    return list(best)


def nodes_for_weight(weight, n: int) -> np.ndarray:
    """Nodes for a piece whose weight (its parents' weights × its own mass) is ``weight`` (a
    number or an array): the full ``n`` where it can matter, fewer where its whole contribution
    is small (a rule's relative error at n/2 nodes is about the square root of that at n): half
    below 1e-6, a quarter below 1e-10, none below 1e-15."""
    w = np.asarray(weight, float)
    return np.select([w >= 1e-6, w >= 1e-10, w >= 1e-15], [n, max(6, n // 2), max(4, n // 4)], 0)


def _level2_lines(slanted, vert, scale, relu: bool) -> list:
    """The level-2 cut curves as lines α a₁ + β a₂ = γ in a = g(h) (a₁ = g(h₁), a₂ = g(h₂)):
    where a tie enters from h₃ = ±∞ (tanh, erf: ΔV₁a₁ + ΔV₂a₂ = ∓ΔV₃) or crosses h₃ = 0 where
    relu bends (ΔV₁a₁ + ΔV₂a₂ = 0), where two ties coincide (the three-way tie, a line through
    0) and a vertical tie (ΔV₃ = 0) itself.  Works on floats and on mpf alike."""
    lines = []
    for dv in slanted:
        if max(abs(dv[0]), abs(dv[1])) > _TINY * scale:
            lines += [(dv[0], dv[1], 0 * dv[2])] if relu else [(dv[0], dv[1], s * dv[2]) for s in (1, -1)]
    for i, A in enumerate(slanted):
        for B in slanted[i + 1:]:
            ln = (A[0] * B[2] - B[0] * A[2], A[1] * B[2] - B[1] * A[2], 0 * A[0])
            if max(abs(ln[0]), abs(ln[1])) > _TINY * scale ** 2:
                lines.append(ln)
    lines += [(dv[0], dv[1], 0 * dv[0]) for dv in vert if max(abs(dv[0]), abs(dv[1])) > _TINY * scale]
    return lines


def _teacher_lines(planes, slanted, relu: bool) -> list:
    """Level-2 cuts from the teacher's steep planes b·h = 0 (cut at level 3 where b₃ ≠ 0), as
    h₂ = p h₁ + q g(h₁): where two of them meet (a line through 0) and, for relu — whose ties are
    planes in each orthant — where one meets h₃ = 0 or a student tie (on both sides of h₂ = 0;
    a cut on the wrong side is only a spare piece).  Works on floats and on mpf alike."""
    out = []
    for i, b in enumerate(planes):
        for c in planes[i + 1:]:
            den = b[1] / b[2] - c[1] / c[2]
            if den != 0:
                out.append((-(b[0] / b[2] - c[0] / c[2]) / den, 0 * den))
        if relu and b[1] != 0:
            out.append((-b[0] / b[1], 0 * b[1]))
            for dv in slanted:
                den = dv[1] / dv[2] - b[1] / b[2]
                if den != 0:
                    out.append((b[0] / b[2] / den, -dv[0] / dv[2] / den))
                out.append((-b[0] / b[1], b[2] * dv[0] / dv[2] / b[1]))
    return out


def sign_change_roots(phi, x: np.ndarray) -> np.ndarray:
    """Roots of a vectorised φ between consecutive grid points x where it changes sign (never
    across 0, where the grids of `ray_crossings` / `metrics._crossings` have no point), refined
    by 60 bisections, all brackets at once."""
    f = phi(x)
    i = np.nonzero(np.sign(f[:-1]) * np.sign(f[1:]) < 0)[0]
    i = i[np.sign(x[i]) == np.sign(x[i + 1])]
    if not i.size:
        return np.zeros(0)
    lo, hi, flo = x[i], x[i + 1], f[i]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        fm = phi(mid)
        same = np.sign(fm) == np.sign(flo)
        lo, flo, hi = np.where(same, mid, lo), np.where(same, fm, flo), np.where(same, hi, mid)
    return 0.5 * (lo + hi)


def _crossings_a1(lines) -> list:
    """a₁ ∈ (−1, 1) of every crossing of two of the lines inside the box |a₂| ≤ 1 — where the
    piece structure of level 2 changes (the level-1 integrand's kinks)."""
    out = []
    for i, (a1, b1, c1) in enumerate(lines):
        for a2, b2, c2 in lines[i + 1:]:
            det = a1 * b2 - a2 * b1
            if abs(det) <= _TINY * max(abs(a1 * b2), abs(a2 * b1), 1e-300):
                continue
            x = (c1 * b2 - c2 * b1) / det
            y = (a1 * c2 - a2 * c1) / det
            if abs(x) < 1 and abs(y) <= 1 + 1e-12 and x != 0:
                out.append(x)
    return out


def tie_planes(ar, F, H, rows) -> list:
    """b = A_c − A_d for every class pair, E[x | h] = A h (x = ``rows``·f, h = ``H``·f, ``F`` the
    factor of the field covariance; `cone.condition`): the teacher's tie planes b·h = 0, where
    its class probabilities given h switch — steeply when the teacher is strong."""
    A = condition(ar, ar.matmul(rows, F), ar.matmul(H, F))[0]
    return [A[c] - A[d] for c in range(A.shape[0]) for d in range(c + 1, A.shape[0])]


def _roots(ar, phi_in, grid) -> list:
    """Roots of φ between sign changes on the double ``grid``: bracketed and bisected in double
    (`sign_change_roots`), refined in ``ar`` (``phi_in(ar)`` is φ in that arithmetic)."""
    return list(ar.refine_roots(phi_in(ar), sign_change_roots(phi_in(DOUBLE), grid)))


def _crossings(ar, act, dv0, dv1, kappa, scale) -> list:
    """h₁ > 0 where the student's tie curve dv0·g(h₁) + dv1·g(h₂) = 0 meets the teacher's tie
    line h₂ = κh₁: roots of φ(x) = dv0·g(x) + dv1·g(κx) on a geometric grid out to 12·scale (g odd:
    the crossings come in ± pairs)."""
    def phi_in(a):
        c0, c1, k = a.const(dv0), a.const(dv1), a.const(kappa)
        return lambda x: c0 * g_values(a, act, x) + c1 * g_values(a, act, k * x)
    return _roots(ar, phi_in, float(scale) * np.geomspace(1e-4, 12.0, 200))


def _ray_crossings(ar, act, line, kappa, scale) -> list:
    """h₁ ≠ 0 where a teacher ray h₂ = κh₁ (two steep planes meeting, `_teacher_lines`) crosses a
    level-2 line α g(h₁) + β g(h₂) = γ: roots of α g(x) + β g(κx) − γ on a geometric grid out to
    ±12·scale.  The level-2 integrand has a steep layer along each ray, so where one crosses a cut
    line the level-1 integrand has a kink in all but name."""
    def phi_in(a):
        al, be, ga, k = (a.const(v) for v in (*line, kappa))
        return lambda x: al * g_values(a, act, x) + be * g_values(a, act, k * x) - ga
    x = float(scale) * np.geomspace(1e-4, 12.0, 300)
    return _roots(ar, phi_in, np.concatenate([-x[::-1], x]))


def cut_rule_k3(ar, act: str, Q, V, planes, n):
    """The K = 3 cut rule (module docstring): (points h (N × 3, the model's unit order), weights,
    decisions ĉ), or None where Q is singular.  ``Q`` (3 × 3), ``V`` (C × 3: the task's heads) and
    the teacher's tie ``planes`` b (b·h = 0, `tie_planes`) in ``ar``'s numbers; ``n``: tanh–sinh
    nodes per piece, one count or one per level (η₁, η₂, η₃)."""
    relu = act == "relu"
    order = _unit_order(np.asarray(V, float))
    V = V[:, order]
    Q = Q[np.ix_(order, order)]
    L = ar.cholesky(Q)
    if L is None or not min(L[k, k] for k in range(3)) > ar.pivot_tol() * ar.sqrt(np.diag(Q)).max():
        return None
    n1, n2, n3 = (n, n, n) if np.isscalar(n) else n
    C = V.shape[0]
    dvs = [V[c] - V[d] for c in range(C) for d in range(c + 1, C)]
    scale = np.abs(np.array(dvs)).max() if dvs else 1.0
    vert = [dv for dv in dvs if abs(dv[2]) <= _TINY * scale]
    slanted = [dv for dv in dvs if abs(dv[2]) > _TINY * scale]

    # level 1: η₁ split at 0 and (tanh, erf) at every a₁ = g(h₁) where two level-2 cut curves
    # cross or one enters from h₂ = ±∞ — in a = g(h) every such curve is a line (`_level2_lines`)
    lines = _level2_lines(slanted, vert, scale, relu)
    planes = [np.asarray(b)[order] for b in planes]          # in the reordered units
    planes = [b for b in planes if abs(b[2]) > _TINY * np.abs(b).max()]
    cuts1 = [ar.const(0)]
    if not relu:            # relu's lines all pass through 0
        g1_at = np.array(_crossings_a1(lines + [(0, 1, 1), (0, 1, -1)]))
        cuts1 += [x for x in g_inverse_values(ar, act, g1_at) if x != ar.inf]
        for line in lines:          # teacher rays h₂ = κh₁ crossing a level-2 line
            for kappa, _ in _teacher_lines(planes, slanted, False):
                cuts1 += _ray_crossings(ar, act, line, kappa, L[0, 0])
    _, _, h1, w1 = _level(ar, ar.zeros(1), L[0, 0], np.array([cuts1]), n1, ar.full(1, ar.const(1)))
    x1 = h1 / L[0, 0]
    g1 = g_values(ar, act, h1)

    # level 2: the cuts in h₂ given h₁, where each line of `_level2_lines` meets this h₁
    cuts2 = [ar.zeros(len(h1))] + [g_inverse_values(ar, act, (c - a * g1) / b) for a, b, c in lines if b != 0]
    cuts2 += [p * h1 + q * g1 for p, q in _teacher_lines(planes, slanted, relu)]
    mean2 = L[1, 0] * x1
    pc2, i2, h2, w2 = _level(ar, mean2, L[1, 1], np.array(cuts2).T, n2, w1)
    p2 = pc2.parent[i2]
    h1b, x1b = h1[p2], x1[p2]
    x2 = (h2 - mean2[p2]) / L[1, 1]
    g1b, g2 = g1[p2], g_values(ar, act, h2)

    # level 3: the cuts in h₃ given (h₁, h₂)
    cuts3 = [ar.zeros(len(h2))]
    cuts3 += [g_inverse_values(ar, act, -(dv[0] * g1b + dv[1] * g2) / dv[2]) for dv in slanted]
    for b in planes:                       # the teacher's steep layers b·h = 0
        cuts3.append(-(b[0] * h1b + b[1] * h2) / b[2])
    mean3 = L[2, 0] * x1b + L[2, 1] * x2
    pc3, i3, h3, wts = _level(ar, mean3, L[2, 2], np.array(cuts3).T, n3, w2)
    par = pc3.parent
    c_piece = np.argmax(g_values(ar, act, np.stack([h1b[par], h2[par], pc3.rep], axis=1)) @ V.T, axis=1)
    p3 = par[i3]
    pts = np.stack([h1b[p3], h2[p3], h3], axis=1)
    keep = np.asarray(wts > 0, bool)
    return pts[keep][:, np.argsort(order)], wts[keep], c_piece[i3][keep]


@dataclass
class CutRule2:
    """The K ≤ 2 cut rule's levels: outer nodes η₁ (``x1``, weights ``w1``; one node η₁ = 0 of
    weight 1 for K = 1) and the innermost coordinate's pieces given each (`Pieces`, in units of
    η_K = (h_K − ``mean``)/``sd``), with the student's decision ``c_hat`` on each piece."""
    x1: np.ndarray
    w1: np.ndarray
    h1: np.ndarray
    mean: np.ndarray
    sd: object
    L: np.ndarray
    pieces: Pieces
    c_hat: np.ndarray


def cut_rule_k2(ar, act: str, Q, V, kappas, n: int, teacher_inner: bool):
    """The K ≤ 2 cut rule (h = L η, L the Cholesky factor of Q) up to the innermost coordinate:
    η₁ at ``n`` nodes per interval between 0, the points where a student tie curve enters from
    h₂ = ±∞ (|ΔV₀ g(h₁)/ΔV₁| = 1, tanh / erf) and the crossings of a student tie curve with a
    teacher tie line h₂ = κh₁ (``kappas``); given η₁, η₂'s pieces between 0, the student's ties
    h₂ = g⁻¹(−ΔV₀ g(h₁)/ΔV₁) and (``teacher_inner``: when the innermost coordinate is integrated
    by nodes, not exactly) the teacher lines.  ``Q``, ``V`` (C × K) in ``ar``'s numbers.  None
    where Q₁₁ = 0 (h₁ ≡ 0: ties, not a cut domain) or, K = 2, Q is singular."""
    K = V.shape[1]
    if not Q[0, 0] > ar.tiny:
        return None
    L = ar.zeros((K, K))
    L[0, 0] = ar.sqrt(np.array([Q[0, 0]]))[0]
    C = V.shape[0]
    dvs = [V[c] - V[d] for c in range(C) for d in range(c + 1, C)]   # the student's ties: dv·g(h) = 0
    if K == 1:
        x1, w1 = ar.zeros(1), ar.full(1, ar.const(1))
        h1, mean, sd = x1, ar.zeros(1), L[0, 0]
        cuts = ar.zeros((1, 1))
    else:
        L[1, 0] = Q[1, 0] / L[0, 0]
        L[1, 1] = ar.sqrt(np.array([max(Q[1, 1] - L[1, 0] ** 2, 0 * Q[1, 1])]))[0]
        if not L[1, 1] > ar.tie_tol() * ar.sqrt(np.array([Q[1, 1]]))[0]:
            return None
        outer = [ar.const(0)]
        if act != "relu":  # a tie curve entering from ±∞, or crossing a teacher line
            for dv0, dv1 in dvs:
                if dv0 != 0 and dv1 != 0 and abs(dv1 / dv0) < 1:
                    h = g_inverse_values(ar, act, np.array([abs(dv1 / dv0)]))[0]
                    outer += [h / L[0, 0], -h / L[0, 0]]
                for kappa in kappas:
                    for x in _crossings(ar, act, dv0, dv1, kappa, L[0, 0]):
                        outer += [x / L[0, 0], -x / L[0, 0]]
        edges = [-ar.inf] + sorted(set(outer)) + [ar.inf]
        u, uc, w = ar.rule01(n)
        m = len(edges) - 1
        x1, m1 = truncated_normal(ar, np.repeat(edges[:-1], n), np.repeat(edges[1:], n), np.tile(u, m), np.tile(uc, m))
        w1 = np.tile(w, m) * m1
        keep = np.asarray(w1 > 0, bool)
        x1, w1 = x1[keep], w1[keep]
        h1 = L[0, 0] * x1
        g1 = g_values(ar, act, h1)
        mean, sd = L[1, 0] * x1, L[1, 1]
        cuts = [ar.zeros(len(h1))] + ([kappa * h1 for kappa in kappas] if teacher_inner else [])
        cuts += [g_inverse_values(ar, act, -dv0 * g1 / dv1) for dv0, dv1 in dvs if dv1 != 0]
        cuts = np.array(cuts).T
    pc = _pieces(ar, mean, sd, cuts)
    h_in = [h1[pc.parent]] if K == 2 else []
    c_hat = np.argmax(g_values(ar, act, np.stack(h_in + [pc.rep], axis=1)) @ V.T, axis=1)
    return CutRule2(x1, w1, h1, mean, sd, L, pc, c_hat)


def cut_rule_k2_nodes(ar, rule: CutRule2, n: int):
    """(points h (N × K), weights, decisions): ``n`` tanh–sinh nodes on every innermost piece."""
    pc = rule.pieces
    i, h, w = piece_nodes(ar, pc, np.full(len(pc.lo), n), rule.w1, rule.sd, rule.mean)
    par = pc.parent[i]
    pts = np.stack(([rule.h1[par]] if rule.L.shape[0] == 2 else []) + [h], axis=1)
    keep = np.asarray(w > 0, bool)
    return pts[keep], w[keep], rule.c_hat[i][keep]


def teacher_tie_slopes(ar, F, H, rows_list) -> list:
    """κ with h₂ = κh₁ where two classes of E[x_t | h] tie (x = each of ``rows_list``; lines
    through 0 in the plane of a K = 2 trunk, `tie_planes`): the steep layers of P(x_t = c | h)
    when the teacher is strong."""
    out = []
    for rows in rows_list:
        for b in tie_planes(ar, F, H, rows):
            if abs(b[1]) > ar.tie_tol() * max(abs(b[0]), abs(b[1]), ar.tiny):
                out.append(-b[0] / b[1])
    return out

"""Exact errors of a nonlinear trunk with K = 3: the h-domain cut along the student's tie surfaces.

1 − gen_error = E_h[P(ȳ_t = ĉ(h) | h)] with ĉ(h) = argmax_c V_c·g(h) and the teacher's class
probability given h in closed form (`metrics` has the K ≤ 2 rule and the reasoning).  With
h = L η (L the Cholesky factor of Q, hidden units reordered so the innermost carries the ties)
the three levels are integrated one inside the other, each coordinate a truncated normal on the
pieces between its cuts (Genz coordinates, tanh–sinh nodes), so every integrand a rule sees is
analytic on its piece.  The key fact: in a = g(h) the student's tie surfaces are planes
ΔV·a = 0, so every curve where the piece structure of an inner level changes is a *line* in
(a₁, a₂), and the points where those lines cross are solved exactly.

* η₃ given (h₁, h₂): the decision changes only at the student's ties,
  h₃ = g⁻¹(−(ΔV₁g₁ + ΔV₂g₂)/ΔV₃) where that lies in g's range, and at h₃ = 0 (relu's kink);
  ĉ is read off inside each piece.  The teacher's steep planes b·h = 0 (b = A_c − A_d,
  E[λ_t | h] = A h) are cut too, linear in h₃.
* η₂ given h₁: where a level-3 cut appears, merges or goes vertical — the lines of
  `_level2_lines` (a tie entering from h₃ = ±∞, α a₁ + β a₂ = ∓ΔV₃ for tanh/erf; crossing
  h₃ = 0 for relu; the three-way tie; a vertical tie) — plus h₂ = 0 and the teacher lines of
  `_teacher_lines` (two steep planes meeting; for relu, whose ties are planes in each orthant,
  a plane meeting h₃ = 0 or a tie).
* η₁: 0, every crossing of two level-2 lines or of one with a₂ = ±1 (`_crossings_a1`, tanh /
  erf; relu's lines all pass through 0), and where a teacher ray crosses a level-2 line
  (`ray_crossings`, bisection).

The nodes per piece follow the piece's weight (`nodes_for_weight`: a piece that can contribute
< 1e-6 gets half the nodes, < 1e-10 a quarter, < 1e-15 none).  What each cut bought, measured
on random states: the η₁ line crossings took a tanh state from 1.5e-8 to 8e-13 at (24, 32, 24);
the η₃ teacher planes an erf state's level-3 error from 3.8e-7 to 5e-10; the relu teacher lines
its level-2 error from 2.5e-8 to 4e-11; the η₁ ray crossings an erf state from 9.6e-7 to 7e-9.
What remains is slow convergence of steep noiseless teachers in η₃ (1.1e-7 at 24 nodes, 1.3e-8
at 32).  Accuracy over 30 random states: benchmarks/results/k3_cut_rule.txt.  Deterministic; cost
≈ (η₁ pieces · n₁)(pieces₂ · n₂)(pieces₃ · n₃) label probabilities, 0.2–8 s per task and state.
The mp twin is `mp_errors._cut_rule_k3` (same cuts; mp rules and arithmetic).
"""
from __future__ import annotations

import numpy as np

from .activations import activation, activation_inverse
from .quadrature import _truncated_normal, tanh_sinh01

__all__ = ["nonlinear_errors_cut3", "nodes_for_weight", "ray_crossings"]

_TINY = 1e-12
_CHUNK = 400_000


def _inverse(name: str, x: np.ndarray) -> np.ndarray:
    """g⁻¹(x), NaN outside g's open range (relu: x > 0)."""
    inside = (x > 0) if name == "relu" else (np.abs(x) < 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(inside, activation_inverse(name)(np.where(inside, x, 0.0)), np.nan)


def _level(mean: np.ndarray, sd: float, cuts: np.ndarray, n: int, parent_weight: np.ndarray):
    """Nodes of h_j = mean + sd·x, x ~ N(0, 1), on the pieces between the cuts (N × m, h units,
    NaN = absent) of each of N parents: (parent index, h_j, weight × parent weight, piece
    midpoint in h_j), with `nodes_for_weight` tanh–sinh nodes on each piece."""
    cuts = np.sort(np.where(np.isnan(cuts), np.inf, cuts), axis=1)
    N = len(mean)
    e = np.hstack([np.full((N, 1), -np.inf), cuts, np.full((N, 1), np.inf)])
    a, b = e[:, :-1], e[:, 1:]
    keep = b > a
    keep[:, 1:] &= np.isfinite(a[:, 1:])          # the trailing +inf padding gives no pieces
    parent, piece = np.nonzero(keep)
    a, b = a[parent, piece], b[parent, piece]
    m = mean[parent]
    with np.errstate(invalid="ignore"):
        lo = np.where(np.isinf(a), a, (a - m) / sd)
        hi = np.where(np.isinf(b), b, (b - m) / sd)
    rep = np.where(np.isfinite(a) & np.isfinite(b), 0.5 * (a + b),
                   np.where(np.isfinite(a), a + 1.0, np.where(np.isfinite(b), b - 1.0, 0.0)))
    _, mass = _truncated_normal(lo, hi, np.full(len(lo), 0.5))
    weight = parent_weight[parent] * mass
    counts = nodes_for_weight(weight, n)
    out = []
    for k in sorted(set(counts.tolist()) - {0}):
        sel = np.nonzero(counts == k)[0]
        u, w = tanh_sinh01(k)
        x, ms = _truncated_normal(np.repeat(lo[sel], k), np.repeat(hi[sel], k), np.tile(u, len(sel)))
        out.append((np.repeat(parent[sel], k), np.repeat(m[sel], k) + sd * x,
                    np.tile(w, len(sel)) * ms * np.repeat(parent_weight[parent[sel]], k), np.repeat(rep[sel], k)))
    if not out:
        z = np.zeros(0)
        return z.astype(int), z, z, z
    return tuple(np.concatenate(col) for col in zip(*out))


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


def _merge(cuts, tol):
    """The sorted cuts with near-duplicates (within ``tol`` relative) merged."""
    out = []
    for c in sorted(cuts):
        if not out or c - out[-1] > tol * max(abs(c), 1):
            out.append(c)
    return out


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


def ray_crossings(g, lines, kappas, scale: float) -> np.ndarray:
    """h₁ ≠ 0 where a teacher ray h₂ = κh₁ (two steep planes meeting, `_teacher_lines`) crosses a
    level-2 line α g(h₁) + β g(h₂) = γ: sign changes of α g(x) + β g(κx) − γ on a geometric grid
    out to ±12·scale, refined by bisection (all brackets at once).  The level-2 integrand has a
    steep layer along each ray, so where one crosses a cut line the level-1 integrand has a kink
    in all but name."""
    x = scale * np.geomspace(1e-4, 12.0, 300)
    x = np.concatenate([-x[::-1], x])
    out = []
    for a, b, c in lines:
        for k in kappas:
            def phi(y):
                return a * g(y[:, None])[0][:, 0] + b * g((k * y)[:, None])[0][:, 0] - c
            out.append(sign_change_roots(phi, x))
    return np.concatenate(out) if out else np.zeros(0)


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


def nonlinear_errors_cut3(model, st, V: np.ndarray, p_gen, p_lab, n, planes=()):
    """(1 − gen_error, 1 − label_error) of one task of a K = 3 trunk, or None when Q is singular.
    ``V``: the task's heads (C × 3); ``p_gen``/``p_lab``: P(class | h) evaluators (points × C);
    ``n``: tanh–sinh nodes per piece, one count or one per level (η₁, η₂, η₃); ``planes``: the
    teacher's steep planes b·h = 0 in the model's unit order (b = A_c − A_d, E[λ_t | h] = A h)."""
    name = model.activation
    g = activation(name)
    order = _unit_order(V)
    V = V[:, order]
    Q = st.Q[np.ix_(order, order)]
    try:
        L = np.linalg.cholesky(Q)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.diag(L) > 1e-9 * np.sqrt(np.diag(Q).max())):
        return None
    n1, n2, n3 = (n, n, n) if np.isscalar(n) else n
    C = V.shape[0]
    dvs = [V[c] - V[d] for c in range(C) for d in range(c + 1, C)]
    scale = np.abs(np.array(dvs)).max() if dvs else 1.0
    vert = [dv for dv in dvs if abs(dv[2]) <= _TINY * scale]
    slanted = [dv for dv in dvs if abs(dv[2]) > _TINY * scale]

    # level 1: η₁ split at 0 and (tanh, erf) at every a₁ = g(h₁) where two level-2 cut curves
    # cross or one enters from h₂ = ±∞ — in a = g(h) every such curve is a line (`_level2_lines`)
    lines = _level2_lines(slanted, vert, scale, name == "relu")
    planes = [np.asarray(b, float)[order] for b in planes]          # in the reordered units
    planes = [b for b in planes if abs(b[2]) > _TINY * np.abs(b).max()]
    cuts1 = [0.0]
    if name != "relu":            # relu's lines all pass through 0
        g1_at = _crossings_a1(lines + [(0.0, 1.0, 1.0), (0.0, 1.0, -1.0)])
        cuts1 += [float(x) for x in _inverse(name, np.array(g1_at)) if np.isfinite(x)]
        rays = [p for p, q in _teacher_lines(planes, slanted, False)]
        cuts1 += ray_crossings(g, lines, rays, L[0, 0]).tolist()
    _, h1, w1, _ = _level(np.zeros(1), L[0, 0], np.array([cuts1]), n1, np.ones(1))
    x1 = h1 / L[0, 0]
    g1 = g(h1)[0]

    # level 2: the cuts in h₂ given h₁, where each line of `_level2_lines` meets this h₁
    cuts2 = [np.zeros_like(h1)] + [_inverse(name, (c - a * g1) / b) for a, b, c in lines if b != 0]
    cuts2 += [p * h1 + q * g1 for p, q in _teacher_lines(planes, slanted, name == "relu")]
    mean2 = L[1, 0] * x1
    p2, h2, w2, _ = _level(mean2, L[1, 1], np.array(cuts2).T, n2, w1)
    h1b, x1b = h1[p2], x1[p2]
    x2 = (h2 - mean2[p2]) / L[1, 1]
    g1b, g2 = g1[p2], g(h2)[0]

    # level 3: the cuts in h₃ given (h₁, h₂)
    cuts3 = [np.zeros_like(h2)]
    cuts3 += [_inverse(name, -(dv[0] * g1b + dv[1] * g2) / dv[2]) for dv in slanted]
    for b in planes:                       # the teacher's steep layers b·h = 0
        cuts3.append(-(b[0] * h1b + b[1] * h2) / b[2])
    mean3 = L[2, 0] * x1b + L[2, 1] * x2
    p3, h3, wts, rep3 = _level(mean3, L[2, 2], np.array(cuts3).T, n3, w2)
    pts = np.stack([h1b[p3], h2[p3], h3], axis=1)
    mid = np.stack([h1b[p3], h2[p3], rep3], axis=1)
    c_hat = np.argmax(g(mid)[0] @ V.T, axis=1)
    keep = wts > 0
    pts, wts, c_hat = pts[keep][:, np.argsort(order)], wts[keep], c_hat[keep]   # h in the model's unit order
    hit_gen, hit_lab = 0.0, (None if p_lab is None else 0.0)
    for i in range(0, len(wts), _CHUNK):        # bounded memory: the label closed forms per chunk
        sl = slice(i, i + _CHUNK)
        hit_gen += wts[sl] @ np.take_along_axis(p_gen(pts[sl]), c_hat[sl, None], axis=1)[:, 0]
        if p_lab is not None:
            hit_lab += wts[sl] @ np.take_along_axis(p_lab(pts[sl]), c_hat[sl, None], axis=1)[:, 0]
    return hit_gen, hit_lab

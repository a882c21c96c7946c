"""Predicted errors from the order parameters (MODEL.md, "What is predicted").

    gen_error_t   = 1 − Σ_c P(argmax z_t = c, argmax λ_t = c)
    label_error_t = 1 − Σ_c P(argmax z_t = c, y_t = c)
    test_loss_t   = E[logsumexp z_t] − Σ_c E[1{y_t = c} z_{t,c}]

For linear trunks (and glm students) z_t is Gaussian, so each joint argmax event is a cone in
2(C_t − 1) dimensions: closed form for C_t = 2 (the bivariate orthant 1/4 + asin ρ/2π), Genz
product rule above, with the student's argmax cone split into halves where it opens wider than
90° (`quadrature.wide_sector_halves`: on a two-task C = 3 trunk the unsplit rule stalled at
3e-8 from the mp value at any budget; split, 1e-11).  For nonlinear trunks the student's argmax region is not a cone in h; the
teacher's class probabilities given h are closed forms (C_t ≤ 3), and the h-integral is cut
along the student's tie curves (and the teacher's steep tie lines) for K ≤ 2
(`_nonlinear_errors_cut`, a deterministic rule: within 1.3e-8 of itself at 4× the nodes on
240 random states, ~1e-11 from its mp twin `mp_errors`), along the tie surfaces for K = 3
(`tie_cuts`: three nested levels, every cut exact; ≈ 1e-7 at (24, 32, 24) nodes, 0.2–8 s per
task; `Accuracy.cut_nodes3`, set by `accuracy="high"`), or uses randomised QMC (K = 3 by
default — standard error ≈ 1e-4, fast — and K ≥ 4), whose standard error is returned
(`TaskMetrics.gen_error_se`).  z_{t,c} in the loss enters linearly when the
trunk is linear (Gaussian conditioning), so the loss needs only (C_t − 1)-dimensional smooth
integrals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import activation, activation_inverse
from .model import State, TheoryModel, argmax_cone, cone_stack
from .online import (Accuracy, label_given_h, _diff_rows, _given_h, _softmax_expectation, _lse_from_diffs, h_integral,
                     logsumexp)
from .quadrature import _truncated_normal, cone_expectation, gaussian_factor, tanh_sinh01
from .tie_cuts import nonlinear_errors_cut3, sign_change_roots

__all__ = ["task_metrics", "TaskMetrics"]


@dataclass
class TaskMetrics:
    gen_error: float
    label_error: float
    test_loss: float
    gen_error_se: float = 0.0     # quadrature standard error (randomised rules only)
    label_error_se: float = 0.0


def _linear_errors(model, st, factor, t, acc, label=True):
    z = model.rows_logits(st, t)
    gen = lab = 0.0
    for c in range(model.classes[t]):
        zc = argmax_cone(z, c)
        gen += cone_expectation(factor, cone_stack(zc, argmax_cone(model.rows_lambda(t), c)),
                                np.zeros((0, model.n_fields)), None, budget=acc.metric_budget, seed=acc.qmc_seed,
                                split_wide=True).plain[0]
        if label:
            lab += cone_expectation(factor, cone_stack(zc, argmax_cone(model.rows_nu(t), c)),
                                    np.zeros((0, model.n_fields)), None,
                                    budget=acc.metric_budget, seed=acc.qmc_seed, split_wide=True).plain[0]
    return 1.0 - gen, (1.0 - lab) if label else float("nan"), 0.0, 0.0


def _linear_loss(model, st, factor, t, acc):
    z = model.rows_logits(st, t)
    lse = _softmax_expectation(model, st, factor, None, [t], _diff_rows(z),
                               lambda u: (_lse_from_diffs(u)[:, None], None), None, acc).plain[0]
    one = lambda p: (np.ones((p.shape[0], 1)), np.ones((p.shape[0], 1)))  # noqa: E731
    ez = 0.0
    for c in range(model.classes[t]):
        r = cone_expectation(factor, argmax_cone(model.rows_nu(t), c), np.zeros((0, model.n_fields)),
                             one, z[c:c + 1], budget=acc.budget, seed=acc.qmc_seed)
        ez += r.linear[0, 0]
    return lse - ez


def _g_inverse(name: str, x: np.ndarray) -> np.ndarray:
    """h with g(h) = x (NaN outside g's open range; relu: x > 0 only)."""
    inside = (x > 0) if name == "relu" else (np.abs(x) < 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(inside, activation_inverse(name)(np.where(inside, x, 0.0)), np.nan)


def _tie_pairs(C: int):
    return [(c, d) for c in range(C) for d in range(c + 1, C)]


def _crossings(g, dv0: float, dv1: float, kappa: float, scale: float) -> np.ndarray:
    """h₁ > 0 where the student's tie curve dv0·g(h₁) + dv1·g(h₂) = 0 meets the line
    h₂ = κh₁ (a tie of the teacher's conditional means): sign changes of
    φ(x) = dv0·g(x) + dv1·g(κx) on a geometric grid out to 12·scale, refined by bisection, all
    brackets at once (g odd: the crossings come in ± pairs)."""
    def phi(x):
        return dv0 * g(x[:, None])[0][:, 0] + dv1 * g((kappa * x)[:, None])[0][:, 0]
    return sign_change_roots(phi, scale * np.geomspace(1e-4, 12.0, 200))


def _teacher_tie_slopes(model, factor, t: int, fields) -> list:
    """κ with h₂ = κh₁ where two classes of E[x_t | h] tie (x = λ and/or ν; lines through 0 in
    the plane of a K = 2 trunk): the steep layers of P(x_t = c | h) when the teacher is strong."""
    out = []
    for rows in fields:
        A = _given_h(model, factor, rows)[0]          # E[x | h] = A h
        for c, d in _tie_pairs(A.shape[0]):
            b = A[c] - A[d]
            if abs(b[1]) > 1e-12 * max(np.abs(b).max(), 1e-300):
                out.append(-b[0] / b[1])
    return out


def _nonlinear_errors_cut(model, st, t, p_gen, p_lab, factor, n: int):
    """1 − gen_error and 1 − label_error of task t for a trunk with K ≤ 2, by cutting the
    h-domain along the student's tie curves (the double twin of `mp_errors.nonlinear_metrics_mp`,
    see there): h = L η (Cholesky), η₁ split at 0 and where a tie curve enters from ±∞, η₂ at 0
    and at h₂ = g⁻¹(−ΔV₀ g(h₁)/ΔV₁) per class pair; ĉ constant on each piece, the teacher's class
    probabilities given h in closed form, Genz/tanh–sinh nodes (``n`` per level) on every piece.
    The teacher's steep layers are cut too: the tie lines h₂ = κh₁ of E[λ_t | h] and E[ν_t | h]
    as inner cuts, and their crossings with the student's tie curves as outer cuts.
    Deterministic (an exact tier: no standard error).  Measured on 240 random states (K ≤ 2,
    C ≤ 3, relu / tanh / erf, teachers of norm 1 and 3) against 160 nodes: K = 2 at 40 nodes
    (the default) within 1.3e-8, 24 nodes 2e-6; K = 1 at 64 nodes 1e-13.  Without the teacher
    cuts 32 nodes erred by up to 1.7e-4."""
    g = activation(model.activation)
    name = model.activation
    K = model.K
    V = st.V[t]
    Q = st.Q
    if not Q[0, 0] > 1e-300:   # h₁ ≡ 0 (σ₀ = 0 at t = 0): ties, not halves — the general rule
        return None
    L11 = np.sqrt(Q[0, 0])
    u, w = tanh_sinh01(n)
    dvs = [V[c] - V[d] for c, d in _tie_pairs(V.shape[0])]   # the student's ties: dv·g(h) = 0
    outer, kappas = [0.0], []
    if K == 2:
        L21 = Q[1, 0] / L11
        L22 = np.sqrt(max(Q[1, 1] - L21 ** 2, 0.0))
        if not L22 > 1e-12 * np.sqrt(Q[1, 1]):
            return None
        # the teacher's steep layers: lines h₂ = κh₁ become inner cuts
        kappas = _teacher_tie_slopes(
            model, factor, t, [model.rows_lambda(t)] + ([model.rows_nu(t)] if p_lab is not None else []))
        if name != "relu":  # outer cuts: a tie curve entering from ±∞, or crossing a teacher line
            for dv0, dv1 in dvs:
                if dv0 != 0 and dv1 != 0 and abs(dv1 / dv0) < 1:
                    h1 = float(_g_inverse(name, np.array([abs(dv1 / dv0)]))[0])
                    outer += [h1 / L11, -h1 / L11]
                for kappa in kappas:
                    for x in _crossings(g, dv0, dv1, kappa, L11):
                        outer += [x / L11, -x / L11]
    edges = np.unique(np.r_[-np.inf, outer, np.inf])
    lo = np.repeat(edges[:-1], n)
    hi = np.repeat(edges[1:], n)
    x1, m1 = _truncated_normal(lo, hi, np.tile(u, len(edges) - 1))
    w1 = np.tile(w, len(edges) - 1) * m1
    h1 = L11 * x1

    def decide(h):
        return np.argmax(g(h)[0] @ V.T, axis=1)

    if K == 1:
        h = h1[:, None]
        c_hat = decide(np.sign(x1)[:, None])
        pts, wts = h, w1
    else:
        g1 = g(h1[:, None])[0][:, 0]
        cuts = [np.zeros_like(h1)] + [kappa * h1 for kappa in kappas]
        cuts += [_g_inverse(name, -dv0 * g1 / dv1) for dv0, dv1 in dvs if dv1 != 0]
        cuts = np.sort(np.where(np.isnan(np.array(cuts).T), np.inf, np.array(cuts).T), axis=1)
        e = np.hstack([np.full((len(h1), 1), -np.inf), cuts, np.full((len(h1), 1), np.inf)])
        a, b = e[:, :-1], e[:, 1:]                                   # (outer, pieces)
        both = np.isfinite(a) & np.isfinite(b)
        rep = np.where(both, 0.5 * (a + b), np.where(np.isfinite(a), a + 1.0, b - 1.0))
        rep = np.where(np.isinf(a) & np.isinf(b), 0.0, rep)
        c_hat = decide(np.stack([np.broadcast_to(h1[:, None], rep.shape).ravel(), rep.ravel()], axis=1))
        mean2 = (L21 * x1)[:, None]
        lo2 = np.where(np.isinf(a), a, (a - mean2) / L22)
        hi2 = np.where(np.isinf(b), b, (b - mean2) / L22)
        P = a.shape[1]
        lo2 = np.repeat(lo2.ravel(), n)
        hi2 = np.repeat(hi2.ravel(), n)
        empty = ~(hi2 > lo2)
        x2, m2 = _truncated_normal(np.where(empty, 0.0, lo2), np.where(empty, 1.0, hi2), np.tile(u, len(h1) * P))
        m2 = np.where(empty, 0.0, m2)
        wts = np.repeat(w1, P * n) * np.tile(w, len(h1) * P) * m2
        h1r = np.repeat(h1, P * n)
        pts = np.stack([h1r, np.repeat(mean2[:, 0], P * n) + L22 * x2], axis=1)
        c_hat = np.repeat(c_hat, n)
        keep = wts > 0
        pts, wts, c_hat = pts[keep], wts[keep], c_hat[keep]
    hit_gen = wts @ np.take_along_axis(p_gen(pts), c_hat[:, None], axis=1)[:, 0]
    hit_lab = None if p_lab is None else wts @ np.take_along_axis(p_lab(pts), c_hat[:, None], axis=1)[:, 0]
    return hit_gen, hit_lab


def _nonlinear_errors(model, st, factor, t, acc, label=True, seed=0):
    g = activation(model.activation)
    V = st.V[t]
    H = model.rows_h()
    # Rao–Blackwellised: 1 − gen_error = E_h[P(ȳ_t = argmax z_t(h) | h)], the teacher's class
    # probability given h in closed form (C ≤ 3) — one randomised-QMC integral over h per task
    # (the student's argmax regions are not cones in h) whose integrand jumps only by differences
    # of class probabilities across the student's decision boundaries.
    p_gen = label_given_h(model, factor, t, "lambda", min_residual=1e-9, stein=False)
    p_lab = label_given_h(model, factor, t, "nu", min_residual=1e-9, stein=False) if label else None
    if p_gen is not None and (p_lab is not None or not label) and model.K <= 2 and acc.cut_errors:
        hits = _nonlinear_errors_cut(model, st, t, p_gen, p_lab if label else None, factor,
                                     n=acc.cut_nodes if model.K == 2 else max(acc.cut_nodes, 64))
        if hits is not None:
            return 1.0 - hits[0], (1.0 - hits[1]) if label else float("nan"), 0.0, 0.0
    if p_gen is not None and (p_lab is not None or not label) and model.K == 3 and acc.cut_nodes3:
        A = _given_h(model, factor, model.rows_lambda(t))[0]       # E[λ_t | h] = A h: steep planes
        planes = [A[c] - A[d] for c, d in _tie_pairs(A.shape[0])]
        hits = nonlinear_errors_cut3(model, st, V, p_gen, p_lab if label else None, acc.cut_nodes3, planes)
        if hits is not None:
            return 1.0 - hits[0], (1.0 - hits[1]) if label else float("nan"), 0.0, 0.0
    if p_gen is not None and (p_lab is not None or not label):
        def hit(h):
            c = np.argmax(g(h)[0] @ V.T, axis=1)[:, None]
            cols = [np.take_along_axis(p_gen(h), c, axis=1)]
            if label:
                cols.append(np.take_along_axis(p_lab(h), c, axis=1))
            return np.concatenate(cols, axis=1), None
        r = cone_expectation(factor, None, H, hit, rule="rqmc", n_qmc=acc.qmc_points,
                             replicates=acc.qmc_replicates, seed=seed)
        return 1.0 - r.plain[0], (1.0 - r.plain[1]) if label else float("nan"), float(r.plain_se[0]), \
            float(r.plain_se[1]) if label else 0.0
    gen = lab = 0.0
    gen_var = lab_var = 0.0
    for c in range(model.classes[t]):
        def ind(h, c=c):
            z = g(h)[0] @ V.T
            return (np.argmax(z, axis=1) == c).astype(float)[:, None], None
        events = ((model.rows_lambda(t), "gen"), (model.rows_nu(t), "lab")) if label else \
            ((model.rows_lambda(t), "gen"),)
        for rows, kind in events:
            r = cone_expectation(factor, argmax_cone(rows, c), H, ind, rule="rqmc",
                                 n_qmc=acc.qmc_points, replicates=acc.qmc_replicates, seed=seed + 97 * c)
            if kind == "gen":
                gen += r.plain[0]
                gen_var += r.plain_se[0] ** 2
            else:
                lab += r.plain[0]
                lab_var += r.plain_se[0] ** 2
    return 1.0 - gen, (1.0 - lab) if label else float("nan"), float(np.sqrt(gen_var)), \
        float(np.sqrt(lab_var))


def _nonlinear_loss(model, st, factor, t, acc):
    g = activation(model.activation)
    V = st.V[t]
    H = model.rows_h()
    lab = label_given_h(model, factor, t)
    if lab is not None:  # E[lse z] − Σ_c E[P(y = c | h) z_c] in one integral over h
        def fn(h):
            z = g(h)[0] @ V.T
            return (logsumexp(z, axis=1) - (lab(h)[0] * z).sum(axis=1))[:, None], None
        return h_integral(model, st, factor, acc, None, H, fn)[0][0]
    lse = h_integral(model, st, factor, acc, None, H,
                     lambda h: (logsumexp(g(h)[0] @ V.T, axis=1)[:, None], None))[0][0]
    ez = 0.0
    for c in range(model.classes[t]):
        ez += h_integral(model, st, factor, acc, argmax_cone(model.rows_nu(t), c), H,
                         lambda h, c=c: ((g(h)[0] @ V[c])[:, None], None))[0][0]
    return lse - ez


def task_metrics(model: TheoryModel, st: State, acc: Accuracy = Accuracy(), *,
                 errors: bool = True, loss: bool = True, label: bool = True,
                 tasks=None) -> list[TaskMetrics]:
    """gen_error, label_error, test_loss of every task (or of the task indices `tasks`) at order
    parameters `st`."""
    factor = gaussian_factor(model.field_cov(st))
    out = []
    for t in (range(model.n_tasks) if tasks is None else tasks):
        if errors:
            f = _linear_errors if model.linear else _nonlinear_errors
            ge, le, gse, lse = f(model, st, factor, t, acc, label)
        else:
            ge = le = gse = lse = float("nan")
        if loss:
            tl = (_linear_loss if model.linear else _nonlinear_loss)(model, st, factor, t, acc)
        else:
            tl = float("nan")
        out.append(TaskMetrics(float(ge), float(le), float(tl), gse, lse))
    return out

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
240 random states, ~1e-11 from the mp route `mp_errors`), along the tie surfaces for K = 3
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

from .activations import activation
from .cone import DOUBLE
from .model import State, TheoryModel, argmax_cone, cone_stack
from .online import Accuracy, label_given_h, _diff_rows, _softmax_expectation, _lse_from_diffs, h_integral, logsumexp
from .quadrature import cone_expectation, gaussian_factor
from .tie_cuts import cut_rule_k2, cut_rule_k2_nodes, cut_rule_k3, teacher_tie_slopes, tie_planes

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


def _cut_hits(pts, wts, c_hat, p_gen, p_lab, chunk: int = 400_000):
    """Σ w P(ȳ = ĉ | h) and Σ w P(y = ĉ | h) over a cut rule's points (bounded memory: the label
    closed forms per chunk)."""
    hit_gen, hit_lab = 0.0, (None if p_lab is None else 0.0)
    for i in range(0, len(wts), chunk):
        sl = slice(i, i + chunk)
        hit_gen += wts[sl] @ np.take_along_axis(p_gen(pts[sl]), c_hat[sl, None], axis=1)[:, 0]
        if p_lab is not None:
            hit_lab += wts[sl] @ np.take_along_axis(p_lab(pts[sl]), c_hat[sl, None], axis=1)[:, 0]
    return hit_gen, hit_lab


def _nonlinear_errors_cut(model, st, t, p_gen, p_lab, factor, n: int):
    """1 − gen_error and 1 − label_error of task t for a trunk with K ≤ 2, by cutting the
    h-domain along the student's tie curves (`tie_cuts.cut_rule_k2`, with the reasoning):
    h = L η (Cholesky), η₁ split at 0 and where a tie curve enters from ±∞, η₂ at 0
    and at h₂ = g⁻¹(−ΔV₀ g(h₁)/ΔV₁) per class pair; ĉ constant on each piece, the teacher's class
    probabilities given h in closed form, Genz/tanh–sinh nodes (``n`` per level) on every piece.
    The teacher's steep layers are cut too: the tie lines h₂ = κh₁ of E[λ_t | h] and E[ν_t | h]
    as inner cuts, and their crossings with the student's tie curves as outer cuts.
    Deterministic (an exact tier: no standard error).  Measured on 240 random states (K ≤ 2,
    C ≤ 3, relu / tanh / erf, teachers of norm 1 and 3) against 160 nodes: K = 2 at 40 nodes
    (the default) within 1.3e-8, 24 nodes 2e-6; K = 1 at 64 nodes 1e-13.  Without the teacher
    cuts 32 nodes erred by up to 1.7e-4."""
    kappas = teacher_tie_slopes(DOUBLE, factor, model.rows_h(), [model.rows_lambda(t)] + (
        [model.rows_nu(t)] if p_lab is not None else [])) if model.K == 2 else []
    rule = cut_rule_k2(DOUBLE, model.activation, st.Q, st.V[t], kappas, n, teacher_inner=True)
    if rule is None:     # h₁ ≡ 0 (σ₀ = 0 at t = 0) or a singular Q: the general rule
        return None
    return _cut_hits(*cut_rule_k2_nodes(DOUBLE, rule, n), p_gen, p_lab)


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
        planes = tie_planes(DOUBLE, factor, H, model.rows_lambda(t))      # E[λ_t | h] = A h: steep planes
        rule = cut_rule_k3(DOUBLE, model.activation, st.Q, V, planes, acc.cut_nodes3)
        if rule is not None:
            hits = _cut_hits(*rule, p_gen, p_lab if label else None)
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

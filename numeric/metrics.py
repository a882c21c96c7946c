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
along the student's tie curves for K ≤ 2 (`cut_rule_hits`, a deterministic rule, the innermost
coordinate exact: `slab_cone`; the outer rule at 40 nodes within 1.3e-8 of itself at 4× the
nodes on 240 random states),
along the tie surfaces for K = 3
(`tie_cuts`: three nested levels, every cut exact; ≈ 1e-7 at (24, 32, 24) nodes, 0.2–8 s per
task; `Accuracy.cut_nodes3`, set by `accuracy="high"`), or uses randomised QMC (K = 3 by
default — standard error ≈ 1e-4, fast — and K ≥ 4), whose standard error is returned
(`TaskMetrics.gen_error_se`).  z_{t,c} in the loss enters linearly when the
trunk is linear (Gaussian conditioning), so the loss needs only (C_t − 1)-dimensional smooth
integrals.

One code for both number types (`task_metrics`' ``rules``): the mp path (`mp_online.MpRules`)
runs the same routes at node counts of its own (`mp_online.MP_ACCURACY`), with two differences
its rules state: a linear trunk's agreement by an independent closed-form route first
(`MpRules.agreement`), and no randomised tier, so a nonlinear trunk's errors are the cut rule's
or outside its reach (`mp_online.check_mp`), its test loss at the cut rule's points.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtsp.errors import ReachError

from .activations import activation, g_values
from .model import State, TheoryModel, argmax_cone, cone_stack
from .cone import label_cones
from .online import (DOUBLE_RULES, Accuracy, _cone_probability, _diff_rows, _lse_from_diffs, _softmax_expectation,
                     h_integral, label_given_h, logsumexp)
from .quadrature import cone_expectation
from .slab_cone import SlabCone
from .tie_cuts import Pieces, cut_rule_k2, cut_rule_k2_nodes, cut_rule_k3, piece_nodes, teacher_tie_slopes, tie_planes
from .workers import map_two

__all__ = ["task_metrics", "TaskMetrics", "cut_rule_hits", "cut_rule_loss"]


@dataclass
class TaskMetrics:
    gen_error: float
    label_error: float
    test_loss: float
    gen_error_se: float = 0.0     # quadrature standard error (randomised rules only)
    label_error_se: float = 0.0


def linear_agreement(model, st, factor, t, rows, acc, rules=DOUBLE_RULES):
    """Σ_c P(argmax z_t = c, argmax rows = c) over the 2(C_t − 1)-dim cones, in the arithmetic of ``rules``
    (the sum by `ar.dot`: exact summation in mp)."""
    z = model.rows_logits(st, t)
    p = [rules.expect(factor, cone_stack(argmax_cone(z, c), argmax_cone(rows, c)), np.zeros((0, model.n_fields)),
                      None, budget=acc.metric_budget, seed=acc.qmc_seed, split_wide=True).plain[0]
         for c in range(model.classes[t])]
    return rules.ar.dot(np.array(p), rules.ar.full(len(p), rules.scalar(1)))


def _linear_errors(model, st, factor, t, acc, label, rules):
    """(gen_error, label_error, 0, 0) of task t of a linear trunk: each agreement by the route of ``rules``
    (`rules.agreement`: the mp rules' independent closed form) where it has one, else by the cones."""
    def agreement(rows, fields):
        p = rules.agreement(model, st, factor, t, fields)
        return linear_agreement(model, st, factor, t, rows, acc, rules) if p is None else p
    gen = agreement(model.rows_lambda(t), "lambda")
    lab = agreement(model.rows_nu(t), "nu") if label else None
    return 1 - gen, (1 - lab) if label else float("nan"), 0.0, 0.0


def linear_loss(model, st, factor, t, acc, rules=DOUBLE_RULES):
    """E[lse z_t] − Σ_c E[1{y_t = c} z_tc] (z enters linearly), in the arithmetic of ``rules`` (mp: the
    route of the lse term decided in double at ``rules.decide_at``)."""
    z = model.rows_logits(st, t)
    lse = _softmax_expectation(model, st, factor, None, [t], _diff_rows(z),
                               lambda u: (_lse_from_diffs(u, rules)[:, None], None), None, acc, rules=rules).plain[0]
    one = lambda p: (rules.ar.full((p.shape[0], 1), rules.scalar(1)),) * 2  # noqa: E731
    ez = [rules.expect(factor, argmax_cone(model.rows_nu(t), c), np.zeros((0, model.n_fields)), one, z[c:c + 1],
                       budget=acc.budget, seed=acc.qmc_seed).linear[0, 0] for c in range(model.classes[t])]
    return lse - rules.ar.dot(np.array(ez), rules.ar.full(len(ez), rules.scalar(1)))


def _hits_at_points(cones, pts, wts, c_hat, rules):
    """Σ w P(x = ĉ | h) over a cut rule's points: per decision ĉ, the label cone of class ĉ given
    h (``cones``: `cone.label_cones`' (A, S, ·) per class) in closed form (Φ or Φ₂)."""
    tot = 0
    for c, (A, S, _) in enumerate(cones):
        sel = np.nonzero(c_hat == c)[0]
        if len(sel):
            tot = tot + wts[sel] @ _cone_probability(rules.ar.matmul(pts[sel], A.T), S, rules=rules)[0]
    return tot


def _hits_on_slabs(cones, rule, rules):
    """Σ over the innermost pieces of a K ≤ 2 cut rule of w₁ P(x = ĉ, lo < η_K < hi | η₁): given η₁
    the label cone of ĉ is u | η_K ~ N(α η₁ + β η_K, S), so a piece contributes Ψ(a, hi) − Ψ(a, lo)
    exactly (`slab_cone.SlabCone`)."""
    pc, L, K = rule.pieces, rule.L, rule.L.shape[0]
    x1, w1 = rule.x1[pc.parent], rule.w1[pc.parent]
    tot = 0
    for c, (A, S, _) in enumerate(cones):
        sel = np.nonzero(rule.c_hat == c)[0]
        if not len(sel):
            continue
        alpha = A[:, 0] * L[0, 0] + A[:, 1] * L[1, 0] if K == 2 else 0 * A[:, 0]
        psi = SlabCone(rules, A[:, K - 1] * rule.sd, S)
        a = x1[sel, None] * alpha[None, :]
        tot = tot + w1[sel] @ (psi(a, pc.hi[sel]) - psi(a, pc.lo[sel]))
    return tot


def cut_rule_hits(model, st, factor, t: int, n, label: bool = True, rules=DOUBLE_RULES):
    """(Σ P(ȳ_t = ĉ), Σ P(y_t = ĉ) or None) of a nonlinear trunk with K ≤ 3 over the h-domain cut
    along the student's ties (`tie_cuts`), in the arithmetic of ``rules`` (double: `DOUBLE_RULES`;
    mp: `mp_online.MpRules`, ``st`` and ``factor`` object arrays of mpf); None where the rule has no
    cut domain (h₁ ≡ 0, or Q singular).  K ≤ 2 (`cut_rule_k2`): ``n`` nodes per outer interval and
    the innermost coordinate exact (`_hits_on_slabs`; K = 1 needs no nodes); K = 3 (`cut_rule_k3`):
    ``n`` nodes per level (one count or three) and the label cone of ĉ at every point.  A noiseless
    task's y_t is ȳ_t: one sum serves both."""
    ar, K, act = rules.ar, model.K, model.activation
    H, V = rules.rows(model.rows_h()), st.V[t]
    rows = [rules.rows(model.rows_lambda(t))] + ([rules.rows(model.rows_nu(t))] if label else [])
    cones = [label_cones(ar, ar.matmul(r, factor), ar.matmul(H, factor))[0] for r in rows[:1 + (model.noise[t] != 0)]]
    if K == 3:
        rule = cut_rule_k3(ar, act, st.Q, V, tie_planes(ar, factor, H, rows[0]), n)
        hits = None if rule is None else [_hits_at_points(cs, *rule, rules) for cs in cones]
    else:
        kappas = teacher_tie_slopes(ar, factor, H, rows) if K == 2 else []
        rule = cut_rule_k2(ar, act, st.Q, V, kappas, n, teacher_inner=False)
        hits = None if rule is None else [_hits_on_slabs(cs, rule, rules) for cs in cones]
    if hits is None:
        return None
    return hits[0], (hits[-1] if label else None), rule


def label_logits(model, st, factor, t: int, n: int, rules=DOUBLE_RULES):
    """E[z_y(h)] of task t = Σ_{c,k} V_ck E_{h_k}[g(h_k) P(y = c | h_k)] (tower property: each term
    depends on h through one field): K one-dimensional integrals of the label probabilities given
    h_k in closed form, ``n`` nodes on each half-line of h_k (the means are linear in h_k: every
    steep layer sits at the cut h_k = 0)."""
    ar, V = rules.ar, st.V[t]
    halves = Pieces(np.zeros(2, int), np.array([-ar.inf, ar.const(0)]), np.array([ar.const(0), ar.inf]), None)
    ez = 0
    for k in range(model.K):
        if not st.Q[k, k] > 0:           # h_k ≡ 0 and g(0) = 0
            continue
        p_given = label_given_h(model, factor, t, "nu", min_residual=None, stein=False,
                                cond=model.rows_h()[k:k + 1], rules=rules)
        _, h, wh = piece_nodes(ar, halves, np.full(2, n), ar.full(1, ar.const(1)),
                               ar.sqrt(np.array([st.Q[k, k]]))[0], ar.zeros(1))
        ez = ez + (wh * g_values(ar, model.activation, h)) @ ar.matmul(p_given(h[:, None]), V[:, k:k + 1])[:, 0]
    return ez


def cut_rule_loss(model, st, factor, t: int, rule, n: int, label_nodes: int, rules=DOUBLE_RULES):
    """test_loss = E[logsumexp z(h)] − E[z_y(h)] of task t: the first at the points of a cut rule
    (``rule`` from `cut_rule_hits`; K ≤ 2: ``n`` nodes on every innermost piece), where logsumexp
    bends along the student's ties; the second by `label_logits` (``label_nodes``)."""
    ar = rules.ar
    pts, w, _ = cut_rule_k2_nodes(ar, rule, n) if model.K <= 2 else rule
    lse = w @ logsumexp(g_values(ar, model.activation, pts) @ st.V[t].T, 1, rules)
    return lse - label_logits(model, st, factor, t, label_nodes, rules)


def _cut_nodes(model, acc):
    """The cut rule's nodes of ``acc`` for this trunk (`cut_rule_hits`' ``n``), or None: no cut rule."""
    if model.K <= 2:
        return acc.cut_nodes if acc.cut_errors else None
    return (acc.cut_nodes3 or None) if model.K == 3 else None


def _nonlinear_errors(model, st, factor, t, acc, label, rules, seed=0):
    """(gen_error, label_error, their standard errors, the cut rule or None) of task t of a nonlinear
    trunk: the cut rule (`cut_rule_hits` at `_cut_nodes`) where the label cones given h are resolved
    and Q gives it a cut domain, else randomised QMC (`_rqmc_errors`).  Rules without a randomised
    tier (mp) check the labels before (`rules.for_metrics`) and say here that Q is singular."""
    nodes, p_gen, p_lab = _cut_nodes(model, acc), None, None
    if rules.randomised:
        p_gen = label_given_h(model, factor, t, "lambda", min_residual=1e-9, stein=False)
        p_lab = label_given_h(model, factor, t, "nu", min_residual=1e-9, stein=False) if label else None
        if p_gen is None or (label and p_lab is None):
            nodes = None
    hits = None if nodes is None else cut_rule_hits(model, st, factor, t, nodes, label, rules)
    if hits is not None:
        return 1 - hits[0], (1 - hits[1]) if label else float("nan"), 0.0, 0.0, hits[2]
    if not rules.randomised:
        raise ReachError("precision", f"the mp errors of nonlinear trunks need a nonsingular Q (K = {model.K})")
    return (*_rqmc_errors(model, st, factor, t, acc, label, p_gen, p_lab, seed), None)


def _rqmc_errors(model, st, factor, t, acc, label, p_gen, p_lab, seed):
    """(gen_error, label_error, their standard errors) of task t of a nonlinear trunk by randomised QMC
    over h: Rao–Blackwellised where the labels given h are in closed form (``p_gen``, ``p_lab``: 1 −
    gen_error = E_h[P(ȳ_t = argmax z_t(h) | h)], an integrand that jumps only by differences of class
    probabilities across the student's decision boundaries), else over the label cones."""
    g = activation(model.activation)
    V = st.V[t]
    H = model.rows_h()
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


def _nonlinear_metrics(model, st, factor, t, acc, errors, loss, label, rules):
    """(gen_error, label_error, test_loss, their standard errors) of task t of a nonlinear trunk: the errors
    by `_nonlinear_errors`; the test loss at the points of its cut rule (`cut_rule_loss`) with
    ``acc.cut_loss_nodes``, else by one integral over h (`_nonlinear_loss`)."""
    nan = float("nan")
    ge = le = gse = lse = nan
    rule = None
    if errors or (loss and acc.cut_loss_nodes):
        ge, le, gse, lse, rule = _nonlinear_errors(model, st, factor, t, acc, label, rules)
        if not errors:
            ge = le = gse = lse = nan
    if not loss:
        tl = nan
    elif acc.cut_loss_nodes and rule is not None:
        tl = cut_rule_loss(model, st, factor, t, rule, acc.cut_loss_nodes, acc.label_logit_nodes, rules)
    else:
        tl = _nonlinear_loss(model, st, factor, t, acc)
    return ge, le, tl, gse, lse


def task_metrics(model: TheoryModel, st: State, acc: Accuracy = Accuracy(), *,
                 errors: bool = True, loss: bool = True, label: bool = True,
                 tasks=None, rules=DOUBLE_RULES) -> list[TaskMetrics]:
    """gen_error, label_error, test_loss of every task (or of the task indices `tasks`) at order
    parameters `st`, in the arithmetic of ``rules``: `DOUBLE_RULES` (floats), or `mp_online.MpRules`
    (``st`` of mpf, `mp_online.mp_state`; the numbers mpf; what the mp path cannot take raises
    ReachError first, `mp_online.check_mp`; its node counts: `mp_online.MP_ACCURACY`).  Nonlinear
    trunks with ``rules.processes`` 2: one task per process (linear trunks split their integrals)."""
    ts = list(range(model.n_tasks) if tasks is None else tasks)
    factor = rules.factor(model.field_cov(st, rules.lift))
    rules = rules.for_metrics(model, st, factor, acc, ts, label)

    def one(t):
        if model.linear:
            ge, le, gse, lse = _linear_errors(model, st, factor, t, acc, label, rules) if errors else (float("nan"),) * 4
            tl = linear_loss(model, st, factor, t, acc, rules) if loss else float("nan")
        else:
            ge, le, tl, gse, lse = _nonlinear_metrics(model, st, factor, t, acc, errors, loss, label, rules)
        return TaskMetrics(rules.scalar(ge), rules.scalar(le), rules.scalar(tl), gse, lse)
    return map_two(one, ts, 1 if model.linear else rules.processes)

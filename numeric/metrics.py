"""Predicted errors from the order parameters (MODEL.md, "What is predicted").

    gen_error_t   = 1 − Σ_c P(argmax z_t = c, argmax λ_t = c)
    label_error_t = 1 − Σ_c P(argmax z_t = c, y_t = c)
    test_loss_t   = E[logsumexp z_t] − Σ_c E[1{y_t = c} z_{t,c}]

For linear trunks (and glm students) z_t is Gaussian, so each joint argmax event is a cone in
2(C_t − 1) dimensions: closed form for C_t = 2 (the bivariate orthant 1/4 + asin ρ/2π), Genz
product rule above.  For nonlinear trunks the student's argmax region is not a cone in h: the
teacher/label cone is still integrated exactly and the h-integral uses randomised QMC, whose
standard error is returned (`ErrorEstimate.se`).  z_{t,c} in the loss enters linearly when the
trunk is linear (Gaussian conditioning), so the loss needs only (C_t − 1)-dimensional smooth
integrals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import activation
from .model import State, TheoryModel, argmax_cone, cone_stack
from .online import (Accuracy, label_given_h, _diff_rows, _softmax_expectation, _lse_from_diffs, h_integral, logsumexp)
from .quadrature import cone_expectation, gaussian_factor

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
                                np.zeros((0, model.n_fields)), None, budget=acc.metric_budget, seed=acc.qmc_seed).plain[0]
        if label:
            lab += cone_expectation(factor, cone_stack(zc, argmax_cone(model.rows_nu(t), c)),
                                    np.zeros((0, model.n_fields)), None,
                                    budget=acc.metric_budget, seed=acc.qmc_seed).plain[0]
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

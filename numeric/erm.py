"""The `erm` protocol (MODEL.md) through the replica engine: setup → task channels → fixed point →
MODEL.md's predictions.

Per task t the reduced teacher is E T_tt Eᵀ = L_t L_tᵀ; the tasks' u_t are jointly N(0, G) with
G_ts = L_t⁺ E T_ts Eᵀ L_s⁺ᵀ (G_tt = I).  Separate inputs: one channel per task with α_t and the
coupled prior Λ = λ I + μ L_T.  Shared inputs without coupling: each W_t is the minimiser of its own
task on the common sample, so each task is its own single-task fixed point with the training α.
Shared inputs with coupling: one loss channel of all tasks (the stacked reduced fields, the joint
labels, the prox under the full metric V) with the same coupled prior.
The errors and the test loss are those of a glm student with Q_full = Eᵀ Q_tt E and
R_full = Eᵀ M_tt L_tᵀ E against the reduced teacher Gram Eᵀ L_t L_tᵀ E (`metrics.task_metrics`:
argmax and cross-entropy see logits only up to the all-ones direction); training loss and error
come from the fixed point's prox outputs; train_error of one task with C ≤ 3 without the jump of
its indicator (`replica.train_error_by_margins`, ≤ 2e-9); of one task with C ≥ 4 the indicator on
the QMC rule of `replica_qmc`; every prediction on the QMC rule the mean over independent scramblings
with its standard error (`qmc_replicates`, docs/REPLICA_QMC.md);
for coupled tasks on shared inputs the indicator on the ω grid, accurate to O(node spacing) only
(measured at MODEL.md's C = 3 point with that route: 7e-4).
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import replace

import mpmath
import numpy as np

from mtsp.errors import ConvergenceError, ReachError, RequestError

from mtsp.model import erm_problem   # the reduced problem: the theory model of an erm setup

from .cone import MP
from .metrics import task_metrics
from .model import State, TheoryModel
from .mp_online import task_metrics_mp
from .mp_replica import polish_mp
from .online import Accuracy
from .replica_qmc import QmcAccuracyWarning
from .replica import (
    ReplicaAccuracy,
    ReplicaMap,
    TaskChannel,
    reduced_basis,
    refuse_degenerate_students,
    solve_fixed_point,
)

__all__ = ["erm_problem", "optimal_ridge", "qmc_replicates", "solve_erm", "solve_erm_result", "task_predictions",
           "mp_accuracy"]


MAX_JOINT_LABEL_DIMS = 18  # coupled tasks on shared inputs: Σ_t (C_t − 1) (from `qmc_joint_dims` on the QMC rule;
MAX_JOINT_LABELS = 128     # and Π C_t joint labels, each a D-dim prox and Genz orthant per QMC point: two tasks
#                            up to C = 10, three up to C = 5, four C = 3, seven C = 2 (measured: docs/REPLICA_QMC.md,
#                            benchmarks/results/replica_joint_qmc.txt, replica_joint_wide.txt)


def one_task_model(model: TheoryModel, t: int, ch: TaskChannel) -> TheoryModel:
    """Task t as a one-task glm model against its reduced teacher Gram Eᵀ L Lᵀ E (the student's
    logits z = Eᵀζ with heads I): the model whose `metrics.task_metrics` are task t's predictions."""
    E = reduced_basis(ch.C)
    return TheoryModel(kind="glm", K=ch.C, activation="linear", classes=(ch.C,), offsets=(0,),
                       gram=E.T @ ch.L @ ch.L.T @ E, noise=np.array([ch.sigma]),
                       weights=np.array([ch.weight]), shares=np.array([1.0]), inputs="shared",
                       lr=model.lr, head_lr=model.head_lr, weight_decay=0.0, init_scale=0.0,
                       heads0=(np.eye(ch.C),), train_heads=False, names=(model.names[t],))


def task_predictions(model: TheoryModel, t: int, ch: TaskChannel, Q: np.ndarray, M: np.ndarray,
                     acc: Accuracy | None = None) -> dict:
    """gen_error, label_error, test_loss of task t from its block (Q, M) of the fixed point."""
    E = reduced_basis(ch.C)
    one = one_task_model(model, t, ch)
    st = State(E.T @ Q @ E, E.T @ M @ ch.L.T @ E, (np.eye(ch.C),))
    m = task_metrics(one, st, acc or Accuracy())[0]
    return {"gen_error": m.gen_error, "label_error": m.label_error, "test_loss": m.test_loss}


def _offsets(sizes):
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int)


def solve_erm_fixed_points(setup, acc: ReplicaAccuracy | None = None, start=None):
    """[(task indices, FixedPoint)]: one joint fixed point (separate inputs: one loss channel per
    task; coupled tasks on shared inputs: one joint loss channel of all tasks), or one per task
    (shared inputs without coupling: each task is its own minimisation on the common sample).  ``start``: the `fixed_points` of a nearby setup
    of the same structure (a warm start along a sweep in α or log λ)."""
    acc = acc or ReplicaAccuracy()
    model, channels, Lam, G = erm_problem(setup)
    refuse_degenerate_students(channels, model.names)
    tr = setup.training
    T = model.n_tasks
    if T > 1 and tr.inputs == "shared" and tr.coupling == 0:
        parts = []
        for t, ch in enumerate(channels):
            x0 = None if start is None else (start[t][1].Q, start[t][1].M, start[t][1].V)
            fp = solve_fixed_point([ch], Lam[t:t + 1, t:t + 1], np.eye(ch.r), acc, x0)
            parts.append(([t], fp))
        return model, channels, parts
    if T > 1 and tr.inputs == "shared":
        refuse_wide_joint_labels(channels)
    x0 = None if start is None else (start[0][1].Q, start[0][1].M, start[0][1].V)
    shared = tr.inputs == "shared"
    if x0 is None and shared and sum(ch.d for ch in channels) >= JOINT_COARSE_FROM:
        x0 = joint_coarse_start(channels, Lam, G, acc)
    fp = solve_fixed_point(channels, Lam, G, acc, x0, shared=shared)
    return model, channels, [(list(range(T)), fp)]


def refuse_wide_joint_labels(channels) -> None:
    """ReachError naming `training.coupling` where the joint loss channel of coupled tasks on shared
    inputs is beyond the measured reach: Σ_t (C_t − 1) > MAX_JOINT_LABEL_DIMS or Π C_t >
    MAX_JOINT_LABELS (every QMC point solves one prox of Σ_t (C_t − 1) dims per joint label)."""
    dims = sum(ch.d for ch in channels)
    labels = int(np.prod([ch.C for ch in channels]))
    if dims > MAX_JOINT_LABEL_DIMS or labels > MAX_JOINT_LABELS:
        raise ReachError("training.coupling", f"coupled tasks on shared inputs share one loss channel with "
                         f"Π C_t = {labels} joint labels, each an orthant of Σ_t (C_t − 1) = {dims} "
                         f"dimensions and a prox of as many; the replica engine integrates at most "
                         f"{MAX_JOINT_LABELS} joint labels of at most {MAX_JOINT_LABEL_DIMS} dimensions "
                         f"(two tasks up to C = 10, three up to C = 5, four C = 3, seven C = 2; the time per "
                         f"point grows with both); use separate inputs, coupling 0 or `mtsp simulate`")


JOINT_COARSE_FROM = 4   # joint channels of this field dimension start from `joint_coarse_start`
JOINT_COARSE_POINTS = 8   # ... the QMC route's coarse rule: this many times fewer points (at least 2^8)


def joint_coarse_start(channels, Lam, G, acc: ReplicaAccuracy):
    """(Q, M, V) of the joint loss channel of coupled tasks on shared inputs solved on a coarse rule
    to a residual of 1e-6 (`JOINT_COARSE`), the start of the full solve; None where it would not be
    coarser.  The tensor route (Σ_t (C_t − 1) < acc.qmc_joint_dims): 13 nodes per axis against the
    default's 21–23 (measured on two coupled C = 3 tasks, ρ = 0.7, α = 2, λ = 0.1, μ = 1: 15
    iterations on the full rule after this start against 20 from the generic one).  The QMC route:
    the first 1/JOINT_COARSE_POINTS of the rule's points (same scrambling; measured at 2^13 points
    on two coupled C = 3 tasks and four coupled C = 2 tasks: 17 full-rule iterations → 14 and 12
    after a 2^10-point start of 11 iterations, 2.6 → 2.2 and 4.7 → 3.6 s CPU; the fixed point the
    same within 5e-11, benchmarks/results/replica_joint_points_prox.txt)."""
    if acc.tol >= JOINT_COARSE.tol:
        return None
    dims = sum(ch.d for ch in channels)
    coarse = replace(JOINT_COARSE, qmc_joint_dims=acc.qmc_joint_dims, qmc_seed=acc.qmc_seed)
    if dims >= acc.qmc_joint_dims:
        points = acc.joint_points(dims) // JOINT_COARSE_POINTS
        if points < 2 ** 8:
            return None
        coarse = replace(coarse, qmc_joint_points=((0, points),))
    fp = solve_fixed_point(channels, Lam, G, coarse, None, shared=True)
    return fp.Q, fp.M, fp.V


def solve_erm(setup, acc: ReplicaAccuracy | None = None, metric_acc: Accuracy | None = None,
              start=None, *, precision: str = "double", dps: int = 30, nodes: int | None = None) -> dict:
    """MODEL.md's per-task predictions (one-entry lists) plus train_loss / train_error and the
    solver's residual and iteration count: {"tasks": {name: {...}}, "stats": {...}, "fixed_points":
    [(task indices, FixedPoint)]}.

    ``precision="mp"``: the same at ``dps`` digits — the double fixed point (on the mp route's
    accuracy, `mp_accuracy`; ``nodes`` per channel, default the double's rule) polished by Newton in
    mp (`mp_replica.polish_mp`; stats: its residuals and steps), its predictions in mp:
    gen_error and label_error by `mp_online.task_metrics_mp` (C ≥ 4: the double metrics at the mp
    point), test_loss the double metrics' at the mp point, and test_loss_rule (the test loss on
    the channel's rule, the integral `check.check_erm` compares with the double's on the same rule);
    "double": the double output it polished, "qmc": whether on the mp route's QMC rule."""
    if precision not in ("double", "mp"):
        raise RequestError("precision", f"double | mp (got {precision!r})")
    acc, qmc = acc or ReplicaAccuracy(), False
    if precision == "mp":
        _, channels, Lam, G = erm_problem(setup)
        tr = setup.training
        joint = len(channels) > 1 and tr.inputs == "shared" and tr.coupling != 0   # one loss channel of all tasks
        acc, qmc = mp_accuracy(channels, acc, nodes, joint)
    model, channels, parts = solve_erm_fixed_points(setup, acc, start)
    out = {"tasks": _predictions(model, channels, parts, metric_acc, mp=False),
           "stats": {"residual": [fp.residual for _, fp in parts], "iterations": [fp.iterations for _, fp in parts]},
           "fixed_points": parts}
    if precision == "double":
        return qmc_replicates(setup, acc, metric_acc, model, channels, out)
    polished = []
    for idx, fp in parts:
        chs = [channels[t] for t in idx]
        lam, g = (Lam, G) if len(idx) == len(channels) else (Lam[np.ix_(idx, idx)], np.eye(chs[0].r))
        fmap = ReplicaMap(chs, lam, g, acc, joint)
        polished.append((idx, polish_mp(fp, fmap, None if qmc or not nodes else [nodes] * len(fp.nodes), dps)))
    with mpmath.workdps(dps):
        tasks = _predictions(model, channels, polished, metric_acc, mp=True)
    return {"tasks": tasks, "stats": {"residual": [fp.residual for _, fp in polished],
                                      "iterations": [fp.iterations for _, fp in polished]},
            "fixed_points": polished, "double": out, "qmc": qmc}


QMC_REPLICATE_TOL = 1e-8   # the replicates after the first are solved to this residual (or acc.tol if larger):
#                            their fixed points need an accuracy far below the standard error they estimate


def qmc_replicates(setup, acc: ReplicaAccuracy, metric_acc, model, channels, out: dict) -> dict:
    """``out`` (`solve_erm`'s double output) as the mean over independent scramblings of the QMC rule
    where a fixed point has a channel on it (`FixedPoint.qmc`): replicate r solves the same fixed
    point on the rule of seed acc.qmc_seed + r (started from the first replicate's fixed point, solved to
    QMC_REPLICATE_TOL), and
    each prediction p is the mean p̄ of R replicates with the standard error

        SE(p̄) = sd_r(p_r) / √R    (the replicates are independent randomised-QMC estimates),

    R from acc.qmc_replicates[0], raised to R (SE/acc.qmc_target)² (at most qmc_replicates[1]) while
    some SE exceeds the target; where it still does, `replica_qmc.QmcAccuracyWarning` names
    `accuracy`, the task, the prediction and its SE.  Adds out["qmc_error"] ({task: {key: SE}}),
    stats["qmc_replicates"] (R) and stats["qmc_error"] (the largest SE); out["fixed_points"] stays
    the first replicate's.  Measured: docs/REPLICA_QMC.md."""
    lo, hi = acc.qmc_replicates
    parts = out["fixed_points"]
    if hi <= 1 or not any(fp.qmc for _, fp in parts):
        return out
    runs = [out["tasks"]]
    iterations = 0
    R = max(lo, 2)
    while True:
        for r in range(len(runs), R):
            rep = replace(acc, qmc_seed=acc.qmc_seed + r, tol=max(acc.tol, QMC_REPLICATE_TOL))
            _, _, p = solve_erm_fixed_points(setup, rep, parts)
            iterations += sum(fp.iterations for _, fp in p)
            runs.append(_predictions(model, channels, p, metric_acc, mp=False))
        se = {name: {key: float(np.std([run[name][key][0] for run in runs], ddof=1) / np.sqrt(len(runs)))
                     for key in pred} for name, pred in runs[0].items()}
        worst = max(v for pred in se.values() for v in pred.values())
        if worst <= acc.qmc_target or R >= hi:
            break
        R = int(min(hi, max(R + 1, np.ceil(R * (worst / acc.qmc_target) ** 2))))
    out["tasks"] = {name: {key: [float(np.mean([run[name][key][0] for run in runs]))] for key in pred}
                    for name, pred in runs[0].items()}
    out["qmc_error"] = se
    out["stats"].update(qmc_replicates=R, qmc_error=worst, qmc_replicate_iterations=iterations)
    if worst > acc.qmc_target:
        name, key = max(((n, k) for n, pred in se.items() for k in pred), key=lambda nk: se[nk[0]][nk[1]])
        warnings.warn(QmcAccuracyWarning(
            f"accuracy: the QMC rule's error estimate (standard error over {R} scramblings) of task "
            f"{name!r} {key} is {worst:.1e}, above the target {acc.qmc_target:.0e} at the most replicates "
            f"({hi}); compare --accuracy high"), stacklevel=3)
    return out


def _predictions(model, channels, parts, metric_acc, mp: bool) -> dict:
    """{name: {key: [value]}}: `task_predictions` of every task's block (Q_tt, M_tt) of its part's
    fixed point, train_loss and train_error from the fixed point's prox outputs; ``mp``: values in
    mp — gen_error and label_error by `task_metrics_mp` where C < 4, and test_loss_rule."""
    tasks = {}
    for idx, fp in parts:
        do = _offsets([channels[t].d for t in idx])
        ro = _offsets([channels[t].r for t in idx])
        for k, t in enumerate(idx):
            ch = channels[t]
            Q = fp.Q[do[k]:do[k + 1], do[k]:do[k + 1]]
            M = fp.M[do[k]:do[k + 1], ro[k]:ro[k + 1]]
            pred = task_predictions(model, t, ch, Q.astype(float), M.astype(float), metric_acc)
            if mp and ch.C < 4:
                E = MP.basis(ch.C)
                st = State(E.T @ Q @ E, E.T @ M @ ch.L.T @ E, (np.eye(ch.C),))
                pred.update(zip(("gen_error", "label_error"),
                                task_metrics_mp(one_task_model(model, t, ch), st, loss=False)[0]))
            pred.update(zip(("train_loss", "train_error", "test_loss_rule") if mp else ("train_loss", "train_error"),
                            fp.train[k]))
            tasks[model.names[t]] = {key: [v if mp else float(v)] for key, v in pred.items()}
    return tasks


MP_QMC_POINTS = 128   # the mp route's QMC rule (`mp_accuracy`)


def mp_accuracy(channels, acc: ReplicaAccuracy, nodes: int | None, joint: bool) -> tuple[ReplicaAccuracy, bool]:
    """(the accuracy of the mp map, whether its orthants are on the QMC rule): ``acc`` with train_error
    of C = 3 and of joint channels as the indicator on the rule, and where an orthant has ≥ 3 dims
    (C ≥ 4, or a joint channel of Σ_t (C_t − 1) ≥ 3: the mp map reaches those on the QMC rule only)
    that channel on the QMC rule of ``nodes`` (MP_QMC_POINTS) points (one task's `qmc_points` and
    every joint channel's `qmc_joint_points` alike); the double is re-solved on it."""
    acc = replace(acc, margin_train_error=1, boundary_train_error=False)
    if not (any(ch.C >= 4 for ch in channels) or joint and sum(ch.d for ch in channels) >= 3):
        return acc, False
    n = int(nodes or MP_QMC_POINTS)
    return replace(acc, qmc_classes=min(acc.qmc_classes, 4), qmc_joint_dims=min(acc.qmc_joint_dims, 3),
                   qmc_points=n, qmc_joint_points=((0, n),)), True


JOINT_COARSE = ReplicaAccuracy(spacing=(None, 0.3, 0.5, 0.6, 1.6), layer_fraction=0.8,
                               field_spacing=(None, 1.0, 1.0, 1.2, 1.8), max_nodes=(None, 801, 201, 61, 13),
                               tol=1e-6)

SEPARABLE_TRAIN_ERROR = 1e-9   # a train_error below this at the fixed point: separable training data

ACCURACIES = {
    "default": ReplicaAccuracy(),
    # half the node spacing and a tighter fixed point (measured: ≤ 1e-9 relative from default at C = 3)
    "high": ReplicaAccuracy(spacing=(None, 0.085, 0.18, 0.3, 0.55), layer_fraction=0.2,
                            field_spacing=(None, 0.4, 0.4, 0.6, 0.9),
                            max_nodes=(None, 1601, 301, 81, 33), tol=1e-12, qmc_points=2 ** 16,
                            qmc_joint_points=((0, 2 ** 15), (6, 2 ** 16)), qmc_target=1e-4),
    # coarser nodes, for exploration (QMC rules a quarter of the default's, as the high ones four times)
    "fast": ReplicaAccuracy(spacing=(None, 0.3, 0.5, 0.6, 1.0), layer_fraction=0.6,
                            field_spacing=(None, 1.0, 1.0, 1.2, 1.4),
                            max_nodes=(None, 801, 201, 61, 19),
                            tol=1e-8, qmc_points=2 ** 12, qmc_joint_points=((0, 2 ** 11), (6, 2 ** 12)),
                            qmc_replicates=(2, 4), qmc_target=1e-3),
}


def solve_erm_result(setup, *, single: bool = False, accuracy: str = "default",
                     precision: str = "double", dps: int = 30, mp_nodes: int | None = None):
    """`numeric.solve.solve` for the erm protocol: a SolveResult with engine "replica", times None,
    one-entry lists per task (MODEL.md), train_loss / train_error, and with ``single`` the
    single-task baseline of every task of nonzero weight (`Setup.single`: the task alone with its
    data, the coupling dropped).  stats: the fixed points' residuals and iteration counts.
    ``precision="mp"``: the double fixed point polished in mpmath at ``dps`` digits and its
    predictions in mp (`solve_erm` at that precision; ``mp_nodes`` per axis, default the double's
    rule), printed as doubles; stats add the mp residual."""
    from .solve import SolveResult
    if precision not in ("double", "mp"):
        raise RequestError("precision", f"double | mp (got {precision!r})")
    if accuracy not in ACCURACIES:
        raise RequestError("accuracy", f"unknown accuracy {accuracy!r} ({' | '.join(ACCURACIES)})")
    acc = ACCURACIES[accuracy]
    mp_residual = None
    out = solve_erm(setup, acc, precision=precision, dps=dps, nodes=mp_nodes)
    if precision == "mp":
        mp_out, out = out, out["double"]   # the double fixed point polished (on the mp route's accuracy)
        for name, pred in mp_out["tasks"].items():
            out["tasks"][name] = {key: [float(v[0])] for key, v in pred.items() if key != "test_loss_rule"}
        mp_residual = max(float(r) for r in mp_out["stats"]["residual"])
        if mp_out["qmc"]:   # on the mp route's QMC rule (`mp_accuracy`)
            print(f"mtsp: note: tasks with C ≥ 4 (or coupled on shared inputs, Σ_t (C_t − 1) ≥ 3) run in mp on the "
                  f"QMC channel of {mp_nodes or MP_QMC_POINTS} "
                  f"points (--mp-nodes), the double polished on the same points: the mp numbers carry "
                  f"that rule's QMC error (benchmarks/results/replica_qmc_error.txt), not the default "
                  f"double rule's", file=sys.stderr)
    separable = [name for name, d in out["tasks"].items() if d["train_error"][0] < SEPARABLE_TRAIN_ERROR]
    for name in separable:
        print(f"mtsp: note: task {name!r}: the training data are separable at this α (train_error "
              f"{out['tasks'][name]['train_error'][0]:.1e}): as the ridge → 0 the minimiser's norm "
              f"grows like log(1/λ) and its direction tends to the max-margin classifier",
              file=sys.stderr)
    if any(fp.capped for _, fp in out["fixed_points"]):
        print("mtsp: note: the replica quadrature hit its node cap (very small ridge or strong "
              "teacher): its accuracy may be below the default design (~1e-9); compare "
              "--accuracy high", file=sys.stderr)
    res = SolveResult(setup.name, "erm", "replica", None, out["tasks"], model=None,
                      stats={"residual": max(out["stats"]["residual"]),
                             "iterations": sum(out["stats"]["iterations"]),
                             "separable": ",".join(separable) or "none"})
    if "qmc_replicates" in out["stats"]:   # the QMC rule's error estimate (`qmc_replicates`)
        res.stats.update(qmc_replicates=out["stats"]["qmc_replicates"], qmc_error=out["stats"]["qmc_error"])
    _quad_se(res.tasks, out)
    if mp_residual is not None:
        res.stats["mp_residual"] = mp_residual
    if single:
        res.single = {}
        for t, task in enumerate(setup.tasks):
            if task.weight == 0:
                continue
            if precision == "mp":
                res.single[task.name] = solve_erm_result(setup.single(t), accuracy=accuracy, precision="mp",
                                                         dps=dps, mp_nodes=mp_nodes).tasks[task.name]
                continue
            alone = solve_erm(setup.single(t), acc)
            res.single[task.name] = _quad_se(alone["tasks"], alone)[task.name]
    return res


def _quad_se(tasks: dict, out: dict) -> dict:
    """``tasks`` with each task's gen_error_quad_se (the JSON field of a randomised quadrature's
    standard error) where `qmc_replicates` measured one (out["qmc_error"])."""
    for name, se in out.get("qmc_error", {}).items():
        tasks[name]["gen_error_quad_se"] = [se["gen_error"]]
    return tasks


def optimal_ridge(setup, task: str | None = None, bounds=(1e-3, 10.0), xtol: float = 1e-3,
                  acc: ReplicaAccuracy | None = None) -> dict:
    """The ridge λ* minimising a task's gen_error at the setup's α (the mean over tasks when
    ``task`` is None): Brent's bounded search over log λ within ``bounds`` (scipy's
    minimize_scalar), each point a replica solve.  Returns {"ridge", "gen_error", "at_bound",
    "evaluations"}; at_bound is True when the minimum sits on an end of the bracket (then λ* lies
    beyond it, e.g. λ → 0 for clean labels)."""
    from scipy.optimize import minimize_scalar
    names = [t.name for t in setup.tasks]
    calls = []

    def objective(log_ridge):
        out = solve_erm(setup.replace(**{"training.ridge": float(np.exp(log_ridge))}), acc)
        g = [out["tasks"][n]["gen_error"][0] for n in ([task] if task else names)]
        calls.append(log_ridge)
        return float(np.mean(g))
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    res = minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": xtol})
    if not res.success:
        raise ConvergenceError("training.ridge", f"the search for the optimal ridge stopped before "
                               f"its tolerance {xtol:g} in log ridge: {res.message}")
    at_bound = min(res.x - lo, hi - res.x) < 10 * xtol
    return {"ridge": float(np.exp(res.x)), "gen_error": float(res.fun), "at_bound": bool(at_bound),
            "evaluations": len(calls)}

"""`--precision mp` and `mtsp check` for erm: the replica engine's own map in mpmath.

`cone.MP` gives `cone.DOUBLE`'s methods over NumPy object arrays of mpf, so
`replica.ReplicaMap(…, ar=cone.MP)` is the fixed-point map F_mp — the same rule, prox
Newton, labels (closed forms; Genz on the QMC rule) and prior channel.  `polish_mp`: Newton on
F_mp(x) − x from the double fixed point with the double map's Jacobian, x ← x − (J_F − I)⁻¹ R_mp(x),
until max |R_mp| / (1 + max |x|) < 10^(10 − dps).  Orthants beyond two dims are reached on the QMC
rule only: tasks with C ≥ 4 and joint channels with Σ_t (C_t − 1) ≥ 3 run in mp on MP_QMC_POINTS
points (or ``nodes``), the double re-solved on the same points (`mp_accuracy`)."""
from __future__ import annotations

import time as _time
from dataclasses import replace

import mpmath
import numpy as np

from mtsp.errors import ConvergenceError

from .cone import MP
from .model import State
from .replica import ReplicaMap

MAX_NEWTON, MP_QMC_POINTS, THRESHOLD = 6, 128, 1e-8   # THRESHOLD: issue 16, double and mp agree to 1e-8


def polish_mp(fp, fmap: ReplicaMap, nodes: list | None = None, dps: int = 30):
    """Newton on F_mp(x) − x (module docstring) from the double fixed point ``fp`` of ``fmap`` at
    ``dps`` digits on ``nodes`` per channel (default the double's); the prox starts from the double
    map's on that rule.  Returns a `replica.FixedPoint` in mp (``iterations``: Newton steps);
    ConvergenceError when the residual stays above 10^(10 − dps) after MAX_NEWTON steps."""
    from .replica import FixedPoint
    nodes = list(nodes or fp.nodes)
    x_d = fmap.pack(fp.Q, fp.M, fp.V)
    J = np.empty((len(x_d), len(x_d)))
    for k, e in enumerate(np.diag(1e-6 * (1.0 + np.abs(x_d)))):   # the double map's Jacobian
        J[:, k] = (fmap(x_d + e, fp.nodes)[0] - fmap(x_d - e, fp.nodes)[0]) / (2 * e[k])
    fmap(x_d, nodes)
    with mpmath.workdps(dps):
        ar = MP
        F = ReplicaMap(fmap.channels, fmap.Lam, fmap.G, fmap.acc, len(fmap.groups) < len(fmap.channels), ar)
        F.warm = [{k: ar.array(v) if k == "shift" else v for k, v in w.items()} for w in fmap.warm]
        x, step = ar.array(x_d), ar.inv(ar.array(J - np.eye(len(x_d))))
        for steps in range(MAX_NEWTON + 1):
            r = F(x, nodes)[0] - x
            res = max(np.abs(r)) / (1 + max(np.abs(x)))
            if res < mpmath.mpf(10) ** (10 - dps):
                break
            if steps == MAX_NEWTON:
                raise ConvergenceError("replica", f"the mp polish did not converge in {MAX_NEWTON} Newton "
                                                  f"steps (residual {mpmath.nstr(res, 3)})", residual=float(res))
            x = x - step @ r
        hats = F(x, nodes, train=True)[1]
        return FixedPoint(*F.unpack(x), [h[:3] for h in hats], res, steps, [p for h in hats for p in h[3]], nodes)


def mp_accuracy(channels, acc, nodes, joint: bool):
    """(the accuracy of the mp map, whether the double is re-solved on it): ``acc`` with train_error
    of C = 3 and of joint channels as the indicator on the rule, and where an orthant has ≥ 3 dims (C ≥ 4, or a joint
    channel of Σ_t (C_t − 1) ≥ 3) that channel on the QMC rule of ``nodes`` (MP_QMC_POINTS) points
    (one task's `qmc_points` and every joint channel's `qmc_joint_points` alike)."""
    acc = replace(acc, margin_train_error=1, boundary_train_error=False)
    if not (any(ch.C >= 4 for ch in channels) or joint and sum(ch.d for ch in channels) >= 3):
        return acc, False
    n = int(nodes or MP_QMC_POINTS)
    return replace(acc, qmc_classes=min(acc.qmc_classes, 4), qmc_joint_dims=min(acc.qmc_joint_dims, 3),
                   qmc_points=n, qmc_joint_points=((0, n),)), True


def solve_erm_mp(setup, acc=None, dps: int = 30, nodes: int | None = None) -> dict:
    """mp predictions of an erm setup: {"tasks": {name: {gen_error, label_error, test_loss,
    train_loss, train_error, test_loss_rule} in mp}, "fixed_points": [(task indices, mp FixedPoint)],
    "double": the double `erm.solve_erm` output polished, "qmc": whether on the mp route's QMC rule}:
    gen_error and label_error by `mp_online.task_metrics_mp` (C ≥ 4: the double metrics at the mp
    point), test_loss the double metrics' at the mp point, test_loss_rule the test loss on the
    channel's rule (the integral the check compares with the double's on the same rule)."""
    from .erm import erm_problem, one_task_model, solve_erm, task_predictions
    from .mp_online import task_metrics_mp
    from .replica import ReplicaAccuracy
    model, channels, Lam, G = erm_problem(setup)
    tr = setup.training
    joint = len(channels) > 1 and tr.inputs == "shared" and tr.coupling != 0
    acc, again = mp_accuracy(channels, acc or ReplicaAccuracy(), nodes, joint)
    nodes, out_d = None if again else nodes, solve_erm(setup, acc)
    tasks, parts = {}, []
    for idx, fp in out_d["fixed_points"]:
        chs = [channels[t] for t in idx]
        lam, g = (Lam, G) if len(idx) == len(channels) else (Lam[np.ix_(idx, idx)], np.eye(chs[0].r))
        fmap = ReplicaMap(chs, lam, g, acc, joint)
        mfp = polish_mp(fp, fmap, nodes and [nodes] * len(fp.nodes), dps)
        parts.append((idx, mfp))
        do, ro = (np.cumsum([0] + [getattr(c, a) for c in chs]) for a in ("d", "r"))
        with mpmath.workdps(dps):
            for k, (t, ch) in enumerate(zip(idx, chs)):
                Q, M = mfp.Q[do[k]:do[k + 1], do[k]:do[k + 1]], mfp.M[do[k]:do[k + 1], ro[k]:ro[k + 1]]
                pred = task_predictions(model, t, ch, Q.astype(float), M.astype(float))
                if ch.C < 4:
                    E = MP.basis(ch.C)
                    st = State(E.T @ Q @ E, E.T @ M @ ch.L.T @ E, (np.eye(ch.C),))
                    pred.update(zip(("gen_error", "label_error"), task_metrics_mp(one_task_model(model, t, ch), st,
                                                                                  loss=False)[0]))
                pred["train_loss"], pred["train_error"], pred["test_loss_rule"] = mfp.train[k]
                tasks[model.names[t]] = pred
    return {"tasks": tasks, "fixed_points": parts, "double": out_d, "qmc": again}


def check_erm(setup, dps: int = 30, nodes: int | None = None, accuracy: str = "default") -> dict:
    """`mtsp check` for erm: the double fixed point and predictions (on the mp route's rule,
    `mp_accuracy`) against their mp polish, in `check.format_report`'s form, every term judged
    against THRESHOLD — the test loss on the channel's rule, and train_error of C ≥ 3 and of joint
    channels (an indicator on the rule), only where both share a rule."""
    from .check import _rel
    from .erm import ACCURACIES
    t0 = _time.perf_counter()
    out_m = solve_erm_mp(setup, ACCURACIES[accuracy], dps, nodes)
    out_d, terms = out_m["double"], {}
    for (idx, fd), (_, fm) in zip(out_d["fixed_points"], out_m["fixed_points"]):
        tag = "" if len(out_d["fixed_points"]) == 1 else "_" + "".join(str(t) for t in idx)
        for key in ("Q", "V") + (("M",) if fd.M.size else ()):
            terms[key + tag] = _rel(getattr(fd, key), getattr(fm, key))
        for k, t in enumerate(idx):   # the test loss on the channel's rule, both arithmetics
            terms[f"test_loss_rule_{setup.tasks[t].name}"] = _rel(fd.train[k][2], fm.train[k][2])
    for name, pd in out_d["tasks"].items():
        for key in ("gen_error", "label_error", "test_loss", "train_loss", "train_error"):
            terms[f"{key}_{name}"] = _rel(pd[key][0], out_m["tasks"][name][key])
    loose = {f"{key}_{setup.tasks[t].name}" for (idx, fd), (_, fm) in zip(out_d["fixed_points"], out_m["fixed_points"])
             if fm.nodes != fd.nodes for t in idx   # two rules: their integrals differ by the rules' errors
             for key in ("test_loss_rule",) + (("train_error",) if setup.tasks[t].classes > 2 or len(idx) > 1 else ())}
    judged = {k: THRESHOLD for k in terms if k not in loose}
    over = sorted(k for k, v in judged.items() if not terms[k] <= v)
    return {"setup": setup.name, "dps": dps, "mp_nodes": nodes, "times": [], "terms": terms,
            "thresholds": judged, "exceeding": over, "passed": not over,
            "mp_residual": max(float(fm.residual) for _, fm in out_m["fixed_points"]),
            "seconds": _time.perf_counter() - t0}

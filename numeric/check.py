"""`mtsp check`: how many digits of the double path are right? — `check(setup)` for the online
engine, `check_erm(setup)` for erm.

Solves the setup in double precision (generated module, engine "ode"), takes `states` states of
the trajectory (evenly spaced in (0, t_last]), and evaluates the right-hand side at each with
both back-ends: the NumPy module (its `integrals` and `_assemble`) and the mpmath back-end
(`mp_online`, at `dps` digits: the same module's mp twin, `engine.generated_system`).  For every term — dQ, dR, each dV_t, the test losses, every
reduced integral by its derivation name, and (``errors``, where the mp path has them: linear
trunks and glm with C ≤ 3, nonlinear trunks with K ≤ 3 — K = 3 takes minutes per task and state) each task's gen_error and label_error
— it reports the largest relative difference over the
states, relative to the largest magnitude of that term (so tiny entries do not inflate it).

The mp values carry their own quadrature error (`mp_quadrature`'s docstring); `mp_nodes` sets
their nodes per dimension.  Each term is judged against `threshold` (what the double path claims
at the accuracy checked, `THRESHOLDS`); the report's verdict says whether every term is within.

`check_erm`: the replica engine's double fixed point and predictions against their mp polish
(`erm.solve_erm(..., precision="mp")`), every term judged against ERM_THRESHOLD.
"""
from __future__ import annotations

import time as _time

import mpmath
import numpy as np

from mtsp.engines import choose_engine
from mtsp.errors import ReachError

from .engine import generated_module, generated_system
from .metrics import task_metrics
from .model import theory_model
from .mp_online import MpRules, mp_state, task_metrics_mp
from .online import Accuracy
from .erm import ACCURACIES, solve_erm
from .solve import _tell, accuracy_setting, check_processes, solve_online

__all__ = ["check", "check_erm", "format_report", "threshold", "expected_seconds", "expected_text", "THRESHOLDS"]

# What the double path claims, as a relative difference from mp per term (right-hand side terms,
# reduced integrals and errors alike), by accuracy preset and trunk: exact or product rules for
# linear trunks, glm students and K ≤ 2 nonlinear trunks; fixed-Sobol' quadrature for K ≥ 3
# nonlinear trunks.  Measured (benchmarks/results/check_*.txt): default linear K = 2 ≤ 4.3e-6 (t = 20;
# three states of examples/model_example.toml ≤ 5.4e-7, check_model_example.txt),
# tanh K = 2 ≤ 4.6e-7, tanh/erf K = 3 ≤ 1.3e-3; high tanh K = 3 ≤ 1.8e-6.
THRESHOLDS = {("default", "exact"): 1e-5, ("default", "qmc"): 3e-3,
              ("high", "exact"): 1e-5, ("high", "qmc"): 1e-5,
              ("fast", "exact"): 1e-4, ("fast", "qmc"): 1e-2}
# seconds per state of the mp side (right-hand side and errors), measured on 2 shared cores:
# linear K = 2, two 3-class tasks 45 s; tanh K = 2, 368 s; tanh K = 3, 148–918 s
_PER_STATE = {"exact": (30.0, 75.0), "nonlinear2": (150.0, 400.0), "qmc": (150.0, 950.0)}
ERM_THRESHOLD = 1e-8   # erm: what the replica engine claims (issue 16: double and mp agree to 1e-8)


def _rule(model) -> str:
    return "qmc" if (not model.linear and model.K >= 3) else "exact"


def threshold(model, accuracy: str = "default") -> float:
    """The largest relative difference from mp that the double path claims at `accuracy`
    (`THRESHOLDS`), the same for every term of `model`'s structure."""
    name = accuracy if isinstance(accuracy, str) and (accuracy, "exact") in THRESHOLDS else "default"
    return THRESHOLDS[name, _rule(model)]


def _fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def expected_text(model, states: int, errors: bool = True) -> str:
    """`expected_seconds` as text: "up to 4 min" (its upper end; smaller structures take less)."""
    return f"up to {_fmt_s(expected_seconds(model, states, errors)[1])}"


def expected_seconds(model, states: int, errors: bool = True) -> tuple[float, float]:
    """(low, high) seconds that `check` is expected to take (`_PER_STATE` × states; without the
    errors, half)."""
    key = "exact" if model.linear else ("nonlinear2" if model.K <= 2 else "qmc")
    lo, hi = _PER_STATE[key]
    f = states * (1.0 if errors else 0.5) * max(1, model.n_tasks) / 2
    return lo * f, hi * f


def _arr(x):
    if isinstance(x, mpmath.matrix):
        return np.array(x.tolist(), dtype=float)
    if isinstance(x, (list, tuple)):
        return np.array([float(v) for v in x], dtype=float)
    return np.atleast_1d(np.asarray(x, dtype=float))


def _rel(a, b):
    a, b = _arr(a), _arr(b)
    scale = max(float(np.abs(b).max(initial=0.0)), 1e-300)
    return float(np.abs(a.reshape(b.shape) - b).max(initial=0.0) / scale)


def check(setup, dps: int = 30, states: int = 3, acc: Accuracy | str = Accuracy(), mp_nodes=None,
          times=None, errors: bool = True, progress=None, processes: int | None = None, generated=None) -> dict:
    """Report dict: {"setup", "dps", "times", "terms": {name: max relative difference}, "seconds"}.
    ``acc``: the double path's `Accuracy`, or a preset name of `solve` ("default" | "high" | "fast").
    ``progress``: a callback (fraction, note) told after each back-end at each state, with times.
    ``processes``: 1 or 2 (`solve.check_processes`), for the double solve and the mp evaluations.
    ``generated``: derive's modules (`mtsp.derive.GENERATED`; `mtsp.check` passes them).
    An erm setup: `check_erm` (``dps``, ``mp_nodes``, the preset ``acc``)."""
    preset = acc if isinstance(acc, str) else "default"
    if choose_engine(setup) == "replica":
        return check_erm(setup, dps, mp_nodes, preset)
    acc = accuracy_setting(acc)[0]
    processes = check_processes(processes)
    model = theory_model(setup)
    t_last = float(setup.training.times[-1])
    if times is None:
        times = [t_last * (k + 1) / states for k in range(states)]
    t0 = _time.perf_counter()
    res = solve_online(setup, acc, times=[t_last], processes=processes, generated=generated)
    mod, mod_mp = generated_module(generated, model, setup.name), generated_system(generated, model, setup.name, "mpmath")
    worst: dict = {}
    def tell(part, text):
        if progress is not None:
            _tell(progress, (i_state + part) / len(times),
                  f"check: state {i_state + 1}/{len(times)} (t = {t:g}): {text}")

    for i_state, t in enumerate(times):
        st = res.state(t)
        terms_d = mod.integrals(model, st, acc)
        dQ, dR, dV, loss = mod.rhs_state(model, st, acc)
        with mpmath.workdps(dps):
            t1 = _time.perf_counter()
            sm, rules = mp_state(st), MpRules(mp_nodes, processes)
            terms_m = mod_mp.integrals(model, sm, rules=rules)
            dQm, dRm, dVm, lossm = mod_mp.rhs_state(model, sm, rules=rules, terms=terms_m)
            tell(0.5 if errors else 1.0, f"mp right-hand side {_time.perf_counter() - t1:.1f} s")
            diffs = {"dQ": _rel(dQ, dQm), "dR": _rel(dR, dRm), "test_loss": _rel(loss, lossm)}
            for k, (a, b) in enumerate(zip(dV, dVm)):
                diffs[f"dV{k}"] = _rel(a, b)
            for name in sorted(terms_m):
                if name in terms_d:
                    diffs[name] = _rel(terms_d[name], terms_m[name])
            if errors:
                try:
                    t1 = _time.perf_counter()
                    em = task_metrics_mp(model, st, mp_nodes, loss=False, processes=processes)
                    tell(1.0, f"mp errors {_time.perf_counter() - t1:.1f} s")
                except ReachError:  # errors outside the mp path's reach (K ≥ 4 trunks, C > 3)
                    em = None
                if em is not None:
                    ed = task_metrics(model, st, acc, loss=False)
                    for k, (a, b) in enumerate(zip(ed, em)):
                        diffs[f"gen_error{k}"] = _rel(a.gen_error, b[0])
                        diffs[f"label_error{k}"] = _rel(a.label_error, b[1])
        for k, v in diffs.items():
            worst[k] = max(worst.get(k, 0.0), v)
    limit = threshold(model, preset)
    over = sorted(k for k, v in worst.items() if not v <= limit)
    return {"setup": setup.name, "dps": dps, "mp_nodes": mp_nodes, "times": list(times), "terms": worst,
            "thresholds": {k: limit for k in worst}, "exceeding": over, "passed": not over,
            "seconds": _time.perf_counter() - t0}


def check_erm(setup, dps: int = 30, nodes: int | None = None, accuracy: str = "default") -> dict:
    """`mtsp check` for erm: the double fixed point and predictions (on the mp route's rule,
    `erm.mp_accuracy`) against their mp polish, in `format_report`'s form, every term judged
    against ERM_THRESHOLD — the test loss on the channel's rule, and train_error of C ≥ 3 and of
    joint channels (an indicator on the rule), only where both share a rule."""
    t0 = _time.perf_counter()
    out_m = solve_erm(setup, ACCURACIES[accuracy], precision="mp", dps=dps, nodes=nodes)
    out_d, terms = out_m["double"], {}
    pairs = list(zip(out_d["fixed_points"], out_m["fixed_points"]))
    for (idx, fd), (_, fm) in pairs:
        tag = "" if len(pairs) == 1 else "_" + "".join(str(t) for t in idx)
        for key in ("Q", "V") + (("M",) if fd.M.size else ()):
            terms[key + tag] = _rel(getattr(fd, key), getattr(fm, key))
        for k, t in enumerate(idx):   # the test loss on the channel's rule, both arithmetics
            terms[f"test_loss_rule_{setup.tasks[t].name}"] = _rel(fd.train[k][2], fm.train[k][2])
    for name, pd in out_d["tasks"].items():
        for key in ("gen_error", "label_error", "test_loss", "train_loss", "train_error"):
            terms[f"{key}_{name}"] = _rel(pd[key][0], out_m["tasks"][name][key][0])
    loose = {f"{key}_{setup.tasks[t].name}" for (idx, fd), (_, fm) in pairs
             if fm.nodes != fd.nodes for t in idx   # two rules: their integrals differ by the rules' errors
             for key in ("test_loss_rule",) + (("train_error",) if setup.tasks[t].classes > 2 or len(idx) > 1 else ())}
    judged = {k: ERM_THRESHOLD for k in terms if k not in loose}
    over = sorted(k for k, v in judged.items() if not terms[k] <= v)
    return {"setup": setup.name, "dps": dps, "mp_nodes": nodes, "times": [], "terms": terms,
            "thresholds": judged, "exceeding": over, "passed": not over,
            "mp_residual": max(float(r) for r in out_m["stats"]["residual"]),
            "seconds": _time.perf_counter() - t0}


def format_report(rep: dict) -> str:
    acc = f", {rep['accuracy']} accuracy" if "accuracy" in rep else ""
    nodes = f", {rep['mp_nodes']} mp nodes" if rep.get("mp_nodes") else ""
    where = ("at t = " + ", ".join(f"{t:g}" for t in rep["times"])) if rep["times"] else \
        "at the fixed point (erm)"
    lines = [f"check of {rep['setup']!r}: double{acc} vs mp (dps {rep['dps']}{nodes}) {where}",
             f"{'term':<12} max relative difference   threshold"]
    thr = rep.get("thresholds", {})
    for k, v in rep["terms"].items():
        t = thr.get(k)
        mark = "" if t is None else f"   {t:.0e}  {'ok' if v <= t else 'EXCEEDS'}"
        lines.append(f"{k:<12} {v:.2e}{mark}")
    if "passed" in rep:
        over = rep.get("exceeding", [])
        lines.append("verdict: " + ("every term within its threshold (the double path is as accurate "
                                    "as it claims here)" if rep["passed"] else
                                    f"{len(over)} term(s) exceed their threshold: {', '.join(over)}"))
    lines.append(f"({rep['seconds']:.1f} s)")
    return "\n".join(lines)

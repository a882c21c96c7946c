"""`check(setup)`: how many digits of the double-precision right-hand side are right?

Solves the setup in double precision (generated module, engine "ode"), takes `states` states of
the trajectory (evenly spaced in (0, t_last]), and evaluates the right-hand side at each with
both back-ends: the NumPy module (its `integrals` and `_assemble`) and the mpmath back-end
(`mp_online`, at `dps` digits).  For every term — dQ, dR, each dV_t, the test losses, every
reduced integral by its derivation name, and (``errors``, where the mp path has them: linear
trunks and glm with C ≤ 3, nonlinear trunks with K ≤ 3 — K = 3 takes minutes per task and state) each task's gen_error and label_error
— it reports the largest relative difference over the
states, relative to the largest magnitude of that term (so tiny entries do not inflate it).

The mp values carry their own quadrature error (`mp_quadrature`'s docstring); `mp_nodes` sets
their nodes per dimension.
"""
from __future__ import annotations

import time as _time

import mpmath
import numpy as np

from mtsp.errors import ReachError

from .model import theory_model
from .metrics import task_metrics
from .mp_online import mp_state, rhs_state_mp, task_metrics_mp
from .online import Accuracy

__all__ = ["check", "format_report"]


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
          times=None, errors: bool = True, progress=None, processes: int | None = None) -> dict:
    """Report dict: {"setup", "dps", "times", "terms": {name: max relative difference}, "seconds"}.
    ``acc``: the double path's `Accuracy`, or a preset name of `solve` ("default" | "high" | "fast").
    ``progress``: a callback (fraction, note) told after each back-end at each state, with times.
    ``processes``: 1 or 2 (`solve.check_processes`), for the double solve and the mp evaluations."""
    from mtsp.derive.codegen import load_module
    from .solve import accuracy_setting, check_processes, solve_online
    acc = accuracy_setting(acc)[0]
    processes = check_processes(processes)
    model = theory_model(setup)
    t_last = float(setup.training.times[-1])
    if times is None:
        times = [t_last * (k + 1) / states for k in range(states)]
    t0 = _time.perf_counter()
    res = solve_online(setup, acc, times=[t_last], processes=processes)
    mod = load_module(model, setup.name)
    worst: dict = {}
    def tell(part, text):
        if progress is not None:
            from .mp_solve import _note
            _note(progress, (i_state + part) / len(times),
                  f"check: state {i_state + 1}/{len(times)} (t = {t:g}): {text}")

    for i_state, t in enumerate(times):
        st = res.state(t)
        terms_d = mod.integrals(model, st, acc)
        dQ, dR, dV, loss = mod.rhs_state(model, st, acc)
        with mpmath.workdps(dps):
            t1 = _time.perf_counter()
            dQm, dRm, dVm, lossm, terms_m = rhs_state_mp(model, mp_state(st), mp_nodes, processes=processes)
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
                    em = task_metrics_mp(model, mp_state(st), mp_nodes, loss=False, processes=processes)
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
    return {"setup": setup.name, "dps": dps, "mp_nodes": mp_nodes, "times": list(times), "terms": worst,
            "seconds": _time.perf_counter() - t0}


def format_report(rep: dict) -> str:
    acc = f", {rep['accuracy']} accuracy" if "accuracy" in rep else ""
    nodes = f", {rep['mp_nodes']} mp nodes" if rep.get("mp_nodes") else ""
    lines = [f"check of {rep['setup']!r}: double{acc} vs mp (dps {rep['dps']}{nodes}) at t = "
             + ", ".join(f"{t:g}" for t in rep["times"]),
             f"{'term':<12} max relative difference"]
    for k, v in rep["terms"].items():
        lines.append(f"{k:<12} {v:.2e}")
    lines.append(f"({rep['seconds']:.1f} s)")
    return "\n".join(lines)

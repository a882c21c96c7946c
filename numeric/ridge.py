"""The ridge that minimises gen_error, along a grid of one key (``mtsp ridge``; erm protocol).

    ridge_curve(setup, {"training.alpha": [0.5, 1, 2, 5]})

At every value of the key (each point ``sweep.point_setup(base, {KEY: value})``; without a key the
setup itself) `erm.optimal_ridge` finds λ* = argmin over λ of the gen_error (of one task, or the
mean over the tasks) by Brent's bounded search in log λ within ``bounds``, to ``xtol`` in log λ;
each evaluation is a replica solve.  The point is then solved once more at λ* (every task's
gen_error there) and at the setup's own ridge (for comparison).  A minimum that sits on an end
of the search interval is not a minimiser: the row says which end (``at_bound``: "lower" or
"upper"), the command line prints a note and marks it, and the plot draws it open — the optimum
lies at or beyond that end (λ* → 0 for clean labels, where gen_error keeps falling).  A solve that
does not converge raises its ConvergenceError; so does a search that stops before its tolerance.

The points run in parallel (the executors of `numeric.sweep`: local processes, ``jobs``).
"""
from __future__ import annotations

import csv
import math
import time as _time
from dataclasses import dataclass, field

import numpy as np

from mtsp.errors import ReachError, RequestError

__all__ = ["RidgeCurve", "ridge_curve"]

DEFAULT_BOUNDS = (1e-3, 10.0)


@dataclass
class RidgeCurve:
    """`ridge_curve`'s table.  ``rows``: one dict per value of the key (one row without a key):
    ``{"value", "ridge", "gen_error", "tasks": {task: gen_error at λ*}, "at_bound": None | "lower" |
    "upper", "evaluations", "ridge0", "gen_error0"}`` — gen_error is the minimised quantity (the
    task's, or the mean over tasks), ridge0 / gen_error0 the setup's own ridge and its value."""
    base: dict
    key: str | None
    task: str | None
    bounds: tuple
    xtol: float
    rows: list
    stats: dict = field(default_factory=dict)

    @property
    def objective(self) -> str:
        return f"gen_error of task {self.task}" if self.task else "mean gen_error over the tasks"

    def to_json_dict(self) -> dict:
        return {"base": self.base, "key": self.key, "task": self.task, "objective": self.objective,
                "bounds": list(self.bounds), "xtol": self.xtol, "engine": "replica",
                "points": [dict(r) for r in self.rows], "stats": dict(self.stats)}

    def columns(self) -> list[str]:
        names = list(self.rows[0]["tasks"]) if self.rows else []
        return ([self.key or "point", "ridge", "gen_error", "at_bound", "evaluations"]
                + [f"{n}.gen_error" for n in names] + ["ridge0", "gen_error0"])

    def to_csv(self, path) -> str:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(self.columns())
            for r in self.rows:
                row = [r["value"], r["ridge"], r["gen_error"], r["at_bound"] or "",
                       r["evaluations"], *r["tasks"].values(), r["ridge0"], r["gen_error0"]]
                w.writerow([repr(v) if isinstance(v, float) else v for v in row])
        return str(path)


def _check(setup, vary, task, bounds, xtol):
    from .solve import check_protocol
    from .sweep import _canonical_key, check_key
    if setup.training.protocol != "erm":
        raise ReachError("training.protocol", f"the optimal ridge is a question of the erm protocol "
                                              f"(got {setup.training.protocol!r})")
    check_protocol(setup)
    names = [t.name for t in setup.tasks]
    if task is not None and task not in names:
        raise RequestError("task", f"no task {task!r} (tasks: {', '.join(names)})")
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise RequestError("bounds", f"expected two numbers LO,HI, got {bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise RequestError("bounds", f"need 0 < LO < HI, got {lo:g}, {hi:g}")
    if not (isinstance(xtol, (int, float)) and 0 < xtol < 1):
        raise RequestError("xtol", f"expected a tolerance in log ridge in (0, 1), got {xtol!r}")
    vary = dict(vary or {})
    if len(vary) > 1:
        raise RequestError("vary", "the optimal ridge varies at most one key")
    key, values = (None, [None]) if not vary else next(iter(vary.items()))
    if key is not None:
        check_key(setup, key)
        key = _canonical_key(setup, key)
        if key == "training.ridge":
            raise RequestError(key, "the ridge is what is optimised: vary another key")
        values = list(values)
        if not values:
            raise RequestError(key, "no values")
    return key, values, (lo, hi)


def _point_job(job):
    """One point: λ* (erm.optimal_ridge), then every task at λ* and at the setup's ridge."""
    s, task, bounds, xtol = job
    from .erm import optimal_ridge, solve_erm
    names = [t.name for t in s.tasks]
    best = optimal_ridge(s, task=task, bounds=bounds, xtol=xtol)
    at = solve_erm(s.replace(**{"training.ridge": best["ridge"]}))["tasks"]
    own = solve_erm(s)["tasks"]
    pick = [task] if task else names
    side = None
    if best["at_bound"]:
        lr = math.log(best["ridge"])
        side = "lower" if lr - math.log(bounds[0]) < math.log(bounds[1]) - lr else "upper"
    return {"ridge": best["ridge"], "gen_error": best["gen_error"],
            "tasks": {n: at[n]["gen_error"][0] for n in names}, "at_bound": side,
            "evaluations": best["evaluations"], "ridge0": float(s.training.ridge),
            "gen_error0": float(np.mean([own[n]["gen_error"][0] for n in pick]))}


def ridge_curve(setup, vary: dict | None = None, *, task: str | None = None,
                bounds=DEFAULT_BOUNDS, xtol: float = 1e-3, jobs: int | None = None,
                progress=None) -> RidgeCurve:
    """λ* at every value of one key (module docstring).  ``vary``: ``{KEY: [values]}`` (the keys
    of `mtsp sweep`; None: the setup's own point); ``task``: minimise that task's gen_error (default:
    the mean over the tasks); ``bounds``: the search interval of λ; ``xtol``: the tolerance in log λ;
    ``jobs``: local worker processes (default: the CPUs).  Raises RequestError / SetupError /
    ReachError before anything runs, ConvergenceError from a solve or search that did not
    converge."""
    from .sweep import _executor, point_setup, run_jobs
    key, values, bounds = _check(setup, vary, task, bounds, xtol)
    points = [setup if key is None else point_setup(setup, {key: v}) for v in values]
    for s in points:
        _check(s, None, task, bounds, xtol)
    t0 = _time.perf_counter()
    jobs_list = [(s, task, bounds, float(xtol)) for s in points]
    ex = _executor(jobs, None, len(jobs_list))
    out = run_jobs(ex, _point_job, jobs_list, progress, "points")
    rows = [dict(value=v, **r) for v, r in zip(values, out)]
    stats = {"points": len(rows), "evaluations": sum(r["evaluations"] for r in rows),
             "executor": ex.name, "wall_s": round(_time.perf_counter() - t0, 3)}
    return RidgeCurve(setup.to_dict(), key, task, bounds, float(xtol), rows, stats)

"""Parameter sweeps of the multitask benefit (maps of when sharing helps a task).

    sweep(base_setup, {"teacher.alignment": [0, 0.5, 0.9], "tasks.B.noise": [0, 1, 2]}, at=8)

Every grid point is a full setup: ``base.replace(**point)`` with the training times replaced by
``[at]`` (``at`` defaults to the last of the base's times), validated like a file — an invalid point
is recorded in ``SweepResult.skipped`` (and reported by the command line) and the rest run. For
each point the multitask gen_error of every task and its single-task baseline (MODEL.md: the same
setup with only that task kept; with separate online inputs it is evaluated at π_t·at) give the
benefit Δ_t = gen_error(single) − gen_error(multi).

Exactness. The values are those of ``mtsp solve --single`` on the point's setup (the one that
``point_setup`` builds and ``setup_toml`` writes): the same integration (from 0 to ``at`` with the
defaults of ``solve_online``) and the same metric evaluation at ``at``; only the early-stopping
scans, which the sweep does not report, are left out. When ``at`` is the last of the base's times
the values also equal ``mtsp solve`` on the base with the varied values set (the integration ends
at the same time). Protocols other than online go through ``solve`` itself: erm (the replica
engine) solves each point's multitask setup and each distinct single-task setup once, as
``solve --single`` does (``Setup.single``: the task alone with its data, the coupling dropped);
full_batch runs ``solve(single=True)`` per point. A point that the engine finds beyond its reach
(ReachError) or whose solver does not converge (ConvergenceError) while the sweep runs is recorded
in ``skipped`` with its message, like an invalid point, and the rest of the grid runs. The DMFT's
sampling error and early-stopped values are kept (``SweepResult``).

Reuse. A single-task baseline depends only on the task's own parameters: single-task solves are
keyed by the canonical JSON of ``setup.single(t).to_dict()`` (the name dropped, and the
teacher's ``alignment`` and the task's ``share``, which a lone task does not use, normalised)
together with the evaluation time and the engine, and each is computed once per sweep.

Execution. The solves run in parallel: local processes by default
(``concurrent.futures.ProcessPoolExecutor`` with the platform's start method — fork on Linux, so
the derived modules already loaded here are inherited; where it is spawn, a script needs the usual
``if __name__ == "__main__":`` guard — ``jobs`` workers, default ``os.cpu_count()``; ``jobs=1``
runs in this process), or on a Dask distributed cluster when
``scheduler`` is given (an address such as ``"tcp://host:8786"``, or a ``distributed.Client``;
Dask is an optional extra: ``pip install "mtsp[dask]"``). The generated module of each setup
structure is derived once, here, before the workers start (they find it in the disk cache).
"""
from __future__ import annotations

import csv
import inspect
import itertools
import json
import math
import os
import re
import time as _time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np

from mtsp.errors import ConvergenceError, ReachError, RequestError, SetupError

from . import reach
from .engine import generated_module
from .metrics import task_metrics
from .model import theory_model
from .solve import (
    _integrate,
    _rhs_function,
    check_protocol,
    default_tolerances,
    one_blas_thread,
    solve,
    solve_online,
)
from .workers import stop_pool, worker_init

__all__ = ["sweep", "SweepResult", "SweepError", "parse_values", "parse_vary", "check_key",
           "grid_points", "point_setup", "single_key", "setup_toml", "VARY_KEYS", "TASK_KEYS"]

# keys a sweep may vary (the scalar keys of the setup file, MODEL.md "The setup file")
VARY_KEYS = {
    "teacher": ("norm", "alignment", "class_map", "seed"),
    "student": ("kind", "hidden", "activation", "init_scale"),
    "training": ("protocol", "inputs", "lr", "head_lr", "weight_decay", "alpha", "ridge",
                 "coupling"),
}
TASK_KEYS = ("classes", "noise", "weight", "norm", "rank", "alpha", "share")


class SweepError(RequestError):
    """A sweep request that cannot run (``mtsp.errors.RequestError``: "key: reason")."""


# ----------------------------------------------------------------------------------------------
# KEY=VALUES

_INT = re.compile(r"^[+-]?\d+$")


def _scalar(text: str):
    """One value: an int, a float, or else a string (``linear``, ``aligned``)."""
    s = text.strip()
    if _INT.match(s):
        return int(s)
    try:
        v = float(s)
    except ValueError:
        return s
    if not math.isfinite(v):
        raise ValueError(f"{s!r} is not a finite number")
    return v


def _tidy(v: float) -> float:
    """Grid values without binary noise (0.30000000000000004 → 0.3): 12 significant digits."""
    return float(f"{v:.12g}")


def parse_values(text: str, key: str = "vary") -> list:
    """VALUES: a comma list (``0,0.5,0.9``; ``linear,relu``) or a range ``start:stop:count``
    (``count`` evenly spaced values from start to stop inclusive; integers when start and stop are
    integers and every value is whole). Raises SweepError(key, reason)."""
    s = text.strip()
    if not s:
        raise SweepError(key, "no values given (expected a comma list or start:stop:count)")
    if ":" in s and "," not in s:
        parts = s.split(":")
        if len(parts) != 3:
            raise SweepError(key, f"range {s!r} must be start:stop:count")
        try:
            a, b = (_scalar(p) for p in parts[:2])
            if isinstance(a, str) or isinstance(b, str):
                raise ValueError
            count = int(parts[2])
        except ValueError:
            raise SweepError(key, f"range {s!r} must be start:stop:count with numbers start, stop "
                                  "and an integer count") from None
        if count < 1:
            raise SweepError(key, f"range {s!r}: count must be >= 1, got {count}")
        vals = np.linspace(float(a), float(b), count) if count > 1 else np.array([float(a)])
        if isinstance(a, int) and isinstance(b, int) and np.all(vals == np.round(vals)):
            out = [int(round(v)) for v in vals]
        else:
            out = [_tidy(v) for v in vals]
    else:
        out = []
        for item in s.split(","):
            if not item.strip():
                raise SweepError(key, f"empty value in {s!r}")
            try:
                out.append(_scalar(item))
            except ValueError as e:
                raise SweepError(key, str(e)) from None
    if len(set(map(repr, out))) != len(out):
        raise SweepError(key, f"repeated value in {s!r}")
    return out


def parse_vary(spec: str) -> tuple[str, list]:
    """``KEY=VALUES`` → (key, values)."""
    if "=" not in spec:
        raise SweepError("vary", f"expected KEY=VALUES, got {spec!r}")
    key, values = spec.split("=", 1)
    key = key.strip()
    if not key:
        raise SweepError("vary", f"expected KEY=VALUES, got {spec!r}")
    return key, parse_values(values, key)


def check_key(base, key: str) -> None:
    """Refuse a key that no grid point could set (unknown section, task or key, or a key that is
    not a scalar); the values themselves are checked per point."""
    parts = key.split(".")
    names = [t.name for t in base.tasks]
    if len(parts) == 2 and parts[0] in VARY_KEYS:
        if parts[1] not in VARY_KEYS[parts[0]]:
            raise SweepError(key, f"cannot vary {parts[1]!r} of [{parts[0]}] (can: "
                                  f"{', '.join(VARY_KEYS[parts[0]])})")
        if key == "training.alpha" and base.training.inputs == "separate" \
                and all("alpha" in t for t in base.to_dict()["tasks"]):
            raise SweepError(key, "every task sets its own alpha (separate inputs), so "
                                  "training.alpha changes nothing: vary tasks.<task>.alpha, or "
                                  "drop the tasks' alpha to let training.alpha apply to all")
        return
    if len(parts) == 3 and parts[0] == "tasks":
        if parts[1] not in names and not (parts[1].isdigit() and int(parts[1]) < len(names)):
            raise SweepError(key, f"no task {parts[1]!r} (tasks: {', '.join(names)})")
        if parts[2] not in TASK_KEYS:
            raise SweepError(key, f"cannot vary {parts[2]!r} of a task (can: {', '.join(TASK_KEYS)})")
        return
    raise SweepError(key, "cannot vary this key: use teacher.<key>, student.<key>, training.<key> "
                          "or tasks.<task name>.<key>")


def _canonical_key(base, key: str) -> str:
    """tasks.<index>.x → tasks.<name>.x (so that two spellings of one key are seen as one)."""
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "tasks" and parts[1].isdigit() \
            and parts[1] not in [t.name for t in base.tasks]:
        return f"tasks.{base.tasks[int(parts[1])].name}.{parts[2]}"
    return key


def grid_points(vary: dict) -> list[dict]:
    """The grid in order: the first key varies slowest."""
    keys = list(vary)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(vary[k] for k in keys))]


def _resolve_at(base, at):
    if base.training.protocol == "erm":
        if at is not None:
            raise SweepError("at", "an erm setup has no time (it predicts at the minimum of the "
                                   "regularized risk)")
        return None
    last = base.training.times[-1]
    if at is None:
        return float(last)
    try:
        at = float(at)
    except (TypeError, ValueError):
        raise SweepError("at", f"expected a number, got {at!r}") from None
    if not (math.isfinite(at) and 0 < at <= last):
        raise SweepError("at", f"must lie in (0, {last:g}] (the setup's last time), got {at:g}")
    return at


def point_setup(base, point: dict, at=None):
    """The setup of one grid point: ``base.replace(**point)`` with ``training.times = [at]``
    (time-resolved protocols) and a name that says which point it is. Raises SetupError."""
    name = f"{base.name} [" + ", ".join(f"{k}={v}" for k, v in point.items()) + "]"
    changes = dict(point)
    changes["name"] = name
    if at is not None:
        changes["training.times"] = [float(at)]
    return base.replace(**changes)


def single_key(single_setup, times, engine: str) -> str:
    """The cache key of a single-task solve: canonical JSON of the lone task's setup (its name
    dropped; the teacher alignment and the task's share, unused by one task, normalised), the
    evaluation times and the engine."""
    d = single_setup.to_dict()
    d.pop("name", None)
    if "alignment" in d.get("teacher", {}):
        d["teacher"]["alignment"] = 0.0
    for t in d["tasks"]:
        t.pop("share", None)
    return json.dumps({"setup": d, "times": [float(t) for t in times], "engine": engine},
                      sort_keys=True)


# ----------------------------------------------------------------------------------------------
# TOML for a point's setup (so that `mtsp solve` can be run on exactly that point)

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            raise ValueError("non-finite number in a setup")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def setup_toml(setup) -> str:
    """The setup as a TOML file (MODEL.md layout) that ``load_setup`` reads back into an equal
    setup (floats are written with repr, which round-trips exactly)."""
    d = setup.to_dict()
    lines = [f"name = {_toml_value(d['name'])}", ""]
    for task in d["tasks"]:
        lines.append("[[tasks]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in task.items()]
        lines.append("")
    for section in ("teacher", "student", "training"):
        if d.get(section):
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in d[section].items()]
            lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The work: one solve per job (run in worker processes, so module level and picklable)

def _online_defaults(model):
    return (inspect.signature(solve_online).parameters["acc"].default, *default_tolerances(model))


def _evaluate(setup, engine: str, generated=None) -> dict:
    """gen_error of every task of `setup` at its last time, exactly as ``solve`` computes it (the
    same integration to that time and the same gen_error integrals), without the early-stopping
    scans and the other metrics.
    Non-online protocols: ``solve`` itself (its last value).
    BLAS runs one thread, as in ``solve_online`` (`one_blas_thread`): OpenBLAS builds whose
    products depend on the thread count (0.3.21, NumPy 1.24's wheels) would otherwise give
    numbers a few ulp from ``solve``'s."""
    if setup.training.protocol != "online":
        res = solve(setup, engine=engine)
        return {name: float(d["gen_error"][-1]) for name, d in res.tasks.items()}
    with one_blas_thread():
        return _evaluate_online(setup, engine, generated)


def _evaluate_online(setup, engine: str, generated=None) -> dict:
    model = theory_model(setup)
    acc, rtol, atol = _online_defaults(model)
    t_end = float(setup.training.times[-1])
    # the point's reach, as solve checks it, without a note per point (the sweep announced its cost)
    f_rhs = _rhs_function(model, engine, setup.name, generated)
    reach.check_cost(reach.estimate(lambda y: f_rhs(model, y, acc), model.pack(model.initial_state()),
                                    t_end), model.lr, note=lambda text: None)
    traj, _ = _integrate(model, t_end, acc, rtol, atol, engine, setup.name, guard=reach.Guard(t_end),
                         generated=generated)
    # gen_error only: its cone integrals are the same calls, with the same budgets, as in the full
    # metric evaluation of solve_online (label_error and test_loss are separate integrals)
    ms = task_metrics(model, model.unpack(traj(t_end)), acc, loss=False, label=False)
    return {name: float(m.gen_error) for name, m in zip(model.names, ms)}


TIME_RESOLVED = ("gen_error_se", "best_gen_error", "best_gen_error_se", "best_gen_error_time")


def _point_values(d: dict) -> dict:
    """A task's values at the sweep's time from a ``solve`` result: gen_error (the last entry)
    and, where the engine gives them, its sampling error and the early-stopped best_gen_error
    (with its error and time)."""
    out = {"gen_error": float(d["gen_error"][-1])}
    for key in TIME_RESOLVED:
        v = d.get(key)
        if v is not None:
            out[key] = float(v[-1] if isinstance(v, list) else v)
    return out


class _Failed:
    """A job the engine refused (ReachError) or could not converge (ConvergenceError): its point is
    skipped with this message."""

    def __init__(self, err):
        residual = getattr(err, "residual", None)
        self.message = str(err) + ("" if residual is None else f" (residual {residual:.3g})")


def _run_job(job):
    """A job: ("multi", setup, engine, generated) → {task: gen_error}; ("single", …) → the same
    for the lone task; ("both", …) → (multi, single) from ``solve(single=True)`` (protocols whose
    single-task rule the sweep leaves to ``solve``); ``generated``: derive's modules (pickled to the
    workers).  A ReachError or ConvergenceError comes back as a `_Failed`."""
    try:
        return _run_one(job)
    except (ReachError, ConvergenceError) as e:
        return _Failed(e)


def _run_one(job):
    kind, setup, engine, generated = job
    if kind == "both":
        # the sweep already runs its points side by side: no metrics worker per solve
        res = solve(setup, single=True, engine=engine, processes=1, generated=generated)
        multi = {n: _point_values(d) for n, d in res.tasks.items()}
        single = {n: _point_values(d) for n, d in res.single.items()}
        return multi, single
    return _evaluate(setup, engine, generated)


# ----------------------------------------------------------------------------------------------
# Executors

class _Serial:
    name = "serial"

    def run(self, fn, jobs):
        for i, job in enumerate(jobs):
            yield i, fn(job)

    def close(self):
        pass


class _Local:
    def __init__(self, workers: int):
        self.name, self.workers = f"processes ({workers})", workers
        # the platform's start method; workers ignore SIGINT and die with this process
        self.pool = ProcessPoolExecutor(max_workers=workers, initializer=worker_init)

    def run(self, fn, jobs):
        futs = {self.pool.submit(fn, job): i for i, job in enumerate(jobs)}
        try:
            for f in as_completed(futs):
                yield futs[f], f.result()
        except BaseException:   # an error, an interrupt or SIGTERM: the workers go at once
            stop_pool(self.pool)
            raise
        finally:
            for f in futs:
                f.cancel()

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Dask:
    def __init__(self, scheduler):
        if isinstance(scheduler, str):
            try:
                from dask.distributed import Client
            except ImportError:
                raise SweepError("scheduler", "Dask distributed is not installed; install it with "
                                              "pip install \"mtsp[dask]\" (or \"dask[distributed]\")"
                                 ) from None
            try:
                self.client = Client(scheduler, timeout=30)
            except (OSError, TimeoutError) as e:
                raise SweepError("scheduler", f"cannot connect to {scheduler!r}: {e}") from None
            self.own = True
            self.name = f"dask ({scheduler})"
        else:
            self.client, self.own = scheduler, False
            self.name = f"dask ({getattr(scheduler, 'scheduler', None) and scheduler.scheduler.address})"

    def run(self, fn, jobs):
        from dask.distributed import as_completed
        futs = [self.client.submit(fn, job, pure=False) for job in jobs]
        index = {f.key: i for i, f in enumerate(futs)}
        try:
            for f in as_completed(futs):
                yield index[f.key], f.result()
        finally:
            self.client.cancel([f for f in futs if not f.done()])

    def close(self):
        if self.own:
            self.client.close()


def _executor(jobs, scheduler, n_jobs):
    if scheduler is not None:
        return _Dask(scheduler)
    workers = (os.cpu_count() or 1) if jobs is None else int(jobs)
    if workers < 1:
        raise SweepError("jobs", f"must be >= 1, got {workers}")
    workers = min(workers, n_jobs)
    return _Serial() if workers <= 1 else _Local(workers)


def run_jobs(ex, fn, jobs: list, progress=None, unit: str = "jobs") -> list:
    """``[fn(job) for job in jobs]`` on the executor `ex` (in the jobs' order, whatever order they
    finish in), reporting ``progress(fraction, "k/n unit")`` as each finishes; `ex` is closed."""
    results = [None] * len(jobs)
    try:
        for done, (j, res) in enumerate(ex.run(fn, jobs), start=1):
            results[j] = res
            if progress:
                progress(done / len(jobs), f"{done}/{len(jobs)} {unit}")
    finally:
        ex.close()
    return results


def _warm(setups, engine: str, generated) -> None:
    """Ask `generated` for the module of each setup structure once, before workers start (so the
    derivations happen here, once, and the workers load them from derive's cache)."""
    if engine != "ode":
        return
    for s in setups:
        if s.training.protocol == "online":
            generated_module(generated, theory_model(s), s.name)   # cached by structure: each derived once


def _estimate_text(setup, engine: str, n_jobs: int, n_multi: int, ex, generated=None) -> str:
    """The estimated cost of the grid: the first valid point's integration estimated as
    `reach.estimate` does (its rate and seconds per right-hand side, measured here) times the
    solves, over the workers (the single-task solves counted as multitask ones: an upper bound)."""
    if setup.training.protocol != "online":
        return f"sweep: {n_jobs} solves ({n_multi} multitask) on {ex.name}"
    model = theory_model(setup)
    acc = _online_defaults(model)[0]
    f_rhs = _rhs_function(model, engine, setup.name, generated)
    est = reach.estimate(lambda y: f_rhs(model, y, acc), model.pack(model.initial_state()),
                         float(setup.training.times[-1]))
    total = est.seconds * n_jobs / getattr(ex, "workers", 1)
    return (f"sweep: {n_jobs} solves ({n_multi} multitask) on {ex.name}; estimated "
            f"{reach._fmt_s(total)} (about {reach._fmt_s(est.seconds)} per solve at the first point)")


# ----------------------------------------------------------------------------------------------
# The result

@dataclass
class SweepResult:
    """A sweep's table. ``records``: one dict per valid point, in grid order (the first key varies
    slowest) — ``{KEY: value, ..., "multi": {task: {"gen_error": x}}, "single": {...},
    "benefit": {task: Δ}}``; points solved by an engine that gives them (the DMFT of full_batch)
    add ``gen_error_se`` and the early-stopped ``best_gen_error`` (``_se``, ``_time``) beside each
    gen_error and ``"best_benefit": {task: Δ of best_gen_error}``; ``skipped``: ``{"point":
    {KEY: value}, "error": "key: reason"}``."""
    base: dict
    vary: dict
    at: float | None
    engine: str
    tasks: list
    records: list
    skipped: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def keys(self) -> list:
        return list(self.vary)

    def to_json_dict(self) -> dict:
        points = []
        for r in self.records:
            p = {k: r[k] for k in self.keys}
            p.update(index=r["index"], multi=r["multi"], single=r["single"], benefit=r["benefit"])
            if "best_benefit" in r:
                p["best_benefit"] = r["best_benefit"]
            points.append(p)
        return {"base": self.base, "vary": {k: list(v) for k, v in self.vary.items()},
                "at": self.at, "engine": self.engine, "protocol": self.base["training"]["protocol"],
                "tasks": list(self.tasks), "points": points, "skipped": list(self.skipped),
                "stats": dict(self.stats)}

    def columns(self) -> list[str]:
        """Column names of the table: the index, the keys, then per task
        ``multi.<task>.gen_error``, ``single.<task>.gen_error``, ``benefit.<task>``."""
        cols = ["index"] + self.keys
        for t in self.tasks:
            cols += [f"multi.{t}.gen_error", f"single.{t}.gen_error", f"benefit.{t}"]
        return cols

    def _row(self, r) -> list:
        row = [r["index"]] + [r[k] for k in self.keys]
        for t in self.tasks:
            row += [r["multi"][t]["gen_error"], r["single"][t]["gen_error"], r["benefit"][t]]
        return row

    def table(self) -> np.ndarray:
        """The records as a numpy structured array (fields: ``columns()``)."""
        dtypes = [("index", np.int64)]
        for k in self.keys:
            vals = self.vary[k]
            if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
                dtypes.append((k, np.int64))
            elif all(isinstance(v, (int, float, np.integer, np.floating)) for v in vals):
                dtypes.append((k, np.float64))
            else:
                dtypes.append((k, f"U{max(len(str(v)) for v in vals)}"))
        dtypes += [(c, np.float64) for c in self.columns()[1 + len(self.keys):]]
        return np.array([tuple(self._row(r)) for r in self.records], dtype=dtypes)

    def to_csv(self, path) -> str:
        """Write the table as CSV (a header of ``columns()``; floats with repr precision)."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(self.columns())
            for r in self.records:
                w.writerow([repr(v) if isinstance(v, float) else v for v in self._row(r)])
        return str(path)

    def grid(self, task: str, what: str = "benefit"):
        """For maps: (values of key 1, values of key 2, Z) with Z[j, i] the quantity at
        (key1 = values1[i], key2 = values2[j]) — NaN where a point was skipped. ``what``: benefit,
        multi or single. Needs exactly two varied keys."""
        if len(self.keys) != 2:
            raise SweepError("vary", f"a map needs two varied keys, got {len(self.keys)}")
        k1, k2 = self.keys
        v1, v2 = list(self.vary[k1]), list(self.vary[k2])
        Z = np.full((len(v2), len(v1)), np.nan)
        for r in self.records:
            i, j = v1.index(r[k1]), v2.index(r[k2])
            Z[j, i] = _quantity(r, task, what)
        return v1, v2, Z

    def curve(self, task: str, what: str = "benefit"):
        """For one varied key: (values, y) with NaN at skipped points."""
        if len(self.keys) != 1:
            raise SweepError("vary", f"a curve needs one varied key, got {len(self.keys)}")
        k = self.keys[0]
        vals = list(self.vary[k])
        y = np.full(len(vals), np.nan)
        for r in self.records:
            y[vals.index(r[k])] = _quantity(r, task, what)
        return vals, y


def _quantity(r, task, what):
    if what == "benefit":
        return r["benefit"][task]
    return r[what][task]["gen_error"]


# ----------------------------------------------------------------------------------------------
# The sweep

def _single_jobs(point, at, engine):
    """The single-task solves a point needs: [(task name, setup alone with its times, key)]."""
    shares = point.shares()
    separate = point.training.inputs == "separate" and len(point.tasks) > 1
    out = []
    for k, task in enumerate(point.tasks):
        alone = point.single(k)
        if at is not None:
            t = shares[k] * at if separate else at
            alone = alone.replace(**{"training.times": [float(t)]})
            times = [float(t)]
        else:
            times = []
        out.append((task.name, alone, single_key(alone, times, engine)))
    return out


def sweep(base_setup, vary: dict, at=None, engine: str | None = None, jobs: int | None = None,
          scheduler=None, progress=None, on_skip=None, on_estimate=None, generated=None) -> SweepResult:
    """Solve every point of the grid ``vary`` (``{KEY: [values]}``, dotted keys) around
    ``base_setup`` and return the multitask/single-task gen_error and the benefit per task.

    ``at``: the time (time-resolved protocols; default the last of the base's times).
    ``engine``: the theory engine (default: the protocol's own, `numeric.solve.check_protocol`).
    ``jobs``: local worker processes (default ``os.cpu_count()``; 1 = in this process).
    ``scheduler``: a Dask scheduler address or ``distributed.Client`` (instead of local processes).
    ``progress``: a callable ``progress(fraction, note)`` (e.g. ``mtsp.progress.Progress``).
    ``on_skip``: called as ``on_skip(point, message)`` for each invalid point (or one beyond the
    online engine's reach, `reach.check_structure`), before any solve, and for each point whose
    solve raised a ReachError or ConvergenceError, after the solves.
    ``on_estimate``: called with one line, the estimated cost of the grid, before any solve
    (`_estimate_text`).
    ``generated``: derive's modules (`mtsp.derive.GENERATED`), which the online engine "ode" runs;
    `mtsp.sweep` passes them.
    Raises SweepError / SetupError for a request that cannot run (unknown key, bad ``at``, no
    valid grid point)."""
    try:
        engine = check_protocol(base_setup, engine)
    except RequestError as e:
        raise SweepError(e.key, e.reason) from None
    if not isinstance(vary, dict) or not vary:
        raise SweepError("vary", "nothing to vary: give at least one KEY=VALUES")
    canon = {}
    for key, values in vary.items():
        check_key(base_setup, key)
        ck = _canonical_key(base_setup, key)
        if ck in canon.values():
            raise SweepError(key, "varied twice")
        canon[key] = ck
        values = list(values)
        if not values:
            raise SweepError(key, "no values")
    vary = {k: list(v) for k, v in vary.items()}
    at = _resolve_at(base_setup, at)
    t0 = _time.perf_counter()

    # 1. every grid point, validated
    valid, skipped = [], []
    for i, point in enumerate(grid_points(vary)):
        try:
            s = point_setup(base_setup, point, at)
            if s.training.protocol == "online":
                reach.check_structure(s)   # beyond the engine's reach: skipped like an invalid point
        except (SetupError, ReachError) as e:
            skipped.append({"index": i, "point": point, "error": str(e)})
            if on_skip:
                on_skip(point, str(e))
            continue
        valid.append((i, point, s))
    if not valid:
        first = skipped[0]["error"] if skipped else "empty grid"
        raise SweepError("vary", f"no valid grid point ({len(skipped)} skipped; first: {first})")

    # 2. the jobs: one multitask solve per point, one single-task solve per distinct baseline
    jobs_list, multi_of, singles_of, single_index = [], {}, {}, {}
    for i, point, s in valid:
        if s.training.protocol == "full_batch":
            multi_of[i] = len(jobs_list)
            jobs_list.append(("both", s, engine, generated))
            continue
        multi_of[i] = len(jobs_list)
        jobs_list.append(("multi", s, engine, generated))
        singles_of[i] = []
        for name, alone, key in _single_jobs(s, at, engine):
            if key not in single_index:
                single_index[key] = len(jobs_list)
                jobs_list.append(("single", alone, engine, generated))
            singles_of[i].append((name, single_index[key]))
    n_multi = sum(1 for j in jobs_list if j[0] in ("multi", "both"))
    n_single = sum(1 for j in jobs_list if j[0] == "single")

    _warm([j[1] for j in jobs_list], engine, generated)
    ex = _executor(jobs, scheduler, len(jobs_list))
    if on_estimate is not None:
        on_estimate(_estimate_text(valid[0][2], engine, len(jobs_list), n_multi, ex, generated))
    if progress:
        progress(0.0, f"0/{len(jobs_list)} solves")
    t1 = _time.perf_counter()
    results = run_jobs(ex, _run_job, jobs_list, progress, "solves")
    t2 = _time.perf_counter()

    # 3. the records
    tasks = [t.name for t in base_setup.tasks]
    records = []
    for i, point, s in valid:
        failed = [results[j] for j in [multi_of[i]] + [j for _, j in singles_of.get(i, [])]
                  if isinstance(results[j], _Failed)]
        if failed:
            skipped.append({"index": i, "point": point, "error": failed[0].message})
            if on_skip:
                on_skip(point, failed[0].message)
            continue
        if i in singles_of:
            multi = {t: {"gen_error": v} for t, v in results[multi_of[i]].items()}
            single = {name: {"gen_error": results[j][name]} for name, j in singles_of[i]}
        else:
            multi, single = results[multi_of[i]]
        rec = {"index": i}
        rec.update(point)
        rec["multi"] = {t: multi[t] for t in tasks}
        rec["single"] = {t: single[t] for t in tasks}
        rec["benefit"] = {t: single[t]["gen_error"] - multi[t]["gen_error"] for t in tasks}
        if all("best_gen_error" in single[t] and "best_gen_error" in multi[t] for t in tasks):
            rec["best_benefit"] = {t: single[t]["best_gen_error"] - multi[t]["best_gen_error"]
                                   for t in tasks}
        records.append(rec)
    skipped.sort(key=lambda d: d["index"])
    if not records:
        raise SweepError("vary", f"no grid point could be solved ({len(skipped)} skipped; first: "
                                 f"{skipped[0]['error']})")
    stats = {"points": len(records) + len(skipped),
             "valid_points": len(records),
             "skipped_points": len(skipped), "multi_solves": n_multi, "single_solves": n_single,
             "executor": ex.name, "solve_s": round(t2 - t1, 3),
             "wall_s": round(_time.perf_counter() - t0, 3)}
    return SweepResult(base_setup.to_dict(), vary, at, engine, tasks, records, skipped, stats)

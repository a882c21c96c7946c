"""Solve the online-SGD order-parameter ODEs and report MODEL.md's predictions.

`solve_online(setup)` integrates dy/dt = rhs(y) from the exact initial order parameters with an
error-controlled Runge–Kutta method (scipy's DOP853 / RK45 with dense output), evaluates the
errors at the setup's `times`, and finds the early-stopped minima (`best_*`) on the trajectory
itself: the metrics are scanned on a grid over (0, t_last] and each minimum is refined on the
dense output with a bounded Brent search.
"""
from __future__ import annotations

import sys
import time as _time
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import minimize_scalar

from .metrics import task_metrics
from .model import TheoryModel, theory_model
from .online import Accuracy, rhs

__all__ = ["SolveResult", "solve_online", "solve", "ConvergenceError"]


class ConvergenceError(RuntimeError):
    """The integrator failed; the message carries its status."""


@dataclass
class SolveResult:
    setup_name: str
    protocol: str
    engine: str
    times: list
    tasks: dict                      # name -> {gen_error: [...], ...}
    single: dict | None = None
    trajectory: object | None = None  # dense output (callable t -> packed state)
    model: TheoryModel | None = None
    stats: dict = field(default_factory=dict)
    single_results: dict | None = None  # name -> (SolveResult of the task alone, time scale)

    def to_json_dict(self) -> dict:
        out = {"setup": self.setup_name, "engine": self.engine, "protocol": self.protocol,
               "times": list(self.times), "tasks": self.tasks}
        if self.single is not None:
            out["single"] = self.single
        return out

    def state(self, t: float):
        """Order parameters (Q, R, V) at time t."""
        return self.model.unpack(self.trajectory(t))

    def curves(self, points: int = 60, acc: Accuracy | None = None) -> dict:
        """gen_error along the dense trajectory, for plots: {"times": [...], "tasks": {name:
        [...]}, "single": {name: [...]}} on `points` times in (0, t_last]; single-task curves
        (when solved) are on the multitask clock (time π_t·t for separate online inputs)."""
        acc = acc or CURVES
        grid = np.linspace(0.0, float(self.times[-1]), points + 1)[1:]
        out = {"times": grid.tolist(), "tasks": {}, "single": {}}
        vals = np.array([[m.gen_error for m in task_metrics(self.model, self.state(t), acc,
                                                            loss=False, label=False)]
                         for t in grid])
        for k, name in enumerate(self.model.names):
            out["tasks"][name] = vals[:, k].tolist()
        for name, (res, scale) in (self.single_results or {}).items():
            k = list(res.model.names).index(name)
            out["single"][name] = [task_metrics(res.model, res.state(scale * t), acc, loss=False,
                                                label=False)[k].gen_error for t in grid]
        return out


def _rhs_function(model: TheoryModel, engine: str, setup_name: str = ""):
    """The right-hand side: the generated module of the setup's structure (engine "ode", the
    default: SymPy closed forms + quadrature) or the hand-written reference ("reference")."""
    if engine == "ode":
        from mtsp.derive.codegen import load_module
        return load_module(model, setup_name).rhs
    if engine == "reference":
        return rhs
    raise ValueError(f"engine: unknown engine {engine!r} (ode | reference)")


def _integrate(model: TheoryModel, t_end: float, acc: Accuracy, rtol: float, atol: float,
               engine: str = "ode", setup_name: str = "", progress=None):
    y0 = model.pack(model.initial_state())
    nfev = [0]
    f_rhs = _rhs_function(model, engine, setup_name)

    def f(t, y):
        nfev[0] += 1
        if progress and nfev[0] % 6 == 0:
            progress(min(t / t_end, 1.0))
        return f_rhs(model, y, acc)
    sol = solve_ivp(f, (0.0, t_end), y0, method="RK45", rtol=rtol, atol=atol, dense_output=True)
    if not sol.success:
        raise ConvergenceError(f"ODE integration failed at t = {sol.t[-1]:.4g}: {sol.message}")
    if not np.all(np.isfinite(sol.y[:, -1])):
        raise ConvergenceError("ODE integration produced non-finite order parameters")
    return sol.sol, nfev[0]


COARSE = Accuracy(budget=3000, metric_budget=4000, qmc_points=2 ** 10, qmc_replicates=4, sobol_points=2 ** 12,
                  relu_split=False)
SEARCH = Accuracy(budget=3000, metric_budget=4000, qmc_points=2 ** 12, qmc_replicates=4, sobol_points=2 ** 13,
                  relu_split=False)
# plotted curves: coarse budgets, but enough QMC points that nonlinear-trunk curves look smooth
CURVES = Accuracy(budget=3000, metric_budget=4000, qmc_points=2 ** 13, qmc_replicates=2)


def _metric_values(model, traj, tt, acc, key, tasks=None):
    ms = task_metrics(model, model.unpack(traj(tt)), acc, errors=(key != "test_loss"),
                      loss=(key == "test_loss"), label=False, tasks=tasks)
    return np.array([getattr(m, key) for m in ms])


def _best(model, traj, t_end, acc, key, grid_points, times):
    """Minimum of one metric over the trajectory (0, t_end]: a coarse grid scan, then a bounded
    Brent search at full accuracy around the grid minimum (the metric along the trajectory is
    smooth; early stopping is its first minimum in practice but the scan sees all of them)."""
    grid = np.union1d(np.linspace(0, t_end, grid_points + 1)[1:], np.asarray(times, float))
    coarse = np.array([_metric_values(model, traj, tt, COARSE, key) for tt in grid])
    out = []
    for task in range(model.n_tasks):
        i = int(np.argmin(coarse[:, task]))
        f = lambda tt, a=acc: _metric_values(model, traj, tt, a, key, [task])[0]  # noqa: E731
        if i == len(grid) - 1:  # still decreasing at the last time: the minimum is the endpoint
            out.append((float(f(grid[i])), float(grid[i])))
            continue
        lo = grid[i - 1] if i > 0 else 0.5 * grid[0]
        hi = grid[min(i + 1, len(grid) - 1)]
        cands = [(f(grid[i]), grid[i])]
        if hi > lo:
            # the search runs at the scan's budgets with more QMC points (the value at a minimum
            # is insensitive to its location); the minimum found is evaluated at full accuracy
            fs = lambda tt: f(tt, SEARCH)  # noqa: E731
            r = minimize_scalar(fs if not model.linear else f, bounds=(lo, hi), method="bounded",
                                options={"xatol": 1e-3 * t_end, "maxiter": 30})
            cands.append((float(f(r.x)), float(r.x)))
        v, t = min(cands)
        out.append((float(v), float(t)))
    return out


def default_tolerances(model: TheoryModel) -> tuple[float, float]:
    """(rtol, atol) of the ODE integration: tighter where the integrals are exact or product rules
    (linear trunks, glm) than where they carry ~1e-4 quadrature errors (nonlinear trunks)."""
    return (1e-5, 1e-7) if model.linear else (1e-4, 1e-6)


def solve_online(setup, acc: Accuracy = Accuracy(), *, rtol: float | None = None, atol: float | None = None,
                 grid_points: int = 24, times=None, progress=None, engine: str = "ode") -> SolveResult:
    """N → ∞ prediction of the online protocol for `setup` (MODEL.md JSON fields).

    Default tolerances: rtol 1e-5 / atol 1e-7 for linear trunks and glm students; 1e-4 / 1e-6 for
    nonlinear trunks, whose integrals carry quadrature errors ~1e-4 anyway (measured: gen_error
    within 2e-5 of an rtol = 1e-7 solve on two-task tanh trunks, K = 2 and 4, with 25 % fewer
    right-hand-side evaluations)."""
    model = theory_model(setup)
    d_rtol, d_atol = default_tolerances(model)
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    times = list(setup.training.times if times is None else times)
    t0 = _time.perf_counter()
    # progress: integration 0 → 0.8 (by ODE time), metrics 0.8 → 1
    traj, nfev = _integrate(model, float(times[-1]), acc, rtol, atol, engine, setup.name,
                            (lambda f: progress(0.8 * f)) if progress else None)
    t1 = _time.perf_counter()
    if progress:
        progress(0.8)
    per_time = [task_metrics(model, model.unpack(traj(t)), acc) for t in times]
    # the fixed Sobol' tier (above 4 integrated dimensions) has no error bound of its own: a second,
    # independent scrambling states it (zero when every integral used an exact or product rule)
    alt = replace(acc, qmc_seed=acc.qmc_seed + 1)
    y_end = traj(times[-1])
    f_rhs = _rhs_function(model, engine, setup.name)
    r0, r1 = f_rhs(model, y_end, acc), f_rhs(model, y_end, alt)
    rhs_spread = float(np.abs(r0 - r1).max() / max(np.abs(r0).max(), 1e-300))
    quad = None
    if model.linear:
        quad = [[abs(a.gen_error - b.gen_error) for a, b in
                 zip(m, task_metrics(model, model.unpack(traj(t)), alt, loss=False, label=False))]
                for m, t in zip(per_time, times)]
    best_gen = _best(model, traj, times[-1], acc, "gen_error", grid_points, times)
    best_loss = _best(model, traj, times[-1], acc, "test_loss", grid_points, times)
    t2 = _time.perf_counter()
    # the trajectory minimum is never above a reported value (the grid scan is coarse)
    for k in range(model.n_tasks):
        for key, best in (("gen_error", best_gen), ("test_loss", best_loss)):
            v, t = min((getattr(m[k], key), tt) for m, tt in zip(per_time, times))
            if v < best[k][0]:
                best[k] = (float(v), float(t))
    tasks = {}
    for k, name in enumerate(model.names):
        tasks[name] = {
            "gen_error": [m[k].gen_error for m in per_time],
            "label_error": [m[k].label_error for m in per_time],
            "test_loss": [m[k].test_loss for m in per_time],
            "best_gen_error": best_gen[k][0], "best_gen_error_time": best_gen[k][1],
            "best_test_loss": best_loss[k][0], "best_test_loss_time": best_loss[k][1],
        }
        if not model.linear:
            tasks[name]["gen_error_quad_se"] = [m[k].gen_error_se for m in per_time]
        elif any(q[k] > 0 for q in quad):
            tasks[name]["gen_error_quad_se"] = [q[k] for q in quad]
    if progress:
        progress(1.0)
    return SolveResult(setup.name, "online", engine, times, tasks, None, traj, model,
                       {"nfev": nfev, "integrate_s": t1 - t0, "metrics_s": t2 - t1,
                        "rhs_sobol_spread": rhs_spread})


# `accuracy="fast"`: for exploration — 1.6–2.8× faster; measured gen_error differences from the
# default 6e-5 (demo, linear K = 4) and 7e-4 (tanh K = 2, two tasks)
FAST_ACCURACY = Accuracy(budget=1500, metric_budget=8000, qmc_points=2 ** 11, qmc_replicates=4, sobol_points=2 ** 12)
FAST_TOL = {"rtol": 1e-4, "atol": 1e-6}
# `accuracy="high"`: quadrature budgets and ODE tolerances for ≤ 1e-7 in gen_error against the
# mp path (measured on a two-task shared linear trunk, see benchmarks/mp_solve.py)
HIGH_ACCURACY = Accuracy(budget=60000, metric_budget=200000, qmc_points=2 ** 15, sobol_points=2 ** 17)
HIGH_TOL = {"rtol": 1e-10, "atol": 1e-12}


def solve(setup, *, single: bool = False, acc: Accuracy = Accuracy(), progress=None,
          engine: str = "ode", precision: str = "double", dps: int = 30,
          accuracy: str = "default") -> SolveResult:
    """Solve `setup` with the engine of its protocol; with `single`, add single-task baselines.

    ``precision="mp"``: the whole ODE with the mpmath back-end at ``dps`` digits
    (`mp_solve.solve_online_mp`: linear trunks / glm, C ≤ 3; slow).  ``accuracy="high"``: the
    double path with `HIGH_ACCURACY` budgets and tolerances `HIGH_TOL`; ``accuracy="fast"``:
    `FAST_ACCURACY` / `FAST_TOL`, for quick exploration (errors ≲ 1e-3).

    With separate inputs online, task t alone is compared at the same number of task-t samples:
    its single-task run is evaluated at times π_t·t (MODEL.md)."""
    protocol = setup.training.protocol
    if protocol != "online":
        raise NotImplementedError(f"training.protocol: the {protocol!r} engine is not implemented yet "
                                  "(online is)")
    if accuracy not in ("default", "high", "fast"):
        raise ValueError(f"accuracy: unknown accuracy {accuracy!r} (default | high | fast)")
    if precision == "mp":
        from .mp_solve import solve_online_mp
        if single:
            raise NotImplementedError("precision: --single is not supported with the mp back-end")
        return solve_online_mp(setup, dps=dps, progress=progress)
    if precision != "double":
        raise ValueError(f"precision: unknown precision {precision!r} (double | mp)")
    tol = {}
    if accuracy == "fast":
        acc, tol = FAST_ACCURACY, FAST_TOL
    if accuracy == "high":
        acc, tol = HIGH_ACCURACY, HIGH_TOL
    runs = 1 + (sum(1 for t in setup.tasks if t.weight != 0) if single else 0)

    def part(k):  # progress of run k of `runs` as a fraction of the whole
        return (lambda f: progress((k + f) / runs)) if progress else None
    res = solve_online(setup, acc, progress=part(0), engine=engine, **tol)
    if single:
        done = 1
        res.single = {}
        res.single_results = {}
        shares = setup.shares()
        for k, task in enumerate(setup.tasks):
            if task.weight == 0:
                # a task with weight 0 is never trained: alone it is not a valid setup
                print(f"mtsp: note: task {task.name!r} has weight 0; no single-task baseline",
                      file=sys.stderr)
                continue
            times = list(setup.training.times)
            if setup.training.inputs == "separate" and len(setup.tasks) > 1:
                times = [shares[k] * t for t in times]
            alone = solve_online(setup.single(k), acc, times=times, engine=engine,
                                 progress=part(done), **tol)
            done += 1
            scale = times[0] / setup.training.times[0]
            entry = dict(alone.tasks[task.name])
            for key in ("best_gen_error_time", "best_test_loss_time"):  # on the multitask clock
                entry[key] = entry[key] / scale
            res.single[task.name] = entry
            res.single_results[task.name] = (alone, scale)
    return res

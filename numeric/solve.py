"""Solve the online-SGD order-parameter ODEs and report MODEL.md's predictions.

`solve_online(setup)` integrates dy/dt = rhs(y) from the exact initial order parameters with an
error-controlled Runge–Kutta method (Dormand–Prince 5(4) with dense output, `integrators`), evaluates the errors at the
setup's `times`, and finds the early-stopped minima (`best_*`) on the trajectory itself: the
metrics are scanned on a grid over (0, t_last] and each minimum is refined on the dense output
with a bounded Brent search.  With ``processes=2`` (the default where there are 2+ cores and
the fork start method) a forked second process computes half of every right-hand side during the
integration (it is passed down as the executor ``helper``) and half of the metric evaluations
after it — the same sums in the same order, so the same numbers.

One driver (`_solve_online`) for both number types: `DoubleNumbers` (float64) and
`mp_solve.MpNumbers` (mpmath at any precision) say how to integrate and evaluate the metrics;
the mp solve finds its minima over the accepted steps instead of by a grid scan and refinement
(``minima="steps"``: its metrics cost seconds each).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time as _time
from dataclasses import dataclass, field, replace

import numpy as np
from threadpoolctl import threadpool_limits

from mtsp.engines import choose_engine
from mtsp.errors import ConvergenceError, ReachError, RequestError

from . import online, reach
from .engine import generated_module
from .integrators import DOUBLE, StepController, bounded_minimum
from .metrics import task_metrics
from .model import TheoryModel, theory_model
from .online import Accuracy
from .trajectory import integrate_theory, lowest, task_fields
from .workers import SolveJobs

__all__ = ["SolveResult", "solve_online", "DoubleNumbers", "solve", "ConvergenceError", "check_processes", "default_processes"]



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
    states: dict | None = None       # minima="steps": {t: packed state} at `times`, the steps' own

    def to_json_dict(self) -> dict:
        out = {"setup": self.setup_name, "engine": self.engine, "protocol": self.protocol,
               "times": None if self.times is None else list(self.times), "tasks": self.tasks}
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


def _rhs_module(engine: str, model: TheoryModel, setup_name: str = "", generated=None):
    """The module whose `rhs` is the right-hand side: the generated module of the setup's
    structure (engine "ode", the default: SymPy closed forms + quadrature), taken from
    ``generated`` (derive's modules, given by the caller: `engine.generated_module`), or the
    hand-written reference `numeric.online` ("reference")."""
    if engine == "ode":
        return generated_module(generated, model, setup_name)
    if engine == "reference":
        return online
    raise RequestError("engine", f"unknown engine {engine!r} (ode | reference)")


def _rhs_function(model: TheoryModel, engine: str, setup_name: str = "", generated=None):
    return _rhs_module(engine, model, setup_name, generated).rhs


def _integrate(model: TheoryModel, t_end: float, acc: Accuracy, rtol: float, atol: float,
               engine: str = "ode", setup_name: str = "", progress=None, helper=None, guard=None,
               generated=None, stops=()):
    """Dormand–Prince 5(4) with dense output from the initial order parameters to t_end (steps
    landing on ``stops``).
    ``helper``: an executor that computes half of every right-hand side while this process does
    the other half (passed to the right-hand side: `online.linear_terms`, `online.nonlinear_terms`).
    ``guard``: called with (t, y) at each right-hand side (default: the cost is estimated and
    checked first, then `reach.Guard` stops diverging or overlong integrations)."""
    y0 = model.pack(model.initial_state())
    nfev = [0]
    f_rhs = _rhs_function(model, engine, setup_name, generated)
    if guard is None:   # the reach (`reach`): the cost estimated, refused or announced first
        reach.check_cost(reach.estimate(lambda y: f_rhs(model, y, acc, helper), y0, t_end), model.lr)
        guard = reach.Guard(t_end)

    def f(t, y):
        nfev[0] += 1
        guard(t, y)
        if progress and nfev[0] % 6 == 0:
            _tell(progress, min(t / t_end, 1.0), f"t = {t:.3g} of {t_end:g}")
        return f_rhs(model, y, acc, helper)
    traj = integrate_theory(f, y0, t_end, controller=StepController(rtol, atol), stops=stops,
                            status={"rtol": rtol, "atol": atol})
    return traj, nfev[0]


def default_processes() -> int:
    """2 where a second process can help (2+ cores, the fork start method, and this process may
    have children: not a daemonic worker), else 1."""
    can_fork = "fork" in mp.get_all_start_methods() and not mp.current_process().daemon
    return 2 if can_fork and (os.cpu_count() or 1) > 1 else 1


def check_processes(processes) -> int:
    """The number of processes of a solve, validated: None → `default_processes()`; 1 (this
    process alone) or 2 (a forked second process shares the right-hand sides and the metrics)."""
    if processes is None:
        return default_processes()
    if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) or processes not in (1, 2):
        raise RequestError("processes", f"expected 1 or 2 (the work of a solve is split in two), got {processes!r}")
    if processes == 2 and ("fork" not in mp.get_all_start_methods() or mp.current_process().daemon):
        raise RequestError("processes", "2 needs a forked second process (the fork start method, "
                           "and not inside a daemonic worker); use 1")
    return int(processes)


def _metrics_job(model, y, acc, kw):
    return task_metrics(model, model.unpack(y), acc, **kw)


COARSE = Accuracy(budget=3000, metric_budget=4000, qmc_points=2 ** 10, qmc_replicates=4, sobol_points=2 ** 12,
                  relu_split=False, cut_nodes=24)
SEARCH = Accuracy(budget=3000, metric_budget=4000, qmc_points=2 ** 12, qmc_replicates=4, sobol_points=2 ** 13,
                  relu_split=False, cut_nodes=24)
# plotted curves: coarse budgets, but enough QMC points that nonlinear-trunk curves look smooth
CURVES = Accuracy(budget=3000, metric_budget=4000, qmc_points=2 ** 13, qmc_replicates=2)


def _metric_values(model, traj, tt, acc, key, tasks=None):
    ms = task_metrics(model, model.unpack(traj(tt)), acc, errors=(key != "test_loss"),
                      loss=(key == "test_loss"), label=False, tasks=tasks)
    return np.array([getattr(m, key) for m in ms])


def _scan_grid(t_end: float, grid_points: int, times) -> np.ndarray:
    return np.union1d(np.linspace(0, t_end, grid_points + 1)[1:], np.asarray(times, float))


def _refine(model, traj, grid, coarse, acc, key, task, t_end):
    """Minimum of one metric of one task over the trajectory (0, t_end] from its coarse scan on
    `grid`: a bounded Brent search around the grid minimum (the metric along the trajectory is
    smooth; early stopping is its first minimum in practice but the scan sees all of them)."""
    i = int(np.argmin(coarse))
    f = lambda tt, a=acc: _metric_values(model, traj, tt, a, key, [task])[0]  # noqa: E731
    if i == len(grid) - 1:  # still decreasing at the last time: the minimum is the endpoint
        return float(f(grid[i])), float(grid[i])
    lo = grid[i - 1] if i > 0 else 0.5 * grid[0]
    hi = grid[min(i + 1, len(grid) - 1)]
    cands = [(f(grid[i]), grid[i])]
    if hi > lo:
        # the search runs at the scan's budgets with more QMC points (the value at a minimum
        # is insensitive to its location); the minimum found is evaluated at full accuracy
        fs = lambda tt: f(tt, SEARCH)  # noqa: E731
        x, _ = bounded_minimum(fs if not model.linear else f, lo, hi, xatol=1e-3 * t_end, maxiter=30)
        cands.append((float(f(x)), float(x)))
    v, t = min(cands)
    return float(v), float(t)


def default_tolerances(model: TheoryModel) -> tuple[float, float]:
    """(rtol, atol) of the ODE integration, set by the accuracy of the right-hand side: tight
    where the integrals are exact or product rules (linear trunks, glm: measured on a two-task
    C = 2 trunk, gen_error within 9e-9 of an rtol = 1e-10 solve at rtol 1e-6, against 4e-7 at
    rtol 1e-5, for 1.3× the right-hand sides) and looser where the right-hand side itself carries
    larger quadrature errors: C = 3 linear trunks (split pieces and label routes that switch with
    the state, errors ~1e-6) and nonlinear trunks (~1e-4).  Measured against rtol 1e-9 / 1e-7
    solves with the same quadrature (two tasks C = 3, 3, teacher norm 4, lr 1, t ≤ 20,
    shared inputs): linear K = 3, 4 at rtol 3e-5 within 2.4e-6 in gen_error and 3.9e-6 in
    test_loss (at 1e-5: 1.6e-5 — the state-dependent splits, not the step, set that error; and
    within 2.9e-6 of `accuracy="high"`, quadrature included), MODEL.md's example within 6e-6; relu K = 2..4, erf K = 3, tanh K = 2, 4 at rtol 3e-4 within
    3.4e-5 in gen_error (at 1e-4: 1.4e-5) — below the nonlinear errors' own quadrature standard
    errors (≈ 1e-4, `gen_error_quad_se`), for 15–22 % fewer right-hand sides."""
    if not model.linear:
        return 3e-4, 3e-6
    return (1e-6, 1e-8) if max(model.classes) <= 2 else (3e-5, 3e-7)


def solve_online(setup, acc: Accuracy = Accuracy(), *, rtol: float | None = None, atol: float | None = None,
                 grid_points: int = 24, times=None, progress=None, engine: str = "ode",
                 processes: int | None = None, generated=None, numbers=None, minima: str | None = None) -> SolveResult:
    """N → ∞ prediction of the online protocol for `setup` (MODEL.md JSON fields).

    Default tolerances (`default_tolerances`): rtol 1e-6 / atol 1e-8 (C ≤ 2) or 3e-5 / 3e-7 for
    linear trunks and glm students; 3e-4 / 3e-6 for nonlinear trunks, whose integrals carry
    quadrature errors ~1e-4 anyway (measured: gen_error within 3.4e-5 of an rtol = 1e-7 solve on
    two-task relu / erf / tanh trunks, K = 2..4).  ``processes`` (`check_processes`; default 2
    where there are 2+ cores and fork): with 2, a forked second process shares the right-hand
    sides and the metric evaluations; the numbers are the same either way.  BLAS runs one thread
    per process while it solves (`one_blas_thread`).  ``generated``: derive's modules (engine "ode":
    `engine.generated_module`; `mtsp.solve` passes them).

    ``numbers``: the number type the driver runs in — `DoubleNumbers(acc, engine, generated)` (the
    default, from the arguments above) or `mp_solve.MpNumbers` (the same driver in mpmath: its own
    default tolerances).  ``minima`` (`_solve_online`): "refine" or "steps"; None: the number
    type's own ("refine" for double, "steps" for mp)."""
    processes = check_processes(processes)
    numbers = numbers or DoubleNumbers(acc, engine, generated)
    minima = numbers.minima if minima is None else minima
    if minima not in numbers.supports:
        raise RequestError("minima", f"{' | '.join(numbers.supports)} with the {numbers.engine} numbers, got {minima!r}")
    with numbers.context():
        return _solve_online(setup, numbers, rtol, atol, grid_points, times, progress, processes, minima)


def one_blas_thread():
    """A context in which BLAS uses one thread in this process, and in the worker forked inside
    it (threadpoolctl, restored on exit).  The theory's matrix products are small: threaded BLAS
    only spins, and two busy processes fight its threads for the cores (measured on the demo
    setup, 2 cores: 3.9 s with one thread, 6.8 s with OpenBLAS's default; see
    benchmarks/results/processes_blas_threads.txt)."""
    return threadpool_limits(limits=1, user_api="blas")


class DoubleNumbers:
    """The double path's evaluations for `_solve_online` (float64, `integrators.DOUBLE`): the
    right-hand side of ``engine`` at ``acc`` (`_integrate`: the reach checked first, the forked
    worker computing half of each), the metrics by `metrics.task_metrics` — at ``acc`` at the
    reported times (for linear trunks also at a second scrambling, their quadrature error), at
    `COARSE` on the scan, refined by `_refine` — with the worker taking half of them."""
    arithmetic = DOUBLE
    minima, supports = "refine", ("refine", "steps")
    shares_jobs = True   # metric evaluations and refinements alternate between the worker and this process

    def __init__(self, acc: Accuracy = Accuracy(), engine: str = "ode", generated=None):
        self.acc, self.engine, self.generated = acc, engine, generated
        self.alt = replace(acc, qmc_seed=acc.qmc_seed + 1)

    def context(self):
        return one_blas_thread()

    def prepare(self, model, setup_name):
        self.setup_name = setup_name

    def tolerances(self, model):
        return default_tolerances(model)

    def integrate(self, model, t_end, stops, rtol, atol, progress, helper):
        return _integrate(model, t_end, self.acc, rtol, atol, self.engine, self.setup_name, progress,
                          helper=helper, generated=self.generated, stops=stops)

    def metric_job(self, model, t, y, tier):
        """(fn, args) of the metrics at state y: tier "full" (reported times), "alt" (their second
        scrambling, linear trunks; None otherwise), "scan" (`COARSE`), "step" (full budgets, no label)."""
        if tier == "alt" and not model.linear:
            return None
        acc, kw = {"full": (self.acc, {}), "alt": (self.alt, dict(loss=False, label=False)),
                   "scan": (COARSE, dict(label=False)), "step": (self.acc, dict(label=False))}[tier]
        return _metrics_job, (model, y, acc, kw)

    def refine_job(self, model, traj, grid, coarse, key, k, t_end):
        return _refine, (model, traj, grid, coarse, self.acc, key, k, t_end)

    def end_stats(self, model, y_end) -> dict:
        """{"rhs_sobol_spread": the right-hand side's relative spread between two scramblings at
        the last state}: the fixed Sobol' tier has no error bound of its own (exactly zero when every
        integral used an exact or product rule, the two right-hand sides then being one computation)."""
        f_rhs = _rhs_function(model, self.engine, self.setup_name, self.generated)
        r0, r1 = f_rhs(model, y_end, self.acc), f_rhs(model, y_end, self.alt)
        return {"rhs_sobol_spread": float(np.abs(r0 - r1).max() / max(np.abs(r0).max(), 1e-300))}

    def finish(self, model, per_time, alt, tasks):
        """Per task gen_error_quad_se, where nonzero: randomised QMC's standard error (nonlinear
        trunks), or |full − alt| (linear trunks: two scramblings)."""
        for k, name in enumerate(model.names):
            if not model.linear:
                if any(m[k].gen_error_se > 0 for m in per_time):   # randomised QMC (K ≥ 3 by default); the cut rules: 0
                    tasks[name]["gen_error_quad_se"] = [m[k].gen_error_se for m in per_time]
            else:
                quad = [abs(a[k].gen_error - b[k].gen_error) for a, b in zip(per_time, alt)]
                if any(q > 0 for q in quad):
                    tasks[name]["gen_error_quad_se"] = quad


def _solve_online(setup, numbers, rtol, atol, grid_points, times, progress, processes, minima) -> SolveResult:
    """The online solve in either number type (``numbers``: `DoubleNumbers`, `mp_solve.MpNumbers`):
    integrate from the initial order parameters (`numbers.integrate`), evaluate the metrics at
    the reported times, and find the early-stopped minima (`best_*`) on the trajectory by
    ``minima``:

    - "refine": the metrics scanned on a grid of ``grid_points`` over (0, t_last] of the dense
      output, each minimum refined by a bounded Brent search (`_refine`);
    - "steps": the integration's steps land on the reported times, the metrics at every accepted
      step, the minima over those points (`trajectory.lowest`), no refinement — for metrics that
      cost seconds each (mp: a grid scan and Brent search would take several times as many).

    The trajectory minimum is never above a reported value.  With ``numbers.shares_jobs`` and 2
    processes, half the metric evaluations and refinements run in a forked worker (which also
    computes half of each right-hand side); the same numbers either way."""
    model = theory_model(setup)
    numbers.prepare(model, setup.name)   # an mp solve refuses here, before any work
    d_rtol, d_atol = numbers.tolerances(model)
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    times = list(setup.training.times if times is None else times)
    t_end = float(times[-1])
    at_steps = minima == "steps"
    jobs = SolveJobs(processes if numbers.shares_jobs else 1)
    t0 = _time.perf_counter()
    try:
        # progress: integration 0 → 0.8 (by ODE time), metrics 0.8 → 1
        traj, nfev = numbers.integrate(model, t_end, times if at_steps else (), rtol, atol,
                                       _Part(progress, 0.0, 0.8) if progress else None, jobs.pool)
        t1 = _time.perf_counter()
        if progress:
            progress(0.8)
        if at_steps:   # the accepted steps' own states (the reported times among them)
            states = dict(zip((float(t) for t in traj.ts), traj.ys))
            grid, state = np.array(sorted(t for t in states if t > 0)), states.__getitem__
        else:
            grid, state = _scan_grid(t_end, grid_points, times), traj
        # metric evaluations on the trajectory, in time order: at the reported times (and a second
        # scrambling, where the number type has one) and on the scan; half go to the worker
        pending, reported, scanned = [], {float(t) for t in times}, {float(t) for t in grid}
        for tt in sorted(reported | scanned):
            y = state(tt)
            if tt in reported:
                pending.append((("full", tt), numbers.metric_job(model, tt, y, "full")))
                second = numbers.metric_job(model, tt, y, "alt")
                if second is not None:
                    pending.append((("alt", tt), second))
            if tt in scanned and not (at_steps and tt in reported):
                pending.append((("scan", tt), numbers.metric_job(model, tt, y, "step" if at_steps else "scan")))
        if jobs.pool is None:   # all here, in time order
            handed = {}
            for i, (key, (fn, args)) in enumerate(pending):
                r0 = _time.perf_counter()
                handed[key] = SolveJobs.ready(fn(*args))
                _tell(progress, 0.8 + 0.15 * (i + 1) / len(pending),
                      f"metrics {i + 1} of {len(pending)} (t = {key[1]:.3g}): {_time.perf_counter() - r0:.2g} s")
        else:
            handed = {key: jobs.submit(fn, *args) for key, (fn, args) in pending[0::2]}
            handed.update({key: SolveJobs.ready(fn(*args)) for key, (fn, args) in pending[1::2]})
        stats = numbers.end_stats(model, traj(t_end))
        per_time = [jobs.result(handed["full", float(t)]) for t in times]
        alt = [jobs.result(handed["alt", float(t)]) for t in times] if ("alt", t_end) in handed else None   # double
        if at_steps:   # the minima over every evaluated point, the earliest on ties
            track = sorted((t, jobs.result(handed["full" if t in reported else "scan", t]))
                           for t in reported | scanned)
            best_gen = [lowest(track, k, "gen_error") for k in range(model.n_tasks)]
            best_loss = [lowest(track, k, "test_loss") for k in range(model.n_tasks)]
        else:
            scan = [jobs.result(handed["scan", float(t)]) for t in grid]
            # early-stopping refinements: every other one in the worker, the rest here
            refine = {}
            n = 0
            for key, k in ((key, k) for key in ("gen_error", "test_loss") for k in range(model.n_tasks)):
                coarse = np.array([getattr(m[k], key) for m in scan])
                if int(np.argmin(coarse)) == len(grid) - 1:
                    # still decreasing at t_end, a reported time: its full-accuracy value is known
                    refine[key, k] = SolveJobs.ready((getattr(per_time[-1][k], key), t_end))
                    continue
                fn, args = numbers.refine_job(model, traj, grid, coarse, key, k, t_end)
                refine[key, k] = jobs.submit(fn, *args) if n % 2 == 0 else (fn, args)
                n += 1
            best_gen = [jobs.result(refine["gen_error", k]) for k in range(model.n_tasks)]
            best_loss = [jobs.result(refine["test_loss", k]) for k in range(model.n_tasks)]
    except BaseException:   # an error, an interrupt or SIGTERM: the worker goes at once
        jobs.abort()
        raise
    finally:
        jobs.close()
    t2 = _time.perf_counter()
    # the trajectory minimum is never above a reported value (the grid scan is coarse)
    reported = list(zip(times, per_time))
    for k in range(model.n_tasks):
        for key, best in (("gen_error", best_gen), ("test_loss", best_loss)):
            v, t = lowest(reported, k, key)
            if v < best[k][0]:
                best[k] = (v, t)
    tasks = task_fields(model.names, per_time, best_gen, best_loss)
    numbers.finish(model, per_time, alt, tasks)
    stats = {"nfev": nfev, "steps": traj.accepted, "rejected": traj.rejected, "integrate_s": t1 - t0,
             "metrics_s": t2 - t1, **stats}
    if progress:
        progress(1.0)
    return SolveResult(setup.name, "online", numbers.engine, times, tasks, None, traj, model, stats,
                       states={float(t): states[float(t)] for t in times} if at_steps else None)


# `accuracy="fast"`: for exploration — 1.6–2.8× faster; measured gen_error differences from the
# default 6e-5 (demo, linear K = 4) and 7e-4 (tanh K = 2, two tasks)
FAST_ACCURACY = Accuracy(budget=1500, metric_budget=8000, qmc_points=2 ** 11, qmc_replicates=4, sobol_points=2 ** 12,
                         cut_nodes=24)
FAST_TOL = {"rtol": 1e-4, "atol": 1e-6}
# `accuracy="high"`: quadrature budgets and ODE tolerances for ≤ 1e-7 in gen_error against the
# mp path (measured on a two-task shared linear trunk, see benchmarks/mp_solve.py)
HIGH_ACCURACY = Accuracy(budget=60000, metric_budget=200000, qmc_points=2 ** 15, sobol_points=2 ** 17, cut_nodes=64,
                         cut_nodes3=(24, 32, 24), split_k3=True)
HIGH_TOL = {"rtol": 1e-10, "atol": 1e-12}
ACCURACY_PRESETS = {"default": (Accuracy(), {}), "high": (HIGH_ACCURACY, HIGH_TOL),
                    "fast": (FAST_ACCURACY, FAST_TOL)}


class _Part:
    """Progress of one part of a solve: fraction f of it is (offset + scale·f) of the whole."""

    def __init__(self, progress, offset: float, scale: float):
        self.progress, self.offset, self.scale = progress, offset, scale

    def __call__(self, fraction, note=None):
        _tell(self.progress, self.offset + self.scale * fraction, note)


def _tell(progress, fraction, note=None):
    """Report progress (to nothing where None); a note goes to callbacks that take one."""
    if progress is None:
        return
    if note is not None and (hasattr(progress, "note") or isinstance(progress, _Part)):
        progress(fraction, note)
    else:
        progress(fraction)


def check_protocol(setup, engine: str | None = None) -> str:
    """The theory engine that solves `setup` (`mtsp.engines.choose_engine`: `engine`, or its
    protocol's default), where that engine can solve it: a full_batch setup beyond the DMFT's reach
    is refused (ReachError naming the key), as is a protocol without an engine; RequestError for an
    engine of another protocol."""
    if setup.training.protocol == "full_batch":
        from .dmft.solve import check_supported
        try:
            check_supported(setup)
        except ReachError as e:
            raise ReachError(e.key, f"{e.reason}; 'mtsp simulate' runs every full_batch setup") from None
    return choose_engine(setup, engine)


def accuracy_setting(accuracy) -> tuple[Accuracy, dict]:
    """(Accuracy, ODE tolerances) of a preset name ("default" | "high" | "fast") or of an
    `Accuracy` given as it is (with the default tolerances)."""
    if isinstance(accuracy, Accuracy):
        return accuracy, {}
    if isinstance(accuracy, str) and accuracy in ACCURACY_PRESETS:
        return ACCURACY_PRESETS[accuracy]
    raise RequestError("accuracy", f"unknown accuracy {accuracy!r} (default | high | fast, or an Accuracy)")


def solve(setup, *, single: bool = False, acc: Accuracy | None = None, progress=None,
          engine: str | None = None, precision: str = "double", dps: int = 30,
          accuracy: str | Accuracy = "default", processes: int | None = None,
          mp_nodes: int | None = None, generated=None) -> SolveResult:
    """Solve `setup` with the engine of its protocol; with `single`, add single-task baselines.

    ``engine``: None = the protocol's default (online → "ode", erm → "replica" (`numeric.erm`),
    full_batch → "dmft" (`numeric.dmft`)).

    ``precision="mp"``: the whole ODE with the mpmath back-end at ``dps`` digits
    (`mp_solve.solve_online_mp`: linear trunks / glm, and nonlinear trunks with K ≤ 3; C ≤ 3; slow;
    ``mp_nodes``: its quadrature nodes per integrated dimension, default 24).  ``accuracy="high"``: the
    double path with `HIGH_ACCURACY` budgets and tolerances `HIGH_TOL`; ``accuracy="fast"``:
    `FAST_ACCURACY` / `FAST_TOL`, for quick exploration (errors ≲ 1e-3); an `Accuracy` object:
    its settings with the default tolerances (``acc``: the same, kept for older callers).  ``processes``:
    1 or 2 (default: 2 with 2+ cores and fork; see `check_processes`), the processes of either path.
    ``generated``: the generated modules of the setup's structures (derive's output, an object like
    `mtsp.derive.GENERATED`): the online engine "ode" runs them; `mtsp.solve` derives and passes them.

    With separate inputs online, task t alone is compared at the same number of task-t samples:
    its single-task run is evaluated at times π_t·t (MODEL.md)."""
    engine = check_protocol(setup, engine)
    if engine == "replica":
        from .erm import solve_erm_result
        return solve_erm_result(setup, single=single, accuracy=accuracy, precision=precision, dps=dps,
                                mp_nodes=mp_nodes)
    if engine == "dmft":
        from .dmft.solve import solve_full_batch
        return solve_full_batch(setup, single=single, engine=engine, precision=precision,
                                accuracy=accuracy, progress=progress)
    if engine in ("ode", "reference"):
        reach.check_structure(setup)   # the online engine's reach (other engines state their own)
    if acc is not None:
        if not (isinstance(accuracy, str) and accuracy == "default"):
            raise RequestError("accuracy", "give accuracy or acc, not both")
        accuracy = acc
    acc, tol = accuracy_setting(accuracy)
    processes = check_processes(processes)
    if precision == "mp":
        from .mp_solve import solve_online_mp
        if single:
            raise ReachError("precision", "--single is not supported with the mp back-end")
        return solve_online_mp(setup, dps=dps, progress=progress, processes=processes, generated=generated,
                               **({} if mp_nodes is None else {"nodes": mp_nodes}))
    if precision != "double":
        raise RequestError("precision", f"unknown precision {precision!r} (double | mp)")
    runs = 1 + (sum(1 for t in setup.tasks if t.weight != 0) if single else 0)

    def part(k):  # progress of run k of `runs` as a fraction of the whole
        return _Part(progress, k / runs, 1 / runs) if progress else None
    res = solve_online(setup, acc, progress=part(0), engine=engine, processes=processes, generated=generated,
                       **tol)
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
                                 progress=part(done), processes=processes, generated=generated, **tol)
            done += 1
            scale = times[0] / setup.training.times[0]
            entry = dict(alone.tasks[task.name])
            for key in ("best_gen_error_time", "best_test_loss_time"):  # on the multitask clock
                entry[key] = entry[key] / scale
            res.single[task.name] = entry
            res.single_results[task.name] = (alone, scale)
    return res

"""The whole online ODE at arbitrary precision: `solve_online_mp(setup, dps=30)`.

The solve driver's steps (`trajectory.metrics_at_steps`: the one integrator in the `MP` arithmetic,
steps landing on the requested times, the metrics at every accepted step, the early-stopped minima
over those points — no Brent refinement, unlike the double path) with every right-hand side the
generated mp module's (`engine.generated_system`) run by `mp_online.MpRules`, the errors by
`mp_online.task_metrics_mp`.  Scope and measured times: docs/PRECISION.md.
"""
from __future__ import annotations

import time as _time
from fractions import Fraction

import mpmath

from .engine import generated_system
from .integrators import MP, StepController
from .model import theory_model
from .mp_online import MpRules, check_mp, mp_state, task_metrics_mp
from .solve import SolveResult, _tell, check_processes
from .trajectory import Point, lowest, metrics_at_steps, task_fields
from .workers import mp_executor

__all__ = ["solve_online_mp", "mp_controller", "rhs_points"]

SOLVE_NODES = 24
METRIC_NODES = 24


def mp_controller(rtol: float = 1e-10, atol: float = 1e-10, h0: float = 0.05) -> StepController:
    """The mp solve's step controller: max-norm error ≤ 1, factors in [0.2, 5], first step h0."""
    return StepController(rtol, atol, norm="max", max_factor=Fraction(5), no_growth_after_rejection=False,
                          initial_step=h0)


def rhs_points(model, state, nodes: int = SOLVE_NODES, processes: int = 1, *, generated) -> tuple[int, int, int]:
    """(product-rule points, integrals, dimension of the largest) of the mp right-hand side at
    `state`, measured: the tally of the executor it runs on (`workers.mp_executor`), n^d points per
    integral of d integrated dimensions (they grow with Q: benchmarks/results/mp_rhs_points.txt)."""
    ex = mp_executor(processes)
    generated_system(generated, model, "", "mpmath").rhs_state(model, mp_state(state), rules=MpRules(nodes, ex))
    return ex.points, ex.rules, ex.largest


def solve_online_mp(setup, *, dps: int = 30, nodes=SOLVE_NODES, atol: float = 1e-10, rtol: float = 1e-10,
                    times=None, progress=None, metric_nodes=None, processes: int | None = None, generated=None):
    """The N → ∞ online prediction of `setup` with the mp back-end (a SolveResult, engine "mp").
    ``nodes``: mp nodes per dimension of the right-hand side's integrals; ``metric_nodes`` (default
    max(nodes, METRIC_NODES)) those of the errors, which are reported rather than integrated over
    time, so their quadrature error is not damped by anything.  ``processes``: 1 or 2
    (`solve.check_processes`): with 2 the larger integrals and the nonlinear trunks' per-task errors
    are split with a forked process.  ``generated``: derive's modules (`mtsp.derive.GENERATED`)."""
    mnodes = max(nodes, METRIC_NODES) if metric_nodes is None else metric_nodes
    processes = check_processes(processes)
    model = theory_model(setup)
    system = generated_system(generated, model, setup.name, "mpmath")   # refused here, before any work, without one
    check_mp(model)
    times = list(setup.training.times if times is None else times)
    t0, nfev, done = _time.perf_counter(), [0], [0.0]
    with mpmath.workdps(dps):
        def f(t, y):
            nfev[0] += 1
            r0, ex = _time.perf_counter(), mp_executor(processes)   # its tally: this right-hand side's points
            dy = system.rhs(model, y, rules=MpRules(nodes, ex))
            secs = _time.perf_counter() - r0
            _tell(progress, done[0], f"right-hand side {nfev[0]}: {secs:.1f} s, {ex.points} quadrature points in "
                  f"{ex.rules} integrals (largest {ex.largest}-dim)" + (f"; ≥ 7 of them, ≈ {7 * secs:.0f} s or more"
                                                                         if nfev[0] == 1 else " (≥ 6 per step)"))
            return dy

        def metrics(t, y, label):   # per task (gen_error, label_error, test_loss), in mp
            m = [Point(*v) for v in task_metrics_mp(model, model.unpack(y), mnodes, label=label, processes=processes)]
            if t > 0:
                done[0] = min(t / times[-1], 1.0)
                _tell(progress, done[0], f"t = {t:.3g}, {nfev[0]} right-hand sides")
            return m
        sol, per_time, track, states = metrics_at_steps(f, model.pack(mp_state(model.initial_state())), times, metrics,
                                                        controller=mp_controller(rtol, atol), arithmetic=MP,
                                                        what="the mp ODE integration")
        tasks = task_fields(model.names, per_time, [lowest(track, k, "gen_error") for k in range(model.n_tasks)],
                            [lowest(track, k, "test_loss") for k in range(model.n_tasks)])
        for k, name in enumerate(model.names):
            tasks[name]["gen_error_mp"] = [mpmath.nstr(m[k].gen_error, dps) for m in per_time]
    res = SolveResult(setup.name, "online", "mp", times, tasks, None, None, model,
                      {"nfev": nfev[0], "steps": sol.accepted, "rejected": sol.rejected, "dps": dps,
                       "seconds": _time.perf_counter() - t0})
    res.mp_states = states
    return res

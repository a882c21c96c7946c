"""The whole online ODE at arbitrary precision: `solve_online_mp(setup, dps=30)`.

The Dormand–Prince 5(4) pair in mp arithmetic with its embedded error estimate (6 right-hand
sides per step; it replaced RK4 with step doubling, 11 per step), every right-hand side from
`mp_online.rhs_state_mp` (mp integrals, closed forms and assembly printed by MpmathPrinter).  Steps land exactly on the
requested times; metrics (gen_error, label_error: cone probabilities; test_loss) are evaluated in
mp at the requested times and at every accepted step, and the early-stopped minima (`best_*`)
are the minima over those points (no Brent refinement, unlike the double path).

Scope: linear trunks and glm students with C_t ≤ 3; nonlinear trunks (relu, erf, tanh) with
K ≤ 3 and C_t ≤ 3 (`mp_nonlinear` for the right-hand side, `mp_errors` for the errors: the
h-domain cut along the student's tie curves, the innermost coordinate in closed form for K ≤ 2).
The errors are evaluated once per accepted step (with the label error where the step lands on a
requested time), which gives the early-stopping minima and the reported values together.

Time on two cores (two tasks on shared inputs, t ≤ 0.2, dps 20, default nodes, 19 right-hand
sides; `benchmarks/mp_solve_times.py`, one run): linear C = 2 ~1 s, C = 3 24–28 s; tanh K = 1
0.6 s (C = 2), 20 s (C = 3); K = 2, C = 2: 12–36 s (tanh, erf, relu); tanh K = 3, C = 2: 125 s;
tanh K = 2, C = 3: 301 s (the label–label term's 4-dim joint cones dominate) — each within
1e-9 of the double path at `accuracy="high"` in gen_error.

"""
from __future__ import annotations

import time as _time
from fractions import Fraction

import mpmath

from .engine import generated_module
from .integrators import MP, StepController
from .model import theory_model
from .mp_online import mp_state, pack_mp, rhs_state_mp, task_metrics_mp, unpack_mp
from .solve import SolveResult, check_processes
from .trajectory import Point, lowest, metrics_at_steps, task_fields
from .workers import mp_executor

__all__ = ["solve_online_mp", "mp_controller", "rhs_points"]

SOLVE_NODES = 24
METRIC_NODES = 24


# the mp integration: the one integrator (`integrators.integrate`) in mp arithmetic, with the
# controller this path has always used (max norm, growth ≤ 5 also after a rejection, h0 = 0.05)
def mp_controller(rtol: float = 1e-10, atol: float = 1e-10, h0: float = 0.05) -> StepController:
    """The mp solve's step controller: max-norm error ≤ 1, factors in [0.2, 5], first step h0."""
    return StepController(rtol, atol, norm="max", max_factor=Fraction(5), no_growth_after_rejection=False,
                          initial_step=h0)


def rhs_points(model, state, nodes: int = SOLVE_NODES, processes: int = 1, *, generated) -> tuple[int, int, int]:
    """(product-rule points, integrals, dimension of the largest) of the mp right-hand side at
    `state` (a `State`), measured: the tally of the executor it runs on (`workers.mp_executor`),
    n^d points per integral of d integrated dimensions.  The count depends on the state, not only
    on the structure: at large Q a tanh / erf trunk's integrals split into the sign orthants of h
    and a linear trunk's into the argmax cones of widely spread logits (measured at 8 nodes: 144 →
    800 points for a two-task tanh K = 2 trunk, 448 → 3648 for a two-task C = 3 linear trunk;
    benchmarks/results/mp_rhs_points.txt); the a-priori count from the structure that this replaced
    was off both ways (12864 announced, 144–800 run for examples/strong_teachers_tanh.toml).  The
    Plackett nodes inside the label–label integrands of C = 3 tasks are work per point, not points."""
    ex = mp_executor(processes)
    rhs_state_mp(model, mp_state(state), nodes, processes=ex, generated=generated)
    return ex.points, ex.rules, ex.largest


def _fmt_s(s: float) -> str:
    return f"{s:.2g} s" if s < 120 else f"{s / 60:.2g} min" if s < 7200 else f"{s / 3600:.2g} h"


def _note(progress, fraction: float, text: str) -> None:
    """A progress update with a note where the callback takes one (mtsp.progress.Progress)."""
    if progress is None:
        return
    if hasattr(progress, "note"):
        progress(fraction, text)
    else:
        progress(fraction)


def solve_online_mp(setup, *, dps: int = 30, nodes=SOLVE_NODES, atol: float = 1e-10, rtol: float = 1e-10,
                    times=None, progress=None, metric_nodes=None, processes: int | None = None, generated=None):
    """The N → ∞ online prediction of `setup` with the mp back-end (a SolveResult, engine "mp").
    ``nodes``: mp nodes per dimension of the right-hand side's integrals; ``metric_nodes`` (default
    max(nodes, METRIC_NODES)) those of the errors, which are reported rather than integrated over
    time, so their quadrature error is not damped by anything (C = 3 linear trunk: the
    errors' 2-dim integrals err by ≈ 2e-7 at 16 nodes, ≤ 1e-11 at 24).  ``processes``: 1 or 2
    (`solve.check_processes`; default 2 with 2+ cores and fork): with 2 the larger integrals and
    the nonlinear trunks' per-task errors are split with a forked process.  ``generated``: derive's
    modules (`mtsp.derive.GENERATED`; `mtsp.solve` passes them): the mp module of the structure."""
    mnodes = max(nodes, METRIC_NODES) if metric_nodes is None else metric_nodes
    processes = check_processes(processes)
    model = theory_model(setup)
    generated_module(generated, model, setup.name, "mpmath")   # refused here, before any work, without one
    if not model.linear:
        from .mp_errors import check_errors_mp
        from .mp_nonlinear import check_nonlinear_mp
        check_nonlinear_mp(model)
        check_errors_mp(model)
    times = list(setup.training.times if times is None else times)
    t0 = _time.perf_counter()
    with mpmath.workdps(dps):
        st0 = mp_state(model.initial_state())
        y0 = pack_mp(model, st0.Q, st0.R, st0.V)
        nfev = [0]

        _note(progress, 0.0, f"mp: the first right-hand side ({nodes} nodes per integrated dimension) measures the "
                             "work of each" + ("; the errors at every accepted step by the K = 3 cut rule, up to "
                                               "minutes per task" if (not model.linear and model.K == 3) else ""))
        done = [0.0]

        def f(t, y):
            nfev[0] += 1
            r0 = _time.perf_counter()
            ex = mp_executor(processes)   # its tally: this right-hand side's points (they grow with Q)
            dQ, dR, dV, _, _ = rhs_state_mp(model, unpack_mp(model, y), nodes, processes=ex, generated=generated)
            secs = _time.perf_counter() - r0
            pts = f"{ex.points}" if ex.points < 10 ** 6 else f"{ex.points:.3g}"
            size = f"{pts} quadrature points in {ex.rules} integrals (largest {ex.largest}-dim)"
            if nfev[0] == 1:
                _note(progress, done[0], f"mp: right-hand side 1: {size}, {_fmt_s(secs)}; ≥ 7 of them, "
                                         f"≈ {_fmt_s(7 * secs)} or more")
            else:
                _note(progress, done[0], f"right-hand side {nfev[0]}: {secs:.1f} s, {size} (≥ 6 per step)")
            return pack_mp(model, dQ, dR, dV)

        def metrics(t, y, label):   # per task (gen_error, label_error, test_loss), in mp
            r0 = _time.perf_counter()
            m = [Point(*v) for v in task_metrics_mp(model, unpack_mp(model, y), mnodes, label=label,
                                                    processes=processes)]
            if t > 0:
                done[0] = min(t / times[-1], 1.0)
                _note(progress, done[0], f"t = {t:.3g}, {nfev[0]} right-hand sides; errors at this step "
                                         f"{_time.perf_counter() - r0:.1f} s")
            return m
        sol, per_time, track, states = metrics_at_steps(f, y0, times, metrics, controller=mp_controller(rtol, atol),
                                                        arithmetic=MP, what="the mp ODE integration")
        tasks = task_fields(model.names, per_time, [lowest(track, k, "gen_error") for k in range(model.n_tasks)],
                            [lowest(track, k, "test_loss") for k in range(model.n_tasks)])
        for k, name in enumerate(model.names):
            tasks[name]["gen_error_mp"] = [mpmath.nstr(m[k].gen_error, dps) for m in per_time]
    res = SolveResult(setup.name, "online", "mp", times, tasks, None, None, model,
                      {"nfev": nfev[0], "steps": sol.accepted, "rejected": sol.rejected, "dps": dps,
                       "seconds": _time.perf_counter() - t0})
    res.mp_states = states
    return res

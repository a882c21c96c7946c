"""The online ODE at arbitrary precision: `MpNumbers`, the mp number type of the one solve driver
(`solve._solve_online`): the generated mp module's right-hand side with `mp_online.MpRules`, the
errors by `mp_online.task_metrics_mp`, the minima over the accepted steps. Scope, times: docs/PRECISION.md.
"""
from __future__ import annotations

import time as _time
from fractions import Fraction

import mpmath

from .engine import generated_system
from .integrators import MP, StepController
from .mp_online import MpRules, check_mp, mp_state, task_metrics_mp
from .solve import _tell, check_processes, solve_online
from .trajectory import Point, integrate_theory
from .workers import mp_executor

__all__ = ["MpNumbers", "solve_online_mp", "mp_controller", "rhs_points"]

SOLVE_NODES = 24
METRIC_NODES = 24


def mp_controller(rtol: float = 1e-10, atol: float = 1e-10, h0: float = 0.05) -> StepController:
    """The mp solve's step controller: max-norm error ≤ 1, factors in [0.2, 5], first step h0."""
    return StepController(rtol, atol, norm="max", max_factor=Fraction(5), no_growth_after_rejection=False,
                          initial_step=h0)


def rhs_points(model, state, nodes: int = SOLVE_NODES, processes: int = 1, *, generated) -> tuple[int, int, int]:
    """(product-rule points, integrals, dimension of the largest) of the mp right-hand side at
    ``state``: the tally of the executor it runs on (`workers.mp_executor`)."""
    ex = mp_executor(processes)
    generated_system(generated, model, "", "mpmath").rhs_state(model, mp_state(state), rules=MpRules(nodes, ex))
    return ex.points, ex.rules, ex.largest


class MpNumbers:
    """`solve.DoubleNumbers`' interface at ``dps`` digits: ``nodes`` per dimension of the right-hand
    side's integrals, ``metric_nodes`` (default max(nodes, METRIC_NODES)) of the errors; ``processes``
    2: the larger integrals and per-task errors split with a forked process (`workers.mp_executor`)."""
    engine, arithmetic, minima, supports, shares_jobs = "mp", MP, "steps", ("steps",), False

    def __init__(self, dps: int = 30, nodes=SOLVE_NODES, metric_nodes=None, processes: int = 1, generated=None):
        self.dps, self.nodes, self.processes, self.generated = dps, nodes, processes, generated
        self.metric_nodes = max(nodes, METRIC_NODES) if metric_nodes is None else metric_nodes

    def context(self):
        return mpmath.workdps(self.dps)

    def prepare(self, model, setup_name):   # refused here, before any work
        self.system = generated_system(self.generated, model, setup_name, "mpmath")
        check_mp(model)

    def tolerances(self, model):
        return 1e-10, 1e-10

    def integrate(self, model, t_end, stops, rtol, atol, progress, helper):
        nfev = [0]

        def f(t, y):
            nfev[0] += 1
            r0, ex = _time.perf_counter(), mp_executor(self.processes)   # its tally: this right-hand side's points
            dy = self.system.rhs(model, y, rules=MpRules(self.nodes, ex))
            secs = _time.perf_counter() - r0
            _tell(progress, min(float(t) / t_end, 1.0), f"right-hand side {nfev[0]}: {secs:.1f} s, {ex.points} "
                  f"quadrature points in {ex.rules} integrals (largest {ex.largest}-dim)"
                  + (f"; ≥ 7 of them, ≈ {7 * secs:.0f} s or more" if nfev[0] == 1 else " (≥ 6 per step)"))
            return dy
        return integrate_theory(f, model.pack(mp_state(model.initial_state())), t_end, stops=stops, arithmetic=MP,
                                controller=mp_controller(rtol, atol), what="the mp ODE integration"), nfev[0]

    def metric_job(self, model, t, y, tier):   # per task (gen_error, label_error, test_loss); no "alt"
        return None if tier == "alt" else (self._metrics, (model, y, tier == "full"))

    def _metrics(self, model, y, label):
        return [Point(*v) for v in task_metrics_mp(model, model.unpack(y), self.metric_nodes, label=label,
                                                   processes=self.processes)]

    def end_stats(self, model, y_end) -> dict:
        return {"dps": self.dps}

    def finish(self, model, per_time, alt, tasks):   # gen_error_mp: at the reported times, to dps digits
        for k, name in enumerate(model.names):
            tasks[name]["gen_error_mp"] = [mpmath.nstr(m[k].gen_error, self.dps) for m in per_time]


def solve_online_mp(setup, *, dps: int = 30, nodes=SOLVE_NODES, atol: float = 1e-10, rtol: float = 1e-10,
                    times=None, progress=None, metric_nodes=None, processes: int | None = None, generated=None):
    """`solve.solve_online` with `MpNumbers`: a SolveResult, engine "mp", ``states`` the mp states at
    the reported times.  ``generated``: derive's modules (`mtsp.derive.GENERATED`)."""
    return solve_online(setup, rtol=rtol, atol=atol, times=times, progress=progress, processes=processes,
                        numbers=MpNumbers(dps, nodes, metric_nodes, check_processes(processes), generated))

"""The solve driver's steps shared by both number types (`solve._solve_online`, run by
`solve.DoubleNumbers` or `mp_solve.MpNumbers`): integrate the order-parameter ODE in one arithmetic,
take the minima over evaluated points, and report MODEL.md's per-task fields.

- `integrate_theory`: `integrators.integrate` with a failure reported as a `ConvergenceError`
  carrying the last scaled error norm (the residual) and where the step size collapsed.
- `lowest`: the early-stopped minimum min_i m(t_i) over evaluated points, the earliest t_i
  on ties — the whole `best_*` of ``minima="steps"`` (the mp path's), the floor under the
  Brent refinement of ``minima="refine"`` (the double path's).
- `task_fields`: the per-task JSON fields of the reported times and minima.

Metrics are per-task lists of objects with ``gen_error``, ``label_error``, ``test_loss``
(`metrics.TaskMetrics`, or `Point` for the mp values).
"""
from __future__ import annotations

from typing import NamedTuple

from mtsp.errors import ConvergenceError

from .integrators import DOUBLE, IntegrationFailed, integrate

__all__ = ["Point", "integrate_theory", "lowest", "task_fields"]


class Point(NamedTuple):
    """One task's metrics at one time (any number type)."""
    gen_error: object
    label_error: object
    test_loss: object


def integrate_theory(f, y0, t_end, *, controller, arithmetic=DOUBLE, stops=(), on_step=None,
                     what: str = "the ODE integration", status: dict | None = None):
    """`integrators.integrate`; `IntegrationFailed` → ConvergenceError("theory") with the residual
    (the last scaled local error norm) and the time and step where it stopped."""
    try:
        return integrate(f, y0, t_end, controller=controller, arithmetic=arithmetic, stops=stops, on_step=on_step)
    except IntegrationFailed as e:
        raise ConvergenceError("theory", f"{what} did not converge: {e}", residual=e.error_norm,
                               status={"t": e.t, "step": e.step, **(status or {})}) from None


def lowest(track, k: int, key: str) -> tuple:
    """(value, time) of the smallest ``key`` of task k over the points (t, metrics) of ``track``,
    the earliest on ties."""
    return min((getattr(m[k], key), t) for t, m in track)


def task_fields(names, per_time, best_gen, best_loss) -> dict:
    """{name: MODEL.md's fields}: gen_error, label_error, test_loss at the reported times (per_time:
    per-task metrics), best_gen_error / best_test_loss with their times ((value, time) per task),
    as floats."""
    return {name: {
        "gen_error": [float(m[k].gen_error) for m in per_time],
        "label_error": [float(m[k].label_error) for m in per_time],
        "test_loss": [float(m[k].test_loss) for m in per_time],
        "best_gen_error": float(best_gen[k][0]), "best_gen_error_time": float(best_gen[k][1]),
        "best_test_loss": float(best_loss[k][0]), "best_test_loss_time": float(best_loss[k][1]),
    } for k, name in enumerate(names)}

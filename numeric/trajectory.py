"""The solve driver's steps shared by both number types (`solve.solve_online`, double;
`mp_solve.solve_online_mp`, mp): integrate the order-parameter ODE in one arithmetic, evaluate the
metrics where the path asks for them, and report MODEL.md's per-task fields.

- `integrate_theory`: `integrators.integrate` with a failure reported as a `ConvergenceError`
  carrying the last scaled error norm (the residual) and where the step size collapsed.
- `metrics_at_steps`: an integration whose steps land on the requested times, with the metrics
  at every accepted step (the label error only at the requested times) and at t = 0.
- `lowest`: the early-stopped minimum min_i m(t_i) over evaluated points, the earliest t_i
  on ties — the mp path's whole `best_*`, the double path's floor under its Brent refinement.
- `task_fields`: the per-task JSON fields of the reported times and minima.

Metrics are per-task lists of objects with ``gen_error``, ``label_error``, ``test_loss``
(`metrics.TaskMetrics`, or `Point` for the mp values).
"""
from __future__ import annotations

from typing import NamedTuple

from mtsp.errors import ConvergenceError

from .integrators import DOUBLE, IntegrationFailed, integrate

__all__ = ["Point", "integrate_theory", "metrics_at_steps", "lowest", "task_fields"]


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


def metrics_at_steps(f, y0, times, metrics, *, controller, arithmetic, what: str = "the ODE integration"):
    """Integrate from t = 0 with steps landing on every requested time; ``metrics(t, y, label)``
    (per-task list) at every accepted step and at t = 0, with ``label`` true at requested times.
    Returns (Solution, per_time (metrics at ``times``), track (sorted (t, metrics) of every
    evaluated point), states {t: y} at ``times``)."""
    requested = {float(x) for x in times}
    at_times, track, states = {}, [], {0.0: y0}

    def on_step(t, y):
        tf = float(t)
        m = metrics(tf, y, tf in requested)
        if tf in requested:
            at_times[tf], states[tf] = m, y
        track.append((tf, m))
    sol = integrate_theory(f, y0, times[-1], controller=controller, arithmetic=arithmetic, stops=times,
                           on_step=on_step, what=what)
    for x in sorted(requested - set(at_times)):      # t = 0: no step lands there
        at_times[x] = metrics(x, states[x], True)
        track.append((x, at_times[x]))
    track.sort(key=lambda p: p[0])
    return sol, [at_times[float(t)] for t in times], track, {float(t): states[float(t)] for t in times}


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

"""The whole online ODE at arbitrary precision: `solve_online_mp(setup, dps=30)`.

Classical RK4 with step-doubling error control (one step h against two steps h/2; the local
error estimate is their difference / 15, the accepted value the Richardson-extrapolated
two-half-step result, 5th order), every right-hand side from `mp_online.rhs_state_mp` (mp
integrals, closed forms and assembly printed by MpmathPrinter).  Steps land exactly on the
requested times; metrics (gen_error, label_error: cone probabilities; test_loss) are evaluated in
mp at the requested times and at every accepted step, and the early-stopped minima (`best_*`)
are the minima over those points (no Brent refinement, unlike the double path).

Scope: linear trunks and glm students with C_t ≤ 3; nonlinear trunks (relu, erf, tanh) with
K ≤ 2 and C_t ≤ 3 (`mp_nonlinear` for the right-hand side, `mp_errors` for the errors: the
h-domain cut along the student's tie curves).

Cost: a two-task C = 2, K = 2 linear trunk takes ≈ 0.5 s per right-hand side at 24 nodes per
dimension (the default here), 11 right-hand sides per step.  C = 3 has 4-dimensional integrals
(≈ 10 s per right-hand side at 12 nodes): feasible but slow.  Nonlinear trunks: a two-task
tanh K = 1, C = 2 trunk to t = 0.2 takes ≈ 9 s (16 nodes); erf K = 2 ≈ 165 s (12 nodes: the
3-dim label–label term of shared inputs dominates).
"""
from __future__ import annotations

import time as _time

import mpmath
import numpy as np

from .model import theory_model
from .mp_online import MpState, mp_state, pack_mp, rhs_state_mp, task_metrics_mp, unpack_mp

__all__ = ["solve_online_mp", "rk4_step_doubling"]

SOLVE_NODES = 24


def rk4_step_doubling(f, y0, t_end, times, *, atol=1e-10, rtol=1e-10, h0=0.05, on_step=None):
    """Integrate y' = f(y) (lists of mpf) from 0 to t_end; returns {t: y} at `times` and the step
    count.  Error per step: max_i |y2 − y1|_i / 15 / (atol + rtol |y_i|) ≤ 1."""
    def add(y, k, a):
        return [yi + a * ki for yi, ki in zip(y, k)]

    def rk4(y, h):
        k1 = f(y)
        k2 = f(add(y, k1, h / 2))
        k3 = f(add(y, k2, h / 2))
        k4 = f(add(y, k3, h))
        return [yi + h / 6 * (a + 2 * b + 2 * c + d) for yi, a, b, c, d in zip(y, k1, k2, k3, k4)]

    t = mpmath.mpf(0)
    y = list(y0)
    h = mpmath.mpf(h0)
    marks = sorted(set(float(x) for x in times))
    out = {}
    steps = rejected = 0
    for mark in marks:
        tm = mpmath.mpf(mark)
        while t < tm:
            hh = min(h, tm - t)
            y1 = rk4(y, hh)
            y2 = rk4(rk4(y, hh / 2), hh / 2)
            err = max(abs(a - b) / 15 / (atol + rtol * abs(b)) for a, b in zip(y1, y2))
            if err <= 1:
                y = [b + (b - a) / 15 for a, b in zip(y1, y2)]
                t = tm if hh == tm - t else t + hh
                steps += 1
                if on_step:
                    on_step(t, y)
            else:
                rejected += 1
            fac = 2 if err == 0 else min(2, max(mpmath.mpf("0.2"), mpmath.mpf("0.9") * err ** (-mpmath.mpf(1) / 5)))
            if hh == h or err > 1:
                h = hh * fac
        out[mark] = y
    return out, steps, rejected


def solve_online_mp(setup, *, dps: int = 30, nodes=SOLVE_NODES, atol: float = 1e-10, rtol: float = 1e-10,
                    times=None, progress=None):
    """The N → ∞ online prediction of `setup` with the mp back-end (a SolveResult, engine "mp")."""
    from .solve import SolveResult
    model = theory_model(setup)
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

        def f(y):
            nfev[0] += 1
            st = unpack_mp(model, y)
            dQ, dR, dV, _, _ = rhs_state_mp(model, st, nodes)
            return pack_mp(model, dQ, dR, dV)

        track = []  # (t, metrics) at every accepted step

        def on_step(t, y):
            track.append((float(t), task_metrics_mp(model, unpack_mp(model, y), nodes, label=False)))
            if progress:
                progress(min(float(t) / times[-1], 1.0))
        at, steps, rejected = rk4_step_doubling(f, y0, times[-1], times, atol=atol, rtol=rtol, on_step=on_step)
        per_time = [task_metrics_mp(model, unpack_mp(model, at[float(t)]), nodes) for t in times]
        tasks = {}
        for k, name in enumerate(model.names):
            ge = [float(m[k][0]) for m in per_time]
            i_g = min(range(len(track)), key=lambda i: track[i][1][k][0])
            i_l = min(range(len(track)), key=lambda i: track[i][1][k][2])
            tasks[name] = {
                "gen_error": ge, "label_error": [float(m[k][1]) for m in per_time],
                "test_loss": [float(m[k][2]) for m in per_time],
                "best_gen_error": float(track[i_g][1][k][0]), "best_gen_error_time": track[i_g][0],
                "best_test_loss": float(track[i_l][1][k][2]), "best_test_loss_time": track[i_l][0],
                "gen_error_mp": [mpmath.nstr(m[k][0], dps) for m in per_time],
            }
        states = {float(t): at[float(t)] for t in times}
    res = SolveResult(setup.name, "online", "mp", times, tasks, None, None, model,
                      {"nfev": nfev[0], "steps": steps, "rejected": rejected, "dps": dps,
                       "seconds": _time.perf_counter() - t0})
    res.mp_states = states
    return res

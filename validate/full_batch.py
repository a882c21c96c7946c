"""Finite-N simulation of the `full_batch` protocol (../shared/MODEL.md): gradient flow on fixed data.

Per seed, on the training set of validate/finite_data.py (P_tot = Σ_t P_t samples; P with shared
inputs), the weights follow

    dW/dt   = −η N ∇_W R̂ − ηκ W   = −η (√N/P_tot) Δᵀ X − ηκ W,
    dV_t/dt = −η_V ∇_{V_t} R̂      = −(η_V/P_tot) Σ_μ E_t^μ g(h^μ)ᵀ,

with R̂ = (1/P_tot) Σ_μ Σ_t wm[μ, t] CE(z_t(x^μ), y_t^μ), Δ[μ] = δ^μ = ∂L/∂h and
E_t^μ = wm (softmax(z_t^μ) − e_{y_t^μ}) the per-sample gradients of the online simulator
(`_Model.backward`; for glm, h is the stack of all z_t). Initial weights with the exact initial
order parameters (`_Model.init_weights`, as online).

Integration: classical Runge–Kutta (RK4, default) or explicit Euler, with equal steps of at most
`dt` between consecutive evaluation times; the default step is DT / max(1, η, η_V) (the flow's
rates scale with the learning rates). Before the run the step is checked by step doubling
(`check_step`: one seed at N ≤ CHECK_N, metrics at the requested times with steps h and h/2 must
agree to STEP_TOL, else h is halved, at most MAX_HALVINGS times; docs/VALIDATION.md).

Outputs, per task and seed:

* at the requested `times`: gen_error, label_error, test_loss exactly from the order parameters
  (finite_data.exact_metrics), training loss and error on the training set;
* curves on the union of `times` and `grid` uniform times on (0, t_last]: the same quantities on a
  fixed test set of fresh inputs (`_TestSet`, as online) and on the training set;
* best_gen_error / best_test_loss: the smallest exact seed-averaged value among the requested
  times and the grid time that minimises the seed-averaged test-set curve with its two grid
  neighbours (so the early-stopped value carries no test-set noise and is never above the
  values reported at `times`; the time has the grid's resolution t_last/grid).
"""
from __future__ import annotations

import math
import time as _time
import warnings
from typing import Callable, Optional

import numpy as np
import torch

from mtsp.errors import RequestError

from .finite_data import Dataset, build_problem, exact_metrics, order_parameters, train_metrics
from .simulate import SimulationResult, _Model, _one_thread, _TestSet, seed_stats

__all__ = ["DT", "METHODS", "default_dt", "gradient_flow_rhs", "run_full_batch"]

DT = 0.1


def default_dt(setup) -> float:
    """DT / max(1, η, η_V)."""
    tr = setup.training
    return DT / max(1.0, float(tr.lr), float(tr.head_lr))
METHODS = ("rk4", "euler")
STEP_TOL = 1e-3      # step-doubling tolerance on gen_error, label_error, test_loss (check_step)
CHECK_N = 200        # size of the one-seed step check
MAX_HALVINGS = 3     # a default step is halved at most this many times
OP_GATE = 1e-3       # order parameters agreeing to STEP_TOL·OP_GATE pass without the metrics


def gradient_flow_rhs(m: _Model, data: Dataset, W: torch.Tensor, V=None):
    """(dW/dt, dV/dt) of the module docstring at (W, V); dV is None for glm."""
    sq = math.sqrt(m.N)
    P = data.P
    h = torch.bmm(data.X, W.transpose(1, 2)) / sq                                    # (S, P, K)
    delta, E, a = m.backward(h, data.wm, data.wy, V)
    dW = torch.bmm(delta.transpose(1, 2), data.X).mul_(-m.lr * sq / P)
    if m.wd:
        dW.add_(W, alpha=-m.lr * m.wd)
    dV = None
    if m.kind == "shared":
        dV = torch.einsum("sptc,spk->stck", E, a).mul_(-m.head_lr / P)
    return dW, dV


def _step(m: _Model, data: Dataset, W, V, h: float, method: str):
    """One step of size h from (W, V)."""
    f = lambda W_, V_: gradient_flow_rhs(m, data, W_, V_)  # noqa: E731
    add = lambda A, B, c: None if A is None else A + c * B  # noqa: E731
    k1 = f(W, V)
    if method == "euler":
        return W + h * k1[0], add(V, k1[1], h)
    k2 = f(W + 0.5 * h * k1[0], add(V, k1[1], 0.5 * h))
    k3 = f(W + 0.5 * h * k2[0], add(V, k2[1], 0.5 * h))
    k4 = f(W + h * k3[0], add(V, k3[1], h))
    W = W + (h / 6.0) * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0])
    if V is not None:
        V = V + (h / 6.0) * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1])
    return W, V


class _Diverged(Exception):
    """The integration produced a non-finite weight (message: where and at which step)."""


def _integrate(m: _Model, data: Dataset, eval_t, dt: float, method: str):
    """Yield (j, t_j, W, V, steps so far) at each evaluation time t_j of the increasing `eval_t`,
    integrating from the model's initial (W, V) with equal steps of at most dt in between;
    _Diverged as soon as a weight is not finite."""
    W, V = m.W, m.V
    t_now, n_steps = 0.0, 0
    for j, t_next in enumerate(eval_t):
        k = max(1, int(math.ceil((t_next - t_now) / dt - 1e-9)))
        h = (t_next - t_now) / k
        for _ in range(k):
            W, V = _step(m, data, W, V, h, method)
        n_steps += k
        t_now = float(t_next)
        if not bool(torch.isfinite(W).all()) or (V is not None and
                                                 not bool(torch.isfinite(V).all())):
            raise _Diverged(f"the full_batch integration diverged by t = {t_now:g} "
                            f"(step {h:g}, {method})")
        yield j, t_now, W, V, n_steps


def _flow_at(setup, times, dt: float, method: str, N: int, seed: int, device, dtype):
    """(model, [(Q, R, V) of the one seed at each of the increasing `times`]) integrated with
    step dt at size N; the list is None where the integration diverged."""
    m, data, _ = build_problem(setup, N, 1, device, dtype, seed)
    states = []
    try:
        for _j, _t, W, V, _n in _integrate(m, data, times, dt, method):
            Q, R = order_parameters(m, W)
            states.append((Q, R, None if V is None else V.cpu().numpy()))
    except _Diverged:
        return m, None
    return m, states


def _step_difference(setup, a, b, tol: float) -> float:
    """max |m(a) − m(b)| over gen_error, label_error, test_loss of every task and time of two
    _flow_at runs (inf where one diverged). Where the order parameters (Q, R, V) already agree
    to tol·OP_GATE that largest order-parameter difference is returned instead: the metrics'
    derivatives in them are O(|V|²), far below 1/OP_GATE, and the metrics cost more than the
    flow."""
    from ..numeric.model import theory_model
    (m, sa), (_, sb) = a, b
    if sa is None or sb is None:
        return math.inf
    op = max(float(np.max(np.abs(x - y))) for u, v in zip(sa, sb) for x, y in zip(u, v)
             if x is not None)
    if op <= tol * OP_GATE:
        return op
    theory = theory_model(setup)
    return max(float(np.max(np.abs(np.stack(exact_metrics(theory, m, *u))
                                   - np.stack(exact_metrics(theory, m, *v)))))
               for u, v in zip(sa, sb))


def check_step(setup, times, dt: float | None = None, method: str = "rk4", explicit: bool = False,
               N: int = CHECK_N, seed: int = 0, device="cpu", dtype=torch.float64,
               tol: float = STEP_TOL, halvings: int = MAX_HALVINGS,
               report: Optional[Callable[[str], None]] = None) -> dict:
    """Step-doubling check of the integration step (docs/VALIDATION.md, "full_batch step").

    One seed at size N (the stiffness is that of the order-parameter flow, O(1) in N) is
    integrated with steps h and h/2; err(h) = max |m(h) − m(h/2)| over gen_error, label_error and
    test_loss of every task at the requested `times` (_step_difference: the order parameters'
    difference where that is below tol·OP_GATE). Starting from h = dt (default_dt when None),
    h is halved while err(h) > tol, at most `halvings` times; a step still failing raises
    RequestError('dt'). An `explicit` step is checked once and kept: a failing one gives a
    warning. Returns {"dt": the step to use, "dt_requested", "step_error": err(dt),
    "halvings", "check_seconds"}."""
    t0 = _time.perf_counter()
    h0 = default_dt(setup) if dt is None else float(dt)
    times = np.unique(np.asarray(times, dtype=float))
    runs = {}

    def at(h):
        if h not in runs:
            with torch.no_grad(), _one_thread(torch.device(device)):
                runs[h] = _flow_at(setup, times, h, method, N, seed, device, dtype)
        return runs[h]

    h, k = h0, 0
    while True:
        err = _step_difference(setup, at(h), at(h / 2), tol)
        if report is not None:
            report(f"full_batch step check: step {h:g}, step-doubling difference {err:.2e} "
                   f"(tolerance {tol:g}, N = {N}, one seed)")
        if err <= tol or explicit:
            break
        if k >= halvings:
            raise RequestError("dt", f"the full_batch step is not converged: step {h:g} "
                               f"({method}) changes the metrics by {err:.2e} > {tol:g} when "
                               f"halved, after {k} halvings of {h0:g}; give a smaller dt or a "
                               f"smaller training.lr")
        h, k = h / 2, k + 1
    if explicit and err > tol:
        warnings.warn(f"full_batch step {h:g} ({method}) is not converged: halving it changes "
                      f"the metrics by {err:.2e} > {tol:g}; the results carry that error")
    return {"dt": h, "dt_requested": h0, "step_error": err, "halvings": k,
            "check_N": N, "check_seconds": _time.perf_counter() - t0}


def run_full_batch(setup, times, N: int, seeds: int, device, dtype, test_size: int, seed: int,
                   progress: Optional[Callable[[float], None]] = None, grid: int = 40,
                   dt: float | None = None, method: str = "rk4", step_check: bool = True,
                   report: Optional[Callable[[str], None]] = None) -> SimulationResult:
    """Simulate `setup` (full_batch) up to the last of `times` (module docstring); dt None: the
    default step, checked and halved where needed (check_step); an explicit dt is checked and
    kept. step_check False skips the check; report receives the check's progress lines."""
    from ..numeric.model import theory_model
    t0 = _time.perf_counter()
    explicit = dt is not None
    dt = default_dt(setup) if dt is None else float(dt)
    if method not in METHODS:
        raise RequestError("method", f"unknown integrator {method!r} (one of {METHODS})")
    if not (dt > 0 and math.isfinite(dt)):
        raise RequestError("dt", f"the step must be positive and finite, got {dt!r}")
    times = np.asarray([float(t) for t in times], dtype=float)
    if times.size == 0 or np.any(times <= 0):
        raise RequestError("training.times", "need at least one time, all > 0")
    check = None
    if step_check:
        check = check_step(setup, times, dt, method, explicit, min(int(N), CHECK_N), seed,
                           device, dtype, report=report)
        dt = check["dt"]
    with torch.no_grad(), _one_thread(torch.device(device)):
        m, data, s_test = build_problem(setup, N, seeds, device, dtype, seed)
        test = _TestSet(m, test_size, s_test)

        t_last = float(times.max())
        grid_t = t_last * np.arange(1, int(grid) + 1) / int(grid) if grid else np.zeros(0)
        eval_t, inverse = np.unique(np.concatenate([times, grid_t]), return_inverse=True)
        req_idx = inverse[:times.size]
        n_eval = eval_t.size
        S, T = m.S, m.T
        curves = {k: np.empty((n_eval, S, T)) for k in
                  ("gen_error", "label_error", "test_loss", "train_loss", "train_error")}
        Qs, Rs, Vs = [], [], []
        n_steps = 0
        try:
            for j, t_now, W, V, n_steps in _integrate(m, data, eval_t, dt, method):
                m.W, m.V = W, V
                ge, le, tl = test.evaluate()
                trl, tre = train_metrics(m, data, W)
                for key, v in (("gen_error", ge), ("label_error", le), ("test_loss", tl),
                               ("train_loss", trl), ("train_error", tre)):
                    curves[key][j] = v.cpu().numpy()
                Q, R = order_parameters(m, W)
                Qs.append(Q)
                Rs.append(R)
                Vs.append(None if V is None else V.cpu().numpy())
                if progress is not None:
                    progress(0.95 * t_now / t_last)
        except _Diverged as e:
            raise RequestError("dt", f"{e}: use a smaller dt") from None

        theory = theory_model(setup)

        def exact_at(j):
            return exact_metrics(theory, m, Qs[j], Rs[j], Vs[j])

        exact = {int(j): exact_at(int(j)) for j in np.unique(req_idx)}
        mean_curves = {k: seed_stats(v, axis=1) for k, v in curves.items()}
        tasks, out_curves = {}, {}
        for t, name in enumerate(m.names):
            out_curves[name] = {}
            for key, (mean, se) in mean_curves.items():
                out_curves[name][key], out_curves[name][key + "_se"] = mean[:, t], se[:, t]
            d = {}
            for i, key in enumerate(("gen_error", "label_error", "test_loss")):
                st = [seed_stats(exact[int(j)][i][:, t]) for j in req_idx]
                d[key] = np.array([a for a, _ in st])
                d[key + "_se"] = np.array([b for _, b in st])
            for key in ("train_loss", "train_error"):
                d[key], d[key + "_se"] = (out_curves[name][key][req_idx],
                                          out_curves[name][key + "_se"][req_idx])
            for best, key, i in (("best_gen_error", "gen_error", 0),
                                 ("best_test_loss", "test_loss", 2)):
                jm = int(np.argmin(mean_curves[key][0][:, t]))
                candidates = set(int(j) for j in req_idx) | \
                    set(range(max(0, jm - 1), min(n_eval, jm + 2)))
                for jc in candidates - set(exact):
                    exact[jc] = exact_at(jc)
                values = {jc: float(exact[jc][i][:, t].mean()) for jc in candidates}
                jb = min(values, key=values.get)
                d[best], d[best + "_time"] = values[jb], float(eval_t[jb])
            tasks[name] = d
        order = {"Q": np.stack([Qs[int(i)].mean(0) for i in req_idx]),
                 "R": np.stack([Rs[int(i)].mean(0) for i in req_idx]),
                 "V": [] if m.V is None else
                 [np.stack([Vs[int(i)].mean(0)[t, :m.classes[t]] for i in req_idx])
                  for t in range(T)]}
    if progress is not None:
        progress(1.0)
    return SimulationResult(setup=getattr(setup, "name", ""), protocol="full_batch", times=times,
                            tasks=tasks, N=m.N, seeds=S, grid_times=eval_t, curves=out_curves,
                            order_params=order, device=str(m.device),
                            wall_time=_time.perf_counter() - t0,
                            solver={"method": method, "dt": float(dt), "steps": n_steps,
                                    **({} if check is None else
                                       {"step_check": {k: v for k, v in check.items()
                                                       if k != "dt"}})})

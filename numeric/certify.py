"""`certify(setup)`: a bound on every printed gen_error of the double solve, from a few mp states.

The double solve's dense output y(t) (`integrators.Solution`) is an approximate solution of
y' = f(y); its defect d(t) = y'(t) − f_mp(y(t)), f_mp the mp right-hand side (`mp_online`),
drives the error e(t) = y(t) − y_mp(t) of the trajectory against the mp theory's, e(0) = 0 (both
start from the same doubles).  To first order in e (the variational equation),

    e' = J(t) e + d(t),   δg_k ≡ g(y(t_k)) − g(y_mp(t_k)) ≈ ∫_0^{t_k} λ_k(s)ᵀ d(s) ds,
    λ_k' = −Jᵀ λ_k,  λ_k(t_k) = ∇g(y(t_k))                                  (the adjoint),

for g the gen_error of a task.  The defect is split in two:

- the integration defect d_int(s) = y'(s) − f(y(s)) with the double right-hand side f (the one
  the integrator used): computed in double at Gauss–Legendre points of every step (5 points, and 3
  points as the quadrature's error estimate); it oscillates within a step and is zero at its ends,
  so its contribution is taken signed within a step and bounded step by step:
  Σ_n |∫_step n λᵀ d_int ds| + |5-point − 3-point|;
- the quadrature defect d_q(y) = f(y) − f_mp(y): the double right-hand side against the mp one at
  ``states`` states of the double trajectory (the expensive part); between them it is *assumed*
  bounded componentwise by its largest magnitude at those states (it varies slowly along a
  trajectory: quadrature errors of smooth integrands; a change of the double path's integration
  route between samples is what this assumption can miss), and bounded without sign:
  ∫ |λ|ᵀ max_j |d_q(y(s_j))| ds.

J is the Jacobian of f by forward differences in double at the step boundaries, constant on each
step (the mean of its ends; the adjoint on a step is exp(J̄ᵀ τ)); ∇g by central differences of
the double gen_error (the scan's budgets, `solve.COARSE`).  To the bound on ∇g·e is added the
metric's own error at the reported state, |g_double(y(t_k)) − g_mp(y(t_k))| (mp errors,
`mp_online.task_metrics_mp`).  What is certified: the distance of the printed value from the mp
theory at the given mp nodes, to first order in e (second-order terms ≈ |e|² are far below the
bound whenever the bound is small); the mp values' own quadrature error (nodes) is not included.
"""
from __future__ import annotations

import math
import time as _time

import mpmath
import numpy as np
from scipy.linalg import expm

from mtsp.errors import RequestError

from .engine import generated_module, generated_system
from .metrics import task_metrics
from .mp_online import MpRules, task_metrics_mp
from .mp_solve import METRIC_NODES, SOLVE_NODES
from .solve import COARSE, _tell, accuracy_setting, check_processes, solve

__all__ = ["certify", "format_certificate"]

_GAUSS5 = np.polynomial.legendre.leggauss(5)
_GAUSS3 = np.polynomial.legendre.leggauss(3)
# the first-order bound is doubled for what its estimate approximates (∇g by differences at the
# scan's budgets, J by forward differences, the adjoint's quadrature): measured, the undoubled
# estimate was 1.00–1.08 times the actual error against mp solves (tests/test_certify.py)
SAFETY = 2.0


def _gauss(a: float, b: float, rule):
    x, w = rule
    return 0.5 * (b - a) * x + 0.5 * (a + b), 0.5 * (b - a) * w


def _jacobian(f, y: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """∂f/∂y by forward differences, step 1e-6·max(1, |y_i|)."""
    J = np.empty((y.size, y.size))
    for i in range(y.size):
        d = 1e-6 * max(1.0, abs(y[i]))
        yp = y.copy()
        yp[i] += d
        J[:, i] = (f(yp) - f0) / d
    return J


def _gen_gradients(model, y: np.ndarray, acc) -> np.ndarray:
    """∇_y gen_error of every task (rows) by central differences, step 1e-4·max(1, |y_i|)."""
    def g(v):
        return np.array([m.gen_error for m in task_metrics(model, model.unpack(v), acc, loss=False, label=False)])
    G = np.empty((model.n_tasks, y.size))
    for i in range(y.size):
        d = 1e-4 * max(1.0, abs(y[i]))
        yp, ym = y.copy(), y.copy()
        yp[i] += d
        ym[i] -= d
        G[:, i] = (g(yp) - g(ym)) / (2 * d)
    return G


def _adjoint_parts(grads, step_jac, ts, tk, d_int, env):
    """(Σ_n |∫_step n λᵀ d_int| + |5-point − 3-point|, ∫ |λ|ᵀ env) per task: the adjoint λ from
    λ(t_k) = ∇g backwards over the steps clipped to [0, t_k], exp(J_nᵀ τ) on step n."""
    lam = grads.T.copy()          # columns: tasks
    part_int = np.zeros(grads.shape[0])
    part_q = np.zeros(grads.shape[0])
    for n in range(len(ts) - 2, -1, -1):
        a, b = ts[n], min(ts[n + 1], tk)
        if b <= a:
            continue
        Jt = step_jac[n].T
        sums = []
        for rule in (_GAUSS5, _GAUSS3):
            xs, ws = _gauss(a, b, rule)
            sums.append(sum(w * ((expm(Jt * (b - s)) @ lam).T @ d_int(s)) for s, w in zip(xs, ws)))
        xs, ws = _gauss(a, b, _GAUSS5)
        part_q += sum(w * (np.abs(expm(Jt * (b - s)) @ lam).T @ env) for s, w in zip(xs, ws))
        part_int += np.abs(sums[0]) + np.abs(sums[0] - sums[1])
        lam = expm(Jt * (b - a)) @ lam
    return part_int, part_q


def _gronwall(mu, ts, tk, d_int, env):
    """‖e(t_k)‖₂ ≤ ∫₀^{t_k} exp(∫_s^{t_k} μ₂(J)) ‖d(s)‖₂ ds (logarithmic norm μ₂, the larger of a
    step's ends on the step; ‖d‖ ≤ ‖d_int‖ + ‖env‖ at 5 Gauss points per step, no sign used)."""
    e = 0.0
    q = float(np.linalg.norm(env))
    for n in range(len(ts) - 1):
        a, b = ts[n], min(ts[n + 1], tk)
        if b <= a:
            break
        xs, ws = _gauss(a, b, _GAUSS5)
        e = math.exp(mu[n] * (b - a)) * e + sum(w * math.exp(mu[n] * (b - s)) * (np.linalg.norm(d_int(s)) + q)
                                                 for s, w in zip(xs, ws))
    return e


def certify(setup, *, states: int = 3, dps: int = 20, nodes=None, metric_nodes=None, accuracy="default",
            processes: int | None = None, solution=None, progress=None, generated=None) -> dict:
    """Certificate of the double solve of `setup` (or of ``solution``, a double `SolveResult` with
    its trajectory) against the mp theory: per task and reported time the gen_error, the bound on
    its distance from the mp theory and its parts, and the certified decimals.  ``states``: mp
    right-hand sides sampled on the trajectory (at t_last·j/states); ``nodes`` / ``metric_nodes``:
    the mp nodes of the right-hand side and of the errors (default those of `solve --precision
    mp`: 24 and 24); ``dps``: mp digits.  ``generated``: derive's modules (`mtsp.derive.GENERATED`;
    `mtsp.certify` passes them)."""
    if isinstance(states, bool) or not isinstance(states, int) or states < 1:
        raise RequestError("states", f"expected a positive number of mp states, got {states!r}")
    nodes = SOLVE_NODES if nodes is None else nodes
    metric_nodes = max(nodes, METRIC_NODES) if metric_nodes is None else metric_nodes
    processes = check_processes(processes)
    acc = accuracy_setting(accuracy)[0]
    t0 = _time.perf_counter()
    res = solution if solution is not None else solve(setup, accuracy=accuracy, processes=processes,
                                                      generated=generated)
    model, traj = res.model, res.trajectory
    rhs = generated_module(generated, model, setup.name).rhs
    rhs_mp = generated_system(generated, model, setup.name, "mpmath").rhs

    def f(y):
        return rhs(model, y, acc)

    def note(frac, text):
        _tell(progress, frac, f"certify: {text}")
    times = [float(t) for t in res.times]
    t_last = times[-1]
    ts = [float(t) for t in traj.ts]
    # the quadrature defect at a few states, in mp (the expensive part)
    sample_t = [t_last * (j + 1) / states for j in range(states)]
    dq = []
    with mpmath.workdps(dps):
        for j, t in enumerate(sample_t):
            r0 = _time.perf_counter()
            y = traj(t)
            fm = rhs_mp(model, y, rules=MpRules(nodes, processes)).astype(float)
            dq.append(f(y) - fm)
            note(0.6 * (j + 1) / states, f"mp right-hand side at t = {t:g}: {_time.perf_counter() - r0:.1f} s")
    env = np.max(np.abs(dq), axis=0)
    # Jacobians at the step boundaries; on step n the mean of its ends
    jac = []
    for t in ts:
        y = traj(t)
        jac.append(_jacobian(f, y, f(y)))
    jbar = [0.5 * (jac[n] + jac[n + 1]) for n in range(len(ts) - 1)]
    lognorm = [float(np.linalg.eigvalsh(0.5 * (J + J.T))[-1]) for J in jac]     # μ₂(J)
    mu = [max(lognorm[n], lognorm[n + 1]) for n in range(len(ts) - 1)]
    note(0.7, f"{len(ts)} Jacobians")

    defects: dict = {}

    def d_int(s):
        if s not in defects:
            defects[s] = traj.derivative(s) - f(traj(s))
        return defects[s]

    # the metric's own error at the reported states, in mp, and ∇ gen_error there
    tasks = {name: {"gen_error": [], "bound": [], "trajectory_bound": [], "gronwall_bound": [], "integration_part": [],
                    "quadrature_part": [], "metric_error": [], "gen_error_mp_here": [], "decimals": []}
             for name in model.names}
    for k, tk in enumerate(times):
        y_k = traj(tk)
        with mpmath.workdps(dps):
            em = task_metrics_mp(model, model.unpack(y_k), metric_nodes, label=False, loss=False,
                                 processes=processes)
        grads = _gen_gradients(model, y_k, COARSE)
        # the adjoint with each step's Jacobian taken at its start, its end and their mean: the
        # largest of the three bounds (the spread measures the frozen-Jacobian approximation)
        parts = [_adjoint_parts(grads, step_jac, ts, tk, d_int, env)
                 for step_jac in (jac[:-1], jbar, jac[1:])]
        part_int = SAFETY * np.max([p[0] for p in parts], axis=0)
        part_q = SAFETY * np.max([p[1] for p in parts], axis=0)
        gronwall = np.linalg.norm(grads, axis=1) * _gronwall(mu, ts, tk, d_int, env)
        for i, name in enumerate(model.names):
            g = res.tasks[name]["gen_error"][k]
            gm = em[i][0]
            metric_err = abs(g - float(gm))
            traj_bound = float(part_int[i] + part_q[i])
            bound = traj_bound + metric_err
            e = tasks[name]
            e["gen_error"].append(g)
            e["bound"].append(bound)
            e["trajectory_bound"].append(traj_bound)
            e["gronwall_bound"].append(float(gronwall[i]) + metric_err)
            e["integration_part"].append(float(part_int[i]))
            e["quadrature_part"].append(float(part_q[i]))
            e["metric_error"].append(metric_err)
            e["gen_error_mp_here"].append(mpmath.nstr(gm, 17))
            e["decimals"].append(int(math.floor(-math.log10(bound))) if bound > 0 else 16)
        note(0.7 + 0.3 * (k + 1) / len(times), f"t = {tk:g}")
    return {"setup": setup.name, "times": times, "tasks": tasks, "dps": dps, "mp_nodes": nodes,
            "metric_nodes": metric_nodes, "states": sample_t, "steps": len(ts) - 1,
            "quadrature_defect_max": float(env.max()),
            "quadrature_defect_rel": float(env.max() / max(np.abs(f(traj(t_last))).max(), 1e-300)),
            "seconds": _time.perf_counter() - t0}


def format_certificate(cert: dict) -> str:
    """The certificate as a table: per task and time the gen_error to its certified decimals."""
    lines = [f"certificate of {cert['setup']!r}: double trajectory ({cert['steps']} steps) against the mp theory "
             f"(dps {cert['dps']}, {cert['mp_nodes']} / {cert['metric_nodes']} nodes), mp right-hand sides at t = "
             + ", ".join(f"{t:g}" for t in cert["states"]),
             f"{'task':<8} {'t':>6}  {'gen_error':<20} {'bound':>9}  {'(trajectory':>11} {'metric)':>9}  decimals"
             f"  {'Gronwall':>9}"]
    for name, e in cert["tasks"].items():
        for k, t in enumerate(cert["times"]):
            d = e["decimals"][k]
            shown = f"{e['gen_error'][k]:.{max(d, 0)}f}" if d > 0 else f"{e['gen_error'][k]:.3g}"
            lines.append(f"{name:<8} {t:>6g}  {shown:<20} {e['bound'][k]:9.2e}  {e['trajectory_bound'][k]:11.2e} "
                         f"{e['metric_error'][k]:9.2e}  {d:>8}  {e['gronwall_bound'][k]:9.2e}")
    lines.append(f"(largest quadrature defect |f_double − f_mp| {cert['quadrature_defect_max']:.2e}; "
                 f"{cert['seconds']:.1f} s; the bound: first order, adjoint; Gronwall: the logarithmic-norm bound, "
                 f"for comparison; docs/PRECISION.md)")
    return "\n".join(lines)

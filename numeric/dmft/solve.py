"""MODEL.md's predictions for a `full_batch` setup from the DMFT (docs/DMFT.md §4).

glm students: each task's weights W_t see only their own loss term, so the tasks decouple and each
is one single-task DMFT (`engine.run_dmft` with `losses.CrossEntropy`) with

    shared inputs:   learning rate η w_t, weight decay κ / w_t, α = training.alpha;
    separate inputs: learning rate η w_t α_t / Σ_s α_s, weight decay κ Σ_s α_s / (w_t α_t), α = α_t

(dW_t/dt = −η N w_t (P_t / P_tot) ∇R̂_t − ηκ W_t with R̂_t task t's mean loss over its P_t samples).
A task with w_t = 0 only decays.  Test metrics from the order parameters of the weights, Q(t) =
W_t W_tᵀ/N and M(t) = W_t B_tᵀ/N, by `numeric.metrics.task_metrics` (a glm student is a shared
student with identity heads, `numeric.model`); the all-ones direction of W_t (irrelevant for
softmax and argmax) carries σ₀² Π(1 − ηκh)² as in the finite-N dynamics.

Shared trunks (any activation): the K trunk fields, the heads V_t evolved from path averages
(`trunk.Trunk`); shared inputs: one sample-side process with every task's frozen label, α =
training.alpha; separate inputs: one population of paths per task, mixed with the weights
α_t/Σ_s α_s, α = Σ_s α_s; relu with the Stein response (`response.SteinResponse`) on a grid
without early refinement. Test metrics
from (Q, R = W Bᵀ/N, V_t) by the same `task_metrics`.

Sampling error: `batches` independent DMFT solutions (independent fixed normals) of n_paths paths
each; the outputs are their means and `*_se` their standard errors. Time step: the engine solves
gradient descent at the grid's steps; every output (at the requested times and the early-stopped
minima) is extrapolated to the flow from the first `step_correction` batches solved again at twice
the step (`_corrections`, `_step_corrected`).
"""
from __future__ import annotations

import math
import time as _time
import warnings
import zlib
from dataclasses import dataclass, replace

import numpy as np

from mtsp.errors import ConvergenceError, ReachError, RequestError

from ..metrics import task_metrics
from ..model import State, theory_model
from ..online import Accuracy
from ..solve import SEARCH, SolveResult
from .engine import run_dmft
from .losses import CrossEntropy
from .trunk import Trunk

__all__ = ["DmftOptions", "DmftResponseWarning", "DmftResult", "DmftStepWarning", "check_supported", "solve_dmft", "solve_full_batch", "task_trajectory", "time_grid", "trunk_mirror", "trunk_trajectory"]


@dataclass(frozen=True)
class DmftOptions:
    """dt: the late Euler step (`time_grid`; default 0.2/max(1, η)); late: from this time on
    the step grows ∝ t (`time_grid`; default None: constant);
    n_paths: paths per batch for correlations and means (default None: `default_paths`);
    n_response: of those, paths for the
    response; batches: independent solutions (error bars); scan: grid points for early stopping;
    seed: of the fixed standard normals; n_sources: source paths of the noise (`engine.run_dmft`,
    default n_paths/2; its cost is n_paths × n_sources per step); device: None (numpy) or a
    torch device ("cpu", "cuda") for the path-sized arrays (`engine.run_dmft`), for large path
    counts; target_se: with it, batches beyond `batches` (the least) are added, up to
    `max_batches`, until every gen_error_se of the solve is at most target_se; response: how the
    response R is found (`engine.RESPONSES`; default None: "stein" for relu trunks, whose grid
    then has no early refinement (`time_grid`), the exact recursion otherwise; docs/DMFT.md §7);
    fd_step: the step of response "difference"; mirror: for a shared trunk with a
    reflection symmetry (`trunk_mirror`), paths in mirror pairs (`engine.run_dmft`): the exact
    N → ∞ solution, which keeps the symmetry; without it (default) the paths' sampling noise
    breaks an unstable symmetry like the O(N^-1/2) fluctuations of a finite system, at a time
    ∝ ln(paths) (docs/DMFT.md §4); ignored where there is no such symmetry (glm, relu);
    step_correction: the first this many batches are solved again on the grid of step 2·dt with
    the same normals, and every output is extrapolated to the flow (Richardson: `_corrections`,
    `_step_corrected`); 0: off, the values of gradient descent at step dt, which lie O(dt) from
    the flow's (docs/DMFT.md §4)."""
    dt: float | None = None
    late: float | None = None
    n_paths: int | None = None
    n_response: int = 1000
    batches: int = 8
    scan: int = 60
    seed: int = 0
    n_sources: int | None = None
    target_se: float | None = None
    max_batches: int = 32
    device: str | None = None
    response: str | None = None
    fd_step: float = 0.02
    mirror: bool = False
    step_correction: int = 2


def trunk_mirror(loss) -> np.ndarray | None:
    """The reflection symmetry of a shared trunk, S = I − 2P⊥ with P⊥ the projector on the
    complement of the span of the centred initial heads (V_t minus its class mean; the class-common
    part of a head moves no softmax and no gradient), or None when the heads span all K
    directions. The initial weights are isotropic, so S maps the problem onto itself when the
    activation commutes with it: always for a linear trunk, for odd elementwise activations (erf,
    tanh) only when S is diagonal (the complement spanned by coordinate axes), never for relu.
    The N → ∞ solution keeps this symmetry (docs/DMFT.md §4)."""
    rows = np.concatenate([v - v.mean(axis=0) for v in loss.heads0])
    _, sv, vt = np.linalg.svd(rows)
    r = int(np.sum(sv > 1e-12 * max(1.0, sv.max(initial=0.0))))
    if r == loss.dim:
        return None
    perp = vt[r:]
    S = np.eye(loss.dim) - 2.0 * perp.T @ perp
    if loss.activation == "linear":
        return S
    if loss.activation in ("erf", "tanh") and np.allclose(S, np.diag(np.diag(S)), atol=1e-12):
        return np.diag(np.round(np.diag(S)))
    return None


def default_dt(lr: float) -> float:
    """The late step: 0.2/max(1, η) (measured in docs/DMFT.md §5)."""
    return 0.2 / max(1.0, lr)


EARLY = (0.25, 4.0)   # (t_s, t_c) of the early refinement, times in units of 1/max(1, η)
LATE_CAP = 3.0        # the late step grows to at most 3 dt (`time_grid`)


def time_grid(times, dt: float, lr: float = 1.0, late: float | None = None,
              early: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Steps h_k of a grid dense early and coarser late, h(t) = dt·min(1, (t + t_s)/t_c) with
    (t_s, t_c) = EARLY / max(1, η) (h(0) = dt/16; the flow is fastest at the start), and with
    `late`: h(t) = dt·min(t/late, LATE_CAP) from t = late on (geometric, then constant: the
    late dynamics is slow, but gradient descent is unstable beyond a step ~2/curvature —
    measured on the two-task trunk of benchmarks/dmft_speed.py: h = 0.62 at t = 31 changed
    gen_error by 7e-5, h = 1.24 diverged); every requested time inserted (grid points closer
    than 0.3 h to it dropped); and the grid index of each requested time.  early=False: no early
    refinement, h = dt from t = 0 (for the Stein response, whose sampling error grows as the step
    shrinks: docs/DMFT.md §7)."""
    times = np.asarray(times, float)
    if times.size == 0 or np.any(times <= 0) or not np.all(np.isfinite(times)):
        raise RequestError("training.times", "need at least one time, all finite and > 0")
    if not (dt > 0 and math.isfinite(dt)):
        raise RequestError("dt", f"the DMFT step must be positive and finite, got {dt!r}")
    if late is not None and not (late > 0 and math.isfinite(late)):
        raise RequestError("late", f"the time at which the step starts to grow must be positive "
                                   f"and finite, got {late!r}")
    scale = max(1.0, lr)
    ts, tc = EARLY[0] / scale, EARLY[1] / scale
    t_end = float(times.max())
    pts, t = [0.0], 0.0
    def step(t):
        return (dt * (min(1.0, (t + ts) / tc) if early else 1.0)
                * (min(max(1.0, t / late), LATE_CAP) if late else 1.0))
    while t < t_end:
        t += step(t)
        pts.append(t)
    grid = np.array(pts[:-1])
    req = np.unique(times)
    h_at = np.array([step(float(r)) for r in req])
    keep = np.ones(grid.size, bool)
    for r, h in zip(req, h_at):
        keep &= np.abs(grid - r) > 0.3 * h
    keep[0] = True
    grid = np.union1d(grid[keep], req)
    index = {float(r): int(np.searchsorted(grid, r)) for r in req}
    return np.diff(grid), np.array([index[float(r)] for r in times])


def _task_params(setup, t: int):
    """(lr, weight decay, alpha) of task t's single-task DMFT (module docstring)."""
    tr = setup.training
    w = float(setup.tasks[t].weight)
    if tr.inputs == "separate":
        alphas = np.array([float(x.alpha) for x in setup.tasks])
        frac = alphas[t] / alphas.sum()
        alpha = alphas[t]
    else:
        frac, alpha = 1.0, float(tr.alpha)
    lr = float(tr.lr) * w * frac
    kappa = float(tr.weight_decay) / (w * frac) if w > 0 else 0.0
    return lr, kappa, alpha


def task_trajectory(setup, t: int, steps, opts: DmftOptions, batch: int):
    """One DMFT solution (batch `batch`) of glm task t: (Q (K+1, C, C), M (K+1, C, C), train loss,
    train error (K+1,)) along the grid; train loss and error None for a task of weight 0 (never
    trained: its training metrics are its test metrics)."""
    task = setup.tasks[t]
    C = int(task.classes)
    sl = slice(int(sum(x.classes for x in setup.tasks[:t])), None)
    gram = np.asarray(setup.gram(), float)[sl, sl][:C, :C]
    s0 = float(setup.student.init_scale)
    lr, kappa, alpha = _task_params(setup, t)
    K = len(steps)
    ones = np.full((C, C), 1.0 / C)
    if lr == 0.0:      # w_t = 0: never trained, only weight decay; the weights never saw the
        # training data, so its training metrics are the test metrics (None: `solve_dmft`)
        decay = np.concatenate([[1.0], np.cumprod(1.0 - float(setup.training.lr) *
                                                  float(setup.training.weight_decay) * steps)])
        Q = s0 ** 2 * decay[:, None, None] ** 2 * np.eye(C)
        return Q, np.zeros((K + 1, C, C)), None, None
    loss = CrossEntropy(C, float(task.noise))
    tr = run_dmft(loss, gram, lr=lr, weight_decay=kappa, alpha=alpha, init_scale=s0, steps=steps,
                  n_paths=opts.n_paths, n_response=opts.n_response,
                  rng=_rng(opts, task.name, batch), n_sources=opts.n_sources, device=opts.device,
                  response=opts.response, fd_step=opts.fd_step)
    U = loss.U
    Tp = np.linalg.pinv(gram, hermitian=True)
    M = np.einsum("ca,kab->kcb", U, tr.M)
    Qr = np.einsum("kab,bc,kdc->kad", tr.M, Tp, tr.M) + tr.Cperp
    Q = np.einsum("ca,kab,db->kcd", U, Qr, U) + s0 ** 2 * tr.decay[:, None, None] ** 2 * ones
    return Q, M, tr.train_loss, tr.train_error


def _rng(opts, name: str, batch: int):
    """The paths depend on the task's (or the trunk's tasks') names, not positions: a glm task
    alone (setup.single) gets the same paths, so its baseline with shared inputs equals the
    multitask run exactly."""
    return np.random.default_rng([opts.seed, zlib.crc32(name.encode()), batch])


def trunk_loss(setup) -> tuple[Trunk, float]:
    """The sample-side loss of a shared trunk (`trunk.Trunk`) and the α of its DMFT: training.alpha
    (shared inputs) or Σ_t α_t (separate inputs, one population per task)."""
    tr_ = setup.training
    model = theory_model(setup)
    separate = tr_.inputs == "separate"
    alphas = [float(t.alpha) for t in setup.tasks] if separate else None
    loss = Trunk(model.classes, model.noise, model.weights, model.heads0, float(tr_.head_lr),
                 setup.student.activation, alphas)
    return loss, (sum(alphas) if separate else float(tr_.alpha))


def trunk_trajectory(setup, steps, opts: DmftOptions, batch: int):
    """One DMFT solution of a shared trunk with heads (`trunk_loss`): (Q (K+1, K, K),
    R (K+1, K, M), heads per step, train loss, train error (K+1, T))."""
    tr_ = setup.training
    loss, alpha = trunk_loss(setup)
    gram = np.asarray(setup.gram(), float)
    tr = run_dmft(loss, gram, lr=float(tr_.lr), weight_decay=float(tr_.weight_decay),
                  alpha=alpha, init_scale=float(setup.student.init_scale), steps=steps,
                  n_paths=opts.n_paths, n_response=opts.n_response,
                  rng=_rng(opts, "/".join(t.name for t in setup.tasks), batch), n_sources=opts.n_sources,
                  device=opts.device, response=opts.response, fd_step=opts.fd_step,
                  mirror=trunk_mirror(loss) if opts.mirror else None)
    Tp = np.linalg.pinv(gram, hermitian=True)
    Q = np.einsum("kab,bc,kdc->kad", tr.M, Tp, tr.M) + tr.Cperp
    return Q, tr.M, tr.states, tr.train_loss, tr.train_error


def asymmetry(states, S: np.ndarray) -> float:
    """The largest antisymmetric part ‖(V_t − class mean)(I − S)/2‖ of the heads along a
    trajectory (`State` list) under the reflection S (`trunk_mirror`): zero on the symmetric
    manifold (N → ∞, or mirrored paths); without mirrored paths it starts at O(paths^-1/2) and
    grows where that manifold is unstable (docs/DMFT.md §4)."""
    P = 0.5 * (np.eye(len(S)) - S)
    return max(float(np.linalg.norm((v - v.mean(axis=0)) @ P)) for st in states for v in st.V)


def _units(setup):
    """(theory model, setup task indices, batch solver) per independent DMFT: one per glm task,
    one for a shared trunk."""
    if setup.student.kind == "glm":
        out = []
        for t in range(len(setup.tasks)):
            # the test metrics of task t alone; a task of weight 0 (never trained) is measured
            # with weight 1, which no metric reads (a setup of one weight-0 task is invalid)
            alone = setup if setup.tasks[t].weight else setup.replace(**{f"tasks.{t}.weight": 1.0})
            model = theory_model(alone.single(t))

            def solve(steps, opts, b, t=t, model=model):
                Q, M, trl, tre = task_trajectory(setup, t, steps, opts, b)
                states = [State(q, m, model.heads0) for q, m in zip(Q, M)]
                if trl is None:
                    return states, None, None
                return states, trl[:, None], tre[:, None]
            out.append((model, [t], solve))
        return out
    model = theory_model(setup)

    def solve(steps, opts, b):
        Q, R, V, trl, tre = trunk_trajectory(setup, steps, opts, b)
        return [State(q, r, v) for q, r, v in zip(Q, R, V)], trl, tre
    return [(model, list(range(len(setup.tasks))), solve)]


PATHS = 4000          # per batch, the exact response recursion
STEIN_PATHS = 8000    # per batch, the Stein response: at 4000 relu's late values were 0.002–0.006 high,
#                       outside their error bars (benchmarks/results/dmft_relu_kink.txt §11–12)


def default_paths(setup, opts: DmftOptions) -> int:
    """opts.n_paths, or by default PATHS (STEIN_PATHS where the response is "stein", `_stein`)."""
    return opts.n_paths if opts.n_paths is not None else STEIN_PATHS if _stein(setup, opts) else PATHS


SCAN_ACCURACY = SEARCH   # the early-stopping scan's metrics; the minima are refined at the solve's accuracy
#                          (`_refined_minimum`; glm C = 4: 0.010 s per call against 0.075 s, gen_error 3e-5 apart)


def _refined_minimum(coarse: np.ndarray, scan: np.ndarray, kept: list, j: int, field: str):
    """(scan index, mean, standard error, per-batch values) of the minimum over the scan grid of
    task j's ``field``: located on the batch-mean ``coarse`` curve (SCAN_ACCURACY), then the scan
    point and its two neighbours evaluated again in every batch at the solve's accuracy (``kept``:
    per batch, its metrics at a grid step) and the least batch mean of those taken."""
    i0 = int(np.argmin(coarse))
    best = None
    for i in range(max(i0 - 1, 0), min(i0 + 2, len(scan))):
        vals = np.array([getattr(mets(int(scan[i]), label=False)[j], field) for mets in kept])
        mean, se = _mean_se(vals)
        if best is None or mean < best[1]:
            best = (i, float(mean), float(se), vals)
    return best


def _stein(setup, opts: DmftOptions) -> bool:
    """The solve's response is "stein" (`engine.run_dmft`: the default for relu trunks)."""
    relu = setup.student.kind == "shared" and setup.student.activation == "relu"
    return (opts.response or ("stein" if relu else "recursion")) == "stein"


def _short_of(gen_errors: list, opts: DmftOptions) -> bool:
    """Another batch is wanted: a target_se that the batches so far (their [time][task]
    gen_error) do not reach yet, and fewer than max_batches of them."""
    if opts.target_se is None or len(gen_errors) >= opts.max_batches:
        return False
    return len(gen_errors) < 2 or float(_mean_se(gen_errors)[1].max()) > opts.target_se


def _step_corrected(mean: np.ndarray, se: np.ndarray, corrections: list):
    """Richardson extrapolation of a gradient-descent output to the flow: at step h (the grid's
    late step; the whole grid scales with it) GD gives f(h) = f(0) + c·h + O(h²), so
    f(0) ≈ 2 f(h) − f(2h) = f(h) + [f(h) − f(2h)]. `mean`, `se`: the batch mean of f(h) and its
    standard error; `corrections`: f_b(h) − f_b(2h) of the first batches, on the same normals
    (a difference with a far smaller spread than f itself: docs/DMFT.md §4). Returns the
    extrapolated mean and the two standard errors added in quadrature."""
    c, c_se = _mean_se(corrections)
    return mean + c, np.hypot(se, c_se)


RANGE = {"gen_error": (0.0, 1.0), "label_error": (0.0, 1.0), "test_loss": (0.0, np.inf),
         "train_loss": (0.0, np.inf), "train_error": (0.0, 1.0)}   # the extrapolation's clip
BEST_OF = {"best_gen_error": "gen_error", "best_test_loss": "test_loss"}


def _outputs(at, trl, tre, req) -> dict:
    """One solve's outputs at the requested times, each (time, task): the test metrics `at`
    ([time][task] `task_metrics`), the training metrics trl / tre along the grid at the grid
    indices `req` — or, for a task never trained (trl None: glm of weight 0), its test metrics."""
    out = {"gen_error": [[m.gen_error for m in r] for r in at],
           "label_error": [[m.label_error for m in r] for r in at],
           "test_loss": [[m.test_loss for m in r] for r in at]}
    if trl is None:
        out["train_loss"], out["train_error"] = out["test_loss"], out["label_error"]
    else:
        out["train_loss"], out["train_error"] = trl[req].tolist(), tre[req].tolist()
    return {k: np.asarray(v, float) for k, v in out.items()}


STEP_CORRECTION_LIMIT = 0.25
"""The largest relative step correction |f(dt) − f(2 dt)| / max(|f(dt)|, 0.1) of any output of a
batch (the five metrics at the requested times) that `_corrections` accepts: where gradient
descent at 2 dt is first order it is a few 1e-3 (train_loss 0.0009–0.0034 on values 0.1–1.1,
test metrics ≤ 1e-3: docs/DMFT.md §4); where it is not, e.g. benchmarks/dmft_random_setups.py
--space wide --seed 6 setup 5 (gradient descent at 2 dt = 0.4 unstable), it is O(1) (train_loss
0.93 at dt 0.2 against 1.30 at 0.4)."""


def _corrections(solve_batch, model, per_batch, bests, times, n, dt, lr, opts, early, acc):
    """The step correction f_b(dt) − f_b(2 dt) of the first n batches (same normals) for every
    output: {key: [n × (time, task)]} at the requested times (`per_batch`: each batch's outputs
    at dt) and {(best, j): [n × (1,)]} for the early-stopped minima (`bests`: (t*, mean, se,
    per-batch values at dt)), taken at the minimum's grid time t* (inserted into the coarse grid):
    min_t f(t; 0) = min_t f(t; dt) + [f(t*; dt) − f(t*; 2dt)] + O(dt²), the shift of t* entering
    at second order. A coarse solve that diverges (2 dt beyond ~2/curvature) is a ReachError; a
    correction larger than STEP_CORRECTION_LIMIT (relative) is a ConvergenceError with key
    "step_correction" (gradient descent at 2 dt is not first order, so the extrapolation would be
    wrong; `solve_dmft` halves the default dt)."""
    extra = sorted({tb for (tb, *_rest) in bests.values()})
    coarse, req_c = time_grid(list(times) + extra, 2 * dt, lr, opts.late, early=early)
    req_t, req_x = req_c[:len(times)], dict(zip(extra, req_c[len(times):]))
    out = {k: [] for k in RANGE} | {key: [] for key in bests}
    for b in range(n):
        try:
            states, trl, tre = solve_batch(coarse, opts, b)
        except ConvergenceError as e:
            raise ReachError("step_correction", f"the step correction's coarse grid (step {2 * dt:g}) "
                             f"diverged ({e}); use a smaller dt or step_correction = 0") from e
        finite = all(np.all(np.isfinite(a)) for st in states for a in (st.Q, st.R, *st.V))
        if not (finite and (trl is None or np.all(np.isfinite(trl)))):
            raise ReachError("step_correction", f"gradient descent at step {2 * dt:g} (the step "
                             f"correction's coarse grid) diverged; use a smaller dt or "
                             f"step_correction = 0")
        cache = {}

        def mets(k, states=states, cache=cache):
            if k not in cache:
                cache[k] = task_metrics(model, states[k], acc)
            return cache[k]
        at = [mets(int(k)) for k in req_t]
        for key, f in _outputs(at, trl, tre, req_t).items():
            fine = per_batch[key][b]
            rel = np.nan_to_num(np.abs(fine - f) / np.maximum(np.abs(fine), 0.1), nan=np.inf)
            if rel.max() > STEP_CORRECTION_LIMIT:
                i, j = np.unravel_index(int(np.argmax(rel)), rel.shape)
                raise ConvergenceError(
                    "step_correction", f"gradient descent at step {2 * dt:g} (the step correction's "
                    f"coarse grid) is not first order: {key} of task {j} at t = {times[i]:g} is "
                    f"{fine[i, j]:.4g} at step {dt:g} and {f[i, j]:.4g} at {2 * dt:g} (relative "
                    f"correction {rel[i, j]:.3g}, limit {STEP_CORRECTION_LIMIT:g}), so the "
                    f"extrapolation to the flow would be wrong; use a smaller dt",
                    residual=float(rel[i, j]), status={"time": times[i], "dt": dt, "batch": b})
            out[key].append(fine - f)
        for (best, j), (tb, _, _, fine) in bests.items():
            c = getattr(mets(int(req_x[tb]))[j], BEST_OF[best])
            out[best, j].append(np.array([fine[b] - c]))
    return out


def _mean_se(x: np.ndarray):
    x = np.asarray(x, float)
    se = x.std(axis=0, ddof=1) / math.sqrt(x.shape[0]) if x.shape[0] > 1 else np.zeros(x.shape[1:])
    return x.mean(axis=0), se


MAX_STEPS = 600   # the kernels are (steps × steps), the response's cost grows like steps³: 194
                  # steps of a two-task trunk took 43 s at the default paths (docs/DMFT.md §5),
                  # so 600 steps would take about half an hour


def check_steps(n_steps: int, t_last: float) -> None:
    """ReachError naming training.times beyond MAX_STEPS grid steps (also lr: the step is 0.2/η)."""
    if n_steps > MAX_STEPS:
        raise ReachError("training.times", f"the DMFT grid needs {'at least ' * (n_steps > 10 * MAX_STEPS)}{n_steps} steps to t = {t_last:g} "
                         f"(at most {MAX_STEPS}: its kernels grow as steps², its cost too; the step is "
                         f"0.2/max(1, lr)); ask for shorter times")


def check_supported(setup) -> None:
    """glm students and shared trunks (every activation; any tasks, shared or separate inputs) on
    a time grid of at most MAX_STEPS steps; anything
    else is refused naming the key."""
    times = [float(t) for t in setup.training.times]
    if times and all(math.isfinite(t) and t > 0 for t in times):
        lr = float(setup.training.lr)
        dt = default_dt(lr)
        if max(times) / dt > MAX_STEPS:         # the grid has at least t/dt steps: do not build it
            check_steps(math.ceil(max(times) / dt), max(times))
        check_steps(len(time_grid(times, dt, lr)[0]), max(times))


def solve_dmft(setup, opts: DmftOptions = DmftOptions(), *, times=None, acc: Accuracy = Accuracy(),
               progress=None):
    """N → ∞ prediction of the full_batch protocol for `setup` (module docstring;
    `check_supported`).  Where relu's default response, Stein, turns out to be noise (the engine's
    ConvergenceError 'response'), the solve is run again with the finite-difference response
    (``response="difference"``), and a `DmftResponseWarning` says so; ``stats["response"]`` names
    the response that produced the numbers.  Where the step correction's coarse grid is not first
    order (`_corrections`' ConvergenceError 'step_correction') at the default dt, the solve runs
    again at half the step (until the grid exceeds MAX_STEPS: a ReachError), and a
    `DmftStepWarning` says so (``stats["dt"]``: the step that produced the numbers); an explicit
    ``opts.dt`` keeps the error."""
    dt = opts.dt
    while True:
        try:
            return _solve_with_response(setup, replace(opts, dt=dt), times, acc, progress)
        except ConvergenceError as err:
            if err.key != "step_correction" or opts.dt is not None:
                raise
            dt = 0.5 * float(err.status["dt"])
            warnings.warn(f"step_correction: {err.reason}; solving again with dt = {dt:g}",
                          DmftStepWarning, stacklevel=2)


class DmftStepWarning(UserWarning):
    """The DMFT halved its default step (`solve_dmft`)."""


def _solve_with_response(setup, opts: DmftOptions, times, acc: Accuracy, progress):
    """`solve_dmft` at opts.dt, with the response fallback."""
    try:
        res = _solve_dmft(setup, opts, times, acc, progress)
    except ConvergenceError as err:
        if err.key != "response" or opts.response is not None:
            raise
        warnings.warn(f"response: {err.reason}; solving again with response='difference'",
                      DmftResponseWarning, stacklevel=3)
        res = _solve_dmft(setup, replace(opts, response="difference"), times, acc, progress)
        res.stats["response"] = "difference"
        return res
    res.stats["response"] = opts.response or ("stein" if _stein(setup, opts) else "recursion")
    return res


class DmftResponseWarning(UserWarning):
    """The DMFT changed its response route (`solve_dmft`)."""


def _solve_dmft(setup, opts: DmftOptions, times, acc: Accuracy, progress):
    """`solve_dmft` with the response of ``opts``."""
    if setup.training.protocol != "full_batch":
        raise RequestError("training.protocol", f"the DMFT engine solves full_batch, not "
                         f"{setup.training.protocol!r}")
    check_supported(setup)
    opts = replace(opts, n_paths=default_paths(setup, opts))
    if opts.batches < 1 or opts.n_paths < 1 or opts.n_response < 1:
        raise RequestError("dmft options", "batches, n_paths and n_response must be ≥ 1")
    if not (isinstance(opts.step_correction, int) and opts.step_correction >= 0):
        raise RequestError("step_correction", f"a number of batches ≥ 0, got {opts.step_correction!r}")
    if opts.target_se is not None and not (opts.target_se > 0 and opts.max_batches >= max(2, opts.batches)):
        raise RequestError("target_se", "needs target_se > 0 and max_batches ≥ batches, ≥ 2")
    t0 = _time.perf_counter()
    times = list(setup.training.times if times is None else times)
    dt = opts.dt if opts.dt is not None else default_dt(float(setup.training.lr))
    lr, early = float(setup.training.lr), not _stein(setup, opts)
    steps, req = time_grid(times, dt, lr, opts.late, early=early)
    check_steps(len(steps), max(times))
    K = len(steps)
    grid_t = np.concatenate([[0.0], np.cumsum(steps)])
    # the early-stopping scan over (0, t_K] like the online engine's (`numeric.solve._scan_grid`):
    # grid index ≥ 1 (on a grid of fewer than 2·scan steps the first points would round to 0)
    scan = np.unique(np.concatenate([np.linspace(0, K, opts.scan + 1)[1:].round().clip(1).astype(int), req]))
    tasks, curves = {}, {}
    units = _units(setup)
    n_jobs = len(units) * opts.batches
    done = 0
    used = []
    mirror = trunk_mirror(trunk_loss(setup)[0]) if setup.student.kind == "shared" else None
    asym = []
    for model, ids, solve_batch in units:
        keys = ("gen_error", "label_error", "test_loss", "train_loss", "train_error", "scan_gen",
                "scan_loss")
        per_batch = {k: [] for k in keys}
        kept = []      # each batch's metrics at a grid step, for the refinement of the minima
        b = 0
        while b < opts.batches or _short_of(per_batch["gen_error"], opts):
            states, trl, tre = solve_batch(steps, opts, b)
            b += 1
            if mirror is not None:
                asym.append(asymmetry(states, mirror))

            cache = {}     # each grid point's metrics once per batch and kind: the refined
            #                minima of every task and of both best_* read the same points

            def mets(k, label=True, model=model, states=states, acc=acc, cache=cache):
                key = (k, label, acc is SCAN_ACCURACY)
                if key not in cache:
                    cache[key] = task_metrics(model, states[k], acc, label=label)
                return cache[key]
            at = [mets(int(k)) for k in req]                        # [time][task]
            sc = [mets(int(k), label=False, acc=SCAN_ACCURACY) for k in scan]
            kept.append(mets)
            for key, f in _outputs(at, trl, tre, req).items():
                per_batch[key].append(f)
            per_batch["scan_gen"].append([[m.gen_error for m in r] for r in sc])
            per_batch["scan_loss"].append([[m.test_loss for m in r] for r in sc])
            done += 1
            if progress:
                progress(min(1.0, done / n_jobs))
        used.append(b)
        stats_ = {k: _mean_se(v) for k, v in per_batch.items()}    # each (time, task) arrays
        bests = {}     # (best, task j) -> (time, mean, se): the refined minimum on the grid
        for best, key, field in (("best_gen_error", "scan_gen", "gen_error"),
                                 ("best_test_loss", "scan_loss", "test_loss")):
            for j in range(len(ids)):
                i, value, se, vals = _refined_minimum(stats_[key][0][:, j], scan, kept, j, field)
                bests[best, j] = (float(grid_t[scan[i]]), value, se, vals)
        if opts.step_correction:
            corr = _corrections(solve_batch, model, per_batch, bests, times,
                                min(opts.step_correction, b), dt, lr, opts, early, acc)
            for key in keys[:5]:
                mean, se = _step_corrected(*stats_[key], corr[key])
                stats_[key] = np.clip(mean, *RANGE[key]), se
            for (best, j), (tb, value, se, _) in list(bests.items()):
                field = BEST_OF[best]
                mean, se = _step_corrected(np.array([value]), np.array([se]), corr[best, j])
                cands = [(float(mean[0]), float(se[0]), tb)]
                cands += [(float(stats_[field][0][i, j]), float(stats_[field][1][i, j]), float(t))
                          for i, t in enumerate(times)]
                value, se, tb = min(cands)
                bests[best, j] = (tb, max(value, RANGE[field][0]), se, None)
        for j, t in enumerate(ids):
            d = {}
            for key in keys[:5]:
                mean, se = stats_[key]
                d[key] = mean[:, j].tolist()
                d[key + "_se"] = se[:, j].tolist()
            for best in BEST_OF:
                tb, value, se, _ = bests[best, j]
                d[best], d[best + "_se"], d[best + "_time"] = value, se, tb
            name = setup.tasks[t].name
            tasks[name] = d
            curves[name] = stats_["scan_gen"][0][:, j].tolist()
    tasks = {t.name: tasks[t.name] for t in setup.tasks}
    stats = {"steps": K, "dt": float(dt), "n_paths": opts.n_paths, "n_response": opts.n_response,
             "batches": max(used), "solve_s": _time.perf_counter() - t0,
             "step_correction": min(opts.step_correction, max(used)),
             "symmetry": None if mirror is None else ("mirrored" if opts.mirror else "sampled"),
             "asymmetry": max(asym) if asym else None}
    res = DmftResult(setup.name, "full_batch", "dmft", times, tasks, None, None, None, stats)
    res.scan_times = grid_t[scan].tolist()
    res.scan_gen_error = curves
    return res


class DmftResult(SolveResult):
    """SolveResult of the DMFT: no dense trajectory; `curves` gives gen_error on the
    early-stopping scan grid."""
    scan_times: tuple = ()
    scan_gen_error: dict | None = None

    def state(self, t):
        raise NotImplementedError("the DMFT result keeps no order-parameter trajectory")

    def curves(self, points: int = 60, acc=None) -> dict:
        out = {"times": list(self.scan_times), "tasks": dict(self.scan_gen_error or {}), "single": {}}
        for name, res in (self.single_results or {}).items():
            g = np.interp(self.scan_times, res.scan_times, res.scan_gen_error[name])
            out["single"][name] = g.tolist()
        return out


def solve_full_batch(setup, *, single: bool = False, engine: str = "ode", precision: str = "double",
                     accuracy: str = "default", opts: DmftOptions = DmftOptions(), progress=None):
    """`numeric.solve.solve` for full_batch setups: the DMFT (engine "dmft"; "ode", the online
    default, stands for each protocol's default engine), with `single`: each task alone
    (setup.single(t), same times; its own P_t samples with separate inputs)."""
    if engine not in ("ode", "dmft"):
        raise RequestError("engine", f"the full_batch protocol is solved by the dmft engine, not {engine!r}")
    if precision != "double":
        raise ReachError("precision", "the dmft engine runs in double precision only")
    if accuracy != "default":
        raise ReachError("accuracy", "the dmft engine has no accuracy presets; its sampling "
                                  "error is reported as gen_error_se")
    active = [k for k, t in enumerate(setup.tasks) if t.weight != 0] if single else []
    runs = 1 + len(active)

    def part(k):
        return (lambda f: progress((k + f) / runs)) if progress else None
    res = solve_dmft(setup, opts, progress=part(0))
    if single:
        res.single, res.single_results = {}, {}
        # glm tasks on shared inputs decouple (module docstring): task k alone is the multitask
        # run's own DMFT of task k — same learning rate, weight decay, α and paths (`_rng`)
        decoupled = setup.student.kind == "glm" and setup.training.inputs == "shared"
        for i, k in enumerate(active):
            name = setup.tasks[k].name
            alone = (_task_of(res, setup.single(k).name, name) if decoupled else
                     solve_dmft(setup.single(k), opts, progress=part(1 + i)))
            res.single[name] = alone.tasks[name]
            res.single_results[name] = alone
    return res


def _task_of(res: DmftResult, name: str, task: str) -> DmftResult:
    """The DmftResult of `task` alone, named `name`, cut from a glm run `res` on shared inputs
    (its tasks are independent DMFTs: `solve_full_batch`)."""
    out = DmftResult(name, res.protocol, res.engine, res.times, {task: res.tasks[task]}, None, None,
                     None, dict(res.stats))
    out.scan_times = res.scan_times
    out.scan_gen_error = {task: res.scan_gen_error[task]}
    return out

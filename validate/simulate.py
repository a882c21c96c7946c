"""Finite-N simulation of the canonical model (../shared/MODEL.md): the entry points `simulate`
and `simulate_with_single` for every protocol, and the `online` protocol itself (the finite-data
protocols are in validate/full_batch.py and validate/erm.py, which reuse the pieces below).

One-pass SGD on fresh Gaussian inputs, for the `glm` and `shared` students, any number of tasks,
shared or separate inputs, batched over seeds: every weight tensor carries a leading seed
dimension and each SGD step updates all seeds at once (one sample per seed per step).

Construction (exact order parameters at t = 0, per seed):

* teacher B = F G with F Fᵀ = T (eigendecomposition of the Gram T = setup.gram(), tiny negative
  eigenvalues clipped) and G (r×N) with orthonormal rows of squared norm N, so B Bᵀ/N = T;
* student trunk W (K×N; for `glm` the M×N stack of all W_t) = σ₀ H with H orthonormal rows of
  squared norm N orthogonal to G, so W Wᵀ/N = σ₀² I and W Bᵀ/N = 0. G and H are the first r and
  next K columns of the Q factor of an N×(r+K) standard Gaussian matrix.
* heads V_t(0) = setup.heads(), identical for every seed.

Dynamics (MODEL.md, "Training protocols / online"), one fresh sample x per step:

    h = W x/√N,  z_t = V_t g(h)        (glm: z = h, stacked)
    δ = g'(h) ⊙ Σ_t w_t V_tᵀ (softmax(z_t) − e_{y_t})     (glm: δ_t = w_t (softmax(z_t) − e_{y_t}))
    W ← W − (η/√N) δ xᵀ − (ηκ/N) W
    V_t ← V_t − (η_V/N) w_t (softmax(z_t) − e_{y_t}) g(h)ᵀ

with labels y_t = argmax_c(λ_{t,c} + σ_t ξ_{t,c}), λ = B x/√N, fresh noise each sample. With
separate inputs the sample of each step belongs to task t with probability π_t (drawn per seed) and
only that task's loss term is present. Time t = steps/N.

Metrics, per task and seed, on a fixed test set of fresh inputs with their own label noise:
gen_error = P(argmax z_t ≠ argmax λ_t), label_error = P(argmax z_t ≠ y_t), test_loss = mean CE.
The early-stopped minima best_* are taken on the seed-averaged curve over the union of the
requested times and a uniform grid of `grid` extra times on (0, t_last].

The gradient is written by hand (checked against autograd in tests/test_simulate.py).
"""
from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from mtsp.errors import ReachError, RequestError
from mtsp.numeric.workers import one_torch_thread

__all__ = ["SimulationResult", "simulate", "simulate_with_single"]

ACTIVATIONS = ("linear", "relu", "erf", "tanh")
PROTOCOLS = ("online", "full_batch", "erm")
_CHUNK = 256                      # steps of random inputs / noise / task choices drawn at once
_MAX_TEST_BYTES = 2 * 1024 ** 3   # store the test inputs if they fit; else regenerate them
_TEST_BLOCK = 2000                # test samples per block when regenerating


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------

_TASK_JSON_KEYS = ("gen_error", "gen_error_se", "label_error", "test_loss", "best_gen_error",
                   "best_gen_error_time", "best_test_loss", "best_test_loss_time")
# finite-data protocols (full_batch, erm) add the training-set metrics and every standard error
_FINITE_JSON_KEYS = ("label_error_se", "test_loss_se", "train_loss", "train_loss_se",
                     "train_error", "train_error_se")


def _task_json(d: dict) -> dict:
    return {k: _jsonable(d[k]) for k in _TASK_JSON_KEYS + _FINITE_JSON_KEYS
            if k in d and (k in _TASK_JSON_KEYS or "train_loss" in d)}


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


@dataclass
class SimulationResult:
    """Seed-averaged finite-N simulation results of one setup.

    Finite-data protocols (validate/full_batch.py, validate/erm.py) add train_loss, train_error
    and their _se to tasks[name] (and to the JSON, with label_error_se and test_loss_se), and
    describe their integrator or minimiser in `solver`; erm has times None and one-entry arrays.

    tasks[name] holds numpy arrays over `times` — gen_error, gen_error_se, label_error,
    label_error_se, test_loss, test_loss_se — and floats best_gen_error, best_gen_error_time,
    best_test_loss, best_test_loss_time (minima of the seed-averaged curves on `grid_times`).
    curves[name] holds the same six arrays over `grid_times` (requested ∪ extra grid times).
    order_params: seed means at `times` — "Q" (n_times, K, K), "R" (n_times, K, M) and
    "V" (list per task of (n_times, C_t, K); empty for glm).
    single (from simulate_with_single): per task, the single-task baseline in the same format as
    tasks[name], over the multitask `times` (see simulate_with_single).
    """
    setup: str
    protocol: str
    times: np.ndarray
    tasks: dict
    N: int
    seeds: int
    grid_times: np.ndarray = None
    curves: dict = field(default_factory=dict)
    order_params: dict = field(default_factory=dict)
    single: Optional[dict] = None
    single_results: Optional[dict] = None
    device: str = "cpu"
    wall_time: float = 0.0
    solver: dict = field(default_factory=dict)

    def to_json_dict(self) -> dict:
        times = None if self.times is None else _jsonable(np.asarray(self.times, dtype=float))
        out = {"setup": self.setup, "engine": "simulation", "protocol": self.protocol,
               "times": times,
               "tasks": {name: _task_json(d) for name, d in self.tasks.items()},
               "N": int(self.N), "seeds": int(self.seeds)}
        if self.solver:
            out["solver"] = _jsonable(self.solver)
        if self.single is not None:
            out["single"] = {name: _task_json(d) for name, d in self.single.items()}
        return out


# ----------------------------------------------------------------------------------------------
# the model on tensors
# ----------------------------------------------------------------------------------------------

def _activation(name: str):
    """(g, g') for the activation `name`."""
    if name == "linear":
        return (lambda h: h), (lambda h: torch.ones_like(h))
    if name == "relu":
        return (lambda h: torch.clamp(h, min=0.0)), (lambda h: (h > 0).to(h.dtype))
    if name == "erf":
        c = math.sqrt(2.0 / math.pi)
        return (lambda h: torch.erf(h * (1.0 / math.sqrt(2.0)))), \
               (lambda h: c * torch.exp(-0.5 * h * h))
    if name == "tanh":
        return torch.tanh, (lambda h: 1.0 - torch.tanh(h) ** 2)
    raise RequestError("student.activation", f"unknown activation {name!r} (one of {ACTIVATIONS})")


class _Model:
    """Static description of one setup on a device, plus the per-seed weights (W, V, B)."""

    def __init__(self, setup, N: int, seeds: int, device, dtype):
        tr = setup.training
        if tr.protocol not in PROTOCOLS:
            raise ReachError("training.protocol", f"the simulator handles {PROTOCOLS}, "
                             f"not {tr.protocol!r}")
        st = setup.student
        if st.kind not in ("glm", "shared"):
            raise RequestError("student.kind", f"unknown student {st.kind!r}")
        self.kind = st.kind
        self.N, self.S = int(N), int(seeds)
        self.device, self.dtype = torch.device(device), dtype
        self.classes = tuple(int(c) for c in setup.classes)
        self.T = len(self.classes)
        self.M = int(sum(self.classes))
        self.names = tuple(t.name for t in setup.tasks)
        self.Cmax = max(self.classes)
        self.K = self.M if self.kind == "glm" else int(st.hidden)
        self.act_name = "linear" if self.kind == "glm" else st.activation
        self.g, self.gp = _activation(self.act_name)
        self.sigma0 = float(st.init_scale)
        self.lr, self.head_lr = float(tr.lr), float(tr.head_lr)
        self.wd = float(tr.weight_decay or 0.0)
        self.separate = tr.inputs == "separate"
        if tr.inputs not in ("shared", "separate"):
            raise RequestError("training.inputs", f"unknown input design {tr.inputs!r}")

        kw = dict(device=self.device, dtype=dtype)
        self.weights = torch.as_tensor(np.asarray(setup.weights(), float), **kw)     # (T,)
        self.shares = np.asarray(setup.shares(), float)
        self.shares = self.shares / self.shares.sum()
        noise = np.asarray(setup.noise(), float)
        offsets = [int(o) for o in setup.offsets]
        # padded layout (T, Cmax) <-> stacked rows (M)
        pad_idx = np.zeros((self.T, self.Cmax), dtype=np.int64)
        valid = np.zeros((self.T, self.Cmax), dtype=bool)
        flat_pos = np.zeros(self.M, dtype=np.int64)
        row_noise = np.zeros(self.M)
        for t, (C, o) in enumerate(zip(self.classes, offsets)):
            pad_idx[t, :C] = np.arange(o, o + C)
            valid[t, :C] = True
            flat_pos[o:o + C] = t * self.Cmax + np.arange(C)
            row_noise[o:o + C] = noise[t]
        self.pad_idx = torch.as_tensor(pad_idx, device=self.device)
        self.flat_pos = torch.as_tensor(flat_pos, device=self.device)
        neg = np.where(valid, 0.0, -np.inf)
        self.neg_mask = torch.as_tensor(neg, **kw)                                   # (T, Cmax)
        self.row_noise = torch.as_tensor(row_noise, **kw)                            # (M,)
        self.gram = np.asarray(setup.gram(), float)
        if self.kind == "shared":
            V = np.zeros((self.T, self.Cmax, self.K))
            for t, Vt in enumerate(setup.heads()):
                V[t, :self.classes[t]] = np.asarray(Vt, float)
            self.V0 = torch.as_tensor(V, **kw)
        else:
            self.V0 = None

    # -- construction ---------------------------------------------------------------------
    def init_weights(self, gen: torch.Generator):
        """Per seed: B (S,M,N) with B Bᵀ/N = T, W (S,K,N) with W Wᵀ/N = σ₀² I, W Bᵀ = 0."""
        Tm = 0.5 * (self.gram + self.gram.T)
        e, U = np.linalg.eigh(Tm)
        tol = 1e-12 * max(1.0, float(np.abs(e).max()))
        keep = e > tol
        F = U[:, keep] * np.sqrt(e[keep])                                            # (M, r)
        # a class whose teacher logit has zero variance (rank r_t < C_t, aligned map) has the
        # exact zero row of MODEL.md, so its logit ties exactly and argmax keeps the first index
        F[np.diag(Tm) <= tol] = 0.0
        r = int(keep.sum())
        N, S, K = self.N, self.S, self.K
        if N < r + K:
            raise RequestError("N", f"{N} is too small: need N >= rank(T) + K = {r + K}")
        A = torch.randn(S, N, r + K, generator=gen, device=self.device, dtype=self.dtype)
        Qf, _ = torch.linalg.qr(A, mode="reduced")                                   # (S, N, r+K)
        sq = math.sqrt(N)
        G = sq * Qf[:, :, :r].transpose(1, 2)                                        # (S, r, N)
        Ft = torch.as_tensor(F, device=self.device, dtype=self.dtype)
        self.B = torch.matmul(Ft, G).contiguous()                                    # (S, M, N)
        self.W = (self.sigma0 * sq * Qf[:, :, r:r + K].transpose(1, 2)).contiguous()  # (S, K, N)
        self.V = None if self.V0 is None else self.V0.expand(S, -1, -1, -1).clone()  # (S,T,Cmax,K)
        self.rank = r

    # -- fields, logits, labels -----------------------------------------------------------
    def pad(self, rows: torch.Tensor) -> torch.Tensor:
        """(..., M) stacked rows -> (..., T, Cmax) with -inf at padding."""
        return rows[..., self.pad_idx] + self.neg_mask

    def labels(self, lam: torch.Tensor, xi: torch.Tensor):
        """Clean and noisy labels (..., T) from teacher fields lam and noise xi (..., M)."""
        clean = self.pad(lam).argmax(-1)
        noisy = self.pad(lam + self.row_noise * xi).argmax(-1)
        return clean, noisy

    def logits_many(self, h: torch.Tensor) -> torch.Tensor:
        """h (S, n, K) -> z (S, n, T, Cmax) with the current heads."""
        if self.kind == "glm":
            return self.pad(h)
        a = self.g(h)
        return torch.einsum("stck,snk->sntc", self.V, a) + self.neg_mask

    # -- per-sample gradient and one SGD step ------------------------------------------------
    def backward(self, h: torch.Tensor, wm: torch.Tensor, wy: torch.Tensor, V=None):
        """Per-sample gradient of L = Σ_t w_t CE(z_t, y_t) at trunk fields h (S, n, K) with heads
        V (S, T, Cmax, K; default the current ones), wm (S, n, T) = w_t·[task present] and
        wy (S, n, T, Cmax) = wm · onehot(y). Returns (δ = ∂L/∂h (S, n, K),
        E = wm·softmax(z) − wy = ∂L/∂z (S, n, T, Cmax), a = g(h) (S, n, K); None for glm)."""
        if self.kind == "glm":
            E = wm.unsqueeze(-1) * torch.softmax(self.pad(h), -1) - wy
            return E.flatten(-2)[..., self.flat_pos], E, None
        V = self.V if V is None else V
        a = self.g(h)
        z = torch.matmul(V.unsqueeze(1), a[:, :, None, :, None]).squeeze(-1) + self.neg_mask
        E = wm.unsqueeze(-1) * torch.softmax(z, -1) - wy                             # (S,n,T,C)
        back = torch.matmul(E.unsqueeze(-2), V.unsqueeze(1)).sum(dim=(-3, -2))       # (S, n, K)
        return self.gp(h) * back, E, a

    def step(self, x: torch.Tensor, wm: torch.Tensor, wy: torch.Tensor):
        """One SGD step for all seeds. x (S, N); wm (S, T) = w_t·[task present];
        wy (S, T, Cmax) = wm · onehot(y)."""
        N = self.N
        sq = math.sqrt(N)
        h = torch.bmm(self.W, x.unsqueeze(-1)).transpose(1, 2) / sq                  # (S, 1, K)
        delta, E, a = self.backward(h, wm.unsqueeze(1), wy.unsqueeze(1))
        if self.kind == "shared":
            self.V.sub_((self.head_lr / N) * E.squeeze(1).unsqueeze(-1) * a[:, :, None, :])
        if self.wd:
            self.W.mul_(1.0 - self.lr * self.wd / N)
        self.W.baddbmm_(delta.transpose(1, 2), x.unsqueeze(1), alpha=-self.lr / sq)


# ----------------------------------------------------------------------------------------------
# the test set
# ----------------------------------------------------------------------------------------------

class _TestSet:
    """A fixed set of n fresh inputs per seed, with clean labels and noisy labels."""

    def __init__(self, model: _Model, n: int, seed: int):
        self.m, self.n, self.seed = model, int(n), int(seed)
        S, N = model.S, model.N
        itemsize = torch.tensor([], dtype=model.dtype).element_size()
        self.stored = S * self.n * N * itemsize <= _MAX_TEST_BYTES
        gen = torch.Generator(device=model.device).manual_seed(self.seed)
        xi = _randn((S, self.n, model.M), gen, model)
        if self.stored:
            self.X = _randn((S, self.n, N), gen, model)
            lam = torch.bmm(self.X, model.B.transpose(1, 2)) / math.sqrt(N)
        else:
            lam = torch.cat([torch.bmm(Xb, model.B.transpose(1, 2)) / math.sqrt(N)
                             for Xb in self._blocks()], dim=1)
        self.clean, self.noisy = model.labels(lam, xi)                               # (S, n, T)

    def _blocks(self):
        m = self.m
        for i, start in enumerate(range(0, self.n, _TEST_BLOCK)):
            nb = min(_TEST_BLOCK, self.n - start)
            gen = torch.Generator(device=m.device).manual_seed(self.seed + 7919 * (i + 1))
            yield _randn((m.S, nb, m.N), gen, m)

    def fields(self) -> torch.Tensor:
        """Student fields h (S, n, K) of the current W."""
        m = self.m
        Wt = m.W.transpose(1, 2)
        if self.stored:
            return torch.bmm(self.X, Wt) / math.sqrt(m.N)
        return torch.cat([torch.bmm(Xb, Wt) / math.sqrt(m.N) for Xb in self._blocks()], dim=1)

    def evaluate(self):
        """Per seed and task (S, T): gen_error, label_error, test_loss."""
        z = self.m.logits_many(self.fields())                                        # (S,n,T,C)
        pred = z.argmax(-1)
        gen = (pred != self.clean).to(z.dtype).mean(1)
        lab = (pred != self.noisy).to(z.dtype).mean(1)
        ce = torch.logsumexp(z, -1) - torch.gather(z, -1, self.noisy.unsqueeze(-1)).squeeze(-1)
        return gen, lab, ce.mean(1)


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------

def _randn(shape, gen, model):
    """Standard normals of `model.dtype`, drawn in float32 and cast: torch's float32 sampler is
    about 6x faster on CPU, and the draws are N(0, 1) to float32 resolution (tails cut beyond
    ~5.8σ, probability ~1e-8), which is immaterial for inputs and label noise."""
    z = torch.randn(shape, generator=gen, device=model.device, dtype=torch.float32)
    return z.to(model.dtype)


def _one_thread(device):
    """Run single-threaded on CPU: the sequential SGD steps work on tiny tensors, where intra-op
    threads only add synchronisation (milliseconds per op when the cores are shared with other
    jobs), and the evaluations are memory-bound. Parallelism comes from the seed dimension."""
    return one_torch_thread(device)


def seed_stats(values, axis: int = 0):
    """Mean over the seed axis and its standard error (std with ddof 1 / √S; NaN for one seed)."""
    a = values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    S = a.shape[axis]
    mean = a.mean(axis)
    se = a.std(axis, ddof=1) / math.sqrt(S) if S > 1 else np.full_like(mean, np.nan)
    return mean, se


def _seeds(seed: int, k: int):
    return [int(s) for s in np.random.SeedSequence([int(seed), 0x5EED]).generate_state(k)]


def _run(setup, times, N, seeds, device, dtype, test_size, seed, progress, grid):
    t0 = _time.perf_counter()
    times = np.asarray([float(t) for t in times], dtype=float)
    if times.size == 0 or np.any(times < 0):
        raise RequestError("training.times", "need at least one time, all >= 0")
    with torch.no_grad(), _one_thread(torch.device(device)):
        m = _Model(setup, N, seeds, device, dtype)
        s_init, s_train, s_test, s_task = _seeds(seed, 4)
        m.init_weights(torch.Generator(device=m.device).manual_seed(s_init))
        test = _TestSet(m, test_size, s_test)

        t_last = float(times.max())
        grid_t = t_last * np.arange(1, int(grid) + 1) / int(grid) if grid and t_last > 0 \
            else np.zeros(0)
        all_t = np.concatenate([times, grid_t])
        all_steps = np.rint(all_t * m.N).astype(np.int64)
        eval_steps, inverse = np.unique(all_steps, return_inverse=True)
        # nominal time of each evaluation point: the requested one if any, else the grid one
        eval_time = np.empty(eval_steps.size)
        for j in range(all_t.size - 1, -1, -1):
            eval_time[inverse[j]] = all_t[j]
        req_idx = inverse[:times.size]
        req_set = set(int(i) for i in req_idx)

        S, T, Cmax = m.S, m.T, m.Cmax
        n_eval = eval_steps.size
        gen_c = torch.empty(n_eval, S, T, dtype=dtype, device=m.device)
        lab_c = torch.empty_like(gen_c)
        loss_c = torch.empty_like(gen_c)
        Qs, Rs, Vs = {}, {}, {}
        sq = math.sqrt(m.N)

        def record(j):
            gen_c[j], lab_c[j], loss_c[j] = test.evaluate()
            if j in req_set:
                Qs[j] = (torch.bmm(m.W, m.W.transpose(1, 2)) / m.N).mean(0).cpu().numpy()
                Rs[j] = (torch.bmm(m.W, m.B.transpose(1, 2)) / m.N).mean(0).cpu().numpy()
                if m.V is not None:
                    Vs[j] = m.V.mean(0).cpu().numpy()

        g_train = torch.Generator(device=m.device).manual_seed(s_train)
        g_task = torch.Generator(device=m.device).manual_seed(s_task)
        cum = torch.as_tensor(np.cumsum(m.shares)[:-1], device=m.device, dtype=dtype)
        total = int(eval_steps[-1])
        done, j = 0, 0
        while j < n_eval and eval_steps[j] == 0:
            record(j)
            j += 1
        ar = torch.arange(T, device=m.device)
        while done < total:
            b = min(_CHUNK, total - done)
            X = _randn((b, S, m.N), g_train, m)
            xi = _randn((b, S, m.M), g_train, m)
            lam = torch.bmm(X.transpose(0, 1), m.B.transpose(1, 2)).transpose(0, 1) / sq
            _, y = m.labels(lam, xi)                                                 # (b, S, T)
            if m.separate and T > 1:
                u = torch.rand(b, S, generator=g_task, device=m.device, dtype=dtype)
                task = torch.searchsorted(cum, u.contiguous(), right=True)            # (b, S)
                present = (task.unsqueeze(-1) == ar).to(dtype)                        # (b, S, T)
            else:
                present = torch.ones(b, S, T, device=m.device, dtype=dtype)
            wm = present * m.weights                                                  # (b, S, T)
            wy = torch.nn.functional.one_hot(y, Cmax).to(dtype) * wm.unsqueeze(-1)    # (b,S,T,C)
            k = 0
            while k < b:
                # the steps up to the chunk's end or the next evaluation, whichever comes first
                stop = b if j >= n_eval else min(b, k + int(eval_steps[j]) - done)
                for kk in range(k, stop):
                    m.step(X[kk], wm[kk], wy[kk])
                done += stop - k
                k = stop
                while j < n_eval and eval_steps[j] == done:
                    record(j)
                    j += 1
            if progress is not None:
                progress(done / total)

        # ---- summarize ------------------------------------------------------------------
        (gm, gs), (lm, ls), (cm, cs) = (seed_stats(c, axis=1) for c in (gen_c, lab_c, loss_c))
        tasks, curves = {}, {}
        for t, name in enumerate(m.names):
            curves[name] = {"gen_error": gm[:, t], "gen_error_se": gs[:, t],
                            "label_error": lm[:, t], "label_error_se": ls[:, t],
                            "test_loss": cm[:, t], "test_loss_se": cs[:, t]}
            d = {k: v[req_idx] for k, v in curves[name].items()}
            ig, il = int(np.argmin(gm[:, t])), int(np.argmin(cm[:, t]))
            d.update(best_gen_error=float(gm[ig, t]), best_gen_error_time=float(eval_time[ig]),
                     best_test_loss=float(cm[il, t]), best_test_loss_time=float(eval_time[il]))
            tasks[name] = d
        order = {"Q": np.stack([Qs[int(i)] for i in req_idx]),
                 "R": np.stack([Rs[int(i)] for i in req_idx]),
                 "V": [] if m.V is None else
                 [np.stack([Vs[int(i)][t, :m.classes[t]] for i in req_idx]) for t in range(T)]}
    return SimulationResult(setup=getattr(setup, "name", ""), protocol="online", times=times,
                            tasks=tasks, N=m.N, seeds=S, grid_times=eval_time, curves=curves,
                            order_params=order, device=str(m.device),
                            wall_time=_time.perf_counter() - t0)


def simulate(setup, N: int = 1000, seeds: int = 8, device="cpu", dtype=torch.float64,
             test_size: int = 10000, seed: int = 0,
             progress: Optional[Callable[[float], None]] = None, grid: int = 40,
             dt: Optional[float] = None, method: str = "rk4",
             grad_tol: Optional[float] = None, step_check: bool = True,
             report: Optional[Callable[[str], None]] = None) -> SimulationResult:
    """Simulate `setup` at input dimension N, averaging over `seeds` seeds run in parallel.

    online: up to the last of setup.training.times (see the module docstring); full_batch:
    gradient flow on fixed data (validate/full_batch.py; step `dt`, integrator `method`, the
    step checked by step doubling unless step_check is False, its lines sent to `report`); erm:
    the exact regularized minimiser (validate/erm.py; gradient tolerance `grad_tol`).
    test_size and grid concern online and full_batch (erm's errors are exact)."""
    protocol = setup.training.protocol
    if protocol == "erm":
        from .erm import GRAD_TOL, run_erm
        return run_erm(setup, N, seeds, device, dtype, seed, progress,
                       GRAD_TOL if grad_tol is None else grad_tol)
    if protocol not in PROTOCOLS:
        raise ReachError("training.protocol", f"simulation of protocol {protocol!r} is not "
                         f"implemented (one of {PROTOCOLS})")
    if not setup.training.times:
        raise RequestError("training.times", f"the {protocol} protocol needs times")
    return _run_timed(setup, setup.training.times, N, seeds, device, dtype, test_size, seed,
                      progress, grid, dt, method, step_check, report)


def _run_timed(setup, times, N, seeds, device, dtype, test_size, seed, progress, grid, dt,
               method, step_check=True, report=None):
    if setup.training.protocol == "full_batch":
        from .full_batch import run_full_batch
        return run_full_batch(setup, times, N, seeds, device, dtype, test_size, seed, progress,
                              grid, dt, method, step_check, report)
    return _run(setup, times, N, seeds, device, dtype, test_size, seed, progress, grid)


def simulate_with_single(setup, N: int = 1000, seeds: int = 8, device="cpu",
                         dtype=torch.float64, test_size: int = 10000, seed: int = 0,
                         progress: Optional[Callable[[float], None]] = None, grid: int = 40,
                         dt: Optional[float] = None, method: str = "rk4",
                         grad_tol: Optional[float] = None, step_check: bool = True,
                         report: Optional[Callable[[str], None]] = None) -> SimulationResult:
    """simulate(setup) plus each task trained alone (setup.single(t)), reported in `.single`
    (and under "single" in to_json_dict) over the multitask times.

    With separate online inputs the single-task baseline is compared at the same number of task-t
    samples: it is run at times π_t·t, and its best_*_time values are converted back to the
    multitask clock (divided by π_t). Otherwise (shared inputs, or finite data, where task t
    keeps its own P_t samples) it runs at the same times."""
    protocol = setup.training.protocol
    if protocol not in PROTOCOLS:
        raise ReachError("training.protocol", f"simulation of protocol {protocol!r} is not "
                         f"implemented (one of {PROTOCOLS})")
    kw = dict(N=N, seeds=seeds, device=device, dtype=dtype, test_size=test_size, seed=seed,
              grid=grid, dt=dt, method=method, grad_tol=grad_tol)
    step_kw = dict(step_check=step_check, report=report)
    names = [t.name for t in setup.tasks]
    timed = protocol != "erm"
    times = np.asarray(setup.training.times, dtype=float) if timed else None
    pi = np.asarray(setup.shares(), float)
    pi = pi / pi.sum()
    separate = protocol == "online" and setup.training.inputs == "separate" and len(names) > 1
    # rough cost weights for the progress callback: time × rows
    w_multi = float(times.max()) if timed else 1.0
    w_single = [w_multi * (pi[i] if separate else 1.0) for i in range(len(names))]
    total = w_multi + sum(w_single)

    def sub(offset, width):
        if progress is None:
            return None
        return lambda f: progress((offset + width * f) / total)

    res = simulate(setup, progress=sub(0.0, w_multi), **kw, **step_kw)
    single, single_results = {}, {}
    off = w_multi
    for i, name in enumerate(names):
        scale = pi[i] if separate else 1.0
        if setup.tasks[i].weight == 0:  # never trained; alone it is not a valid setup
            off += w_single[i]
            continue
        st = setup.single(name)
        if timed:
            r = _run_timed(st, times * scale, N, seeds, device, dtype, test_size, seed,
                           sub(off, w_single[i]), grid, dt, method, **step_kw)
        else:
            r = simulate(st, progress=sub(off, w_single[i]), **kw)
        off += w_single[i]
        d = dict(r.tasks[name])
        if "best_gen_error_time" in d:
            d["best_gen_error_time"] = d["best_gen_error_time"] / scale
            d["best_test_loss_time"] = d["best_test_loss_time"] / scale
        single[name] = d
        single_results[name] = r
    res.single = single
    res.single_results = single_results
    if progress is not None:
        progress(1.0)
    return res

"""Finite-N simulation of the `erm` protocol (../shared/MODEL.md): the exact regularized minimiser.

Per seed, on the training set of validate/finite_data.py (glm student, W = the M×N stack of the
W_t, z_t = W_t x/√N), the convex objective

    F(W) = Σ_μ Σ_t wm[μ, t] CE(z_t(x^μ), y_t^μ) + (λ/2) Σ_t ‖W_t‖²_F + (μ/2) Σ_{t<s} ‖W_t − W_s‖²_F

(λ = ridge, μ = coupling, wm = w_t·[sample of task t]) with

    ∇F = Eᵀ X/√N + λ W + μ (L ⊗ I) W,   E[μ, (t, c)] = wm (softmax(z_t) − e_{y_t})_c,
    ∇²F·D = Ėᵀ X/√N + λ D + μ (L ⊗ I) D,  Ė_t = wm (p ⊙ ż_t − p (pᵀ ż_t)),  ż = D x/√N,

where L = T I − 11ᵀ is the Laplacian of the all-pairs task graph (needs equal C_t). As in
MODEL.md the data term is a sum over the P = αN samples and the penalties act on W itself
(entries O(1), W Wᵀ/N = Q), so both are O(N); full_batch with weight decay κ has the same
stationary point at λ = ακ (tests/test_finite_sim.py::test_full_batch_long_time_is_erm). It is
minimised in float64 by a truncated Newton method: the Newton system ∇²F d = −∇F solved by
conjugate gradients (Hessian–vector products, batched over seeds with per-seed step sizes) to a
relative residual min(0.1, √g) (g below), then a backtracking Armijo line search per seed; all
seeds start from W = 0 (the minimiser is unique for λ > 0). It stops when every seed has

    g = ‖∇F‖_F / √(M N) ≤ grad_tol       (the root-mean-square gradient entry),

and reports the largest g reached; a seed that does not get there raises (e.g. λ = 0 on
separable data, where the minimiser does not exist). Errors on fresh inputs are exact from the
minimiser's order parameters (finite_data.exact_metrics); training loss and error on its data.
"""
from __future__ import annotations

import math
import time as _time
from typing import Callable, Optional

import numpy as np
import torch

from mtsp.errors import ConvergenceError, ReachError

from .finite_data import Dataset, build_problem, exact_metrics, order_parameters, train_metrics
from .simulate import SimulationResult, _Model, _one_thread, seed_stats

__all__ = ["ErmObjective", "newton_cg", "run_erm"]

GRAD_TOL = 1e-10


class ErmObjective:
    """F, ∇F and ∇²F·D of the module docstring for all seeds at once (W, D: (S, M, N))."""

    def __init__(self, m: _Model, data: Dataset, ridge: float, coupling: float):
        if m.kind != "glm":
            raise ReachError("student.kind", "erm needs a glm student")
        self.m, self.data = m, data
        self.ridge, self.coupling = float(ridge), float(coupling)
        self.sq = math.sqrt(m.N)

    def _couple(self, W: torch.Tensor) -> torch.Tensor:
        """(L ⊗ I) W, with W viewed as (S, T, C, N)."""
        m = self.m
        Wt = W.view(m.S, m.T, m.Cmax, m.N)
        return (m.T * Wt - Wt.sum(1, keepdim=True)).view_as(W)

    def _penalty(self, W: torch.Tensor) -> torch.Tensor:
        f = 0.5 * self.ridge * W.pow(2).sum((1, 2))
        if self.coupling:
            f = f + 0.5 * self.coupling * (W * self._couple(W)).sum((1, 2))
        return f

    def _penalty_grad(self, W: torch.Tensor) -> torch.Tensor:
        g = self.ridge * W
        if self.coupling:
            g = g + self.coupling * self._couple(W)
        return g

    def logits(self, W: torch.Tensor) -> torch.Tensor:
        return self.m.pad(torch.bmm(self.data.X, W.transpose(1, 2)) / self.sq)        # (S,P,T,C)

    def value(self, W: torch.Tensor) -> torch.Tensor:
        """F per seed (S,)."""
        z = self.logits(W)
        ce = torch.logsumexp(z, -1) - torch.gather(z, -1, self.data.y.unsqueeze(-1)).squeeze(-1)
        return (self.data.wm * ce).sum((1, 2)) + self._penalty(W)

    def value_grad(self, W: torch.Tensor):
        """(F (S,), ∇F (S, M, N), softmax probabilities p (S, P, T, C) for hessian_vector)."""
        d = self.data
        z = self.logits(W)
        ce = torch.logsumexp(z, -1) - torch.gather(z, -1, d.y.unsqueeze(-1)).squeeze(-1)
        f = (d.wm * ce).sum((1, 2)) + self._penalty(W)
        p = torch.softmax(z, -1)
        E = d.wm.unsqueeze(-1) * p - d.wy
        g = torch.bmm(E.flatten(-2)[..., self.m.flat_pos].transpose(1, 2), d.X) / self.sq
        return f, g + self._penalty_grad(W), p

    def hessian_vector(self, p: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
        """∇²F·D at the point whose softmax probabilities are p."""
        m, d = self.m, self.data
        zd = (torch.bmm(d.X, D.transpose(1, 2)) / self.sq)[..., m.pad_idx]            # (S,P,T,C)
        Ed = d.wm.unsqueeze(-1) * p * (zd - (p * zd).sum(-1, keepdim=True))
        return torch.bmm(Ed.flatten(-2)[..., m.flat_pos].transpose(1, 2), d.X) / self.sq \
            + self._penalty_grad(D)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum((1, 2))


def _cg(hv: Callable, b: torch.Tensor, tol: torch.Tensor, active: torch.Tensor, max_iter: int):
    """Conjugate gradients for H x = b per seed (H symmetric positive semidefinite), from x = 0,
    until ‖r‖ ≤ tol (per seed) or max_iter. Inactive seeds keep x = 0. Returns (x, iterations)."""
    x = torch.zeros_like(b)
    r = b * active[:, None, None]
    p = r.clone()
    rr = _dot(r, r)
    it = 0
    running = active & (rr.sqrt() > tol)
    while it < max_iter and bool(running.any()):
        Hp = hv(p)
        pHp = _dot(p, Hp)
        alpha = torch.where(running & (pHp > 0), rr / torch.where(pHp > 0, pHp, 1.0), 0.0)
        x = x + alpha[:, None, None] * p
        r = r - alpha[:, None, None] * Hp
        rr_new = _dot(r, r)
        beta = torch.where(running, rr_new / torch.where(rr > 0, rr, 1.0), 0.0)
        p = (r + beta[:, None, None] * p) * running[:, None, None]
        rr = torch.where(running, rr_new, rr)
        running = running & (rr.sqrt() > tol) & (pHp > 0)
        it += 1
    return x, it


def newton_cg(obj: ErmObjective, W0: torch.Tensor, grad_tol: float = GRAD_TOL,
              max_newton: int = 100, max_cg: int = 2000, progress=None):
    """Minimise obj for every seed from W0 (module docstring). Returns (W, info) with info
    {"grad_rms": per-seed final g, "newton_iterations", "cg_iterations"}; raises ValueError if a
    seed's g stays above grad_tol."""
    W = W0.clone()
    scale = 1.0 / math.sqrt(W.shape[1] * W.shape[2])
    f, g, p = obj.value_grad(W)
    gn = g.flatten(1).norm(dim=1) * scale
    g0 = float(gn.max())
    n_newton = n_cg = 0
    while bool((gn > grad_tol).any()) and n_newton < max_newton:
        active = gn > grad_tol
        forcing = torch.clamp(gn.sqrt(), max=0.1)
        d, k = _cg(lambda v: obj.hessian_vector(p, v), -g, forcing * gn / scale, active, max_cg)
        n_cg += k
        slope = _dot(g, d)                                                           # (S,) ≤ 0
        step = torch.ones_like(f)
        pending = active.clone()
        W_new = W.clone()
        for _ in range(60):
            trial = W + step[:, None, None] * d
            ft = obj.value(trial)
            # Armijo, or a decrease predicted below float64 resolution of F (quadratic regime)
            ok = (ft <= f + 1e-4 * step * slope) | (-slope <= 1e-13 * (1.0 + f.abs()))
            take = pending & ok
            W_new[take] = trial[take]
            pending = pending & ~ok
            if not bool(pending.any()):
                break
            step = torch.where(pending, 0.5 * step, step)
        if bool(pending.any()):
            raise ConvergenceError("training.ridge", f"the erm line search failed (seeds "
                             f"{pending.nonzero().flatten().tolist()}, gradient rms "
                             f"{float(gn.max()):.3g}); the minimiser may not exist")
        W = W_new
        f, g, p = obj.value_grad(W)
        gn = g.flatten(1).norm(dim=1) * scale
        n_newton += 1
        if progress is not None and g0 > 0:
            done = math.log(g0 / max(float(gn.max()), grad_tol)) / math.log(g0 / grad_tol) \
                if g0 > grad_tol else 1.0
            progress(min(1.0, max(0.0, done)))
    if bool((gn > grad_tol).any()):
        raise ConvergenceError("training.ridge", f"erm did not converge in {n_newton} Newton steps: "
                         f"gradient rms {float(gn.max()):.3g} > {grad_tol:g} (seeds "
                         f"{(gn > grad_tol).nonzero().flatten().tolist()}); with ridge "
                         f"{obj.ridge:g} the data may be separable")
    return W, {"grad_rms": gn.cpu().numpy(), "newton_iterations": n_newton,
               "cg_iterations": n_cg}


def run_erm(setup, N: int, seeds: int, device, dtype, seed: int,
            progress: Optional[Callable[[float], None]] = None,
            grad_tol: float = GRAD_TOL) -> SimulationResult:
    """Simulate `setup` (erm): per seed a training set and its exact minimiser (module
    docstring). The teacher and the training sets are those of full_batch at the same seed."""
    from ..numeric.model import theory_model
    t0 = _time.perf_counter()
    tr = setup.training
    with torch.no_grad(), _one_thread(torch.device(device)):
        m, data, _ = build_problem(setup, N, seeds, device, dtype, seed)
        obj = ErmObjective(m, data, tr.ridge, tr.coupling)
        W, info = newton_cg(obj, torch.zeros_like(m.W), grad_tol, progress=progress)
        Q, R = order_parameters(m, W)
        gen, lab, loss = exact_metrics(theory_model(setup), m, Q, R)
        trl, tre = train_metrics(m, data, W)
    tasks = {}
    for t, name in enumerate(m.names):
        d = {}
        for key, vals in (("gen_error", gen), ("label_error", lab), ("test_loss", loss),
                          ("train_loss", trl), ("train_error", tre)):
            mean, se = seed_stats(vals[:, t])
            d[key], d[key + "_se"] = np.array([mean]), np.array([se])
        tasks[name] = d
    solver = {"method": "newton-cg", "grad_tol": grad_tol,
              "grad_rms_max": float(info["grad_rms"].max()),
              "newton_iterations": info["newton_iterations"],
              "cg_iterations": info["cg_iterations"]}
    return SimulationResult(setup=getattr(setup, "name", ""), protocol="erm", times=None,
                            tasks=tasks, N=m.N, seeds=m.S, curves={},
                            order_params={"Q": Q.mean(0)[None], "R": R.mean(0)[None], "V": []},
                            device=str(m.device), wall_time=_time.perf_counter() - t0,
                            solver=solver)

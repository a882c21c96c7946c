"""Pieces shared by the finite-data simulators (`full_batch`, `erm`; ../shared/MODEL.md).

Training set, per seed (drawn once, frozen):

* shared inputs: P = round(αN) inputs x^μ ~ N(0, I_N), each with a label for every task;
* separate inputs: task t has its own P_t = round(α_t N) inputs with only task t's label; the
  datasets are stacked (task 0's samples first) with the mask present[μ, t] = [μ ∈ D_t];
* labels y_t = argmax_c(λ_{t,c} + σ_t ξ_{t,c}), λ = B x/√N, noise ξ drawn once per sample.

Every per-sample loss term carries wm[μ, t] = w_t·present[μ, t], so the data term of both
protocols is Σ_μ Σ_t wm[μ, t] CE(z_t(x^μ), y_t^μ).

Test metrics exactly from the order parameters: for fixed weights the fields of a fresh input,
(h, λ, ν), are exactly Gaussian with covariance given by Q = W Wᵀ/N, R = W Bᵀ/N and T = B Bᵀ/N
(= setup.gram() by construction), so gen_error, label_error and test_loss of one seed are the
theory's `numeric.metrics.task_metrics` at that seed's (Q, R, V) — no test-set sampling error
(to that module's accuracy: ≲ 1e-8 for linear trunks and nonlinear ones with K ≤ 2; randomised
QMC with standard error ≈ 1e-4 for nonlinear trunks with K ≥ 3, not added to the seed SE).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mtsp.errors import RequestError

from .simulate import _Model, _randn, _seeds

__all__ = ["Dataset", "make_dataset", "build_problem", "exact_metrics", "train_metrics",
           "order_parameters"]


@dataclass
class Dataset:
    """X (S, P, N) inputs; y (S, P, T) noisy labels; wm (S, P, T) = w_t·present;
    wy (S, P, T, Cmax) = wm·onehot(y); present (P, T) as a bool tensor; sizes[t] = P_t."""
    X: torch.Tensor
    y: torch.Tensor
    wm: torch.Tensor
    wy: torch.Tensor
    present: torch.Tensor
    sizes: tuple

    @property
    def P(self) -> int:
        return int(self.X.shape[1])


def sample_sizes(setup, N: int) -> tuple:
    """(P,) for shared inputs, (P_1, ..., P_T) for separate ones: round(α N)."""
    tr = setup.training
    if tr.inputs == "separate":
        sizes = tuple(int(round(float(t.alpha) * N)) for t in setup.tasks)
        keys = [f"tasks.{t.name}.alpha" for t in setup.tasks]
    else:
        sizes = (int(round(float(tr.alpha) * N)),)
        keys = ["training.alpha"]
    for P, key in zip(sizes, keys):
        if P < 1:
            raise RequestError(key, f"round(alpha N) = {P} samples at N = {N}; need at least 1")
    return sizes


def make_dataset(m: _Model, setup, gen: torch.Generator) -> Dataset:
    """The training sets of all seeds (see the module docstring); m.B must be built."""
    sizes = sample_sizes(setup, m.N)
    P = sum(sizes)
    present = torch.ones(P, m.T, dtype=torch.bool, device=m.device)
    if len(sizes) > 1:
        present[:] = False
        start = 0
        for t, Pt in enumerate(sizes):
            present[start:start + Pt, t] = True
            start += Pt
    X = _randn((m.S, P, m.N), gen, m)
    xi = _randn((m.S, P, m.M), gen, m)
    lam = torch.bmm(X, m.B.transpose(1, 2)) / math.sqrt(m.N)
    _, y = m.labels(lam, xi)                                                          # (S, P, T)
    wm = (present.to(m.dtype) * m.weights).expand(m.S, P, m.T).contiguous()
    wy = torch.nn.functional.one_hot(y, m.Cmax).to(m.dtype) * wm.unsqueeze(-1)
    return Dataset(X, y, wm, wy, present, sizes)


def build_problem(setup, N: int, seeds: int, device, dtype, seed: int):
    """(model with teacher and initial weights, training sets, test-set seed) of one run: the
    random streams of the online simulator (teacher and initial weights, then data, then test
    set), so erm and full_batch at the same seed share teacher and training sets."""
    m = _Model(setup, N, seeds, device, dtype)
    s_init, s_train, s_test = _seeds(seed, 4)[:3]
    m.init_weights(torch.Generator(device=m.device).manual_seed(s_init))
    data = make_dataset(m, setup, torch.Generator(device=m.device).manual_seed(s_train))
    return m, data, s_test


def order_parameters(m: _Model, W: torch.Tensor):
    """Per seed Q = W Wᵀ/N (S, K, K) and R = W Bᵀ/N (S, K, M), as numpy arrays."""
    Q = torch.bmm(W, W.transpose(1, 2)) / m.N
    R = torch.bmm(W, m.B.transpose(1, 2)) / m.N
    return Q.cpu().numpy(), R.cpu().numpy()


def exact_metrics(theory, m: _Model, Q: np.ndarray, R: np.ndarray, V=None):
    """gen_error, label_error, test_loss (each (S, T)) of every seed on a fresh input, from its
    order parameters (module docstring). theory = numeric.model.theory_model(setup);
    V (S, T, Cmax, K) the heads of a shared student (None for glm)."""
    from ..numeric.metrics import task_metrics
    from ..numeric.model import State
    S = Q.shape[0]
    out = np.empty((3, S, m.T))
    for s in range(S):
        heads = theory.heads0 if V is None else \
            tuple(np.asarray(V[s, t, :C], float) for t, C in enumerate(m.classes))
        mets = task_metrics(theory, State(Q[s], R[s], heads))
        for t, r in enumerate(mets):
            out[:, s, t] = (r.gen_error, r.label_error, r.test_loss)
    return out[0], out[1], out[2]


def train_metrics(m: _Model, data: Dataset, W: torch.Tensor):
    """Training loss (mean CE of task t over its samples, unweighted by w_t) and training error
    (fraction with argmax z_t ≠ y_t, the training label), each (S, T), of trunk W and the
    model's current heads m.V."""
    z = m.logits_many(torch.bmm(data.X, W.transpose(1, 2)) / math.sqrt(m.N))
    ce = torch.logsumexp(z, -1) - torch.gather(z, -1, data.y.unsqueeze(-1)).squeeze(-1)
    wrong = (z.argmax(-1) != data.y).to(m.dtype)
    mask = data.present.to(m.dtype)                                                  # (P, T)
    count = mask.sum(0)
    return (ce * mask).sum(1) / count, (wrong * mask).sum(1) / count

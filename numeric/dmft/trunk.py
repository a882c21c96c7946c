"""Sample side of a shared trunk with trained heads (docs/DMFT.md §6–7): the K trunk fields h of
one training sample, activations a = g(h), logits z_t = V_t a, loss L = Σ_t c_t CE(z_t, y_t):

    b = Σ_t c_t V_tᵀ(p_t − e_{y_t})              (the gradient with respect to a),
    δ = ∂L/∂h = g′(h) ⊙ b,
    D = ∂δ/∂h = diag g′(h) [Σ_t c_t V_tᵀ(diag p_t − p_t p_tᵀ)V_t] diag g′(h) + diag(g″(h) ⊙ b),

and the heads follow the full-batch gradient, a weighted path mean,
V_t ← V_t − η_V h_k Σ_p ω_p c_{p,t} (p_t − e_{y_t}) g(h_p)ᵀ.

Shared inputs: every path carries every task's label, c_{p,t} = w_t, ω_p = 1/n.  Separate inputs:
path p belongs to task τ(p) = p mod T (one sample-side population per task, interleaved so that
every prefix of the paths holds the tasks in equal numbers up to one path), carries only that
task's label, c_{p,t} = w_t 1[t = τ(p)], and the populations are mixed with the weights
α_t/Σ_s α_s (`path_weights`): the weight side sees (1/α_tot) Σ_t α_t E_t[·].

relu: g″ is a Dirac mass at the kink, where training drives many fields (a sliding mode); `kink`
marks the loss, whose D here leaves that term out: the engine finds relu's response by Gaussian
integration by parts instead, which needs only δ (`response.SteinResponse`; docs/DMFT.md §7).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from mtsp.errors import RequestError

from .losses import PathData, SampleLoss, _ce_and_error, _sandwich, _softmax, teacher_factor

__all__ = ["ACTIVATIONS", "Trunk", "TrunkData"]

_C = np.sqrt(2.0 / np.pi)


def _lin(h):
    return h, np.ones_like(h), np.zeros_like(h)


def _relu(h):
    return np.maximum(h, 0.0), (h > 0).astype(h.dtype), np.zeros_like(h)   # g″: the kink, see module


def _erf(h):
    e = _C * np.exp(-0.5 * h * h)
    return erf(h / np.sqrt(2.0)), e, -h * e


def _tanh(h):
    t = np.tanh(h)
    s = 1.0 - t * t
    return t, s, -2.0 * t * s


ACTIVATIONS = {"linear": _lin, "relu": _relu, "erf": _erf, "tanh": _tanh}
"""(g, g′, g″) of each activation of MODEL.md (erf: erf(h/√2)); relu's g″ is singular (module)."""


@dataclass
class TrunkData(PathData):
    """PathData with the per-path task weights c (n, T) (w_t, or w_t 1[t = τ(p)] with separate
    inputs)."""
    coef: np.ndarray = None

    def take(self, idx) -> "TrunkData":
        return TrunkData(self.lam[idx], self.label[idx], self.coef[idx])


class Trunk(SampleLoss):
    """Shared trunk h ∈ R^K with activation g and trained heads (module docstring);
    `alphas` (one per task) for separate inputs, None for shared ones."""

    def __init__(self, classes, noise, weights, heads0, head_lr: float, activation: str = "linear",
                 alphas=None):
        if activation not in ACTIVATIONS:
            raise RequestError("student.activation", f"one of {sorted(ACTIVATIONS)}, not {activation!r}")
        self.classes = tuple(int(c) for c in classes)
        self.noise = np.asarray(noise, float)
        self.weights = np.asarray(weights, float)
        self.heads0 = tuple(np.asarray(v, float) for v in heads0)
        self.head_lr = float(head_lr)
        self.activation = activation
        self.act = ACTIVATIONS[activation]
        self.kink = activation == "relu"
        self.dim = self.heads0[0].shape[1]
        self.M = sum(self.classes)
        self.T = len(self.classes)
        self.offsets = np.concatenate([[0], np.cumsum(self.classes)[:-1]]).astype(int)
        self.separate = alphas is not None and self.T > 1
        if self.separate:
            a = np.asarray(alphas, float)
            self.share = a / a.sum()

    # --- populations ------------------------------------------------------------------------
    def task_of_path(self, n: int) -> np.ndarray | None:
        return np.arange(n) % self.T if self.separate else None

    def path_weights(self, n: int) -> np.ndarray:
        """ω (n,), Σ ω = 1, of the first n paths: 1/n, or with separate inputs α_t/α_tot shared
        equally by the paths of task t among them."""
        if not self.separate:
            return np.full(n, 1.0 / n)
        tau = self.task_of_path(n)
        counts = np.bincount(tau, minlength=self.T)
        if np.any(counts == 0):
            raise RequestError("n_paths", f"separate inputs need at least {self.T} paths")
        return self.share[tau] / counts[tau]

    # --- data -------------------------------------------------------------------------------
    def normals(self, gram):
        return 2 * self.M

    def sample(self, gram, normals):
        lam = normals[:, :self.M] @ teacher_factor(gram).T
        nu = lam + normals[:, self.M:] * np.concatenate(
            [np.full(c, s) for c, s in zip(self.classes, self.noise)])
        labels = np.stack([np.argmax(nu[:, o:o + c], axis=1)
                           for o, c in zip(self.offsets, self.classes)], axis=1)
        n = len(lam)
        coef = np.tile(self.weights, (n, 1))
        if self.separate:
            coef *= np.arange(self.T)[None, :] == self.task_of_path(n)[:, None]
        return TrunkData(lam, labels, coef)

    def initial_state(self):
        return tuple(v.copy() for v in self.heads0)

    # --- the loss ---------------------------------------------------------------------------
    def _at(self, h, data, state):
        """(g, g′, g″ at h; per task c_t (p_t − e_{y_t}) (n, C_t), p_t and the logits z_t), kept for
        the last (h, data, state): the engine asks for δ, the training metrics and the heads' step
        at the same fields, and the softmax is computed once for the three."""
        last = self._last
        if last is not None and last[0] is h and last[1] is data and last[2] is state:
            return last[3]
        a, g1, g2 = self.act(h)
        out = (a, g1, g2), self._errors(a, data, state, logits=True)
        self._last = (h, data, state, out)
        return out

    _last = None

    def _errors(self, a, data, V, logits: bool = False):
        """Per task: c_t (p_t − e_{y_t}) (n, C_t) and p_t at activations a (and z_t with `logits`)."""
        out = []
        for t, Vt in enumerate(V):
            z = a @ Vt.T
            p = _softmax(z)
            e = p.copy()
            e[np.arange(len(e)), data.label[:, t]] -= 1.0
            out.append((data.coef[:, t, None] * e, p, z) if logits else (data.coef[:, t, None] * e, p))
        return out

    def grad(self, h, data, state):
        """δ (n, K) alone."""
        (a, g1, _), errs = self._at(h, data, state)
        b = sum(e @ Vt for (e, _, _), Vt in zip(errs, state))
        return g1 * b

    def head_grad(self, h, data, state):
        """b = Σ_t c_t V_tᵀ(p_t − e_{y_t}) (n, K), the gradient with respect to the activations."""
        (a, _, _), errs = self._at(h, data, state)
        return sum(e @ Vt for (e, _, _), Vt in zip(errs, state))

    def grad_hess(self, h, data, state):
        """(δ, D) of the module docstring; for relu D without the kink's singular term."""
        (a, g1, g2), errs = self._at(h, data, state)
        b = np.zeros_like(h)
        H = np.zeros((len(h), self.dim, self.dim))
        for (e, p, _), Vt, c in zip(errs, state, data.coef.T):
            b += e @ Vt
            pv = p @ Vt
            H += c[:, None, None] * (_sandwich(p, Vt) - pv[:, :, None] * pv[:, None, :])
        if self.activation == "linear":
            return b, H
        D = g1[:, :, None] * H * g1[:, None, :]
        idx = np.arange(self.dim)
        D[:, idx, idx] += g2 * b
        return g1 * b, D

    def advance(self, state, h, data, step):
        w = self.path_weights(len(h))
        (a, _, _), errs = self._at(h, data, state)
        return tuple(Vt - self.head_lr * step * ((w[:, None] * e).T @ a)
                     for (e, _, _), Vt in zip(errs, state))

    def train_metrics(self, h, data, state):
        """Per path and task (n, T): cross-entropy and error; NaN where the path carries no label
        of the task (separate inputs), so that nan-means are the tasks' training averages."""
        errs = self._at(h, data, state)[1]
        ce, err = (np.stack(x, axis=1) for x in
                   zip(*(_ce_and_error(z, data.label[:, t]) for t, (_, _, z) in enumerate(errs))))
        if self.separate:
            off = np.arange(self.T)[None, :] != self.task_of_path(len(h))[:, None]
            ce[off] = np.nan
            err[off] = np.nan
        return ce, err


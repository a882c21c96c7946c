"""Sample-side losses of the DMFT in reduced field coordinates (docs/DMFT.md §1).

A loss provides, for the frozen data of each path (teacher fields λ, label), the gradient δ and
its Jacobian D = ∂δ/∂h of the per-sample loss with respect to the d student fields h of a path.

Softmax cross-entropy of one task with C classes: the loss depends on the C logits z only through
their differences, and its gradient p − e_y (p = softmax z) sums to zero, so the d = C − 1 fields
h = Uᵀ z with U (C × (C−1)) an orthonormal basis of the complement of the all-ones vector carry
the whole dynamics (z = U h + the all-ones direction, which only weight decay moves):

    δ = Uᵀ (p − e_y),   D = Uᵀ (diag p − p pᵀ) U.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtsp.errors import ReachError, RequestError

__all__ = ["CrossEntropy", "LinearTrunk", "PathData", "SampleLoss", "centred_basis", "sqrt_psd"]


def centred_basis(C: int) -> np.ndarray:
    """U (C × (C−1)): orthonormal columns orthogonal to the all-ones vector (Helmert basis)."""
    U = np.zeros((C, C - 1))
    for j in range(1, C):
        U[:j, j - 1] = 1.0 / np.sqrt(j * (j + 1))
        U[j, j - 1] = -j / np.sqrt(j * (j + 1))
    return U


def sqrt_psd(A: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semidefinite matrix (negative rounding clipped)."""
    w, V = np.linalg.eigh(A)
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


@dataclass
class PathData:
    """Frozen data of n paths (one training sample each): teacher fields λ (n, C_teacher) and
    whatever the loss needs besides (labels)."""
    lam: np.ndarray
    label: np.ndarray


class SampleLoss:
    """What the engine asks of a sample-side loss: `dim` fields per path; `normals(gram)` standard
    normals per path for its data and `sample(gram, normals)` the frozen data; `grad_hess(h,
    data, state)` → (δ, D); `train_metrics(h, data, state)` → per-path (loss, error);
    finitely many trained parameters (heads) in `state`: `initial_state()` and
    `advance(state, h, data, step)` (one gradient step of the empirical risk, path averages)."""
    dim: int

    def initial_state(self):
        return None

    def advance(self, state, h, data, step):
        return state


class CrossEntropy(SampleLoss):
    """Softmax cross-entropy of one task with C classes and noisy argmax labels
    y = argmax(λ + σ ξ) (MODEL.md), in the d = C − 1 centred coordinates."""

    def __init__(self, classes: int, noise: float):
        if classes < 2:
            raise RequestError("classes", f"need C ≥ 2, got {classes}")
        self.C = int(classes)
        self.noise = float(noise)
        self.U = centred_basis(self.C)
        self.dim = self.C - 1

    def normals(self, gram: np.ndarray) -> int:
        """How many standard normals one path's data needs: C for λ, C for the label noise ξ."""
        return 2 * self.C

    def sample(self, gram: np.ndarray, normals: np.ndarray) -> PathData:
        """λ = T^{1/2} g ~ N(0, T) (T may be singular) and the frozen noisy label
        y = argmax(λ + σ ξ) of each path, from standard normals (g, ξ) = normals (n, 2C)."""
        lam = normals[:, :self.C] @ sqrt_psd(gram).T
        xi = normals[:, self.C:]
        return PathData(lam, np.argmax(lam + self.noise * xi, axis=1))

    def logits(self, h: np.ndarray) -> np.ndarray:
        return h @ self.U.T

    def grad_hess(self, h: np.ndarray, data: PathData, state=None):
        """(δ (n, d), D (n, d, d)) at reduced fields h (n, d)."""
        z = self.logits(h)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = p.copy()
        g[np.arange(len(g)), data.label] -= 1.0
        delta = g @ self.U
        pu = p @ self.U                                                     # (n, d) = Uᵀ p
        D = _sandwich(p, self.U) - pu[:, :, None] * pu[:, None, :]
        return delta, D

    def train_metrics(self, h: np.ndarray, data: PathData, state=None):
        """Per path: cross-entropy and the error indicator argmax z ≠ y."""
        return _ce_and_error(self.logits(h), data.label)


def _sandwich(p: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Vᵀ diag(p_n) V for every row p_n of p (n, C), V (C, K): one (n × C)(C × K²) product."""
    C, K = V.shape
    return (p @ (V[:, :, None] * V[:, None, :]).reshape(C, K * K)).reshape(len(p), K, K)


def _ce_and_error(z: np.ndarray, label: np.ndarray):
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return lse - z[np.arange(len(z)), label], (np.argmax(z, axis=1) != label).astype(float)


def _softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


class LinearTrunk(SampleLoss):
    """Shared linear trunk h = Wx/√N ∈ R^K with trained heads, shared inputs: every path carries
    the labels of all tasks, L = Σ_t w_t CE(V_t h, y_t):

        δ = Σ_t w_t V_tᵀ(p_t − e_{y_t}),   D = Σ_t w_t V_tᵀ(diag p_t − p_t p_tᵀ)V_t,
        V_t ← V_t − η_V h_k w_t E[(p_t − e_{y_t}) hᵀ]   (full-batch gradient: the path mean).

    `train_metrics` returns per-path (loss, error) of each task as (n, T) arrays."""

    def __init__(self, classes, noise, weights, heads0, head_lr: float):
        self.classes = tuple(int(c) for c in classes)
        self.noise = np.asarray(noise, float)
        self.weights = np.asarray(weights, float)
        self.heads0 = tuple(np.asarray(v, float) for v in heads0)
        self.head_lr = float(head_lr)
        self.dim = self.heads0[0].shape[1]
        self.M = sum(self.classes)
        self.offsets = np.concatenate([[0], np.cumsum(self.classes)[:-1]]).astype(int)

    def normals(self, gram):
        return 2 * self.M

    def sample(self, gram, normals):
        lam = normals[:, :self.M] @ sqrt_psd(gram).T
        nu = lam + normals[:, self.M:] * np.concatenate(
            [np.full(c, s) for c, s in zip(self.classes, self.noise)])
        labels = np.stack([np.argmax(nu[:, o:o + c], axis=1)
                           for o, c in zip(self.offsets, self.classes)], axis=1)
        return PathData(lam, labels)

    def initial_state(self):
        return tuple(v.copy() for v in self.heads0)

    def _errors(self, h, data, V):
        """Per task: p_t − e_{y_t} (n, C_t) and p_t."""
        out = []
        for t, Vt in enumerate(V):
            p = _softmax(h @ Vt.T)
            e = p.copy()
            e[np.arange(len(e)), data.label[:, t]] -= 1.0
            out.append((e, p))
        return out

    def grad_hess(self, h, data, state):
        delta = np.zeros_like(h)
        D = np.zeros((len(h), self.dim, self.dim))
        for (e, p), Vt, w in zip(self._errors(h, data, state), state, self.weights):
            delta += w * e @ Vt
            pv = p @ Vt
            D += w * (_sandwich(p, Vt) - pv[:, :, None] * pv[:, None, :])
        return delta, D

    def advance(self, state, h, data, step):
        errs = self._errors(h, data, state)
        return tuple(Vt - self.head_lr * step * w * (e.T @ h) / len(h)
                     for (e, _), Vt, w in zip(errs, state, self.weights))

    def train_metrics(self, h, data, state):
        ce, err = zip(*(_ce_and_error(h @ Vt.T, data.label[:, t]) for t, Vt in enumerate(state)))
        return np.stack(ce, axis=1), np.stack(err, axis=1)

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

from mtsp.errors import RequestError

__all__ = ["CrossEntropy", "PathData", "SampleLoss", "centred_basis", "sqrt_psd", "teacher_factor"]


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


def teacher_factor(gram: np.ndarray) -> np.ndarray:
    """F with F Fᵀ = T (`sqrt_psd`) whose rows are exactly zero where T's diagonal is (≤ 1e-12 of
    its largest eigenvalue): a class whose teacher logit has zero variance (rank r_t < C_t with an
    aligned class map) has the exact zero logit of MODEL.md, so its ties with the other such
    classes are exact and argmax keeps the first index, as in the simulator
    (`validate.simulate`); with rounding noise in those rows the tie was broken at random
    (wide seed 6 setup 5: 1/8 of task B's samples, docs/DMFT.md §5)."""
    gram = 0.5 * (gram + gram.T)
    F = sqrt_psd(gram)
    tol = 1e-12 * max(1.0, float(np.abs(np.linalg.eigvalsh(gram)).max()))
    F[np.diag(gram) <= tol] = 0.0
    return F


@dataclass
class PathData:
    """Frozen data of n paths (one training sample each): teacher fields λ (n, C_teacher) and
    whatever the loss needs besides (labels)."""
    lam: np.ndarray
    label: np.ndarray


class SampleLoss:
    """What the engine asks of a sample-side loss: `dim` fields per path; `normals(gram)` standard
    normals per path for its data and `sample(gram, normals)` the frozen data; `grad_hess(h,
    data, state)` → (δ, D) and `grad` → δ; `train_metrics(h, data, state)` → per-path (loss, error);
    finitely many trained parameters (heads) in `state`: `initial_state()` and
    `advance(state, h, data, step)` (one gradient step of the empirical risk, path averages)."""
    dim: int

    def initial_state(self):
        return None

    def grad(self, h, data, state=None):
        """δ alone (the Stein and finite-difference responses need no D)."""
        return self.grad_hess(h, data, state)[0]

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
        lam = normals[:, :self.C] @ teacher_factor(gram).T
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

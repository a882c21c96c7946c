"""Response of the sample side by finite differences, for losses with a kink (relu trunks;
docs/DMFT.md §7).

R(k, j) = ∂E[δ_k]/∂u_j, u_j a field perturbation added to h_j.  Where δ is smooth the per-path
linear recursion for G(k, j) = ∂h_k/∂u_j is exact; at relu's kink δ jumps, so a path that crosses
the kink under the perturbation changes δ by a finite amount, and that change moves its later
fields through its own memory term by a finite amount too — which the linear recursion (with g″
a Dirac mass) gets wrong.  Here every perturbation (j, b) (step j, direction b) is carried by a
perturbed copy of each response path, propagated through the full nonlinear δ:

    h_k^± = h_k ± u e_b 1[k = j] − (1/α) Σ_{j≤i<k} a_i χ(k, i) (δ(h_i^±) − δ(h_i)),

and R(k, j) e_b = Σ_p ω_p (δ(h_k^+) − δ(h_k^−))_p / (2u) (central differences; `step` = u).
As u → 0 this is the derivative of the path mean; its bias is O(u²) where δ is smooth and its
sampling error grows like 1/√(u · paths) from the paths near the kink.
"""
from __future__ import annotations

import numpy as np

from mtsp.errors import RequestError

__all__ = ["FiniteDifferenceResponse"]


class FiniteDifferenceResponse:
    """Perturbed copies of nr paths (module docstring); the differences δ(h^±) − δ(h) are stored
    float32, [step i d + a, path, perturbation j d + b]: 2 nr ((K+1) d)² floats."""

    def __init__(self, loss, data, weights: np.ndarray, K: int, alpha: float, step: float):
        if not (step > 0 and np.isfinite(step)):
            raise RequestError("kink_step", f"the finite-difference step must be > 0, got {step!r}")
        self.loss, self.data, self.w = loss, data, np.asarray(weights, float)
        self.d, self.nr, self.scale, self.u = loss.dim, len(self.w), -1.0 / alpha, float(step)
        Kd = (K + 1) * self.d
        self.P = [np.zeros((Kd, self.nr, Kd), np.float32) for _ in range(2)]
        self._rep = {}

    def _data(self, q: int):
        if q not in self._rep:
            self._rep = {q: self.data.take(np.repeat(np.arange(self.nr), q))}
        return self._rep[q]

    def step(self, k: int, h: np.ndarray, delta: np.ndarray, Ak: np.ndarray, state) -> np.ndarray:
        """Row k of R, (d, (k+1) d), from the fields h and gradients δ of the nr paths at step k
        and Ak = [a_i χ(k, i)]_{i<k} (d, k d)."""
        d, nr, kd = self.d, self.nr, k * self.d
        q = kd + d                                   # perturbations so far, the new ones included
        data = self._data(q)
        B = (Ak * self.scale).astype(np.float32)
        diff = []
        for P, sign in zip(self.P, (1.0, -1.0)):
            dh = np.zeros((nr, q, d))
            if k:
                full = B @ P[:kd].reshape(kd, -1)                # contiguous: all perturbations
                dh[:, :kd] = full.reshape(d, nr, -1)[:, :, :kd].transpose(1, 2, 0)
            dh[:, kd:, :] += sign * self.u * np.eye(d)
            hp = (h[:, None, :] + dh).reshape(nr * q, d)
            dd = self.loss.grad(hp, data, state).reshape(nr, q, d) - delta[:, None, :]
            P[kd:kd + d, :, :q] = dd.transpose(2, 0, 1)
            diff.append(dd)
        return np.einsum("p,pqa->aq", self.w, diff[0] - diff[1]) / (2.0 * self.u)

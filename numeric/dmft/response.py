"""Responses of the sample side for forces with jumps (relu trunks; docs/DMFT.md §7), where the
per-path linear recursion (`engine._Response`) misses the kink: `SteinResponse` (Gaussian
integration by parts; relu's default) and `FiniteDifferenceResponse` (a check), below.

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

from mtsp.errors import ReachError, RequestError

__all__ = ["FiniteDifferenceResponse", "SteinResponse", "MAX_BYTES"]

MAX_BYTES = 4 * 2**30   # the finite-difference response's stored differences


class FiniteDifferenceResponse:
    """Perturbed copies of nr paths (module docstring); the differences δ(h^±) − δ(h) are stored
    float32, [step i d + a, path, perturbation j d + b]: 2 nr ((K+1) d)² floats."""

    def __init__(self, loss, data, weights: np.ndarray, K: int, alpha: float, step: float):
        if not (step > 0 and np.isfinite(step)):
            raise RequestError("fd_step", f"the finite-difference step must be > 0, got {step!r}")
        self.loss, self.data, self.w = loss, data, np.asarray(weights, float)
        self.d, self.nr, self.scale, self.u = loss.dim, len(self.w), -1.0 / alpha, float(step)
        Kd = (K + 1) * self.d
        need = 2 * Kd * self.nr * Kd * 4
        if need > MAX_BYTES:
            raise ReachError("response", f"the finite-difference response needs {need / 2**30:.1f} GiB "
                             f"({K + 1} steps × {self.d} fields, {self.nr} response paths; at most "
                             f"{MAX_BYTES / 2**30:.0f} GiB): fewer times or a smaller n_response")
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


class SteinResponse:
    """Response of the sample side by Gaussian integration by parts (Stein's lemma), for any force
    (smooth or with jumps), on all n paths (docs/DMFT.md §7).

    With source noise a path's fields are h_k = M_k T⁺λ + σ₀ χ(k,−1) g + Σ_{j<k} a_j χ(k, j) f_j,
    f_j = −(δ_j + η_j)/α, where g ~ N(0, I_d) and the weight noise η (given the sources) is a
    centred Gaussian with covariance C_η(i, j) = α Σ_q ω_q δ_i^(q) δ_j^(q)ᵀ, both independent of
    the path's data.  A force perturbation ε at step j (weights, so the fields move by
    a_j χ(l, j) ε for l > j) is the shift −α ε of η_j's mean, so with Y(k, j) = Σ_l R(k, l) χ(l, j)
    (what the weight side needs):

        a_j Y(k, j) = −α ∂E[δ_k]/∂η_j = −α (E[δ_k ξᵀ] L⁻¹)_j,   σ₀ Y(k, −1) = E[δ_k gᵀ],

    ξ = L⁻¹ η the innovations of L Lᵀ = C_η + V/n_eff over steps < k (grown one row per step; V
    below).  No derivative of δ is used.  R(k, ·) = Y(k, ·) X⁻¹, X the unit lower-triangular
    matrix of χ(l, j) (l = 0..k, j = −1..k−1).

    The ridge V/n_eff (n_eff = 1/Σ_p ω_p², n for equal weights; `ridge` = 1/n_eff; docs/DMFT.md §7):
    V = diag(v_j) with v_j the largest noise variance of step j, max_b C_η(j_b, j_b), on each of
    its d entries.  In the units η̃ = V^-½ η (correlation C̃ = V^-½ C_η V^-½) Stein's statistic
    s = E_n[δ_k η̃ᵀ] is d C̃ + e, d = ∂E[δ_k]/∂η̃, with sampling noise e of covariance ≈
    (E[δ_k²]/n) C̃.  Where η is nearly a function of its past (forces that change little along a
    path) C̃ has eigenvalues μ ≪ 1/n and the unbiased s C̃⁻¹ is noise along them (its error there
    ∝ (nμ)^-½).  With the prior d ~ N(0, E[δ_k²] I) — shifting one step's noise by its largest
    standard deviation moves E[δ_k] by at most δ_k's own spread — the posterior mean is

        d̂ = s (C̃ + I/n)⁻¹,   i.e.   ∂E[δ_k]/∂η ≈ E_n[δ_k ηᵀ] (C_η + V/n)⁻¹:

    along an eigenvector of C̃ the Stein estimate is kept where μ ≫ 1/n and shrunk by μ/(μ + 1/n)
    where μ ≲ 1/n, its sampling error is at most sd(δ_k)/2 whatever the conditioning
    (√(μ/n)/(μ + 1/n) ≤ 1/2), and since the dynamics applies the response to forces whose
    component along that eigenvector is ~√μ, the shrinkage moves the fields by at most
    |d|/(2√n) — the order of the Monte-Carlo error, vanishing as the paths grow.  Components of
    a step with a far smaller variance than its largest (a field with a small head) are shrunk
    the more: their forces are as small.

    `noise` (after each `step`): the sampling error of Y(k, ·), estimated as half the largest
    entry of the difference between the estimates from the two halves of the paths (each half
    holds every population; Y is their weighted sum, so this costs one more right-hand side)."""

    def __init__(self, K: int, d: int, n: int, alpha: float, a: np.ndarray, init_scale: float,
                 weights: np.ndarray, g: np.ndarray):
        from .engine import _GrowingCholesky
        self.d, self.alpha, self.a, self.s0 = d, float(alpha), np.asarray(a, float), float(init_scale)
        self.w = np.asarray(weights, float)
        self.g = np.asarray(g, float)                     # (n, d) initial-condition normals
        self.chol = _GrowingCholesky(K * d)
        self.ridge = float(np.sum(self.w ** 2))          # 1/n_eff (class docstring)
        self.xi = np.zeros((K * d, n))                    # whitened innovations, step-major
        self.noise = 0.0       # split-half sampling error of the last row of Y (`step`)

    def add_noise(self, k: int, eta: np.ndarray, cov_row: np.ndarray):
        """η_k of every path (n, d) and C_η(k, l) for l ≤ k ((d, (k+1) d)); the factor's new rows
        are those of C_η + V/n_eff (class docstring)."""
        d, kd, L = self.d, k * self.d, self.chol.L
        top = max(float(cov_row[c, kd + c]) for c in range(d))
        for c in range(d):
            r = kd + c
            row = np.array(cov_row[c], float)
            row[r] += self.ridge * top                    # + v_k / n_eff
            self.chol.add_row(r, row)
            if self.chol.active[r]:
                self.xi[r] = (eta[:, c] - L[r, :r] @ self.xi[:r]) / L[r, r]

    def step(self, k: int, delta: np.ndarray, chi: np.ndarray) -> np.ndarray:
        """Row k of R, (d, (k+1) d), from δ_k of every path (n, d) and the flat χ
        (chi[:(k+1)d, :(k+1)d] holds χ(l, j), l = 0..k, j = −1..k−1)."""
        from scipy.linalg import solve_triangular
        d, kd = self.d, k * self.d
        half = np.arange(len(delta)) < len(delta) // 2        # two halves, each all populations
        wd = np.concatenate([np.where(half, self.w, 0.0)[:, None] * delta,
                             np.where(half, 0.0, self.w)[:, None] * delta], axis=1)   # (n, 2d)
        Y = np.zeros((2 * d, kd + d))                          # the two halves' parts of Y(k, ·)
        if self.s0 > 0:
            Y[:, :d] = wd.T @ self.g / self.s0
        if k:
            S = (self.xi[:kd] @ wd).T                                     # E[δ_k ξᵀ], (2d, kd)
            act = np.flatnonzero(self.chol.active[:kd])
            Yeta = np.zeros((2 * d, kd))
            Lk = self.chol.L[np.ix_(act, act)]
            Yeta[:, act] = solve_triangular(Lk, S[:, act].T, lower=True, trans="T").T
            Y[:, d:] = -self.alpha * Yeta / np.repeat(self.a[:k], d)
        share = self.w[half].sum()
        self.noise = 0.5 * float(np.abs(Y[:d] / share - Y[d:] / (1.0 - share)).max())
        X = chi[:kd + d, :kd + d]
        return solve_triangular(X, (Y[:d] + Y[d:]).T, lower=True, trans="T", unit_diagonal=True).T

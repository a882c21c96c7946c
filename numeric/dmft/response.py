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


class FlipResponse:
    """Response of relu's force of kink "flips" (`trunk._attracting_force`: the implicit ramp
    where the kink attracts, b_a > 0, the plain jump δ_a = b_a 1[h_a > 0] where it repels) on the
    nr response paths, as the per-path linear recursion (`engine._Response`, D without any term of
    the repelling kink) plus the jump's boundary terms, each carried by a flipped copy:

        R(k, j) = E[D_k G(k, j)] + Σ_{i≤k} Σ_a E[ρ_{i,a}(0) · Δ^{(i,a)}δ_k ⊗ G(i, j)[a, :]],

    ρ_{i,a}(0) the density of h_{i,a} at the kink on paths with b_{i,a} < 0 (`jumps`: every
    path, the plain jump b_a 1[h_a > 0] on both sides, `loss.grad`), and Δ^{(i,a)}δ_k the
    finite change of δ_k when the indicator of h_{i,a} is flipped, propagated through the full
    nonlinear force:  h_k^f = h_k − (1/α) Σ_{i≤m<k} a_m χ(k, m) (δ_m^f − δ_m).  A path with
    |h_{i,a}| < w = width · (a_i/α)|b_{i,a}| (a window ∝ the field's own push per step) is one
    sample of the density, weight 1/(2w), flipped up from below and down from above (the two
    one-sided derivatives, averaged).  Every term is bounded (G is
    the linear response of a Lipschitz force, Δδ of a bounded one), so the estimate has finite
    variance; its bias is O(w) (docs/DMFT.md §7: linear in `width`, negligible at 0.05–0.1).  Unlike the tangent recursion it carries the paths that come up
    to the repelling kink and turn back below it (a perturbation pushes them across, and their
    own push keeps them above: a finite change with probability ∝ the perturbation).
    Copies: (path, coefficient ±1/(2w), their G(i, ·) row, their Δδ history) — about
    nr · d · P(|h| < w, b < 0) new ones per step."""

    def __init__(self, linear, loss, data, weights: np.ndarray, K: int, alpha: float, width: float,
                 jumps: bool = False):
        if not (width > 0 and np.isfinite(width)):
            raise RequestError("kink_step", f"the flip window must be > 0, got {width!r}")
        self.lin, self.loss, self.data = linear, loss, data
        self.w, self.d, self.scale, self.width = np.asarray(weights, float), loss.dim, -1.0 / alpha, float(width)
        self.Kd = (K + 1) * self.d
        self.jumps = jumps             # the plain jump on both sides (kink "jumps")
        self.n = 0
        self.path = np.zeros(0, int)
        self.coef = np.zeros(0)
        self.hist = np.zeros((0, self.Kd))      # Δδ of each copy, [copy, m d + a]
        self.G = np.zeros((0, self.Kd), np.float32)  # G(i, ·)[a, :] of each copy at its step i

    def _grow(self, extra: int):
        need = self.n + extra
        if need > len(self.path):
            size = max(need, 2 * len(self.path), 1024)
            for name in ("path", "coef", "hist", "G"):
                old = getattr(self, name)
                new = np.zeros((size,) + old.shape[1:], old.dtype)
                new[:self.n] = old[:self.n]
                setattr(self, name, new)

    def step(self, k: int, Ak: np.ndarray, Dk: np.ndarray, h: np.ndarray, delta: np.ndarray,
             state, c: float, push: float) -> np.ndarray:
        """Row k of R, (d, (k+1) d), from Ak = [a_i χ(k, i)]_{i<k} (d, k d), D_k, the fields h and
        forces δ of the response paths at step k, the ramp's step c (kink "flips") and the
        self-interaction step push = a_k/α, which sets the window w = width · push · |b|."""
        d, kd, n = self.d, k * self.d, self.n
        row = self.lin.step(k, Ak, Dk, self.w)
        Gk = self.lin.xp.get(self.lin.G)                      # [a, i d + b, p] = G(k, i)[a, b]
        if n:                                                 # the copies so far, at step k
            hc = h[self.path[:n]] + self.scale * (self.hist[:n, :kd] @ Ak.T)
            dk = self.data.take(self.path[:n])
            dc = (self.loss.grad(hc, dk, state) if self.jumps else
                  self.loss.flip_force(hc, dk, state, c)[0])
            self.hist[:n, kd:kd + d] = dc - delta[self.path[:n]]
        b = self.loss.head_grad(h, self.data, state)
        win = self.width * push * np.abs(b)                   # ∝ the field's own push per step
        p, a = np.nonzero(((b < 0) | self.jumps) & (np.abs(h) < win))
        if p.size:                                            # new copies: flipped at step k
            self._grow(p.size)
            s = slice(n, n + p.size)
            below = h[p, a] <= 0
            self.path[s] = p
            self.coef[s] = np.where(below, 1.0, -1.0) / (2.0 * win[p, a])
            self.hist[s] = 0.0
            self.hist[np.arange(n, n + p.size), kd + a] = np.where(below, b[p, a], -b[p, a])
            self.G[s] = 0.0
            self.G[s, :kd + d] = Gk[a, :, p]
            self.n = n = n + p.size
        if n:
            wc = self.w[self.path[:n]] * self.coef[:n]
            row = row + (self.hist[:n, kd:kd + d] * wc[:, None]).T @ self.G[:n, :kd + d]
        return row

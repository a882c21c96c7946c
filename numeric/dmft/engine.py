"""Causal solver of the discrete-time DMFT of full-batch gradient descent (docs/DMFT.md §2–3).

Gradient descent with steps h_k (a_k = η h_k) on P = αN fixed samples, in the reduced field
coordinates of the loss (d fields per sample):

sample side, one path per training sample (teacher fields λ and label frozen), for k = 0..K:

    h_k = M_k T⁺ λ + ζ_k − (1/α) Σ_{j<k} a_j χ(k, j) δ_j,      δ_k = ∂ℓ/∂h (h_k),

    ζ a Gaussian process with covariance C⊥(k, l) (built from fixed standard normals: from the
    weight-side representation over source paths, or a Cholesky factor extended one row per
    step — `run_dmft`'s `noise`); per-path response G(k, j) = ∂h_k/∂u_j:
    G(k, k) = I,  G(k, j) = −(1/α) Σ_{l=j}^{k−1} a_l χ(k, l) D_l G(l, j);

weight side (one coordinate of the weights orthogonal to the teacher; linear and Gaussian):

    w_{k+1} = (1 − ηκ h_k) w_k − a_k Σ_{l≤k} R(k, l) w_l − (a_k/α) ξ_k,
    R(k, l) = E[D_k G(k, l)],  E[ξ_k ξ_lᵀ] = α Cδ(k, l) = α E[δ_k δ_lᵀ],  w_0 ~ N(0, σ₀² I);

    its response χ(k+1, j) = (1 − ηκh_k) χ(k, j) − a_k Σ_{l≤k} R(k, l) χ(l, j), χ(j+1, j) = I
    (j = −1 is the initial condition: χ(0, −1) = I), so that

    C⊥(k, l) = σ₀² χ(k,−1) χ(l,−1)ᵀ + (1/α) Σ_{i<k, j<l} a_i a_j χ(k, i) Cδ(i, j) χ(l, j)ᵀ;

teacher overlap M_{k+1} = (1 − ηκh_k) M_k − a_k E[δ_k λᵀ].

Every quantity at step k needs only steps < k (and R(k, ·) needs h_k), so one forward pass solves
the self-consistency; the only approximation is the Monte-Carlo average over paths.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtsp.errors import ReachError, RequestError
from scipy.linalg import solve_triangular

__all__ = ["DmftTrajectory", "run_dmft"]


@dataclass
class DmftTrajectory:
    """Along the grid t_k (K + 1 points): teacher overlap M (K+1, d, C_teacher) and equal-time
    bulk covariance Cperp (K+1, d, d) in the loss's reduced coordinates; the common-mode factor
    decay_k = Π_{j<k}(1 − ηκh_j); the path means of the training loss and error ((K+1,) or
    (K+1, T)) when the loss provides them; kernels kept for inspection (R, chi, Cdelta:
    (K+1, K+1, d, d)); the loss's trained parameters (heads) at every step, `states`."""
    times: np.ndarray
    M: np.ndarray
    Cperp: np.ndarray
    decay: np.ndarray
    train_loss: np.ndarray | None
    train_error: np.ndarray | None
    R: np.ndarray
    chi: np.ndarray
    Cdelta: np.ndarray
    states: list


class _GrowingCholesky:  # noise="cholesky"
    """Lower-triangular factor L of a covariance built one scalar row at a time: row r solves
    L[:r, :r] l = c[:r] on the columns with non-zero pivot (a pivot below `tol` times the
    variance marks a variable that is a combination of earlier ones: its column stays zero)."""

    def __init__(self, size: int, tol: float = 1e-14):
        self.L = np.zeros((size, size))
        self.active = np.zeros(size, bool)
        self.tol = tol

    def add_row(self, r: int, cov_row: np.ndarray):
        act = np.flatnonzero(self.active[:r])
        if act.size:
            sub = self.L[np.ix_(act, act)]
            self.L[r, act] = solve_triangular(sub, cov_row[act], lower=True, check_finite=False)
        s = cov_row[r] - self.L[r, :r] @ self.L[r, :r]
        if s > self.tol * max(cov_row[r], 1e-300) and s > 0:
            self.L[r, r] = np.sqrt(s)
            self.active[r] = True


def standard_normals(rng: np.random.Generator, n: int, m: int, whiten: bool) -> np.ndarray:
    """(n, m) standard normals; whitened: centred and transformed so that their empirical
    covariance is exactly the identity (G ← (G − mean) L⁻ᵀ with L Lᵀ the empirical covariance),
    which makes every path average of a linear function of them exact — a control variate that
    removes the sampling error of the Gaussian (linear) part of the dynamics.  Column j of the
    result depends only on the first j + 1 raw columns, which depend only on (rng, n): the paths'
    data (the first columns) are common to runs with different grids (common random numbers)."""
    G = rng.standard_normal((m, n)).T     # column by column: the first columns do not depend on m
    if not whiten:
        return G
    if n <= 2 * m:
        raise RequestError("n_paths", f"whitening {m} normals needs well over {m} paths, got {n}")
    G -= G.mean(axis=0)
    L = np.linalg.cholesky(G.T @ G / n)
    return solve_triangular(L, G.T, lower=True, check_finite=False).T


def run_dmft(loss, gram: np.ndarray, *, lr: float, weight_decay: float, alpha: float,
             init_scale: float, steps: np.ndarray, n_paths: int, n_response: int,
             rng: np.random.Generator, train_metrics: bool = True,
             whiten: bool = True, noise: str = "sources", n_sources: int | None = None,
             kink_step: float = 0.02) -> DmftTrajectory:
    """One forward pass of the discrete DMFT (module docstring) on the grid of `steps` h_k;
    correlations and means from `n_paths` paths, the response R from the first `n_response`;
    all standard normals drawn once (`standard_normals`, whitened unless `whiten` is False).

    noise: how the Gaussian field ζ is built.
    "cholesky": ζ_k = L_k z from the factor of C⊥ extended row by row — exact in law, but late
    in training ζ is nearly determined by its past and the factor's rows lose accuracy (measured
    on linear regression: 1e-9 at 20 steps, 1e-5 at 50 steps; on the cross-entropy the results
    moved by 3e-3 with the pivot tolerance at t = 10);
    "sources" (default): the weight-side representation ζ_k = σ₀ χ(k,−1) g − Σ_{j<k} (a_j/α)
    χ(k, j) η_j with the noise η_j = √(α/m) Σ_p δ_j^(p) g_p written as a sum over m source paths
    (the first `n_sources`, default n_paths/2; each path its own standard normals g_p, none from
    itself): exactly Gaussian given the sources, covariance α × the sources' Cδ — no
    factorisation, no conditioning problem; an (n × m) float32 matrix of normals.

    Path averages are weighted by the loss's `path_weights(n)` where it has them (several
    sample-side populations: separate inputs), else uniform; a loss with a `kink` (relu) gets its
    response from finite differences of ± `kink_step` propagated through its full δ
    (`response.FiniteDifferenceResponse`) instead of the per-path linear recursion."""
    steps = np.asarray(steps, float)
    K = steps.size
    d = loss.dim
    n, nr = int(n_paths), int(min(n_response, n_paths))
    a = lr * steps
    decay_step = 1.0 - lr * weight_decay * steps
    if noise not in ("sources", "cholesky"):
        raise RequestError("noise", f"'sources' or 'cholesky', not {noise!r}")
    n_data = loss.normals(gram)
    normals = standard_normals(rng, n, n_data + ((K + 1) * d if noise == "cholesky" else d), whiten)
    data = loss.sample(gram, normals[:, :n_data])
    mu = data.lam @ np.linalg.pinv(gram, hermitian=True).T        # T⁺ λ, (n, C)
    weights = getattr(loss, "path_weights", lambda size: np.full(size, 1.0 / size))
    w_all = weights(n)
    Ct = mu.shape[1]
    z = normals[:, n_data:]                                        # the process's normals
    if noise == "sources":
        m = int(n_sources) if n_sources is not None else max(1, n // 2)
        if not 1 <= m <= n:
            raise RequestError("n_sources", f"need 1 ≤ n_sources ≤ n_paths, got {m}")
        g_src = rng.standard_normal((n, m), dtype=np.float32)
        g_src[np.arange(m), np.arange(m)] = 0.0                    # no path is its own source
        src_scale = -1.0 / np.sqrt(alpha * m)
        src_w = np.sqrt(m * weights(m))[:, None]                  # 1 for uniform weights
    I = np.eye(d)
    # kernels stored flat: X[k d + a, l d + b] = X(k, l)[a, b]; chi's column block j + 1 holds
    # χ(·, j) (block 0: the initial condition, j = −1)
    Kd = (K + 1) * d
    chi = np.zeros((Kd, Kd))
    chi[:d, :d] = I
    R = np.zeros((Kd, Kd))
    Cd = np.zeros((Kd, Kd))
    Cdiag = np.zeros((K + 1, d, d))
    acol = np.repeat(a, d)                                          # a_j on column block j
    M = np.zeros((K + 1, d, Ct))
    deltas = np.zeros((n, Kd))                                      # δ_j of every path, flat
    kink = getattr(loss, "kink", False)
    if kink:
        from .response import FiniteDifferenceResponse
        fdr = FiniteDifferenceResponse(loss, data.take(slice(0, nr)), weights(nr), K, alpha,
                                       kink_step)
    else:
        w_resp = weights(nr)
        Ds = np.zeros((nr, K + 1, d, d))
        Gs = np.zeros((nr, Kd, Kd), np.float32)
    chol = _GrowingCholesky(Kd) if noise == "cholesky" else None
    tl = [None] * (K + 1) if train_metrics else None
    te = [None] * (K + 1) if train_metrics else None
    state = loss.initial_state()
    states = []
    decay = np.concatenate([[1.0], np.cumprod(decay_step)])

    for k in range(K + 1):
        rk = slice(k * d, (k + 1) * d)
        kd = k * d
        Ak = chi[rk, d:kd + d] * acol[:kd]                         # [a_j χ(k, j)]_{j<k}, (d, kd)
        # --- C⊥(k, l) for l ≤ k (all of them for the Cholesky factor, else l = k) ------------
        lo = 0 if noise == "cholesky" else kd
        row = init_scale ** 2 * chi[rk, :d] @ chi[lo:kd + d, :d].T
        if k:
            Aall = chi[lo:kd + d, d:kd + d] * acol[:kd]
            row += (Ak @ Cd[:kd, :kd]) @ Aall.T / alpha
        Cdiag[k] = row[:, -d:]
        # --- the Gaussian field ζ_k ----------------------------------------------------------
        if noise == "cholesky":      # extend the factor by the d rows of step k
            for c in range(d):
                chol.add_row(kd + c, row[c])
            zeta = z[:, :kd + d] @ chol.L[rk, :kd + d].T
        else:                        # initial condition + the sources' past gradients
            zeta = init_scale * z @ chi[rk, :d].T
            if k:
                S = (src_w * deltas[:m, :kd]) @ Ak.T                              # (m, d)
                zeta += src_scale * (g_src @ S.astype(np.float32)).astype(float)
        # --- sample side ----------------------------------------------------------------------
        h = mu @ M[k].T + zeta
        if k:
            h -= deltas[:, :kd] @ Ak.T / alpha
        delta, D = loss.grad_hess(h, data, state)
        deltas[:, rk] = delta
        states.append(state)
        if train_metrics:
            ce, err = loss.train_metrics(h, data, state)
            tl[k], te[k] = np.nanmean(ce, axis=0), np.nanmean(err, axis=0)
        Cd[rk, :kd + d] = (w_all[:, None] * delta).T @ deltas[:, :kd + d]
        Cd[:kd + d, rk] = Cd[rk, :kd + d].T
        # --- per-path response on the first nr paths; R(k, ·) ---------------------------------
        if kink:
            R[rk, :kd + d] = fdr.step(k, h[:nr], delta[:nr], chi[rk, d:kd + d] * acol[:kd], state)
        else:
            R[rk, :kd + d] = _linear_response_row(k, d, nr, alpha, Ak, D[:nr], Ds, Gs, w_resp)
        if k == K:
            break
        # --- weight side: χ(k+1, ·) and M_{k+1} ----------------------------------------------
        r1 = slice(kd + d, kd + 2 * d)
        chi[r1, :kd + d] = decay_step[k] * chi[rk, :kd + d] - a[k] * (R[rk, :kd + d] @ chi[:kd + d, :kd + d])
        chi[r1, r1] = I
        M[k + 1] = decay_step[k] * M[k] - a[k] * ((w_all[:, None] * delta).T @ data.lam)
        state = loss.advance(state, h, data, steps[k])
    times = np.concatenate([[0.0], np.cumsum(steps)])
    if train_metrics:
        tl, te = np.array(tl), np.array(te)

    def blocks(X):
        return X.reshape(K + 1, d, K + 1, d).transpose(0, 2, 1, 3)
    return DmftTrajectory(times, M, Cdiag, decay, tl, te, blocks(R), blocks(chi), blocks(Cd),
                          states)


def _linear_response_row(k, d, nr, alpha, Ak, Dk, Ds, Gs, w_resp):
    """R(k, ·) (d, (k+1)d), the weighted path mean of D_k G(k, ·), from the per-path recursion
    G(k, j) = −(1/α) Σ_{l<k} a_l χ(k, l) D_l G(l, j), G(k, k) = I, on nr paths (weights w_resp),
    advancing Ds and Gs by step k; Ak = [a_l χ(k, l)]_{l<k} (d, k d).
    Gs[n, l d + b, j d + c] = G(l, j)[b, c] (float32: the response enters the kernels through R,
    where its rounding, ~1e-7 relative, is negligible)."""
    kd = k * d
    rk = slice(kd, kd + d)
    Ds[:, k] = Dk
    if k:
        A3 = Ak.reshape(d, k, d)                                              # [a, l, b]
        F = sum(A3[None, :, :, b, None] * Ds[:, None, :k, b, :] for b in range(d))
        Gs[:, rk, :kd] = np.matmul(F.reshape(nr, d, kd).astype(np.float32),
                                   Gs[:, :kd, :kd]) * (-1.0 / alpha)
    Gs[:, rk, rk] = np.eye(d)
    return np.tensordot(w_resp[:, None, None] * Dk, Gs[:, rk, :kd + d], axes=([0, 2], [0, 1]))

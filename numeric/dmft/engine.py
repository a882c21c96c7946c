"""Causal solver of the discrete-time DMFT of full-batch gradient descent (docs/DMFT.md §2–3).

Gradient descent with steps h_k (a_k = η h_k) on P = αN fixed samples, in the reduced field
coordinates of the loss (d fields per sample):

sample side, one path per training sample (teacher fields λ and label frozen), for k = 0..K:

    h_k = M_k T⁺ λ + ζ_k − (1/α) Σ_{j<k} a_j χ(k, j) δ_j,      δ_k = ∂ℓ/∂h (h_k),

    ζ a Gaussian process with covariance C⊥(k, l) (built from fixed standard normals: from the
    weight-side representation over source paths, or a Cholesky factor extended one row per
    step — `run_dmft`'s `noise`); per-path response G(k, j) = ∂h_k/∂u_j:
    G(k, k) = I,  G(k, j) = −(1/α) Σ_{l=j}^{k−1} a_l χ(k, l) D_l G(l, j);
    (for forces with jumps, relu, R by Gaussian integration by parts instead: `response.SteinResponse`);

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

import functools
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from mtsp.errors import ConvergenceError, RequestError
from scipy.linalg import solve_triangular

__all__ = ["RESPONSES", "STEIN_NOISE_LIMIT", "DmftTrajectory", "mirror_layout", "run_dmft"]

RESPONSES = ("recursion", "stein", "difference")
"""How `run_dmft` finds the response R (docs/DMFT.md §3, §7): "recursion" the exact per-path
linear recursion (`_Response`; smooth forces), "stein" Gaussian integration by parts over the
paths' noise (`response.SteinResponse`; any force, relu's jumps included: the default for a loss
with a kink), "difference" finite differences of the paths' full force
(`response.FiniteDifferenceResponse`; a check, memory ∝ steps²)."""


STEIN_NOISE_LIMIT = 20.0
"""The largest sampling error of a_k Y(k, ·) — the step's change of the weight response χ(k+1, ·),
whose own scale is 1 (χ(j+1, j) = I) — that the Stein response may have before `run_dmft` stops
with a ConvergenceError (key "response"): its split-half estimate (`response.SteinResponse.noise`,
the largest entry) is ≈ 10× below the limit where the Stein response is right, and far above it
where the solution blows up (docs/DMFT.md §7, "Noise that is nearly degenerate")."""


def _diverged(k: int, t: float, stein: bool, **arrays) -> None:
    """ConvergenceError if any of `arrays` (step k's fields, forces, response row, χ row) is not
    finite: the solution diverged (never returned silently)."""
    bad = [name for name, x in arrays.items() if not np.all(np.isfinite(x))]
    if bad:
        raise ConvergenceError(
            "response" if stein else "training.lr",
            f"the DMFT solution diverged at step {k} (t = {t:g}): non-finite {', '.join(bad)}"
            + ("; the Stein response's estimate is noise here (response='difference' avoids it)"
               if stein else "; gradient descent at this step may be unstable (a smaller dt)"),
            status={"step": k, "time": t})


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


class _NumpyArrays:
    """Where the path-sized arrays live: numpy (the default)."""
    float32, float64 = np.float32, np.float64

    def zeros(self, shape, dtype=np.float64):
        return np.zeros(shape, dtype)

    def put(self, x, dtype=np.float64):
        """A numpy array (the engine's own kernels, the loss's outputs) as this backend's array."""
        return np.asarray(x, dtype)

    def get(self, x) -> np.ndarray:
        return np.ascontiguousarray(x)

    def permute(self, x, axes):
        return x.transpose(axes)

    def double(self, x):
        return x.astype(np.float64)

    def multiply(self, x, y, out):
        np.multiply(x, y, out=out)


class _TorchArrays(_NumpyArrays):
    """Path-sized arrays as torch tensors on `device` ("cpu", "cuda", …), same dtypes; the loss,
    the kernels (steps × steps) and everything else stay in numpy."""

    def __init__(self, device: str):
        import torch
        self.torch = torch
        self.device = torch.device(device)
        self.float32, self.float64 = torch.float32, torch.float64

    def _dtype(self, dtype):
        return {np.float32: self.float32, np.float64: self.float64}.get(dtype, dtype)

    def zeros(self, shape, dtype=np.float64):
        return self.torch.zeros(shape, dtype=self._dtype(dtype), device=self.device)

    def put(self, x, dtype=np.float64):
        return self.torch.as_tensor(np.ascontiguousarray(x), dtype=self._dtype(dtype), device=self.device)

    def get(self, x) -> np.ndarray:
        return x.cpu().numpy()

    def permute(self, x, axes):
        return x.permute(*axes)

    def double(self, x):
        return x.to(self.float64)

    def multiply(self, x, y, out):
        out.copy_(x * y)


def _arrays(device):
    if device is None:
        return _NumpyArrays()
    try:
        import torch  # noqa: F401
    except ImportError:
        raise RequestError("device", "torch is not installed (pip install torch); leave the device "
                                     "out for numpy") from None
    try:
        return _TorchArrays(device)
    except RuntimeError as e:
        raise RequestError("device", f"torch cannot use device {device!r}: {e}") from None


class _Response:
    """Per-path response of the sample side on nr paths, row k at step k:

        G(k, k) = I,   G(k, j) = −(1/α) Σ_{l=j}^{k−1} A(k, l) D_l G(l, j),   A(k, l) = a_l χ(k, l),

    i.e. G = (I + A D/α)⁻¹ with A strictly lower block-triangular and D = diag(D_l) per path, and
    R(k, j) = E[D_k G(k, j)] (the path mean). Row k of that inverse is found by back-substitution,

        G(k, j) = −(1/α) [Σ_{i=j+1}^{k} G(k, i) A(i, j)] D_j,   j = k−1, …, 0,

    which needs only the common A (its rows are the weight side's a_l χ(k, l), known by step k)
    and each path's D_l history — no per-path (k × k) response is stored or read. The sum over
    i is blocked: for a block of `BLOCK` columns j, the terms from the rows i above the block are
    one matrix product over all paths, the rest is done column by column; paths along the last
    axis, so the per-path products with D_j are elementwise. Work per step ∝ n_response k² d³
    as before, but on arrays that stay in cache; float32 (rounding ~1e-7 relative, negligible
    beside the sampling error of R)."""

    BLOCK = 32
    MEAN_ROWS = 64   # rows of G converted to float64 at a time for R's path mean (`step`): the whole
    #                  conversion at once was 22 % of the step for glm C = 6 (d = 5, 189 steps)

    def __init__(self, K: int, d: int, nr: int, alpha: float, dtype=np.float32, arrays=None):
        self.d, self.nr, self.scale, self.dtype = d, nr, -1.0 / alpha, dtype
        self.xp = arrays or _NumpyArrays()
        self.AT = self.xp.zeros(((K + 1) * d, (K + 1) * d), dtype)  # A(i, j)ᵀ, flat blocks
        self.Ds = self.xp.zeros((K + 1, d, d, nr), dtype)           # −D_j/α, paths last
        self.eye = self.xp.put(np.eye(d)[:, :, None], dtype)
        self.X = self.xp.zeros((d, (K + 1) * d, nr), dtype)         # row k's G, reused (`step`)

    def step(self, k: int, Ak: np.ndarray, Dk: np.ndarray, weights=None) -> np.ndarray:
        """Row k of R, R(k, j) for j ≤ k flattened to (d, (k+1) d), from Ak = [A(k, l)]_{l<k}
        (d, k d) and D_k on the response paths (nr, d, d); the path mean weighted by `weights`
        (nr,), Σ = 1, where given."""
        d, nr, AT, xp = self.d, self.nr, self.AT, self.xp
        kd = k * d
        AT[:kd, kd:kd + d] = xp.put(Ak.T, self.dtype)
        self.Ds[k] = xp.put(Dk.transpose(1, 2, 0) * self.scale, self.dtype)
        X = self.X[:, :kd + d]       # X[a, i d + b, p] = G(k, i)[a, b], path p; every block j < k
        X[:, kd:] = self.eye         # is written below before it is read
        j1 = k
        while j1 > 0:
            j0 = max(0, j1 - self.BLOCK)
            P = AT[j0 * d:j1 * d, j1 * d:kd + d] @ X[:, j1 * d:]               # rows i ≥ j1
            for j in range(j1 - 1, j0 - 1, -1):
                c = (j - j0) * d
                s = P[:, c:c + d]                                            # [a, b, p]
                if j + 1 < j1:
                    s = s + AT[j * d:j * d + d, (j + 1) * d:j1 * d] @ X[:, (j + 1) * d:j1 * d]
                Dj = self.Ds[j]
                x = X[:, j * d:j * d + d]                                    # written in place
                xp.multiply(s[:, 0, None], Dj[None, 0], out=x)
                for b in range(1, d):
                    x += s[:, b, None] * Dj[None, b]
            j1 = j0
        # R(k, j)[a', c] = mean_p Σ_a D_k[p, a', a] G(k, j)[a, c], summed in float64: per chunk
        # of MEAN_ROWS rows of X (converted to float64 while in cache), one (rows × paths)
        # (paths × d) product per a
        if weights is not None:
            Dk = Dk * (nr * np.asarray(weights))[:, None, None]
        Dka = [xp.put(Dk[:, :, a]) for a in range(d)]
        out = np.empty((kd + d, d))
        for i0 in range(0, kd + d, self.MEAN_ROWS):
            i1 = min(i0 + self.MEAN_ROWS, kd + d)
            o = xp.double(X[0, i0:i1]) @ Dka[0]
            for a in range(1, d):
                o += xp.double(X[a, i0:i1]) @ Dka[a]                        # [i d + c, a']
            out[i0:i1] = xp.get(o)
        return out.T / nr


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


def mirror_layout(n: int, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paths in mirror pairs (`run_dmft(mirror=S)`): path p = 2·block·j + block·s + r is the image
    (s = 1) or the original (s = 0) of base path b = block·j + r (r < block: with separate inputs
    block = T and p mod T = r, so a pair belongs to one task). Returns (base index b, mirror flag
    s, partner p ± block) of every path; n must be a multiple of 2·block."""
    p = np.arange(n)
    j, s, r = p // (2 * block), (p // block) % 2, p % block
    return block * j + r, s, p + block * (1 - 2 * s)


def mirrored_normals(rng: np.random.Generator, n: int, n_data: int, m: int, d: int, S: np.ndarray,
                     whiten: bool, block: int) -> np.ndarray:
    """(n, n_data + m) normals of n paths in mirror pairs (`mirror_layout`): the n/2 base paths'
    normals (`standard_normals`, whitened over the base paths), each path's image with the same
    data normals (the first n_data) and its process normals (m = d·blocks, d per block) mapped
    by S. Whitened base normals stay exactly whitened over all n paths (S is orthogonal and the
    base mean is zero)."""
    base, s, _ = mirror_layout(n, block)
    G = standard_normals(rng, n // 2, n_data + m, whiten)[base]
    img = s == 1
    zb = G[img, n_data:].reshape(int(img.sum()), m // d, d)
    G[img, n_data:] = (zb @ S.T).reshape(int(img.sum()), m)
    return G


def mirrored_sources(rng: np.random.Generator, n: int, m: int, block: int) -> np.ndarray:
    """(n, m) float32 source normals g[q, p] of paths in mirror pairs with g[q', p'] = g[q, p]
    (q', p' the partners), so that a path's image receives the image of its noise; zero where q
    and p are the same base path (a path is neither its own source nor its image's)."""
    base, s, partner = mirror_layout(n, block)
    G0 = rng.standard_normal((n // 2, m), dtype=np.float32)
    src = np.arange(m)
    g = np.empty((n, m), np.float32)
    g[s == 0] = G0[base[s == 0]]
    g[s == 1] = G0[base[s == 1]][:, partner[src]]
    g[src, src] = 0.0                       # the sources are the first m paths (m even)
    g[partner[src], src] = 0.0
    return g


@contextmanager
def one_thread(device=None):
    """BLAS (and torch on a CPU device) with one thread: on 2 shared cores threaded BLAS only
    spins on these products (two-task trunk, one batch of 194 steps, load ~13: 32–36 s with
    OpenBLAS's 2 threads, 4.4 s with one; torch on the CPU, 46 steps: 20 s with 2 threads,
    0.27 s with one). Restored on exit (`numeric.solve.one_blas_thread`)."""
    from ..solve import one_blas_thread
    from ..workers import one_torch_thread
    with one_blas_thread():
        if device is None:
            yield
            return
        with one_torch_thread(device):
            yield


def _in_one_thread(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_thread(kwargs.get("device")):
            return fn(*args, **kwargs)
    return wrapper


@_in_one_thread
def run_dmft(loss, gram: np.ndarray, *, lr: float, weight_decay: float, alpha: float,
             init_scale: float, steps: np.ndarray, n_paths: int, n_response: int,
             rng: np.random.Generator, train_metrics: bool = True,
             whiten: bool = True, noise: str = "sources", n_sources: int | None = None,
             response_dtype=np.float32, device: str | None = None,
             response: str | None = None, fd_step: float = 0.02,
             mirror: np.ndarray | None = None) -> DmftTrajectory:
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

    response_dtype: of the per-path response (`_Response`); float32 (default) rounds R at
    ~1e-7 relative, far below its sampling error; float64 for checks to rounding (≈ 15–40 %
    slower, measured on the two-task trunk benchmark).

    device: None (numpy), or a torch device ("cpu", "cuda") for the path-sized arrays (the
    histories of δ and of the memory force, the sources' normals, the response), same dtypes;
    the loss and the (steps × steps) kernels stay in numpy. The normals are drawn by numpy
    either way, so both give the same numbers up to rounding.

    Path averages are weighted by the loss's `path_weights(n)` where it has them (several
    sample-side populations: separate inputs), else uniform.

    response (`RESPONSES`): None takes "stein" for a loss with a `kink` (relu: its force δ_a =
    b_a 1[h_a > 0] jumps, plain explicit gradient descent) and "recursion" otherwise; "stein"
    needs the source noise; "difference" uses the step ± `fd_step` on the first n_response paths.
    A Stein response whose sampling error exceeds STEIN_NOISE_LIMIT, and any step whose fields,
    forces, response or weight response are not finite, raise a ConvergenceError (key "response",
    or "training.lr" for the other responses) naming the step and its time.

    mirror: an orthogonal involution S (d × d) of the fields that leaves the problem invariant
    (δ(S h) = S δ(h) for the same data, the loss's state S-invariant; `solve.trunk_mirror`): the
    paths come in pairs, each with its image — same data, initial and source normals mapped by S
    (`mirrored_normals`, `mirrored_sources`) — so that every path average is S-symmetric and the
    solution stays on the symmetric manifold, as the N → ∞ limit does (docs/DMFT.md §4: the
    symmetric solution of the two-task trunk is unstable late and unpaired paths break it at a
    time ∝ ln n). n_paths, n_response and n_sources must be multiples of 2 × the number of
    sample-side populations (the default n_sources: n_paths/2 rounded down to one)."""
    steps = np.asarray(steps, float)
    K = steps.size
    d = loss.dim
    n, nr = int(n_paths), int(min(n_response, n_paths))
    a = lr * steps
    decay_step = 1.0 - lr * weight_decay * steps
    if response is None:
        response = "stein" if getattr(loss, "kink", False) else "recursion"
    if response not in RESPONSES:
        raise RequestError("response", f"one of {RESPONSES}, not {response!r}")
    if response == "stein" and noise != "sources":
        raise RequestError("noise", "the Stein response needs the source noise ('sources')")
    if noise not in ("sources", "cholesky"):
        raise RequestError("noise", f"'sources' or 'cholesky', not {noise!r}")
    n_data = loss.normals(gram)
    n_z = (K + 1) * d if noise == "cholesky" else d
    block = loss.T if getattr(loss, "separate", False) else 1
    if mirror is not None:
        mirror = np.asarray(mirror, float)
        if mirror.shape != (d, d) or not np.allclose(mirror @ mirror.T, np.eye(d)):
            raise RequestError("mirror", f"needs an orthogonal ({d} × {d}) matrix")
        if n_sources is None:        # the default n/2, rounded down to whole pairs of blocks
            n_sources = max(2 * block, n // (4 * block) * 2 * block)
        for key, v in (("n_paths", n), ("n_response", nr), ("n_sources", n_sources)):
            if v % (2 * block):
                raise RequestError(key, f"mirrored paths come in pairs of {block}-path blocks: need a "
                                        f"multiple of {2 * block}, got {v}")
        normals = mirrored_normals(rng, n, n_data, n_z, d, mirror, whiten, block)
    else:
        normals = standard_normals(rng, n, n_data + n_z, whiten)
    data = loss.sample(gram, normals[:, :n_data])
    mu = data.lam @ np.linalg.pinv(gram, hermitian=True).T        # T⁺ λ, (n, C)
    weights = getattr(loss, "path_weights", lambda size: np.full(size, 1.0 / size))
    w_all = weights(n)
    Ct = mu.shape[1]
    z = normals[:, n_data:]                                        # the process's normals
    xp = _arrays(device)
    if noise == "sources":
        m = int(n_sources) if n_sources is not None else max(1, n // 2)
        if not 1 <= m <= n:
            raise RequestError("n_sources", f"need 1 ≤ n_sources ≤ n_paths, got {m}")
        if mirror is not None:
            g_src = mirrored_sources(rng, n, m, block)
        else:
            g_src = rng.standard_normal((n, m), dtype=np.float32)
            g_src[np.arange(m), np.arange(m)] = 0.0                # no path is its own source
        g_src = xp.put(g_src, np.float32)
        src_scale = -1.0 / np.sqrt(alpha * m)
        src_w = np.sqrt(m * weights(m))[:, None]                  # 1 for uniform weights
    eye = np.eye(d)
    # kernels stored flat: X[k d + a, l d + b] = X(k, l)[a, b]; chi's column block j + 1 holds
    # χ(·, j) (block 0: the initial condition, j = −1)
    Kd = (K + 1) * d
    chi = np.zeros((Kd, Kd))
    chi[:d, :d] = eye
    R = np.zeros((Kd, Kd))
    Cd = np.zeros((Kd, Kd))
    Cdiag = np.zeros((K + 1, d, d))
    acol = np.repeat(a, d)                                          # a_j on column block j
    M = np.zeros((K + 1, d, Ct))
    # per path and step, stored step-major (rows k d + a, paths along the columns): δ_k, and the
    # force on the fields that the weights carry forward, −δ_k/α + the sources' noise term
    deltas = xp.zeros((Kd, n))
    force = xp.zeros((Kd, n))
    stein = response == "stein"
    if response == "difference":
        from .response import FiniteDifferenceResponse
        resp = FiniteDifferenceResponse(loss, data.take(slice(0, nr)), weights(nr), K, alpha, fd_step)
    elif stein:
        from .response import SteinResponse
        resp = SteinResponse(K, d, n, alpha, a, init_scale, w_all, z[:, :d])
    else:
        resp = _Response(K, d, nr, alpha, response_dtype, xp)
    w_resp = weights(nr)
    chol = _GrowingCholesky(Kd) if noise == "cholesky" else None
    tl = [None] * (K + 1) if train_metrics else None
    te = [None] * (K + 1) if train_metrics else None
    state = loss.initial_state()
    states = []
    t_grid = np.concatenate([[0.0], np.cumsum(steps)])
    decay = np.concatenate([[1.0], np.cumprod(decay_step)])
    muT = xp.put(mu.T)
    zT = xp.put(z.T)

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
        # --- sample side: h_k = M_k T⁺λ + ζ_k − (1/α) Σ_{j<k} a_j χ(k, j) δ_j ----------------
        # (with source noise, ζ_k = σ₀ χ(k,−1) g + Σ_{j<k} a_j χ(k, j) × the sources' term,
        # which `force` carries together with −δ_j/α)
        if noise == "cholesky":      # extend the factor by the d rows of step k
            for c in range(d):
                chol.add_row(kd + c, row[c])
            hT = xp.put(chol.L[rk, :kd + d]) @ zT[:kd + d]
        else:
            hT = xp.put(init_scale * chi[rk, :d]) @ zT
        hT += xp.put(M[k]) @ muT
        if k:
            hT += xp.put(Ak) @ force[:kd]
        h = xp.get(hT.T)
        if response == "recursion":
            delta, D = loss.grad_hess(h, data, state)
        else:
            delta = loss.grad(h, data, state)
        deltaT = xp.put(delta.T)
        deltas[rk] = deltaT
        force[rk] = deltaT * (-1.0 / alpha)
        if noise == "sources":       # η_k = √(α/m) Σ_p δ_k^(p) g_p, entering as −(1/α) η_k
            src_k = (g_src @ xp.put(src_w * delta[:m], np.float32)).T
            force[rk] += src_scale * src_k
            if stein and k < K:      # each path's η_k and C_η(k, ·) = α Σ_q ω_q δ_k^(q) δ_·^(q)ᵀ
                wm = weights(m)[:, None] * delta[:m]
                cov = alpha * xp.get(deltas[:kd + d, :m] @ xp.put(wm)).T
                resp.add_noise(k, -alpha * src_scale * xp.get(src_k.T).astype(float), cov)
        states.append(state)
        if train_metrics:
            ce, err = loss.train_metrics(h, data, state)
            mean = np.nanmean if getattr(loss, "separate", False) else np.mean   # NaN: no label
            tl[k], te[k] = mean(ce, axis=0), mean(err, axis=0)
        Cd[:kd + d, rk] = xp.get(deltas[:kd + d] @ xp.put(w_all[:, None] * delta))
        Cd[rk, :kd + d] = Cd[:kd + d, rk].T
        # --- per-path response on the first nr paths; R(k, ·) ---------------------------------
        if stein:
            R[rk, :kd + d] = resp.step(k, delta, chi)
            if k < K and a[k] * resp.noise > STEIN_NOISE_LIMIT:
                raise ConvergenceError(
                    "response", f"the Stein response is noise at step {k} (t = {t_grid[k]:g}): the "
                    f"sampling error of its change of the weight response, a_k Y(k, ·), is "
                    f"{a[k] * resp.noise:.3g} (split-half estimate; limit {STEIN_NOISE_LIMIT:g}), "
                    f"and the solution diverges from here. Its error grows as the paths' noise is "
                    f"nearly degenerate (forces δ that change little along a path: small heads or "
                    f"task weights); use response='difference', or more paths",
                    residual=a[k] * resp.noise, status={"step": k, "time": t_grid[k], "n_paths": n})
        elif response == "difference":
            R[rk, :kd + d] = resp.step(k, h[:nr], delta[:nr], Ak, state)
        else:
            R[rk, :kd + d] = resp.step(k, Ak, D[:nr], w_resp)
        _diverged(k, t_grid[k], stein, fields=h, forces=delta, response=R[rk])
        if k == K:
            break
        # --- weight side: χ(k+1, ·) and M_{k+1} ----------------------------------------------
        r1 = slice(kd + d, kd + 2 * d)
        chi[r1, :kd + d] = decay_step[k] * chi[rk, :kd + d] - a[k] * (R[rk, :kd + d] @ chi[:kd + d, :kd + d])
        chi[r1, r1] = eye
        M[k + 1] = decay_step[k] * M[k] - a[k] * ((w_all[:, None] * delta).T @ data.lam)
        _diverged(k + 1, t_grid[k + 1], stein, weight_response=chi[r1], teacher_overlap=M[k + 1])
        state = loss.advance(state, h, data, steps[k])
    if train_metrics:
        tl, te = np.array(tl), np.array(te)

    def blocks(X):
        return X.reshape(K + 1, d, K + 1, d).transpose(0, 2, 1, 3)
    return DmftTrajectory(t_grid, M, Cdiag, decay, tl, te, blocks(R), blocks(chi), blocks(Cd),
                          states)

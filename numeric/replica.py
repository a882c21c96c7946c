"""Replica-symmetric fixed point of regularized softmax regression (MODEL.md protocol `erm`).

Each task t has a glm student W_t (C×N) trained on P_t = α_t N samples by
Σ_μ w_t CE(W_t x/√N, y_t) + (λ/2) Σ_t ‖W_t‖² + (μ/2) Σ_{t<s} ‖W_t − W_s‖².
Softmax and argmax ignore the all-ones direction and the ridge sends it to zero, so everything
lives in the d = C − 1 coordinates ζ = E z (E: orthonormal rows ⟂ 1, `reduced_basis`).  The
teacher of task t enters through its reduced logits E λ_t = L_t u_t, u_t ~ N(0, I_{r_t})
(L_t: a factor of E T_tt Eᵀ), the tasks' u jointly N(0, G).

Order parameters (one task block each, the prior channel couples them): Q = ⟨ζ ζᵀ⟩ (d×d),
M = ⟨ζ uᵀ⟩ (d×r), the response V (d×d), and conjugates Q̂, M̂, V̂.

Prior channel (Gaussian, closed form; derived in `mtsp.derive.replica`), with
Λ = λ I_T + μ L_T and block-diagonal hats:
    V = (Λ ⊗ I_d + V̂)⁻¹,   M = V M̂ G,   Q = V (M̂ G M̂ᵀ + Q̂) V.
Loss channel of task t (ω ~ N(0, Q_tt); u | ω ~ N(A ω, V⁰), A = Mᵀ Q⁻¹, V⁰ = I − Mᵀ Q⁻¹ M):
    h_y(ω) = argmin_h w ℓ(h, y) + ½ (h − ω)ᵀ V⁻¹ (h − ω)   (ℓ(h, y) = CE(Eᵀ h, y)),
    f_y = −w ∇ℓ(h_y),  H_y = w ∇²ℓ(h_y),
    Q̂ = α E_ω Σ_y P(y|ω) f_y f_yᵀ,
    V̂ = α E_ω Σ_y P(y|ω) (I + H_y V)⁻¹ H_y,
    M̂ = α E_ω Σ_y f_y ∇_a P(y | a)ᵀ at a = A ω   (residual/Stein form: P(y|a) is a Gaussian orthant
         probability of the label differences, smooth in a whenever the labels are noisy or the
         teacher has rank C − 1, and its gradient is φ·Φ (C = 3) or φ (C = 2) — no δ on decision
         boundaries).
The ω-integral is a tensor Gauss–Hermite rule in d dimensions; the prox is a batched Newton
solve (Jacobian I + V H) with backtracking on the convex prox objective.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .online import _class_diffs, _cone_probability
from .quadrature import gauss_hermite

__all__ = ["ReplicaAccuracy", "ReplicaError", "SeparableError", "reduced_basis", "teacher_factor", "TaskChannel",
           "channel_hats", "prior_channel", "solve_fixed_point", "FixedPoint"]


class ReplicaError(RuntimeError):
    """The fixed-point iteration did not converge; the message carries the residual."""


class SeparableError(ReplicaError):
    """The training data are (nearly) separable at this α and the ridge too small: ‖Q‖ ∝ 1/λ."""


@dataclass(frozen=True)
class ReplicaAccuracy:
    """Gauss–Hermite nodes per reduced axis (C = 2: `nodes1`, C = 3: `nodes2`), fixed-point tolerance
    on the largest relative change of (Q, M, V), iteration cap, Anderson memory and mixing."""
    nodes1: int = 96
    nodes2: int = 48
    tol: float = 1e-11
    max_iter: int = 600
    memory: int = 6
    mixing: float = 0.7
    newton_tol: float = 1e-13
    separable_norm: float = 1e6   # tr Q beyond this (×(1 + 1/λ)) ends the solve with SeparableError

    def nodes(self, d: int) -> int:
        if d == 1:
            return self.nodes1
        if d == 2:
            return self.nodes2
        raise NotImplementedError(f"classes: the replica engine integrates C ≤ 3 classes (got C = {d + 1})")


def reduced_basis(C: int) -> np.ndarray:
    """E ((C−1)×C): orthonormal rows orthogonal to the all-ones vector (Helmert rows)."""
    E = np.zeros((C - 1, C))
    for k in range(1, C):
        E[k - 1, :k] = 1.0
        E[k - 1, k] = -k
        E[k - 1] /= np.sqrt(k * (k + 1))
    return E


def teacher_factor(T_reduced: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """L (d×r) with L Lᵀ = T_reduced, r its numerical rank (columns: eigenvectors·√eigenvalue)."""
    vals, vecs = np.linalg.eigh(0.5 * (T_reduced + T_reduced.T))
    keep = vals > tol * max(vals[-1], 1e-300)
    return vecs[:, keep] * np.sqrt(vals[keep])


@dataclass(frozen=True)
class TaskChannel:
    """One task's loss channel: classes C, reduced teacher factor L (d×r), noise σ, α, weight w."""
    C: int
    L: np.ndarray
    sigma: float
    alpha: float
    weight: float = 1.0

    @property
    def d(self) -> int:
        return self.C - 1

    @property
    def r(self) -> int:
        return self.L.shape[1]


def _softmax_reduced(h: np.ndarray, E: np.ndarray) -> np.ndarray:
    z = h @ E
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


def _ce_reduced(h: np.ndarray, y: int, E: np.ndarray) -> np.ndarray:
    z = h @ E
    m = z.max(axis=-1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=-1)) - z[:, y]


def prox_cross_entropy(omega: np.ndarray, y: int, V: np.ndarray, E: np.ndarray, weight: float = 1.0,
                       tol: float = 1e-13, max_iter: int = 60):
    """h = argmin_h w CE(Eᵀh, y) + ½ (h − ω)ᵀ V⁻¹ (h − ω) for every row of ω (n×d), by Newton's
    method on G(h) = V w ∇ℓ(h) + h − ω (Jacobian I + V H), each step halved until the convex prox
    objective decreases.  Returns (h, p = softmax(Eᵀh), H = w ∇²ℓ(h)); raises ReplicaError when a
    node does not reach |G| < tol·(1 + |ω|)."""
    n, d = omega.shape
    Vinv = np.linalg.inv(V)
    ey = E[:, y]
    h = omega.copy()

    def objective(hh):
        r = hh - omega
        return weight * _ce_reduced(hh, y, E) + 0.5 * np.einsum("ni,ij,nj->n", r, Vinv, r)

    I = np.eye(d)
    scale = tol * (1.0 + np.abs(omega).max(axis=1))
    for _ in range(max_iter):
        p = _softmax_reduced(h, E)
        grad = weight * (p @ E.T - ey)
        G = grad @ V.T + h - omega
        if np.all(np.abs(G).max(axis=1) <= scale):
            break
        H = weight * (np.einsum("ic,nc,jc->nij", E, p, E) - np.einsum("ni,nj->nij", p @ E.T, p @ E.T))
        J = I + np.einsum("ij,njk->nik", V, H)
        step = np.linalg.solve(J, G[..., None])[..., 0]
        f0 = objective(h)
        t = np.ones(n)
        cand = h - step
        for _ in range(40):
            bad = objective(cand) > f0 + 1e-12 * (1.0 + np.abs(f0))
            if not bad.any():
                break
            t = np.where(bad, 0.5 * t, t)
            cand = h - t[:, None] * step
        h = cand
    else:
        raise ReplicaError(f"prox of the cross-entropy: Newton did not converge in {max_iter} steps "
                           f"(largest residual {np.abs(G).max():.3e})")
    p = _softmax_reduced(h, E)
    H = weight * (np.einsum("ic,nc,jc->nij", E, p, E) - np.einsum("ni,nj->nij", p @ E.T, p @ E.T))
    return h, p, H


def _label_given_a(ch: TaskChannel, E: np.ndarray, a: np.ndarray, V0: np.ndarray):
    """P(y = c | teacher mean a) and ∇_a P (n×r) for every class: the label fields Eᵀ(L u + σξ_r)
    given u ~ N(a, V⁰); class c is the cone D_c ν > 0 (ties to the first index are measure zero
    here).  Returns p (n×C) and grads (C, n, r)."""
    C = ch.C
    S = ch.L @ V0 @ ch.L.T + ch.sigma ** 2 * np.eye(ch.d)   # cov of E ν given a
    n = a.shape[0]
    p = np.empty((n, C))
    grads = np.empty((C, n, ch.r))
    for c in range(C):
        D = _class_diffs(C, c) @ E.T          # (C−1)×d, on the reduced label fields
        G = D @ ch.L                          # (C−1)×r
        Su = D @ S @ D.T
        if np.linalg.eigvalsh(Su)[0] <= 1e-14 * np.trace(Su):
            raise NotImplementedError(
                "teacher: clean labels (noise 0) from a teacher of rank below C − 1 put the labels "
                "on a lower-dimensional set; the replica engine needs noise > 0 there")
        pc, v = _cone_probability(a @ G.T, Su, stein=True)
        p[:, c] = pc
        grads[c] = v @ G
    return p, grads


def channel_hats(ch: TaskChannel, Q: np.ndarray, M: np.ndarray, V: np.ndarray, nodes: int,
                 newton_tol: float = 1e-13, train: bool = False):
    """(Q̂, M̂, V̂) of one task's loss channel at (Q, M, V) — see the module docstring — and, with
    ``train``, the training loss and training error E_ω Σ_y P(y|ω) [CE(h_y, y), 1{argmax h_y ≠ y}]."""
    d, C = ch.d, ch.C
    E = reduced_basis(C)
    x, w = gauss_hermite(nodes)
    grid = np.stack(np.meshgrid(*([x] * d), indexing="ij"), axis=-1).reshape(-1, d)
    wts = np.prod(np.stack(np.meshgrid(*([w] * d), indexing="ij"), axis=-1).reshape(-1, d), axis=1)
    vals, vecs = np.linalg.eigh(Q)
    if vals[0] <= 0:
        raise ReplicaError(f"Q lost positive definiteness (eigenvalue {vals[0]:.3e})")
    F = vecs * np.sqrt(vals)
    omega = grid @ F.T
    Qinv_M = np.linalg.solve(Q, M)
    A = Qinv_M.T                                  # r×d
    V0 = np.eye(ch.r) - M.T @ Qinv_M
    V0 = 0.5 * (V0 + V0.T)
    if ch.r and np.linalg.eigvalsh(V0)[0] < -1e-12:
        raise ReplicaError(f"M exceeds its Cauchy–Schwarz bound (I − Mᵀ Q⁻¹ M has eigenvalue "
                           f"{np.linalg.eigvalsh(V0)[0]:.3e})")
    py, grads = _label_given_a(ch, E, omega @ A.T, V0)
    Qh = np.zeros((d, d))
    Mh = np.zeros((d, ch.r))
    Vh = np.zeros((d, d))
    tl = te = 0.0
    I = np.eye(d)
    for y in range(C):
        h, p, H = prox_cross_entropy(omega, y, V, E, ch.weight, newton_tol)
        f = -ch.weight * (p @ E.T - E[:, y])
        wy = wts * py[:, y]
        Qh += (f * wy[:, None]).T @ f
        Mh += (f * wts[:, None]).T @ grads[y]
        R = np.linalg.solve(I + np.einsum("nij,jk->nik", H, V), H)
        Vh += np.einsum("n,nij->ij", wy, R)
        if train:
            tl += wy @ _ce_reduced(h, y, E)
            te += wy @ (np.argmax(h @ E, axis=1) != y)
    a = ch.alpha
    out = (a * 0.5 * (Qh + Qh.T), a * Mh, a * 0.5 * (Vh + Vh.T))
    if train:
        return out + (float(tl), float(te))
    return out


def prior_channel(Lam: np.ndarray, G: np.ndarray, Qh, Mh, Vh, dims, ranks):
    """(Q, M, V) of the Gaussian prior channel: V = (Λ ⊗ I_d + V̂)⁻¹, M = V M̂ G,
    Q = V (M̂ G M̂ᵀ + Q̂) V with block-diagonal hats (task blocks of sizes `dims` × `ranks`)."""
    D, Rk = sum(dims), sum(ranks)
    do = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    ro = np.concatenate([[0], np.cumsum(ranks)]).astype(int)
    Vhat = np.kron(Lam, np.eye(dims[0])) if len(set(dims)) == 1 else np.diag(np.repeat(np.diag(Lam), dims))
    Qhat = np.zeros((D, D))
    Mhat = np.zeros((D, Rk))
    for t in range(len(dims)):
        s = slice(do[t], do[t + 1])
        Vhat[s, s] += Vh[t]
        Qhat[s, s] = Qh[t]
        Mhat[s, ro[t]:ro[t + 1]] = Mh[t]
    V = np.linalg.inv(Vhat)
    V = 0.5 * (V + V.T)
    MG = Mhat @ G
    M = V @ MG
    Q = V @ (MG @ Mhat.T + Qhat) @ V
    return 0.5 * (Q + Q.T), M, V


@dataclass
class FixedPoint:
    """The solution: full (all-task) Q, M, V and the hats per task, with the residual reached, the
    iteration count, and per task (train_loss, train_error)."""
    Q: np.ndarray
    M: np.ndarray
    V: np.ndarray
    hats: list
    residual: float
    iterations: int
    train: list = field(default_factory=list)


def _blocks(X, dims, ranks=None):
    do = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    if ranks is None:
        return [X[do[t]:do[t + 1], do[t]:do[t + 1]] for t in range(len(dims))]
    ro = np.concatenate([[0], np.cumsum(ranks)]).astype(int)
    return [X[do[t]:do[t + 1], ro[t]:ro[t + 1]] for t in range(len(dims))]


def solve_fixed_point(channels: list[TaskChannel], Lam: np.ndarray, G: np.ndarray,
                      acc: ReplicaAccuracy = ReplicaAccuracy(), start=None) -> FixedPoint:
    """Iterate (Q, M, V) → hats → (Q, M, V) to the fixed point by Anderson acceleration (type II,
    memory `acc.memory`) on the mixed map x ← (1 − β) x + β F(x), falling back to the plain mixed
    step whenever the extrapolated point is not admissible (Q or V not positive definite).
    Stops when max |F(x) − x| / (1 + max |x|) < acc.tol; otherwise raises ReplicaError with that
    residual (SeparableError when tr Q runs away like 1/λ)."""
    dims = [c.d for c in channels]
    ranks = [c.r for c in channels]
    D, Rk = sum(dims), sum(ranks)
    iu = np.triu_indices(D)

    def pack(Q, M, V):
        return np.concatenate([Q[iu], M.ravel(), V[iu]])

    def unpack(x):
        n = len(iu[0])
        out = []
        for k, part in enumerate((x[:n], None, x[n + D * Rk:])):
            if part is None:
                continue
            S = np.zeros((D, D))
            S[iu] = part
            out.append(S + S.T - np.diag(np.diag(S)))
        return out[0], x[n:n + D * Rk].reshape(D, Rk), out[1]

    nodes = [acc.nodes(d) for d in dims]

    def F(x, train=False):
        Q, M, V = unpack(x)
        hats = [channel_hats(ch, Qt, Mt, Vt, n, acc.newton_tol, train)
                for ch, Qt, Mt, Vt, n in zip(channels, _blocks(Q, dims), _blocks(M, dims, ranks),
                                             _blocks(V, dims), nodes)]
        Qn, Mn, Vn = prior_channel(Lam, G, [h[0] for h in hats], [h[1] for h in hats],
                                   [h[2] for h in hats], dims, ranks)
        return pack(Qn, Mn, Vn), hats

    def admissible(x):
        Q, M, V = unpack(x)
        if np.linalg.eigvalsh(Q)[0] <= 0 or np.linalg.eigvalsh(V)[0] <= 0:
            return False
        for ch, Qt, Mt in zip(channels, _blocks(Q, dims), _blocks(M, dims, ranks)):
            if ch.r and np.linalg.eigvalsh(np.eye(ch.r) - Mt.T @ np.linalg.solve(Qt, Mt))[0] <= 1e-14:
                return False
        return True

    if start is None:
        # the response and overlaps of a first-order guess: V = (Λ + α/4)⁻¹, small M, Q = |M|² + 0.1 V
        lam0 = np.max(np.diag(Lam))
        v0 = 1.0 / (lam0 + 0.25 * max(c.alpha for c in channels) + 1e-3)
        V = v0 * np.eye(D)
        M = np.zeros((D, Rk))
        ro = np.concatenate([[0], np.cumsum(ranks)]).astype(int)
        do = np.concatenate([[0], np.cumsum(dims)]).astype(int)
        for t, ch in enumerate(channels):
            M[do[t]:do[t + 1], ro[t]:ro[t + 1]] = 0.3 * ch.L / max(1.0, np.abs(ch.L).max())
        Q = M @ M.T / 0.5 + 0.1 * np.eye(D)
        x = pack(Q, M, V)
    else:
        x = pack(*start)
    beta = acc.mixing
    X_hist, R_hist = [], []
    res = np.inf
    lam_min = max(float(np.linalg.eigvalsh(Lam)[0]), 1e-300)
    for it in range(1, acc.max_iter + 1):
        fx, _ = F(x)
        r = fx - x
        res = float(np.abs(r).max() / (1.0 + np.abs(x).max()))
        if res < acc.tol:
            fx, hats = F(x, train=True)
            Q, M, V = unpack(x)
            return FixedPoint(Q, M, V, [h[:3] for h in hats], res, it, [h[3:] for h in hats])
        trQ = float(np.trace(unpack(x)[0]))
        if trQ > acc.separable_norm * (1.0 + 1.0 / lam_min):
            raise SeparableError(
                f"ridge: tr Q = {trQ:.3e} keeps growing like 1/λ (λ = {lam_min:g}): the training data "
                f"are separable at this α and the minimiser runs off; raise the ridge "
                f"(residual {res:.3e} after {it} iterations)")
        X_hist.append(x.copy())
        R_hist.append(r.copy())
        if len(X_hist) > acc.memory + 1:
            X_hist.pop(0)
            R_hist.pop(0)
        x_new = x + beta * r
        if len(X_hist) >= 2:
            dX = np.array([X_hist[k + 1] - X_hist[k] for k in range(len(X_hist) - 1)]).T
            dR = np.array([R_hist[k + 1] - R_hist[k] for k in range(len(R_hist) - 1)]).T
            try:
                gamma, *_ = np.linalg.lstsq(dR, r, rcond=1e-12)
                cand = x + beta * r - (dX + beta * dR) @ gamma
                if np.all(np.isfinite(cand)) and admissible(cand):
                    x_new = cand
                else:
                    X_hist, R_hist = [], []
            except np.linalg.LinAlgError:
                X_hist, R_hist = [], []
        if not admissible(x_new):
            # plain mixed step not admissible either: a smaller step along it
            for _ in range(30):
                beta_try = 0.5 * (x_new - x)
                x_new = x + beta_try
                if admissible(x_new):
                    break
        x = x_new
    raise ReplicaError(f"replica fixed point did not converge in {acc.max_iter} iterations "
                       f"(residual {res:.3e} > tol {acc.tol:.1e})")

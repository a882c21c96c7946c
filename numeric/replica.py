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
         teacher has rank C − 1, and its gradient is φ (C = 2), φ·Φ (C = 3), φ·Φ₂ (C = 4) or
         φ times a Genz orthant (C = 5, `orthant_with_mean`) — no δ on decision boundaries; one task
         with C ≥ `ReplicaAccuracy.qmc_classes` (5) runs the QMC channel of `replica_qmc` instead).
Coupled tasks on shared inputs share one loss channel: the same formulas over the stacked reduced
fields of all tasks (full Q, M, V, joint teacher u ~ N(0, G), joint labels, the prox of
Σ_t w_t CE under the full V; `loss_channel_hats`; from Σ_t (C_t − 1) = `ReplicaAccuracy.qmc_joint_dims`
(4) on the QMC rule of `ReplicaAccuracy.joint_points` points, `replica_qmc.qmc_loss_channel_hats`), and
the prior channel takes its full hats.
The ω-integral is a tensor trapezoid rule in whitened coordinates (ω = Q^{1/2} g), its spacing set by the
steepest label layer and the spread of ω (`nodes_for`); the prox is a batched Newton solve
(Jacobian I + V H) with an Armijo line search on the convex prox objective.  Training loss and
error are E_ω Σ_y P(y|ω) [CE(h_y, y), 1{argmax h_y ≠ y}] at the fixed point (the error of one task
with C ≤ 3 in the prox's margin coordinates, `train_error_by_margins`; of the joint channel of
coupled two-class tasks across each task's decision boundary, `joint_train_errors_by_boundaries`).
The channel code (rules, prox, labels, hats, train metrics, prior channel, `ReplicaMap`) runs in an
arithmetic ``ar``: `cone.DOUBLE` (float64), or `cone.MP` (NumPy object arrays of
mpf) — the mp map of `--precision mp` and `mtsp check` is this code on mp numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, partial

import numpy as np

from .cone import DOUBLE
from .mp_online import MpRules
from .online import DoubleRules, _class_diffs, _cone_probability
from .quadrature import tanh_sinh01
from mtsp.errors import ConvergenceError, ReachError
from mtsp.model import TaskChannel, reduced_basis, teacher_factor

__all__ = [
    "FixedPoint",
    "ReplicaAccuracy",
    "ReplicaError",
    "SeparableError",
    "TaskChannel",
    "channel_hats",
    "prior_channel",
    "reduced_basis",
    "refuse_degenerate_students",
    "solve_fixed_point",
    "teacher_factor",
]


DOUBLE_R = DOUBLE   # the loss channel's arithmetic in float64 (`cone.DOUBLE`; mp: `cone.MP`)
RULES = {"double": DoubleRules(), "mp": MpRules()}   # `online`'s closed forms per arithmetic (by name)


class ReplicaError(ConvergenceError):
    """The fixed-point iteration did not converge; the message carries the residual (a
    `mtsp.errors.ConvergenceError`: the CLI reports it in one line, exit status 3)."""


class SeparableError(ReplicaError):
    """The training data are separable at this α and the ridge (near) zero: Q runs away."""


@dataclass(frozen=True)
class ReplicaAccuracy:
    """Quadrature of the ω-integrals (`tensor_trapezoid`: node spacing `spacing[d]` in whitened
    units, at most `layer_fraction` of the width of the steepest label layer (`label_layer_width`)
    and `field_spacing` in field units; at most `max_nodes[d]` per axis, `nodes_for`), fixed-point tolerance on max |F(x) − x| / (1 + max |x|),
    iteration cap, Anderson memory and mixing, Newton tolerance of the prox."""
    spacing: tuple = (None, 0.17, 0.36, 0.55, 0.9)
    layer_fraction: float = 0.4
    field_spacing: tuple = (None, 0.6, 0.6, 0.9, 1.1)
    max_nodes: tuple = (None, 801, 201, 61, 23)
    tol: float = 1e-11
    max_iter: int = 600
    memory: int = 6
    mixing: float = 0.7
    newton_tol: float = 1e-13
    separable_norm: float = 1e6   # λ = 0: tr Q beyond this ends the solve with SeparableError
    #                               (separable data: ‖W‖ grows like log 1/λ, without bound at λ = 0)
    qmc_classes: int = 5          # one task with C ≥ this: the QMC channel (`replica_qmc`) ...
    qmc_points: int = 2 ** 14     # ... on this many points of the project's Sobol' set
    qmc_seed: int = 0             # ... scrambled with this seed
    qmc_joint_dims: int = 4       # coupled tasks on shared inputs with Σ_t (C_t − 1) ≥ this: their
    #                               joint channel on a QMC rule (`replica_qmc.qmc_loss_channel_hats`) of
    qmc_joint_points: tuple = ((0, 2 ** 13), (6, 2 ** 14))   # ... (from Σ, points) pairs: the points of
    #                               the last pair with from ≤ Σ (`joint_points`; measured error per Σ:
    #                               benchmarks/results/replica_joint_points.txt)
    margin_train_error: int = 2   # one task with C − 1 ≤ this: train_error in margin coordinates
    #                               (`train_error_by_margins`); beyond, the indicator on the rule
    boundary_train_error: bool = True   # a joint channel of two-class tasks (tensor or QMC rule):
    #                               train_error across the decision boundaries (double arithmetic only;
    #                               `joint_train_errors_by_boundaries`, `replica_qmc.qmc_boundary_train_errors`)
    qmc_replicates: tuple = (4, 16)   # a solve with a channel on the QMC rule: (at least, at most) this
    #                               many independent scramblings (seeds qmc_seed, qmc_seed + 1, …), each
    #                               its own fixed point; the predictions are their mean, their standard
    #                               error the rule's error estimate (`erm.solve_erm`, docs/REPLICA_QMC.md)
    qmc_target: float = 3e-4      # ... replicates are added until every prediction's standard error is
    #                               below this (else `replica_qmc.QmcAccuracyWarning` naming `accuracy`)

    def joint_points(self, dims: int) -> int:
        """The QMC points of a joint channel of Σ_t (C_t − 1) = ``dims`` (`qmc_joint_points`)."""
        return max((lo, n) for lo, n in self.qmc_joint_points if lo <= dims)[1]


HALF_WIDTH = 8.5   # the rules stop at |g| = 8.5 (φ(8.5) ≈ 2e-16)
STAGE_TOL = 1e-5   # a stage of the fixed-point iteration ends (nodes checked) at this residual
NEGLIGIBLE = 1e-15  # (node, label) pairs of smaller weight are left out of the loss-channel sums
#   (from 1e-18: gen_error moved ≤ 5e-14 at C = 2, 3, 4 points; C = 4 solve 38 → 30 s)


@cache
def tensor_trapezoid(d: int, n: int, half: float = HALF_WIDTH, ar=DOUBLE_R):
    """Nodes g (n^d × d) and weights (∝ Π φ(g_i), summing to 1) of the tensor trapezoid rule for
    E[F(g)], g ~ N(0, I_d), on [−half, half]^d.  For F analytic in a strip |Im g| < a its error
    falls like exp(−2πa/h), h the spacing.  Chosen over Gauss–Hermite, which converged slowly here
    (the prox of the cross-entropy is analytic only in a narrow strip; measured at the MODEL.md
    C = 2 point: Gauss–Hermite 96 → 160 nodes moved Q by 5e-8, this rule 96 → 160 by 1e-13)."""
    x = ar.linspace(-half, half, n)
    w = ar.exp(-0.5 * x * x)
    w = w / w.sum()
    grid = np.stack(np.meshgrid(*([x] * d), indexing="ij"), axis=-1).reshape(-1, d)
    wts = np.prod(np.stack(np.meshgrid(*([w] * d), indexing="ij"), axis=-1).reshape(-1, d), axis=1)
    return grid, wts


def _rowmax(x: np.ndarray) -> np.ndarray:
    """max over the (few) columns, column by column (numpy's reduce along a short last axis costs
    a per-row overhead that dominated the prox: measured 2.1 of 5.4 s of a C = 3 solve)."""
    out = x[:, 0].copy()
    for k in range(1, x.shape[1]):
        np.maximum(out, x[:, k], out=out)
    return out


def _rowsum(x: np.ndarray) -> np.ndarray:
    return x @ np.ones(x.shape[1])


def _lastmax(x: np.ndarray) -> np.ndarray:
    """max over the (few) entries of the last axis, entry by entry (see `_rowmax`)."""
    out = x[..., 0].copy()
    for k in range(1, x.shape[-1]):
        np.maximum(out, x[..., k], out=out)
    return out


def _lastsum(x: np.ndarray) -> np.ndarray:
    out = x[..., 0].copy()
    for k in range(1, x.shape[-1]):
        out += x[..., k]
    return out


@dataclass(frozen=True)
class SoftmaxBlocks:
    """The logits of T ≥ 1 tasks of C classes each sharing a sample: reduced fields h (n × T d,
    task by task) map to the logits z = h E_T (E_T = I_T ⊗ E, (T d) × (T C)), viewed as
    (n, T, C); the loss is Σ_t w_t CE(z_t, y_t) with labels as one-hot rows (n, T C).  (Coupling
    needs equal C_t, so one basis E serves every task.)"""
    E: np.ndarray          # d × C, orthonormal rows ⟂ 1
    ET: np.ndarray         # I_T ⊗ E
    weights: np.ndarray    # (T,)
    ar: object = DOUBLE_R   # the arithmetic (E and the weights in it)

    @staticmethod
    def of(E: np.ndarray, weights, ar=DOUBLE_R) -> "SoftmaxBlocks":
        w = ar.array(np.atleast_1d(np.asarray(weights, dtype=float)))
        return SoftmaxBlocks(E, np.kron(np.eye(len(w)), E), w, ar)

    @property
    def T(self) -> int:
        return len(self.weights)

    def logits(self, h: np.ndarray) -> np.ndarray:
        return (h @ self.ET).reshape(h.shape[0], self.T, -1)


def _exp_logits(h: np.ndarray, B: SoftmaxBlocks):
    """Each task's logits z (n, T, C), their max m over the classes, e = exp(z − m) and Σ_c e."""
    z = B.logits(h)
    m = _lastmax(z)
    e = B.ar.exp(z - m[..., None])
    return z, m, e, _lastsum(e)


def _softmax_reduced(h: np.ndarray, B: SoftmaxBlocks) -> np.ndarray:
    """softmax of each task's logits (n, T, C)."""
    _, _, e, s = _exp_logits(h, B)
    return e / s[..., None]


def _ce_softmax(h: np.ndarray, Y: np.ndarray, B: SoftmaxBlocks, weighted: bool = True):
    """(Σ_t w_t CE(z_t, y_t) per row — with ``weighted`` False each task's CE(z_t, y_t) (n × T) —,
    the softmax (n, T, C)) from one exponential of the logits."""
    z, m, e, s = _exp_logits(h, B)
    # (m − z_y) first: 0 exactly where the label has the largest logit, so a small CE keeps its
    # digits (m + log s − z_y lost ε|z| ≈ 1e-15 |z| to the sum, ×w_t in the prox objective: with
    # w = 30 above Armijo's roundoff allowance, and the prox stalled at residual 4e-9)
    ce = (m - _lastsum(z * Y.reshape(z.shape))) + B.ar.log(s)
    return ce @ B.weights if weighted else ce, e / s[..., None]


def _ce_reduced(h: np.ndarray, Y: np.ndarray, B: SoftmaxBlocks, weighted: bool = True) -> np.ndarray:
    """Σ_t w_t CE(z_t, y_t) per row; with ``weighted`` False each task's CE(z_t, y_t) (n × T)."""
    return _ce_softmax(h, Y, B, weighted)[0]


def _residual(p: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """p − e_y task by task (n, T, C), without cancellation: the label entry is −Σ_{j≠y} p_j
    (1 − p_y loses all its digits when p_y → 1, and the prox multiplies the gradient by V ~ 1/λ)."""
    Y = Y.reshape(p.shape)
    return np.where(Y > 0, -_lastsum(p * (1.0 - Y))[..., None], p)


def _gradient(p: np.ndarray, Y: np.ndarray, B: SoftmaxBlocks) -> np.ndarray:
    """∇_h Σ_t w_t CE = the rows of (w_t (p_t − e_{y_t}))_t E_Tᵀ (n × T d)."""
    r = _residual(p, Y)
    if B.T == 1:
        return B.weights[0] * (r[:, 0] @ B.E.T)
    return (r * B.weights[:, None]).reshape(len(p), -1) @ B.ET.T


def _hessian(p: np.ndarray, B: SoftmaxBlocks) -> np.ndarray:
    """∇² Σ_t w_t CE: blocks w_t E (diag p_t − p_t p_tᵀ) Eᵀ on the diagonal (n × Td × Td);
    Σ_c E_ic E_jc p_c as one product p @ K, or for d ≤ 2 entry by entry over the classes (column
    operations on the rows: measured at n = 6e4, 3.7× faster at C = 3, one task; slower at C ≥ 4)."""
    E = B.E
    d = E.shape[0]
    if d <= 2:
        C = E.shape[1]
        Ep = [sum(E[i, c] * p[..., c] for c in range(C)) for i in range(d)]     # (n, T) each
        H = np.empty((*p.shape[:2], d, d), dtype=p.dtype)
        for i in range(d):
            for j in range(i + 1):
                H[..., i, j] = sum(E[i, c] * E[j, c] * p[..., c] for c in range(C)) - Ep[i] * Ep[j]
                H[..., j, i] = H[..., i, j]
        H *= B.weights[:, None, None]
    else:
        K = (E[:, None, :] * E[None, :, :]).reshape(d * d, -1).T
        Ep = p @ E.T                                                  # (n, T, d)
        H = ((p @ K).reshape(*p.shape[:2], d, d) - Ep[..., :, None] * Ep[..., None, :]) \
            * B.weights[:, None, None]
    if B.T == 1:
        return H[:, 0]
    out = np.zeros((len(p), B.T * d, B.T * d), dtype=p.dtype)
    for t in range(B.T):
        out[:, t * d:(t + 1) * d, t * d:(t + 1) * d] = H[:, t]
    return out


def solve_spd_small(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """A⁻¹ G for a batch of symmetric positive definite d×d matrices A (n×d×d) and right-hand sides
    G (n×d or n×d×k), in either arithmetic: Cramer's rule for d ≤ 2, beyond it A = L D Lᵀ (unit lower L, diagonal D > 0:
    no pivoting needed) and the two triangular solves, entry by entry across the batch (column
    operations on the rows; batched LAPACK makes one call per matrix: at d = 4 on the prox's chunks
    of 2^13 rows half its time, benchmarks/results/replica_joint_points_prox.txt)."""
    d = A.shape[-1]
    vec = G.ndim == 2
    Gm = G[..., None] if vec else G
    if d == 1:
        out = Gm / A
    elif d == 2:
        a, b, c, e = A[:, 0, 0], A[:, 0, 1], A[:, 1, 0], A[:, 1, 1]
        det = (a * e - b * c)[:, None]
        out = np.stack([e[:, None] * Gm[:, 0] - b[:, None] * Gm[:, 1],
                        a[:, None] * Gm[:, 1] - c[:, None] * Gm[:, 0]], axis=1) / det[:, None]
    else:
        n, k = Gm.shape[0], Gm.shape[2]
        a = A.reshape(n, d * d).T.copy().reshape(d, d, n)   # entry (i, j) across the batch, contiguous
        g = Gm.reshape(n, d * k).T.copy().reshape(d, k, n)
        L = [[None] * d for _ in range(d)]
        D = [None] * d
        for j in range(d):   # D_j = a_jj − Σ_{k<j} L_jk² D_k,  L_ij = (a_ij − Σ_{k<j} L_ik L_jk D_k) / D_j
            LD = [L[j][m] * D[m] for m in range(j)]
            D[j] = a[j, j] - sum(L[j][m] * LD[m] for m in range(j))
            for i in range(j + 1, d):
                L[i][j] = (a[i, j] - sum(L[i][m] * LD[m] for m in range(j))) / D[j]
        x = np.empty((n, d, k), dtype=A.dtype)
        for c in range(k):
            y = []
            for i in range(d):   # L y = g
                y.append(g[i, c] - sum(L[i][m] * y[m] for m in range(i)))
            xc = [None] * d
            for i in reversed(range(d)):   # D Lᵀ x = y
                xc[i] = y[i] / D[i] - sum(L[m][i] * xc[m] for m in range(i + 1, d))
                x[:, i, c] = xc[i]
        out = x
    return out[..., 0] if vec else out


def prox_response(H: np.ndarray, V: np.ndarray, w: np.ndarray, ar=DOUBLE_R) -> np.ndarray:
    """Σ_k w_k (I + H_k V)⁻¹ H_k (the V̂ integrand) = V⁻¹ Σ_k w_k (V⁻¹ + H_k)⁻¹ H_k (since
    I + H V = (V⁻¹ + H) V): one batch of SPD solves (`solve_spd_small`), no cancellation."""
    Vinv = _sym_inv(V, ar)
    return Vinv @ np.tensordot(w, solve_spd_small(Vinv + H, H), axes=1)


def _sym_inv(V: np.ndarray, ar=DOUBLE_R) -> np.ndarray:
    Vinv = ar.inv(V)
    return 0.5 * (Vinv + Vinv.T)


def prox_cross_entropy(omega: np.ndarray, Y: np.ndarray, V: np.ndarray, E,
                       weight: float = 1.0, tol: float = 1e-13, max_iter: int = 60,
                       h0: np.ndarray | None = None):
    """h = argmin_h Σ_t w_t CE((h E)_t, y_t) + ½ (h − ω)ᵀ V⁻¹ (h − ω) for every row of ω (n×D) with
    its labels (one-hot rows of Y, task by task), by Newton's method on G(h) = V ∇ℓ(h) + h − ω
    (Jacobian I + V H; the step (I + V H)⁻¹ G = (V⁻¹ + H)⁻¹ V⁻¹ G, `solve_spd_small`) from h0
    (default ω), each step halved until Armijo's sufficient decrease of the convex prox objective
    (whose softmax at the accepted point is the next step's).  ``E``: a `SoftmaxBlocks`, or one
    task's basis (with ``weight``).
    Returns (h, p = the softmax outputs task by task (n × T C), H = ∇²ℓ(h)); raises ReplicaError when a node does not
    reach |G| < tol·(1 + |ω| + |h − ω|)."""
    B = E if isinstance(E, SoftmaxBlocks) else SoftmaxBlocks.of(E, weight)
    ar = B.ar
    tol, roundoff = ar.tol(tol), ar.tol(1e-13)
    n, d = omega.shape
    Vinv = _sym_inv(V, ar)
    h = omega.copy() if h0 is None else h0.copy()

    def objective(hh):
        """(the prox objective per row, the softmax at hh)."""
        r = hh - omega
        ce, pp = _ce_softmax(hh, Y, B)
        return ce + 0.5 * _rowsum((r @ Vinv) * r), pp

    f0, p = objective(h)
    omega_max = _rowmax(np.abs(omega))
    for _ in range(max_iter):
        G = _gradient(p, Y, B) @ V.T + h - omega
        # the terms of G are as large as |ω| and |h − ω| = |V w ∇ℓ|: its roundoff floor
        scale = tol * (1.0 + omega_max + _rowmax(np.abs(h - omega)))
        if np.all(_rowmax(np.abs(G)) <= scale):
            break
        GV = G @ Vinv
        step = solve_spd_small(Vinv + _hessian(p, B), GV)
        t = np.ones(n)
        cand = h - step
        dec = _rowsum(GV * step)                 # ∇φ·step > 0: the predicted decrease
        for _ in range(40):
            fc, pc = objective(cand)
            # Armijo's sufficient decrease with c = 1/4 (a plain decrease test, or c = 1e-4, let
            # Newton bounce between the two sides of a sharp softmax corner with tiny progress;
            # near the minimum a full step decreases by dec/2 and passes), roundoff allowance
            bad = fc > f0 - 0.25 * t * dec + roundoff * (1.0 + np.abs(f0))
            if not bad.any():
                break
            t = np.where(bad, 0.5 * t, t)
            cand = h - t[:, None] * step
        h, f0, p = cand, fc, pc
    else:
        raise ReplicaError("replica", f"prox of the cross-entropy: Newton did not converge in {max_iter} steps "
                           f"(largest residual {float(np.abs(G).max()):.3e})", residual=float(np.abs(G).max()))
    return h, p.reshape(n, -1), _hessian(p, B)


def _label_given_a(ch: TaskChannel, E: np.ndarray, a: np.ndarray, V0: np.ndarray, ar=DOUBLE_R):
    """P(y = c | teacher mean a) and ∇_a P (n×r) for every class: the label fields Eᵀ(L u + σξ_r)
    given u ~ N(a, V⁰); class c is the cone D_c ν > 0 (ties to the first index are measure zero
    here).  Returns p (n×C) and grads (C, n, r)."""
    C = ch.C
    S = ch.L @ V0 @ ch.L.T + ar.array(ch.sigma) ** 2 * np.eye(ch.d)   # cov of E ν given a
    n = a.shape[0]
    p = np.empty((n, C), dtype=ar.dtype)
    grads = np.empty((C, n, ch.r), dtype=ar.dtype)
    for c in range(C):
        D = _class_diffs(C, c) @ E.T          # (C−1)×d, on the reduced label fields
        G = D @ ch.L                          # (C−1)×r
        Su = D @ S @ D.T
        if min(ar.eigvalsh(Su)) <= 1e-14 * np.trace(Su):
            raise ReachError(
                "teacher", "clean labels (noise 0) from a teacher of rank below C − 1 put the labels "
                "on a lower-dimensional set; the replica engine needs noise > 0 there")
        if C >= 4 and c == C - 1:   # the classes partition the space
            p[:, c] = 1.0 - p[:, :c].sum(axis=1)
            grads[c] = -grads[:c].sum(axis=0)
            break
        pc, v = orthant_with_mean(a @ G.T, Su, stein=True, ar=ar)
        p[:, c] = pc
        grads[c] = v @ G
    return p, grads


GENZ_NODES = 32   # tanh–sinh nodes of the outer coordinate of a three-dim orthant


def cone3_probability(mu: np.ndarray, S: np.ndarray, stein: bool = True, nodes: int = GENZ_NODES):
    """P(u > 0) for u ~ N(μ, S) of dimension 3 (rows of μ, one S), and the Stein vector v with
    ∇_μ P = v: v_j = φ(μ_j/s_j)/s_j · P(u_{−j} > 0 | u_j = 0), a bivariate Φ₂ (fixed correlation).
    P by Genz's reduction: u₀ = μ₀ + s₀ t with t above a = −μ₀/s₀, mapped to x ∈ (0, 1) by
    t = −Φ⁻¹(q(1 − x)), q = Φ(−a), so P = q ∫₀¹ Φ₂(conditional mean of (u₁, u₂) given u₀(t)) dx
    by the tanh–sinh rule (``nodes``; the quantile map has a log singularity at x = 1, where
    Gauss–Legendre converged only algebraically: 24 / 96 nodes 1e-5 / 5e-7)."""
    from scipy.special import ndtr, ndtri

    from .bivariate import bivariate_normal_cdf
    S = 0.5 * (S + S.T)
    s = np.sqrt(np.diag(S))

    def bivariate_above(m, C2):
        """P(w > 0) for w ~ N(m, C2), rows of m (… × 2)."""
        sd = np.sqrt(np.diag(C2))
        return bivariate_normal_cdf(m[..., 0] / sd[0], m[..., 1] / sd[1], C2[0, 1] / (sd[0] * sd[1]))

    _, xc, wx = tanh_sinh01(nodes)
    q = ndtr(mu[:, 0] / s[0])                                     # P(u₀ > 0)
    t = -ndtri(q[:, None] * xc[None, :])                  # n × nodes
    u0 = mu[:, :1] + s[0] * t
    k = S[1:, 0] / S[0, 0]
    cond_mean = mu[:, None, 1:] + (u0 - mu[:, :1])[..., None] * k
    cond_cov = S[1:, 1:] - np.outer(S[1:, 0], S[0, 1:]) / S[0, 0]
    P = q * (bivariate_above(cond_mean, cond_cov) @ wx)
    if not stein:
        return P, None
    v = np.empty_like(mu)
    for j in range(3):
        o = [i for i in range(3) if i != j]
        kj = S[o, j] / S[j, j]
        m_o = mu[:, o] - mu[:, j:j + 1] * kj                      # E[u_{−j} | u_j = 0]
        C_o = S[np.ix_(o, o)] - np.outer(S[o, j], S[j, o]) / S[j, j]
        v[:, j] = (np.exp(-0.5 * (mu[:, j] / s[j]) ** 2) / (np.sqrt(2 * np.pi) * s[j])
                   * bivariate_above(m_o, C_o))
    return P, v


GENZ_NODES_OUTER = 16   # tanh–sinh nodes per outer coordinate of an orthant beyond three dims


def orthant_with_mean(mu: np.ndarray, S: np.ndarray, stein: bool = True, nodes: int = GENZ_NODES,
                      ar=DOUBLE_R):
    """P(u > 0) for u ~ N(μ, S) (rows of μ, one S) of any dimension m, and with ``stein`` the
    vector v with ∇_μ P = v, v_j = φ(μ_j/s_j)/s_j · P(u_{−j} > 0 | u_j = 0): closed forms for m ≤ 2
    (`online._cone_probability`), `cone3_probability` for m = 3, and beyond by Genz's reduction of
    the first coordinate (as in `cone3_probability`, GENZ_NODES_OUTER tanh–sinh nodes) onto the
    (m − 1)-dim orthant of the conditional law, recursively, every level below the first at
    GENZ_NODES_OUTER nodes (measured at m = 4 against scipy's Genz CDF: ≤ 6e-8 on P, Stein vector
    within the difference quotient's 4e-8; cost ∝ GENZ_NODES_OUTER^(m−2) Φ₂ per row)."""
    from scipy.special import ndtr, ndtri
    m = mu.shape[1]
    if m <= 2:
        return _cone_probability(mu, S, stein=stein, rules=RULES[ar.name])
    if m == 3:
        return cone3_probability(mu, S, stein=stein, nodes=nodes)
    S = 0.5 * (S + S.T)
    s = np.sqrt(np.diag(S))
    _, xc, wx = tanh_sinh01(GENZ_NODES_OUTER)
    q = ndtr(mu[:, 0] / s[0])
    t = -ndtri(q[:, None] * xc[None, :])                  # n × nodes
    k = S[1:, 0] / S[0, 0]
    cond_mean = mu[:, None, 1:] + (s[0] * t)[..., None] * k       # u₀ − μ₀ = s₀ t
    cond_cov = S[1:, 1:] - np.outer(S[1:, 0], S[0, 1:]) / S[0, 0]
    inner, _ = orthant_with_mean(cond_mean.reshape(-1, m - 1), cond_cov, stein=False,
                                 nodes=GENZ_NODES_OUTER)
    P = q * (inner.reshape(len(mu), -1) @ wx)
    if not stein:
        return P, None
    v = np.empty_like(mu)
    for j in range(m):
        o = [i for i in range(m) if i != j]
        kj = S[o, j] / S[j, j]
        C_o = S[np.ix_(o, o)] - np.outer(S[o, j], S[j, o]) / S[j, j]
        rest, _ = orthant_with_mean(mu[:, o] - mu[:, j:j + 1] * kj, C_o, stein=False,
                                    nodes=GENZ_NODES_OUTER)
        v[:, j] = np.exp(-0.5 * (mu[:, j] / s[j]) ** 2) / (np.sqrt(2 * np.pi) * s[j]) * rest
    return P, v


def label_layer_width(ch: TaskChannel, Q: np.ndarray, M: np.ndarray) -> float:
    """Width, in whitened units g (ω = Q^{1/2} g), of the steepest layer of P(y|ω): for each class
    pair the label difference ν_c − ν_j has mean kᵀg and residual standard deviation s given ω, so
    P(y|ω) changes across |kᵀg| ≲ s over a width s/|k| (∞ when the teacher is not seen, M = 0)."""
    E = reduced_basis(ch.C)
    vals, vecs = np.linalg.eigh(Q)
    F = vecs * np.sqrt(vals)
    Qinv_M = np.linalg.solve(Q, M)
    V0 = np.eye(ch.r) - M.T @ Qinv_M
    S = ch.L @ V0 @ ch.L.T + ch.sigma ** 2 * np.eye(ch.d)
    B = ch.L @ Qinv_M.T @ F
    width = np.inf
    for c in range(ch.C):
        for j in range(c + 1, ch.C):
            e = E @ (np.eye(ch.C)[c] - np.eye(ch.C)[j])
            k = np.linalg.norm(e @ B)
            if k > 0:
                width = min(width, float(np.sqrt(max(e @ S @ e, 0.0))) / k)
    return width


def nodes_for(chans, Q: np.ndarray, M: np.ndarray, acc: ReplicaAccuracy) -> int:
    """Nodes per axis of one loss channel (a task, or a list of tasks sharing the sample with their
    joint Q, M): spacing min(acc.spacing[D], layer_fraction × the narrowest `label_layer_width` of
    its tasks, field_spacing / √λ_max(Q)), odd, at most acc.max_nodes[D] (D the channel's field
    dimension).  The last bound keeps the spacing in
    field units ω below field_spacing: the prox and the softmax vary on an O(1) scale of ω whatever
    the spread of ω (measured, C = 3, noise 0.5, α = 5, λ = 0.01, Q ≈ 24.4: spacing 0.36 / 0.24 /
    0.18 / 0.12 in g put Q at 6e-4 / 5e-6 / 3e-8 / 0 from the finest; clean labels, α = 5,
    λ = 0.01, layer width 0.34: spacing 0.27 / 0.18 / 0.13 / 0.09 put Q at 1.6e-4 / 3e-7 / 2e-9 / 0
    from the finest)."""
    chans = chans if isinstance(chans, (list, tuple)) else [chans]
    d = sum(ch.d for ch in chans)
    ro = np.concatenate([[0], np.cumsum([ch.r for ch in chans])]).astype(int)
    width = min(label_layer_width(ch, Q, M[:, ro[t]:ro[t + 1]]) for t, ch in enumerate(chans))
    h = min(acc.spacing[d], acc.layer_fraction * width,
            acc.field_spacing[d] / np.sqrt(np.linalg.eigvalsh(Q)[-1]))
    n = int(np.ceil(2 * HALF_WIDTH / h)) + 1
    n += 1 - n % 2
    return min(n, acc.max_nodes[d])


def singular_cone(Su: np.ndarray, ar=DOUBLE_R) -> bool:
    """A label cone's covariance S_y without full rank (relative to its trace): clean labels of a
    teacher of rank below C − 1, or of clean tasks with linearly dependent teachers on shared inputs."""
    return bool(min(ar.eigvalsh(Su)) <= 1e-14 * np.trace(Su))


def label_ties(chans: list, y) -> np.ndarray:
    """For the rows of D_y = blockdiag(D_{y_t}) (`_class_diffs` order: e_{y_t} − e_j, j ≠ y_t): True
    where an exact tie ν_{y_t} = ν_j goes to y_t (y_t < j: MODEL.md's first index)."""
    return np.concatenate([[c < j for j in range(ch.C) if j != c] for ch, c in zip(chans, y)])


def degenerate_channel(chans: list, G: np.ndarray) -> bool:
    """Some label cone of the channel is singular at the prior (V⁰ = G): clean labels of a teacher
    of rank below C − 1, or clean tasks on shared inputs whose teachers are linearly dependent.
    Such a channel runs the QMC rule with `replica_qmc.genz_cone`."""
    from itertools import product

    from scipy.linalg import block_diag
    if all(ch.sigma > 0 for ch in chans):
        return False
    Lb = block_diag(*[ch.L for ch in chans])
    S = Lb @ G @ Lb.T + np.diag(np.concatenate([[ch.sigma] * ch.d for ch in chans]) ** 2)
    Es = [reduced_basis(ch.C) for ch in chans]
    for y in product(*[range(ch.C) for ch in chans]):
        Dy = block_diag(*[_class_diffs(ch.C, c) @ E.T for ch, c, E in zip(chans, y, Es)])
        if singular_cone(Dy @ S @ Dy.T):
            return True
    return False


def dead_classes(ch: TaskChannel) -> list:
    """The classes a clean task never labels (P(y = c) = 0 under its teacher, u ~ N(0, I_r)): a class
    that loses every tie (`label_ties`) or whose normal cone {u: (O_c − O_j) u > 0} is empty.  Two or
    more of them get identical gradients at every sample, so the minimiser's rows for them are equal
    and the student's fields ζ have a direction of zero variance: Q is singular at the fixed point."""
    from .replica_qmc import genz_cone
    if ch.sigma > 0 or ch.r >= ch.d:
        return []
    E = reduced_basis(ch.C)
    w = np.tile(((np.arange(64) + 0.5) / 64)[:, None], (1, max(ch.r - 1, 1)))
    w[:, 1::2] = w[::-1, 1::2]
    dead = []
    for c in range(ch.C):
        D = _class_diffs(ch.C, c) @ E.T @ ch.L
        p, _ = genz_cone(np.zeros((len(w), ch.d)), D @ D.T, w, label_ties([ch], (c,)))
        if p.max() < 1e-12:
            dead.append(c)
    return dead


def refuse_degenerate_students(chans: list, names: list) -> None:
    """ReachError (key ``teacher``) for a clean task whose labels never take two or more of its classes
    (`dead_classes`: clean labels of a teacher of rank below C − 1, e.g. the aligned class map of
    rank r ≤ C − 3): the student's fields are then degenerate, and the engine's fixed point (Q ≻ 0)
    stalls on its way to a singular Q (measured: C = 5, rank 2, aligned, residual 1e-8 after 600
    iterations).  The theory would merge those classes into one of multiplicity k; not implemented."""
    for ch, name in zip(chans, names):
        dead = dead_classes(ch)
        if len(dead) >= 2:
            raise ReachError("teacher", f"task {name!r}: its clean labels (noise 0, teacher of rank {ch.r} "
                                        f"< C − 1 = {ch.d}) never take classes {dead}; the student's rows for "
                                        f"them are equal at the minimiser and its fields degenerate, which the "
                                        f"replica engine does not reduce; give the task noise > 0 or a teacher "
                                        f"under which at most one class is never the label")


def joint_label_cones(chans: list, Lb: np.ndarray, S: np.ndarray, labels: list, ar=DOUBLE_R,
                      singular: bool = False):
    """For each joint label y = (y_1, …, y_T) in ``labels``, in turn: (G_y, S_y) of its orthant
    D_y ν > 0, D_y = blockdiag(D_{y_t} E_tᵀ), given the teacher coordinates a: ν ~ N(Lb a, S), so
    the cone fields are N(G_y a, S_y), G_y = D_y Lb, S_y = D_y S D_yᵀ.  ReachError (key ``teacher``)
    where S_y is singular (clean labels from a teacher of rank below C − 1, or identical teachers of
    clean tasks on shared inputs, put the labels on a lower-dimensional set) unless ``singular``
    (the QMC route's `genz_cone` takes them)."""
    from scipy.linalg import block_diag
    Es = [reduced_basis(ch.C) for ch in chans]
    for y in labels:
        Dy = block_diag(*[_class_diffs(ch.C, c) @ E.T for ch, c, E in zip(chans, y, Es)])
        Su = Dy @ S @ Dy.T
        if not singular and singular_cone(Su, ar):
            raise ReachError(
                "teacher", "clean labels (noise 0) from a teacher of rank below C − 1, or identical "
                "teachers of clean tasks on shared inputs, put the labels on a lower-dimensional set; "
                "the replica engine needs noise > 0 there")
        yield Dy @ Lb, Su


def _joint_labels(chans: list, a: np.ndarray, V0: np.ndarray, ar=DOUBLE_R):
    """P(y | a) and ∇_a P for every joint label y = (y_1, …, y_T) of tasks that share the sample
    (`itertools.product` order): the reduced label fields ν = blockdiag(L_t) u + (σ_t ξ_t) given
    u ~ N(a, V⁰) (all tasks' teacher coordinates, V⁰ the joint residual) are N(L a, S), and y is
    the orthant blockdiag(D_{y_t} E_tᵀ) ν > 0 of dimension D = Σ_t (C_t − 1) (closed form or Genz,
    D ≤ 3; D = 4 by Plackett's identity, `plackett_joint_labels`).  Returns p (n × Π C_t) and
    grads (Π C_t, n, Σ r_t)."""
    from itertools import product

    from scipy.linalg import block_diag
    D = sum(ch.d for ch in chans)
    if D == 4:
        return plackett_joint_labels(chans, a, V0)
    if D > 4:
        raise ReachError("tasks", f"coupled tasks on shared inputs: the joint label of the tasks is an "
                                  f"orthant of Σ_t (C_t − 1) = {D} dimensions; the tensor route "
                                  f"integrates at most 4 (ReplicaAccuracy.qmc_joint_dims sends larger "
                                  f"ones to the QMC rule)")
    Lb = block_diag(*[ch.L for ch in chans])
    S = Lb @ V0 @ Lb.T + np.diag(ar.array(np.concatenate([[ch.sigma] * ch.d for ch in chans])) ** 2)
    Es = [reduced_basis(ch.C) for ch in chans]
    labels = list(product(*[range(ch.C) for ch in chans]))
    n = a.shape[0]
    if all(ch.C == 2 for ch in chans):
        return _binary_joint_labels(chans, Es, Lb, S, a, labels, ar)
    p = np.empty((n, len(labels)))
    grads = np.empty((len(labels), n, Lb.shape[1]))
    for k, (Gy, Su) in enumerate(joint_label_cones(chans, Lb, S, labels[:-1])):
        pc, v = (_cone_probability if D <= 2 else cone3_probability)(a @ Gy.T, Su, stein=True)
        p[:, k] = pc
        grads[k] = v @ Gy
    p[:, -1] = 1.0 - p[:, :-1].sum(axis=1)   # the joint labels partition the space
    grads[-1] = -grads[:-1].sum(axis=0)
    return p, grads


def _binary_joint_labels(chans, Es, Lb, S, a, labels, ar=DOUBLE_R):
    """`_joint_labels` for two-class tasks: with x_t = ν_{t,0} − ν_{t,1} (x ~ N(m, S_x) given a),
    y_t = 0 ⟺ x_t > 0, and by inclusion–exclusion P(y) = Σ_{A ⊆ Neg(y)} (−1)^{|A|} P(x_K > 0,
    K = Pos(y) ∪ A) — one orthant of each subset K of the tasks (Φ, Φ₂, the three-dim Genz rule)
    serves all 2^T labels, and so do their Stein gradients."""
    from itertools import combinations

    from scipy.linalg import block_diag
    T = len(chans)
    Dx = block_diag(*[_class_diffs(2, 0) @ E.T for E in Es])          # T × T
    Gx = Dx @ Lb
    Sx = Dx @ S @ Dx.T
    if min(ar.eigvalsh(Sx)) <= 1e-14 * np.trace(Sx):
        raise ReachError(
            "teacher", "the tasks' labels given the student fields are degenerate (identical teachers "
            "of clean tasks on shared inputs); the replica engine needs noise > 0 there")
    m = a @ Gx.T
    n = a.shape[0]
    orth = {(): (np.ones(n), np.zeros((n, Gx.shape[1])))}
    for size in range(1, T + 1):
        for K in combinations(range(T), size):
            K = list(K)
            pk, v = orthant_with_mean(m[:, K], Sx[np.ix_(K, K)], stein=True, ar=ar)
            orth[tuple(K)] = (pk, v @ Gx[K])
    p = np.zeros((n, len(labels)), dtype=ar.dtype)
    grads = np.zeros((len(labels), n, Gx.shape[1]), dtype=ar.dtype)
    for k, y in enumerate(labels):
        pos = [t for t in range(T) if y[t] == 0]
        neg = [t for t in range(T) if y[t] == 1]
        for size in range(len(neg) + 1):
            for A in combinations(neg, size):
                pk, gk = orth[tuple(sorted(pos + list(A)))]
                p[:, k] += (-1) ** size * pk
                grads[k] += (-1) ** size * gk
    return p, grads


# ---- joint labels of Σ_t (C_t − 1) = 4 dims: Plackett's identity from the product of two groups ----


def label_groups(dims: list) -> int:
    """The number of leading tasks in the first of the two groups of `plackett_joint_labels`: the
    prefix whose field dimension is closest to half of Σ dims (two three-class tasks: 1 | 1; four
    two-class tasks: 2 | 2)."""
    D = sum(dims)
    return min(range(1, len(dims)), key=lambda j: (abs(2 * sum(dims[:j]) - D), j))


def _group_label_probabilities(chans, Es, mean, R):
    """P(y_G) and ∇_mean P for every joint label y_G of the tasks ``chans`` (`itertools.product`
    order) whose stacked reduced label fields are N(mean, R) (rows of ``mean``, one R): the
    orthants blockdiag(D_{y_t} E_tᵀ) ν > 0 (`orthant_with_mean`), the last label by complement.
    Returns p (n × L) and grads (n × L × dim)."""
    from itertools import product

    from scipy.linalg import block_diag
    labels = list(product(*[range(ch.C) for ch in chans]))
    n, dim = mean.shape
    p = np.empty((n, len(labels)))
    g = np.empty((n, len(labels), dim))
    for k, y in enumerate(labels):
        if k == len(labels) - 1:
            p[:, k] = 1.0 - p[:, :k].sum(axis=1)
            g[:, k] = -g[:, :k].sum(axis=1)
            break
        Dy = block_diag(*[_class_diffs(ch.C, c) @ E.T for ch, c, E in zip(chans, y, Es)])
        Su = Dy @ R @ Dy.T
        if np.linalg.eigvalsh(Su)[0] <= 1e-14 * np.trace(Su):
            raise ReachError(
                "teacher", "the tasks' labels given the student fields are degenerate (clean labels from "
                "teachers of rank below C − 1); the replica engine needs noise > 0 there")
        pk, v = orthant_with_mean(mean @ Dy.T, Su, stein=True)
        p[:, k] = pk
        g[:, k] = v @ Dy
    return p, g

PLACKETT_TOL = 1e-10             # |P_n − P_2n| on the probe rows that fixes the t-rule of `plackett_orthant4`
PLACKETT_NODES = (8, 16, 32, 64, 128)   # Gauss–Legendre nodes in t tried in turn


def _plackett_terms(mu, S, off, t, pairs):
    """Σ_{(i,j)} S_ij φ_ij(0, 0) P(x_rest > 0 | x_i = x_j = 0) along S(t) = S − (1 − t) off (one t),
    and its gradient in μ (n × 4), for x ~ N(μ, S(t)) (`plackett_orthant4`)."""
    St = S - (1.0 - t) * off
    val = np.zeros(len(mu))
    grad = np.zeros_like(mu)
    for i, j in pairs:
        pr = [i, j]
        rest = [k for k in range(4) if k not in pr]
        Spp = St[np.ix_(pr, pr)]
        Sinv = np.linalg.inv(Spp)
        K = St[np.ix_(rest, pr)] @ Sinv
        Cr = St[np.ix_(rest, rest)] - K @ St[np.ix_(pr, rest)]
        mp = mu[:, pr]
        quad_form = np.einsum("ni,ij,nj->n", mp, Sinv, mp)
        dens = np.exp(-0.5 * quad_form) / (2.0 * np.pi * np.sqrt(np.linalg.det(Spp)))
        pc, v = _cone_probability(mu[:, rest] - mp @ K.T, Cr, stein=True)
        c = S[i, j] * dens
        val += c * pc
        grad[:, pr] += c[:, None] * (-(mp @ Sinv) * pc[:, None] - v @ K)
        grad[:, rest] += c[:, None] * v
    return val, grad


def plackett_orthant4(mu: np.ndarray, S: np.ndarray, na: int = 2, tol: float = PLACKETT_TOL):
    """P(x > 0) for x ~ N(μ, S) of dimension 4 (rows of μ, one S) and ∇_μ P, from the product of the
    orthants of the groups (x₀…x_{na−1}) and (the rest) — closed form, dimension ≤ 2 each — by
    Plackett's identity ∂P/∂S_ij = ∂²P/∂μ_i∂μ_j = φ_ij(0, 0) · P(x_rest > 0 | x_i = x_j = 0)
    (i ≠ j; the rest a 2-dim orthant, closed form) integrated along S(t) = blockdiag(S_aa, S_bb) +
    t S_ab (t from 0 to 1):

        P = P_a P_b + ∫₀¹ Σ_{i ∈ a, j ∈ b} S_ij φ_ij(0, 0; t) P(x_rest > 0 | x_i = x_j = 0; t) dt,

    ∇_μ P the same integral of the integrand's gradient (φ_ij's and the 2-dim orthant's Stein
    vector).  The t-integral is Gauss–Legendre with the first of PLACKETT_NODES nodes whose change
    against twice as many is below ``tol`` on probe rows (μ = 0 and every ⌈n/64⌉-th row);
    ReplicaError with that change when none is."""
    S = 0.5 * (S + S.T)
    a, b = list(range(na)), list(range(na, 4))
    off = np.zeros_like(S)
    off[np.ix_(a, b)] = S[np.ix_(a, b)]
    off = off + off.T
    base = S - off
    pairs = [(i, j) for i in a for j in b if S[i, j] != 0.0]
    pa, va = _cone_probability(mu[:, a], base[np.ix_(a, a)], stein=True)
    pb, vb = _cone_probability(mu[:, b], base[np.ix_(b, b)], stein=True)
    P = pa * pb
    G = np.concatenate([va * pb[:, None], vb * pa[:, None]], axis=1)
    if not pairs:
        return P, G

    def integral(rows, n):
        x, w = np.polynomial.legendre.leggauss(n)
        val, grad = np.zeros(len(rows)), np.zeros_like(rows)
        for tk, wk in zip(0.5 * (x + 1.0), 0.5 * w):
            v, g = _plackett_terms(rows, S, off, tk, pairs)
            val += wk * v
            grad += wk * g
        return val, grad

    probe = np.concatenate([np.zeros((1, 4)), mu[::max(1, -(-len(mu) // 64))]])
    change = np.inf
    for n in PLACKETT_NODES:
        v1, g1 = integral(probe, n)
        v2, g2 = integral(probe, 2 * n)
        change = max(np.abs(v1 - v2).max(), np.abs(g1 - g2).max())
        if change < tol:
            dv, dg = integral(mu, n)
            return P + dv, G + dg
    raise ReplicaError("replica", f"Plackett's t-integral of a 4-dim orthant: {2 * PLACKETT_NODES[-1]} "
                       f"Gauss–Legendre nodes still change P by {change:.2e} > {tol:.0e}", residual=float(change))


def plackett_joint_labels(chans: list, a: np.ndarray, V0: np.ndarray, tol: float = PLACKETT_TOL):
    """P(y | a) and ∇_a P for every joint label y = (y_1, …, y_T) of tasks sharing the sample whose
    reduced label fields have Σ_t (C_t − 1) = 4 dimensions (`itertools.product` order, as
    `_joint_labels`; two three-class tasks, or four two-class tasks).  The tasks are cut into two
    groups of 2 dimensions (`label_groups`); the table P(y_a, y_b) has the groups' own label
    probabilities (closed form, `_group_label_probabilities`) as its margins, so only the
    (L_a − 1)(L_b − 1) entries with y_a, y_b below the last label are 4-dim orthants
    (`plackett_orthant4`), the others follow from the margins; gradients likewise.
    Returns p (n × Π C_t) and grads (Π C_t, n, Σ r_t)."""
    from itertools import product

    from scipy.linalg import block_diag
    dims = [ch.d for ch in chans]
    if sum(dims) != 4:
        raise ReachError("tasks", f"plackett_joint_labels: the joint label fields have {sum(dims)} "
                                  f"dimensions, not 4")
    j = label_groups(dims)
    na = sum(dims[:j])
    Lb = block_diag(*[ch.L for ch in chans])
    S = Lb @ V0 @ Lb.T + np.diag(np.concatenate([[ch.sigma ** 2] * ch.d for ch in chans]))
    Es = [reduced_basis(ch.C) for ch in chans]
    m = a @ Lb.T
    n = len(a)
    ca, cb = chans[:j], chans[j:]
    pa, ga = _group_label_probabilities(ca, Es[:j], m[:, :na], S[:na, :na])
    pb, gb = _group_label_probabilities(cb, Es[j:], m[:, na:], S[na:, na:])
    La, Lbl = pa.shape[1], pb.shape[1]
    p = np.empty((n, La, Lbl))
    g = np.empty((n, La, Lbl, 4))
    labels_a = list(product(*[range(ch.C) for ch in ca]))
    labels_b = list(product(*[range(ch.C) for ch in cb]))
    for ia in range(La - 1):
        for ib in range(Lbl - 1):
            y = labels_a[ia] + labels_b[ib]
            Dy = block_diag(*[_class_diffs(ch.C, c) @ E.T for ch, c, E in zip(chans, y, Es)])
            pk, v = plackett_orthant4(m @ Dy.T, Dy @ S @ Dy.T, na, tol)
            p[:, ia, ib] = pk
            g[:, ia, ib] = v @ Dy
    gpa = np.concatenate([ga, np.zeros((n, La, 4 - na))], axis=2)
    gpb = np.concatenate([np.zeros((n, Lbl, na)), gb], axis=2)
    p[:, :-1, -1] = pa[:, :-1] - p[:, :-1, :-1].sum(axis=2)
    g[:, :-1, -1] = gpa[:, :-1] - g[:, :-1, :-1].sum(axis=2)
    p[:, -1, :] = pb - p[:, :-1, :].sum(axis=1)
    g[:, -1, :] = gpb - g[:, :-1, :].sum(axis=1)
    grads = (g.reshape(n, La * Lbl, 4) @ Lb).transpose(1, 0, 2)
    return p.reshape(n, La * Lbl), np.ascontiguousarray(grads)


SINGULAR_Q = 1e-12   # a joint channel's Q with eigenvalues below this × the largest: dependent fields (Q⁺)


def channel_fields(chans: list, G: np.ndarray, Q: np.ndarray, M: np.ndarray, ar=DOUBLE_R):
    """(D, Rk, B, F, A, V⁰) of a loss channel at (Q, M): D = Σ d_t student and Rk = Σ r_t teacher
    coordinates, B the softmax blocks, ω = F g with g ~ N(0, I) and F = Q^{1/2} (symmetric: a smooth
    function of Q, so the rule moves smoothly with Q — an eigenvector factor turns arbitrarily where
    eigenvalues meet), E[u | ω] = A ω with A = (Q⁻¹M)ᵀ, and the residual V⁰ = G − Mᵀ Q⁻¹ M.
    ReplicaError where Q is not positive definite or M exceeds its Cauchy–Schwarz bound."""
    D = sum(ch.d for ch in chans)
    Rk = sum(ch.r for ch in chans)
    if len({ch.C for ch in chans}) > 1:
        raise ReachError("tasks", "tasks in one loss channel (coupled, shared inputs) need equal classes")
    B = SoftmaxBlocks.of(ar.basis(chans[0].C), [ch.weight for ch in chans], ar)
    vals, vecs = ar.eigh(Q)
    top = max(vals)
    if min(vals) <= 0 and not (len(chans) > 1 and top > 0 and min(vals) >= -SINGULAR_Q * top):
        raise ReplicaError("replica", f"Q lost positive definiteness (eigenvalue {float(min(vals)):.3e})")
    if min(vals) > SINGULAR_Q * top:
        F = (vecs * ar.sqrt(vals)) @ vecs.T
        Qinv_M = ar.solve(Q, M)
    else:
        # a joint channel whose fields are linearly dependent (a coupled task of weight 0: its W is
        # μ/(λ + μ) times the other's): ω lives in range(Q), and u | ω conditions on it through Q⁺
        keep = vals > SINGULAR_Q * top
        F = (vecs[:, keep] * ar.sqrt(vals[keep])) @ vecs[:, keep].T
        Qinv_M = (vecs[:, keep] / vals[keep]) @ (vecs[:, keep].T @ M)
    A = Qinv_M.T
    V0 = G - M.T @ Qinv_M
    V0 = 0.5 * (V0 + V0.T)
    if Rk and min(ar.eigvalsh(V0)) < -1e-12:
        raise ReplicaError("replica", f"M exceeds its Cauchy–Schwarz bound (G − Mᵀ Q⁻¹ M has eigenvalue "
                           f"{float(min(ar.eigvalsh(V0))):.3e})")
    return D, Rk, B, F, A, V0


def loss_channel_hats(chans: list, G: np.ndarray, Q: np.ndarray, M: np.ndarray, V: np.ndarray,
                      acc: ReplicaAccuracy, nodes: int, train: bool = False, warm: dict | None = None,
                      ar=DOUBLE_R):
    """(Q̂, M̂, V̂) of one loss channel at (Q, M, V) — see the module docstring: one task, or the
    tasks of ``chans`` sharing every sample (shared inputs with coupling: the stacked reduced fields
    ω ∈ R^D, D = Σ d_t, joint teacher coordinates u ~ N(0, G), joint labels y = (y_1, …, y_T), the
    prox of Σ_t w_t CE under the full metric V, full D×D hats; α the common one).  With ``train``,
    also per task the training loss and training error E_ω Σ_y P(y|ω) [CE(h_{y,t}, y_t),
    1{argmax h_{y,t} ≠ y_t}] and the test loss E_ω Σ_y P(y|ω) CE(ω_t, y_t) on the same rule, as a
    list of triples.  ``ar``: the arithmetic (`cone.DOUBLE`; mp: `cone.MP`)."""
    D, Rk, B, F, A, V0 = channel_fields(chans, G, Q, M, ar)
    grid, wts = tensor_trapezoid(D, nodes, HALF_WIDTH, ar)
    omega = grid @ F.T
    alive = wts > NEGLIGIBLE                         # the grid's corners carry no weight
    if len(chans) == 1:
        ny = chans[0].C
        Y1 = np.eye(ny)
        label = partial(_label_given_a, chans[0], B.E, ar=ar)
    else:
        from itertools import product
        Y1 = np.concatenate([np.stack([np.eye(ch.C)[c] for ch, c in zip(chans, y)]).ravel()[None]
                             for y in product(*[range(ch.C) for ch in chans])])
        ny = len(Y1)
        label = partial(_joint_labels, chans, ar=ar)
    n = len(wts)
    py = np.zeros((n, ny), dtype=ar.dtype)
    grads = np.zeros((ny, n, Rk), dtype=ar.dtype)
    py[alive], grads[:, alive] = label(omega[alive] @ A.T, V0)
    # every node with every label, less the pairs whose weight in every integrand is below
    # NEGLIGIBLE (|f| ≤ √2 w, |H| ≤ w/2): the tensor grid's corners, and the labels a clean
    # teacher rules out at that node
    keep = np.tile(wts, ny) * (py.T.ravel() + np.abs(grads).sum(axis=2).ravel()) > NEGLIGIBLE
    Y = np.repeat(Y1, n, axis=0)[keep]
    om = np.tile(omega, (ny, 1))[keep]
    h0 = None
    if warm is not None and warm.get("shape") == (ny * n, D):
        h0 = om + warm["shift"][keep]                    # last solve's h − ω, a close start
    h, p, H = prox_cross_entropy(om, Y, V, B, tol=acc.newton_tol, h0=h0)
    if warm is not None:
        shift = warm["shift"] if warm.get("shape") == (ny * n, D) else np.zeros((ny * n, D), dtype=ar.dtype)
        shift[keep] = h - om
        warm.update(shape=(ny * n, D), shift=shift)
    f = -_gradient(p.reshape(len(p), B.T, -1), Y, B)
    w_all = np.tile(wts, ny)[keep]
    wy = w_all * py.T.ravel()[keep]
    Qh = (f * wy[:, None]).T @ f
    Mh = (f * w_all[:, None]).T @ grads.reshape(ny * n, Rk)[keep]
    Vh = prox_response(H, V, wy, ar)
    a = chans[0].alpha
    out = (a * 0.5 * (Qh + Qh.T), a * Mh, a * 0.5 * (Vh + Vh.T))
    if not train:
        return out
    tl = wy @ _ce_reduced(h, Y, B, weighted=False)
    tst = wy @ _ce_reduced(om, Y, B, weighted=False)
    if len(chans) == 1 and D <= acc.margin_train_error and Rk:
        te = [train_error_by_margins(chans[0], B, Q, V, A, V0)]
    else:
        z = B.logits(h)
        te = wy @ (np.argmax(z, axis=2) != np.argmax(Y.reshape(z.shape), axis=2))
        if len(chans) > 1 and acc.boundary_train_error and all(ch.C == 2 for ch in chans):
            by_boundaries = joint_train_errors_by_boundaries(chans, B, Q, V, A, V0, nodes)
            te = [v if b is None else b for v, b in zip(te, by_boundaries)]
    return out + ([tuple(ar.scalar(v) for v in x) for x in zip(tl, te, tst)],)


MARGIN_GL = 6         # Gauss–Legendre nodes per panel of `train_error_by_margins`
MARGIN_BAND = 6.0     # logit margins below this: uniform panels; beyond, widths growing by MARGIN_RATIO
MARGIN_RATIO = 1.5
MARGIN_MAX_PANELS = (None, 2000, 30)   # uniform panels per axis at most (the ridge → 0 limit,
#   where V ~ 1/λ: measured on separable clean and noisy C = 3 data at λ = 0.01, 0.3 s, train_error 0)


def train_error_by_margins(ch: TaskChannel, B: SoftmaxBlocks, Q: np.ndarray, V: np.ndarray,
                           A: np.ndarray, V0: np.ndarray) -> float:
    """train_error = 1 − Σ_y ∫_{cone_y} ρ_y(h) dh of one task (d = C − 1 ≤ 2), without the jump of
    the indicator on the ω grid: the prox is a bijection ω = h + V g_y(h) (g_y = w ∇ℓ(h, y)), so
    the correctly classified ω of label y are the images of the cone {D_y h > 0} and, in h,

        ρ_y(h) = P(y | A ω(h)) · N(ω(h); 0, Q) · det(I + V H_y(h)).

    The cone is integrated in its margin coordinates s = D_y h ∈ [0, ∞)^d (the logit differences
    z_y − z_j) by a tensor composite Gauss–Legendre rule (MARGIN_GL nodes per panel): uniform panels
    of width δ = min(1, 0.7 √λ_min(Q) · min(1, 4/(w ‖V‖))) up to MARGIN_BAND, where the softmax
    bends and ω(h) moves fastest, then widths growing by MARGIN_RATIO to where N(ω; 0, Q) ends.
    (Measured against the same rule at δ = 0.1: ≤ 2e-9 absolute on clean and noisy C = 3 and C = 2
    points, λ = 0.01 to 1; the indicator on the default ω grid erred by 7e-4 at MODEL.md's C = 3
    point, 0.01040 against 0.011144.)"""
    from .quadrature import gauss_legendre01
    d, C = ch.d, ch.C
    E, ar = B.E, B.ar
    lam = np.linalg.eigvalsh(Q.astype(float))
    vnorm = float(np.linalg.norm(V.astype(float), 2)) * ch.weight
    delta = min(1.0, 0.7 * np.sqrt(lam[0]) * min(1.0, 4.0 / max(vnorm, 1e-300)))
    delta = max(delta, MARGIN_BAND / MARGIN_MAX_PANELS[d])   # ridge → 0 (V → ∞): capped
    s_max = 2.0 * (9.0 * np.sqrt(lam[-1]) + 2.0 * vnorm)
    edges = list(np.arange(0.0, MARGIN_BAND, delta)) + [MARGIN_BAND]
    while edges[-1] < s_max:
        edges.append(edges[-1] + max(delta, (MARGIN_RATIO - 1.0) * edges[-1]))
    edges = np.array(edges)
    x, wx = gauss_legendre01(MARGIN_GL)
    s1 = (edges[:-1, None] + np.diff(edges)[:, None] * x[None, :]).ravel()
    w1 = (np.diff(edges)[:, None] * wx[None, :]).ravel()
    S = np.stack([g.ravel() for g in np.meshgrid(*([s1] * d), indexing="ij")], axis=1)
    W = np.prod(np.stack([g.ravel() for g in np.meshgrid(*([w1] * d), indexing="ij")], axis=1), axis=1)
    Qinv = ar.inv(Q)
    norm = ar.sqrt((2 * ar.pi) ** d * ar.det(Q))
    correct = 0.0
    for y in range(C):
        Dy = _class_diffs(C, y) @ E.T                                  # d × d
        h = S @ ar.inv(Dy).T
        Y = np.tile(np.eye(C)[y], (len(h), 1))
        p = _softmax_reduced(h, B)
        om = h + _gradient(p, Y, B) @ V.T
        J = np.eye(d) + V @ _hessian(p, B)
        det = J[:, 0, 0] if d == 1 else J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
        dens = ar.exp(-0.5 * _rowsum((om @ Qinv) * om)) / norm
        py, _ = _label_given_a(ch, E, om @ A.T, V0, ar)
        correct += ar.scalar((W * py[:, y] * dens * det).sum()) / abs(ar.det(Dy))
    return max(1.0 - correct, 0.0)   # separable data: 0 up to the sum's roundoff (≈ 1e-10)


BOUNDARY_GL = 8        # Gauss–Legendre nodes per panel of `joint_train_errors_by_boundaries` ...
BOUNDARY_PANEL = 2.0   # ... on panels at most this wide (standardised units) and at most ...
BOUNDARY_SPACINGS = 6  # ... this many spacings of the channel's tensor rule
BOUNDARY_SD_SPACINGS = 2.0   # the ω_{−t} rule's spacing (whitened units) at most this × sd(ω_t | ω_{−t})/√Q_tt ...
BOUNDARY_MAX_NODES = (None, 1601, 201)   # ... with at most this many nodes per axis (D − 1 = 1, 2); a task
#   whose field is (nearly) a function of the others' (a coupled task of weight 0 or near it) needs more:
#   None, its train_error then the indicator on the channel's rule (measured, two C = 2 tasks, μ = 1,
#   λ = 0.1, α = 2, task A of weight 0.05: task B 0.03215 on the channel's 55 nodes against 0.03096 converged
#   from 201 nodes on; weight 0: 0.022–0.033 with the nodes, no convergence — the ω_{−t} integrand a step)


def joint_train_errors_by_boundaries(chans: list, B: SoftmaxBlocks, Q: np.ndarray, V: np.ndarray,
                                     A: np.ndarray, V0: np.ndarray, nodes: int) -> list:
    """train_error of each task of a joint channel of two-class tasks (the tensor route, D = T ≤ 3),
    without the jump of the indicator on the ω grid.  Given the other tasks' fields ω_{−t} and the
    joint label y, the prox ω = h + V g_y(h) maps h_t to ω_t increasingly (dω_t/dh_t =
    det(I + V H)/det(I + V H)_{−t,−t} > 0), so task t is misclassified (its logit margin
    (z_{t,0} − z_{t,1}) has the sign opposite to y_t) exactly on one side of the boundary
    b_y(ω_{−t}) = [V g_y(h)]_t at h_t = 0, h_{−t} the prox of the other tasks at ω_{−t} −
    V_{−t,t} g_{y_t}(0) under V_{−t,−t}; and

        train_error_t = Σ_y E_{ω_{−t}} ∫_{wrong side of b_y} P(y | A ω) N(ω_t; m(ω_{−t}), s²) dω_t.

    ω_{−t} ~ N(0, Q_{−t,−t}) on the channel's tensor trapezoid rule (``nodes`` per axis, D − 1
    dims); ω_t = m + s x by composite Gauss–Legendre (BOUNDARY_GL nodes per panel) on
    x ∈ [−HALF_WIDTH, HALF_WIDTH], the panels (width ≤ BOUNDARY_SPACINGS spacings of the rule, ≤
    BOUNDARY_PANEL) broken at every label's boundary, all labels at once (`_joint_labels`).  As
    var(ω_t | ω_{−t}) → 0 the ω_{−t} integrand steepens into a step: the rule is refined to a spacing
    of BOUNDARY_SD_SPACINGS × sd(ω_t | ω_{−t})/√Q_tt, and where that needs more than
    BOUNDARY_MAX_NODES the task's entry is None (the caller's indicator on the rule instead).
    Accuracy: tests/test_joint_labels.py (the μ = 0 joint channel against
    `train_error_by_margins`) and docs/REPLICA_QMC.md."""
    from itertools import product

    from .quadrature import gauss_legendre01
    T = len(chans)
    E = B.E                                             # 1 × 2: z_0 − z_1 = √2 h
    labels = list(product(*[range(2) for _ in chans]))
    xg, wg = gauss_legendre01(BOUNDARY_GL)
    width = min(BOUNDARY_PANEL, BOUNDARY_SPACINGS * 2.0 * HALF_WIDTH / max(nodes - 1, 1))
    base = np.linspace(-HALF_WIDTH, HALF_WIDTH, int(np.ceil(2.0 * HALF_WIDTH / width)) + 1)
    sign0 = np.sign(E[0, 0] - E[0, 1])                  # h_t > 0 ⟺ class 0 when sign0 > 0
    out = []
    for t in range(T):
        rest = [s for s in range(T) if s != t]
        Qrr = Q[np.ix_(rest, rest)]
        vals, vecs = np.linalg.eigh(Qrr)
        grid, wts = tensor_trapezoid(T - 1, nodes)
        alive = wts > NEGLIGIBLE
        grid, wts = grid[alive], wts[alive]
        om_r = grid @ ((vecs * np.sqrt(vals)) @ vecs.T).T                 # ω_{−t} ~ N(0, Q_rr)
        kq = np.linalg.solve(Qrr, Q[rest, t])
        m = om_r @ kq
        var = max(float(Q[t, t] - Q[t, rest] @ kq), 0.0)
        need = (np.inf if var == 0.0 else
                np.ceil(2.0 * HALF_WIDTH / (BOUNDARY_SD_SPACINGS * np.sqrt(var / Q[t, t]))) + 1)
        if need > BOUNDARY_MAX_NODES[T - 1]:
            out.append(None)        # ω_t (nearly) a function of ω_{−t}: the caller's indicator instead
            continue
        if need > nodes:            # the ω_{−t} integrand steepens as var(ω_t | ω_{−t}) → 0: refine
            nodes_t = int(need) + 1 - int(need) % 2
            grid, wts = tensor_trapezoid(T - 1, nodes_t)
            alive = wts > NEGLIGIBLE
            grid, wts = grid[alive], wts[alive]
            om_r = grid @ ((vecs * np.sqrt(vals)) @ vecs.T).T
            m = om_r @ kq
        sd = np.sqrt(var)
        Br = SoftmaxBlocks.of(E, B.weights[rest])
        beta = np.empty((len(labels), len(m)))
        for k, y in enumerate(labels):
            gt = B.weights[t] * (0.5 - (y[t] == 0)) * (E[0, 0] - E[0, 1])   # w ∇_h CE at h_t = 0
            Yr = np.tile(np.concatenate([np.eye(2)[y[s]] for s in rest]), (len(m), 1))
            _, pr, _ = prox_cross_entropy(om_r - gt * V[rest, t], Yr, V[np.ix_(rest, rest)], Br)
            g = np.zeros((len(m), T))
            g[:, t] = gt
            g[:, rest] = _gradient(pr.reshape(len(m), T - 1, 2), Yr, Br)
            beta[k] = (g @ V[t] - m) / sd                                  # the boundary in x
        # every node's panels: the common edges and its labels' boundaries (equal counts: a
        # boundary outside the range or on an edge makes an empty panel)
        cuts = np.sort(np.concatenate([np.broadcast_to(base, (len(m), len(base))),
                                       np.clip(beta.T, -HALF_WIDTH, HALF_WIDTH)], axis=1), axis=1)
        wd = np.diff(cuts, axis=1)
        x = (cuts[:, :-1, None] + wd[..., None] * xg).reshape(len(m), -1)
        wx = (wd[..., None] * wg).reshape(len(m), -1) * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
        om = np.empty((*x.shape, T))
        om[..., rest] = om_r[:, None, :]
        om[..., t] = m[:, None] + sd * x
        py, _ = _joint_labels(chans, om.reshape(-1, T) @ A.T, V0)
        py = py.reshape(*x.shape, len(labels))
        err = np.zeros(len(m))
        for k, y in enumerate(labels):
            wrong = (x < beta[k, :, None]) if (y[t] == 0) == (sign0 > 0) else (x > beta[k, :, None])
            err += (wx * wrong * py[..., k]).sum(axis=1)
        out.append(float(wts @ err))
    return out


def channel_hats(ch: TaskChannel, Q: np.ndarray, M: np.ndarray, V: np.ndarray,
                 acc: ReplicaAccuracy, nodes: int, train: bool = False, warm: dict | None = None):
    """(Q̂, M̂, V̂) of one task's loss channel (`loss_channel_hats` with G = I) and, with ``train``,
    its training loss, training error and test loss on the rule."""
    out = loss_channel_hats([ch], np.eye(ch.r), Q, M, V, acc, nodes, train, warm)
    return out if not train else out[:3] + out[3][0]


def prior_channel(Lam: np.ndarray, G: np.ndarray, Qh, Mh, Vh, dims, ranks, groups=None, ar=DOUBLE_R):
    """(Q, M, V) of the Gaussian prior channel: V = (Λ ⊗ I_d + V̂)⁻¹, M = V M̂ G,
    Q = V (M̂ G M̂ᵀ + Q̂) V with block-diagonal hats: one block per loss channel, ``groups`` the
    (consecutive) tasks of each channel — default one task each (separate inputs); one group of all
    tasks for coupled tasks on shared inputs, whose hats are full.  Task blocks have sizes `dims`
    × `ranks`."""
    groups = groups or [[t] for t in range(len(dims))]
    D, Rk = sum(dims), sum(ranks)
    do = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    ro = np.concatenate([[0], np.cumsum(ranks)]).astype(int)
    Vhat = ar.array(np.kron(Lam, np.eye(dims[0])) if len(set(dims)) == 1 else np.diag(np.repeat(np.diag(Lam), dims)))
    Qhat = np.zeros((D, D), dtype=ar.dtype)
    Mhat = np.zeros((D, Rk), dtype=ar.dtype)
    for k, grp in enumerate(groups):
        s = slice(do[grp[0]], do[grp[-1] + 1])
        Vhat[s, s] += Vh[k]
        Qhat[s, s] = Qh[k]
        Mhat[s, ro[grp[0]]:ro[grp[-1] + 1]] = Mh[k]
    V = ar.inv(Vhat)
    V = 0.5 * (V + V.T)
    MG = Mhat @ G
    M = V @ MG
    Q = V @ (MG @ Mhat.T + Qhat) @ V
    return 0.5 * (Q + Q.T), M, V


@dataclass
class FixedPoint:
    """The solution: full (all-task) Q, M, V and the hats per task, with the residual reached, the
    iteration count, and per task (train_loss, train_error, the test loss on the channel's rule)."""
    Q: np.ndarray
    M: np.ndarray
    V: np.ndarray
    hats: list
    residual: float
    iterations: int
    train: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    capped: bool = False   # a task's rule wanted more than acc.max_nodes: accuracy below the design
    qmc: bool = False      # a channel on the QMC rule (`replica_qmc`): its predictions carry the rule's error


def _blocks(X, dims, ranks=None):
    do = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    if ranks is None:
        return [X[do[t]:do[t + 1], do[t]:do[t + 1]] for t in range(len(dims))]
    ro = np.concatenate([[0], np.cumsum(ranks)]).astype(int)
    return [X[do[t]:do[t + 1], ro[t]:ro[t + 1]] for t in range(len(dims))]


class ReplicaMap:
    """The fixed-point map x → F(x) of `solve_fixed_point` on the packed order parameters
    x = (upper triangle of Q, M, upper triangle of V): one loss channel per task, or with
    ``shared`` one joint channel of all tasks (they share every sample: coupled tasks on shared
    inputs, `loss_channel_hats`), then the prior channel.  ``nodes``: the rule of each channel
    (`required_nodes`); ``warm``: per channel, the last prox solutions (a close Newton start)."""

    def __init__(self, channels: list, Lam: np.ndarray, G: np.ndarray, acc: ReplicaAccuracy,
                 shared: bool = False, ar=DOUBLE_R):
        self.channels, self.Lam, self.G, self.acc, self.ar = channels, Lam, G, acc, ar
        self.dims = [c.d for c in channels]
        self.ranks = [c.r for c in channels]
        self.D, self.Rk = sum(self.dims), sum(self.ranks)
        self.iu = np.triu_indices(self.D)
        self.groups = [list(range(len(channels)))] if shared and len(channels) > 1 else \
            [[t] for t in range(len(channels))]
        do = np.concatenate([[0], np.cumsum(self.dims)]).astype(int)
        ro = np.concatenate([[0], np.cumsum(self.ranks)]).astype(int)
        self.rows = [slice(do[g[0]], do[g[-1] + 1]) for g in self.groups]
        self.cols = [slice(ro[g[0]], ro[g[-1] + 1]) for g in self.groups]
        self.Gg = [G[c, c] if len(g) > 1 else np.eye(channels[g[0]].r)
                   for g, c in zip(self.groups, self.cols)]
        self.chg = [[channels[t] for t in g] for g in self.groups]
        self.degenerate = [degenerate_channel(c, Gk) for c, Gk in zip(self.chg, self.Gg)]
        self.warm = [{} for _ in self.groups]

    def pack(self, Q, M, V):
        return np.concatenate([Q[self.iu], M.ravel(), V[self.iu]])

    def unpack(self, x):
        D, Rk, n = self.D, self.Rk, len(self.iu[0])
        out = []
        for part in (x[:n], x[n + D * Rk:]):
            S = np.zeros((D, D), dtype=x.dtype)
            S[self.iu] = part
            out.append(S + S.T - np.diag(np.diag(S)))
        return out[0], x[n:n + D * Rk].reshape(D, Rk), out[1]

    def qmc(self, chans) -> bool:
        """One task of C ≥ acc.qmc_classes, or a joint channel of tasks sharing the sample whose
        fields have Σ_t (C_t − 1) ≥ acc.qmc_joint_dims, or a channel with singular label cones
        (`degenerate_channel`): its channel on the QMC rule (`replica_qmc`)."""
        if len(chans) == 1:
            return chans[0].C >= self.acc.qmc_classes or self._degenerate(chans)
        return sum(ch.d for ch in chans) >= self.acc.qmc_joint_dims or self._degenerate(chans)

    def _degenerate(self, chans) -> bool:
        """`degenerate_channel` of this map's channel ``chans`` (the group of `chg` with the same task
        channels, found by identity)."""
        return next(dg for c, dg in zip(self.chg, self.degenerate)
                    if len(c) == len(chans) and all(a is b for a, b in zip(c, chans)))

    def required_nodes(self, x) -> list:
        Q, M, _ = self.unpack(x)
        return [self.qmc_points(c) if self.qmc(c) else nodes_for(c, Q[r, r], M[r, k], self.acc)
                for c, r, k in zip(self.chg, self.rows, self.cols)]

    def qmc_points(self, chans) -> int:
        """The QMC rule's points of a channel: one task's `acc.qmc_points`, a joint channel's
        `acc.joint_points` of its Σ_t (C_t − 1)."""
        return self.acc.qmc_points if len(chans) == 1 else self.acc.joint_points(sum(ch.d for ch in chans))

    def capped(self, nodes) -> bool:
        """A tensor rule at its node cap (acc.max_nodes)."""
        return any(not self.qmc(c) and n >= self.acc.max_nodes[sum(ch.d for ch in c)]
                   for n, c in zip(nodes, self.chg))

    def channel(self, k, Q, M, V, nodes, train):
        """The hats of channel k (`loss_channel_hats`, or `replica_qmc.qmc_loss_channel_hats`)."""
        from .replica_qmc import qmc_channel_hats, qmc_loss_channel_hats
        c, r, col = self.chg[k], self.rows[k], self.cols[k]
        if self.qmc(c):
            return qmc_loss_channel_hats(c, self.Gg[k], Q[r, r], M[r, col], V[r, r], self.acc, nodes, train,
                                         self.warm[k], self.ar)
        out = loss_channel_hats(c, self.Gg[k], Q[r, r], M[r, col], V[r, r], self.acc, nodes, train, self.warm[k],
                                self.ar)
        if train and len(c) == 1 and c[0].d >= 3:
            # one task, C = 4: train_error by the QMC rule's indicator on a quarter of its points
            # (≈ 1e-4 at 2^12; +0.9 s per point at 2^14), not the tensor grid's (≈ 1e-3: measured
            # 0.006857 against 0.00591 at C = 4, noise 0.5, α = 2, λ = 0.1)
            te = qmc_channel_hats(c[0], Q[r, r], M[r, col], V[r, r], self.acc, max(self.acc.qmc_points // 4, 1024),
                                  True)[3][0][1]
            out = out[:3] + ([(out[3][0][0], te, out[3][0][2])],)
        return out

    def __call__(self, x, nodes, train: bool = False):
        """(F(x), the hats of each channel (with ``train``: and its tasks' training loss and error))."""
        Q, M, V = self.unpack(x)
        hats = [self.channel(k, Q, M, V, n, train) for k, n in enumerate(nodes)]
        Qn, Mn, Vn = prior_channel(self.Lam, self.G, [h[0] for h in hats], [h[1] for h in hats],
                                   [h[2] for h in hats], self.dims, self.ranks, self.groups, self.ar)
        return self.pack(Qn, Mn, Vn), hats

    def admissible(self, x) -> bool:
        """Q, V positive definite and every channel's teacher residual G − Mᵀ Q⁻¹ M ⪰ 0."""
        try:
            return self._admissible(x)
        except np.linalg.LinAlgError:   # Q numerically singular
            return False

    def _admissible(self, x) -> bool:
        Q, M, V = self.unpack(x)
        if np.linalg.eigvalsh(Q)[0] <= 0 or np.linalg.eigvalsh(V)[0] <= 0:
            return False
        for ch, Qt, Mt in zip(self.channels, _blocks(Q, self.dims), _blocks(M, self.dims, self.ranks)):
            if ch.r and np.linalg.eigvalsh(np.eye(ch.r) - Mt.T @ np.linalg.solve(Qt, Mt))[0] <= 1e-14:
                return False
        for g, r, k, Gk in zip(self.groups, self.rows, self.cols, self.Gg):
            if len(g) > 1 and Gk.size and \
                    np.linalg.eigvalsh(Gk - M[r, k].T @ np.linalg.solve(Q[r, r], M[r, k]))[0] < -1e-12:
                return False
        return True


def solve_fixed_point(channels: list[TaskChannel], Lam: np.ndarray, G: np.ndarray,
                      acc: ReplicaAccuracy = ReplicaAccuracy(), start=None,
                      shared: bool = False) -> FixedPoint:
    """Iterate (Q, M, V) → hats → (Q, M, V) (`ReplicaMap`) to the fixed point by Anderson
    acceleration (type II, memory `acc.memory`) on the mixed map x ← (1 − β) x + β F(x), falling
    back to the plain mixed step whenever the extrapolated point is not admissible (Q or V not
    positive definite, or Mᵀ Q⁻¹ M ≥ G).  One loss channel per task, or with ``shared`` one joint
    channel of all tasks (coupled tasks on shared inputs).
    The quadrature nodes (`nodes_for`) are fixed during a stage; a converged stage
    that reaches residual STAGE_TOL at a point needing more nodes starts a new one from there, so the answer is computed at
    the nodes its own label layers need.
    Stops when max |F(x) − x| / (1 + max |x|) < acc.tol; otherwise raises ReplicaError with that
    residual (SeparableError when tr Q runs away like 1/λ)."""
    fmap = ReplicaMap(channels, Lam, G, acc, shared)
    dims, ranks, D, Rk = fmap.dims, fmap.ranks, fmap.D, fmap.Rk
    pack, unpack, admissible, required_nodes = fmap.pack, fmap.unpack, fmap.admissible, fmap.required_nodes
    nodes = []

    def F(x, train=False):
        return fmap(x, nodes, train)

    if start is None:
        # the response and overlaps of a first-order guess: V = (Λ + α w/4)⁻¹ (the loss curvature scales
        # with the weight), small M, Q = |M|² + 0.1 V
        lam0 = np.max(np.diag(Lam))
        v0 = 1.0 / (lam0 + 0.25 * max(c.alpha * c.weight for c in channels) + 1e-3)
        V = v0 * np.eye(D)
        M = np.zeros((D, Rk))
        ro = np.concatenate([[0], np.cumsum(ranks)]).astype(int)
        do = np.concatenate([[0], np.cumsum(dims)]).astype(int)
        for t, ch in enumerate(channels):
            M[do[t]:do[t + 1], ro[t]:ro[t + 1]] = 0.3 * ch.L / max(1.0, np.abs(ch.L).max(initial=0.0))
        Q = M @ M.T / 0.5 + 0.1 * np.eye(D)
        x = pack(Q, M, V)
        for _ in range(30):   # correlated tasks in one channel: within G's Cauchy–Schwarz bound
            if admissible(x):
                break
            M = 0.5 * M
            x = pack(M @ M.T / 0.5 + 0.1 * np.eye(D), M, V)
    else:
        x = pack(*start)
    beta = acc.mixing
    X_hist, R_hist = [], []
    res = np.inf
    lam_min = float(np.linalg.eigvalsh(Lam)[0])
    for it in range(1, acc.max_iter + 1):
        if it == 1:
            nodes = required_nodes(x)
        try:
            fx, _ = F(x)
        except ReplicaError as err:
            if lam_min > 1e-12 * max(1.0, float(np.abs(Lam).max())) or isinstance(err, SeparableError):
                raise
            # without a ridge the response V grows like the minimiser's norm on separable data until
            # the prox (V ∇ℓ of size |V|) cannot be solved: the same diagnosis as tr Q running away
            Q, _, V = unpack(x)
            raise SeparableError(
                "training.ridge", f"the prox failed at tr Q = {float(np.trace(Q)):.3e}, tr V = "
                f"{float(np.trace(V)):.3e} with the smallest penalty eigenvalue {lam_min:g} ({err}): the training "
                f"data are separable at this α (or nearly) and the minimiser's norm diverges as the ridge "
                f"vanishes; raise the ridge", residual=res) from err
        r = fx - x
        res = float(np.abs(r).max() / (1.0 + np.abs(x).max()))
        if res < max(acc.tol, STAGE_TOL):
            need = required_nodes(x)
            if any(n > m for n, m in zip(need, nodes)):
                # a stage ends: the fixed point's own scales need a finer rule; go on with it
                nodes = [max(n, m) for n, m in zip(need, nodes)]
                X_hist, R_hist = [], []
                continue
        if res < acc.tol:
            fx, hats = F(x, train=True)
            Q, M, V = unpack(x)
            return FixedPoint(Q, M, V, [h[:3] for h in hats], res, it, [p for h in hats for p in h[3]],
                              nodes=list(nodes),
                              capped=fmap.capped(nodes), qmc=any(fmap.qmc(c) for c in fmap.chg))
        trQ = float(np.trace(unpack(x)[0]))
        if lam_min <= 1e-12 * max(1.0, float(np.abs(Lam).max())) and trQ > acc.separable_norm:
            # without a ridge a minimiser exists only for non-separable data (with one, always:
            # the risk is strongly convex, and transients may pass through large Q)
            raise SeparableError(
                "training.ridge", f"tr Q = {trQ:.3e} runs away (smallest penalty eigenvalue {lam_min:g}): the "
                f"training data are separable at this α and the minimiser's norm diverges as the "
                f"ridge vanishes; raise the ridge (residual {res:.3e} after {it} iterations)")
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
    raise ReplicaError("replica", f"the fixed point did not converge in {acc.max_iter} iterations "
                       f"(residual {res:.3e} > tol {acc.tol:.1e})")

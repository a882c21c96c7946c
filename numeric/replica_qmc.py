"""The single-task loss channel of the replica engine for many classes (C ≥ 5), and the joint
channel of coupled tasks on shared inputs with Σ_t (C_t − 1) ≥ 4 (`qmc_loss_channel_hats`: the
same rule over the stacked fields, each joint label an orthant of Σ_t (C_t − 1) dims): one fixed
quasi-Monte Carlo rule over the whitened student field and the teacher's Genz variables.

The channel (`replica`'s module docstring) is, for one task with d = C − 1 reduced fields,

    Q̂ = α E_ω Σ_y P(y|ω) f_y f_yᵀ,   V̂ = α E_ω Σ_y P(y|ω) (I + H_y V)⁻¹ H_y,
    M̂ = α E_ω Σ_y f_y ∇_a P(y|a)ᵀ  (a = A ω),

with P(y = c | a) = P(u > 0), u = D_c ν ~ N(μ, S_c), μ = D_c L a, S_c = D_c (L V⁰ Lᵀ + σ² I) D_cᵀ,
an orthant of m = C − 1 dimensions.  Genz's separation of variables writes it as an integral over
w ∈ [0, 1]^(m−1) of a smooth product (S_c = Λ Λᵀ, Λ lower triangular; t_i the standardised bound
of coordinate i given the earlier ones, e_i = Φ(t_i), z_i = −Φ⁻¹(e_i (1 − w_i))):

    P(u > 0) = ∫ Π_{i=1..m} e_i(μ, z_{<i}) dw,   t_i = (μ_i + Σ_{j<i} Λ_ij z_j) / Λ_ii,

and ∇_μ P = ∫ ∇_μ Π e_i dw (the product is smooth in μ for fixed w; its gradient by forward
differentiation through the recursion, `genz_orthant`).  So every hat is one integral over
(g, w) ∈ R^d × [0, 1]^(m−1) (ω = Q^{1/2} g) of a smooth integrand, taken here by one rule: the
first n points of a scrambled Sobol' set of dimension d + m − 1 = 2C − 3 made by the project
(`sobol.sobol_points`, seed `ReplicaAccuracy.qmc_seed`), g = Φ⁻¹ of the first d coordinates,
each point carrying all C labels with its Genz sample of P(y|ω).  The points are the same at every
iteration, so the fixed-point map is a smooth deterministic function of (Q, M, V) and is solved to
the engine's tolerance; the rule's own error (the distance of that fixed point from the exact
one) is measured in benchmarks/results/replica_qmc_error.txt against the tensor route at C = 3, 4
and across independent scramblings at C = 5, 6, 8; for joint channels against larger rules in
benchmarks/results/replica_joint_points.txt.  That error is near the Monte Carlo rate in the
2C − 3 dims, so a solve takes the mean over independent scramblings and states its standard error
(`erm.qmc_replicates`); train_error of coupled two-class tasks is integrated across their decision
boundaries (`qmc_boundary_train_errors`), not as the indicator (docs/REPLICA_QMC.md).
"""
from __future__ import annotations

from functools import lru_cache
from itertools import product

import numpy as np
from scipy.linalg import block_diag

from mtsp.errors import ReachError

from .replica import (
    DOUBLE_R,
    NEGLIGIBLE,
    SoftmaxBlocks,
    _ce_reduced,
    _gradient,
    channel_fields,
    joint_label_cones,
    label_ties,
    prox_cross_entropy,
    prox_response,
    singular_cone,
)

__all__ = ["QmcAccuracyWarning", "genz_cone", "genz_orthant", "qmc_boundary_train_errors", "qmc_channel_hats",
           "qmc_labels", "qmc_loss_channel_hats", "qmc_rule"]

PROX_CHUNK = 2 ** 13   # (point, label) rows per prox solve and hats sum: memory bounded whatever the rule,
#                        and the row arrays small enough to be cheap to allocate (2^16 → 2^13: a D = 4 solve
#                        at 2^13 points 4.0–4.9 → 2.3–2.4 s CPU, benchmarks/results/replica_joint_points_prox.txt)
_TINY = 1e-300


class QmcAccuracyWarning(UserWarning):
    """The QMC rule's error estimate (independent scramblings, `erm.qmc_replicates`) stayed above
    `ReplicaAccuracy.qmc_target` at the most replicates: the message names `accuracy`, the task,
    the prediction and its standard error."""


@lru_cache(maxsize=16)
def qmc_rule(d: int, m: int, n: int, seed: int, ar=DOUBLE_R):
    """(g, w): the first n points of the project's scrambled Sobol' set of dimension d + m − 1
    (`sobol.sobol_points`), g = Φ⁻¹ of the first d coordinates (n × d, ~ N(0, I_d)), w the rest
    (n × (m − 1), the Genz variables of an m-dim orthant).  Read-only arrays."""
    from .sobol import sobol_points
    u = sobol_points(d + m - 1, n, seed)
    g, w = ar.ndtri(ar.array(u[:, :d])), u[:, d:].copy()
    g.flags.writeable = False
    w.flags.writeable = False
    return g, w


def genz_orthant(mu: np.ndarray, S: np.ndarray, w: np.ndarray, grad: bool = True, ar=DOUBLE_R):
    """One Genz sample per row of P(u > 0), u ~ N(μ, S) (μ: n × m, one S), at the points w
    (n × (m − 1)): P̂ = Π_i Φ(t_i), t_i = (μ_i + Σ_{j<i} Λ_ij z_j)/Λ_ii, z_i = −Φ⁻¹(Φ(t_i)(1 − w_i))
    (S = Λ Λᵀ); E_w P̂ = P for every μ.  With ``grad`` also ∇_μ P̂ (n × m), by forward
    differentiation: dt_i = (e_i + Σ_{j<i} Λ_ij dz_j)/Λ_ii, dz_i = −(1 − w_i) φ(t_i)/φ(z_i) dt_i,
    ∇P̂ = P̂ Σ_i φ(t_i)/Φ(t_i) dt_i (in logarithms: no overflow where Φ(t_i) underflows);
    E_w ∇P̂ = ∇P."""
    n, m = mu.shape
    Lc = ar.cholesky(0.5 * (S + S.T))
    z = np.zeros((n, m), dtype=ar.dtype)
    dz = np.zeros((n, m, m), dtype=ar.dtype) if grad else None
    logP = np.zeros(n, dtype=ar.dtype)
    dlogP = np.zeros((n, m), dtype=ar.dtype) if grad else None
    for i in range(m):
        t = (mu[:, i] + z[:, :i] @ Lc[i, :i]) / Lc[i, i]
        le = ar.log_ndtr(t)
        logP += le
        if grad:
            dt = np.einsum("njk,j->nk", dz[:, :i], Lc[i, :i]) / Lc[i, i]
            dt[:, i] += 1.0 / Lc[i, i]
            logphi_t = -0.5 * t * t - ar.log_sqrt_2pi
            dlogP += ar.exp(logphi_t - le)[:, None] * dt
        if i < m - 1:
            q = np.maximum(ar.exp(le) * (1.0 - w[:, i]), _TINY)
            zi = -ar.ndtri(q)
            z[:, i] = zi
            if grad:
                ratio = ar.exp(ar.log1p(-w[:, i]) + logphi_t + 0.5 * zi * zi + ar.log_sqrt_2pi)
                dz[:, i] = -ratio[:, None] * dt
    P = ar.exp(logP)
    return P, (P[:, None] * dlogP if grad else None)


def genz_cone(mu: np.ndarray, S: np.ndarray, w: np.ndarray, nonstrict=None):
    """`genz_orthant` for a singular S (clean labels of a teacher of rank below C − 1, or clean tasks
    whose teachers are linearly dependent, on shared inputs): one Genz sample per row of
    P(u > 0), u ~ N(μ, S), and of ∇_μ P, where the rank k of S is below m.  With S = A Aᵀ and the
    rows of A written as A = T B (B: k orthonormal rows, T lower trapezoidal, `cone.orthonormalise_rows`),
    u = μ + T η, η ~ N(0, I_k); row i of T bounds only η_{last(i)} given the earlier η, so

        P = E Π_j [Φ(hi_j) − Φ(lo_j)],   lo_j = max_{i: last i = j, T_ij > 0} −(μ_i + Σ_{l<j} T_il η_l)/T_ij,
        hi_j = min_{i: last i = j, T_ij < 0} (μ_i + Σ_{l<j} T_il η_l)/(−T_ij),
        η_j = Φ⁻¹(Φ(lo_j) + w_j (Φ(hi_j) − Φ(lo_j)))

    (Genz's separation of variables for linear constraints: the product is continuous in μ — kinks
    where the active bound changes — and so is its forward gradient).  A row of zero variance is an
    exact tie of two clean label fields: it holds surely where ``nonstrict`` (the label wins the tie,
    a lower class index) and makes the label impossible otherwise; its mean must then be 0 too.
    w: n × (≥ k − 1) uniform points.  Returns (P̂ (n,), ∇_μ P̂ (n × m))."""
    from scipy.special import ndtr, ndtri

    from .cone import DOUBLE, gaussian_factor, orthonormalise_rows
    n, m = mu.shape
    ns = np.zeros(m, bool) if nonstrict is None else np.asarray(nonstrict, bool)
    A = gaussian_factor(DOUBLE, S)
    scale = max(np.abs(A).max(initial=0.0), _TINY)
    tie = np.abs(A).max(axis=1, initial=0.0) <= DOUBLE.rank_tol() * scale * 1e3
    if np.any(tie & ~ns):
        return np.zeros(n), np.zeros((n, m))
    rows = np.nonzero(~tie)[0]
    T, B, last = orthonormalise_rows(DOUBLE, A[rows], DOUBLE.rank_tol())
    k = B.shape[0]
    eta = np.zeros((n, k))
    deta = np.zeros((n, k, m))          # ∂η_j/∂μ
    P = np.ones(n)
    dlogP = np.zeros((n, m))
    for j in range(k):
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
        dlo, dhi = np.zeros((n, m)), np.zeros((n, m))
        for i in np.nonzero(last == j)[0]:
            ri = rows[i]
            c = T[i, j]
            base = mu[:, ri] + eta[:, :j] @ T[i, :j]           # μ_i + Σ_{l<j} T_il η_l
            dbase = np.einsum("njm,j->nm", deta[:, :j], T[i, :j])
            dbase[:, ri] += 1.0
            bound = -base / c
            if c > 0:
                new = bound > lo
                lo = np.where(new, bound, lo)
                dlo = np.where(new[:, None], -dbase / c, dlo)
            else:
                new = bound < hi
                hi = np.where(new, bound, hi)
                dhi = np.where(new[:, None], -dbase / c, dhi)
        upper = lo > 0                                          # both bounds in the upper tail
        Flo = np.where(upper, ndtr(-lo), ndtr(lo))
        Fhi = np.where(upper, ndtr(-hi), ndtr(hi))
        e = np.maximum(np.where(upper, Flo - Fhi, Fhi - Flo), 0.0)
        phi_lo = np.exp(-0.5 * np.where(np.isfinite(lo), lo, 0.0) ** 2 - 0.5 * np.log(2 * np.pi)) * np.isfinite(lo)
        phi_hi = np.exp(-0.5 * np.where(np.isfinite(hi), hi, 0.0) ** 2 - 0.5 * np.log(2 * np.pi)) * np.isfinite(hi)
        de = phi_hi[:, None] * dhi - phi_lo[:, None] * dlo
        live = e > _TINY
        P = P * e
        dlogP += np.where(live[:, None], de / np.where(live, e, 1.0)[:, None], 0.0)
        if j < k - 1:
            wj = w[:, j]
            q = np.where(upper, Flo - wj * e, Flo + wj * e)
            q = np.clip(q, _TINY, 1.0 - 1e-16)
            z = np.where(upper, -ndtri(q), ndtri(q))
            z = np.where(live, z, np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi, 0.0)))
            log_phi_z = -0.5 * z * z
            r_lo = np.exp(np.where(np.isfinite(lo), -0.5 * np.where(np.isfinite(lo), lo, 0.0) ** 2, -np.inf) - log_phi_z)
            r_hi = np.exp(np.where(np.isfinite(hi), -0.5 * np.where(np.isfinite(hi), hi, 0.0) ** 2, -np.inf) - log_phi_z)
            eta[:, j] = z
            deta[:, j] = np.where(live[:, None], (1.0 - wj)[:, None] * r_lo[:, None] * dlo
                                  + wj[:, None] * r_hi[:, None] * dhi, 0.0)
    grad = np.where((P > 0)[:, None], P[:, None] * dlogP, 0.0)
    return P, grad


def qmc_labels(chans: list, a: np.ndarray, V0: np.ndarray, w: np.ndarray, ar=DOUBLE_R):
    """Genz samples of P(y | a) (n × L) and of ∇_a P (L, n, Σ r_t) for every label y, one per row
    of a at the matching row of w: the classes of one task, or every joint label y = (y_1, …, y_T)
    of tasks sharing the sample (`itertools.product` order, as `replica._joint_labels`).  The
    reduced label fields ν = blockdiag(L_t) u + (σ_t ξ_t) given u ~ N(a, V⁰) are N(L a, S) and y is
    the orthant blockdiag(D_{y_t} E_tᵀ) ν > 0 of m = Σ_t (C_t − 1) dimensions (`replica.joint_label_cones`,
    `genz_orthant`)."""
    from itertools import product

    from scipy.linalg import block_diag
    Lb = block_diag(*[ch.L for ch in chans])
    S = Lb @ V0 @ Lb.T + np.diag(ar.array(np.concatenate([[ch.sigma] * ch.d for ch in chans])) ** 2)
    labels = list(product(*[range(ch.C) for ch in chans]))
    n = a.shape[0]
    p = np.empty((n, len(labels)), dtype=ar.dtype)
    grads = np.empty((len(labels), n, Lb.shape[1]), dtype=ar.dtype)
    for k, (G, Su) in enumerate(joint_label_cones(chans, Lb, S, labels, ar, singular=True)):
        if singular_cone(Su, ar):
            if ar is not DOUBLE_R:
                raise ReachError("precision", "the mp path does not integrate the singular label cones of "
                                              "clean labels from a rank-deficient teacher (double only)")
            pc, v = genz_cone(a @ G.T, Su, w, label_ties(chans, labels[k]))
        else:
            pc, v = genz_orthant(a @ G.T, Su, w, ar=ar)
        p[:, k] = pc
        grads[k] = v @ G
    return p, grads


def qmc_channel_hats(ch, Q: np.ndarray, M: np.ndarray, V: np.ndarray, acc, npoints: int,
                     train: bool = False, warm: dict | None = None):
    """`qmc_loss_channel_hats` of one task (G = I)."""
    return qmc_loss_channel_hats([ch], np.eye(ch.r), Q, M, V, acc, npoints, train, warm)


def qmc_loss_channel_hats(chans: list, G: np.ndarray, Q: np.ndarray, M: np.ndarray, V: np.ndarray,
                          acc, npoints: int, train: bool = False, warm: dict | None = None, ar=DOUBLE_R):
    """(Q̂, M̂, V̂) of one loss channel on the fixed QMC rule of ``npoints`` points (module
    docstring): one task, or the tasks of ``chans`` sharing every sample (coupled tasks on shared
    inputs: stacked fields ω ∈ R^D, D = Σ_t (C_t − 1), joint teacher u ~ N(0, G), joint labels, the
    prox of Σ_t w_t CE under the full V, as `replica.loss_channel_hats`; the rule has dimension
    2D − 1).  With ``train`` also per task [(train_loss, train_error, test_loss)], all on the same
    points (the error as the indicator 1{argmax h_{y,t} ≠ y_t}: its QMC error is stated in
    benchmarks/results/replica_qmc_error.txt).  ``warm``: the last prox shifts h − ω (a close
    Newton start), updated in place.  ``ar``: the arithmetic (`cone.DOUBLE`, or
    `cone.MP`)."""
    from itertools import product

    d, Rk, B, F, A, V0 = channel_fields(chans, G, Q, M, ar)
    g, w = qmc_rule(d, d, npoints, acc.qmc_seed, ar)
    omega = g @ F.T
    Y1 = np.concatenate([np.stack([np.eye(ch.C)[c] for ch, c in zip(chans, y)]).ravel()[None]
                         for y in product(*[range(ch.C) for ch in chans])])
    n, ny = len(g), len(Y1)
    py, grads = qmc_labels(chans, omega @ A.T, V0, w, ar)
    wts = ar.array(1.0) / n
    # (point, label) pairs of negligible weight in every integrand (|f| ≤ √2 w, |H| ≤ w/2) are
    # left out: labels a clean teacher rules out at that point
    keep = wts * (py.T.ravel() + np.abs(grads).sum(axis=2).ravel()) > NEGLIGIBLE
    Y = np.repeat(Y1, n, axis=0)[keep]
    om = np.tile(omega, (ny, 1))[keep]
    h0 = None
    if warm is not None and warm.get("shape") == (ny * n, d):
        h0 = om + warm["shift"][keep]
    wy = wts * py.T.ravel()[keep]
    gk = grads.reshape(ny * n, Rk)[keep]
    Qh, Mh, Vh = (np.zeros(s, dtype=ar.dtype) for s in ((d, d), (d, Rk), (d, d)))
    tl, te, tst = (np.zeros(B.T, dtype=ar.dtype) for _ in range(3))
    shifts = np.empty_like(om)
    for lo in range(0, len(om), PROX_CHUNK):   # the prox in chunks of rows: bounded memory
        k = slice(lo, lo + PROX_CHUNK)
        h, p, H = prox_cross_entropy(om[k], Y[k], V, B, tol=acc.newton_tol, h0=None if h0 is None else h0[k])
        shifts[k] = h - om[k]
        f = -_gradient(p.reshape(len(p), B.T, -1), Y[k], B)
        Qh += (f * wy[k, None]).T @ f
        Mh += wts * f.T @ gk[k]
        Vh += prox_response(H, V, wy[k], ar)
        if train:
            tl += wy[k] @ _ce_reduced(h, Y[k], B, weighted=False)
            tst += wy[k] @ _ce_reduced(om[k], Y[k], B, weighted=False)
            z = B.logits(h)
            te += wy[k] @ (np.argmax(z, axis=2) != np.argmax(Y[k].reshape(z.shape), axis=2))
    if train and len(chans) > 1 and acc.boundary_train_error and ar is DOUBLE_R and all(ch.C == 2 for ch in chans):
        # two-class tasks: train_error across each task's decision boundary, not the indicator
        smooth = qmc_boundary_train_errors(chans, B, Q, V, A, V0, npoints, acc.qmc_seed)
        te = np.array([v if b is None else b for v, b in zip(te, smooth)])
    if warm is not None:
        shift = warm["shift"] if warm.get("shape") == (ny * n, d) else np.zeros((ny * n, d), dtype=ar.dtype)
        shift[keep] = shifts
        warm.update(shape=(ny * n, d), shift=shift)
    a = chans[0].alpha
    out = (a * 0.5 * (Qh + Qh.T), a * Mh, a * 0.5 * (Vh + Vh.T))
    if not train:
        return out
    return out + ([tuple(ar.scalar(v) for v in x) for x in zip(tl, te, tst)],)


def qmc_boundary_train_errors(chans: list, B, Q: np.ndarray, V: np.ndarray, A: np.ndarray, V0: np.ndarray,
                              npoints: int, seed: int) -> list:
    """train_error of each task of a joint channel of two-class tasks on the QMC rule, without the
    jump of the indicator.  As in `replica.joint_train_errors_by_boundaries`: given the other tasks'
    fields ω_{−t} and the joint label y, task t is misclassified exactly on one side of the boundary
    b_y(ω_{−t}) (the prox maps h_t to ω_t increasingly; b_y = [V g_y(h)]_t at h_t = 0, h_{−t} the
    prox of the other tasks at ω_{−t} − V_{−t,t} g_{y_t}(0)).  Given ω_{−t}, ω_t ~ N(m, s²)
    (m = Q_{t,−t} Q_{−t,−t}⁻¹ ω_{−t}) and the label cone fields o = G_y A ω + (noise of covariance
    S_y) are jointly Gaussian with it, so the event {y, task t wrong} is one orthant of T + 1
    dimensions,

        v = ς (b_y − ω_t) > 0 and o > 0:  mean (G_y A ω̄, ς (b_y − m)), ω̄ = (ω_{−t}, m),
        covariance [[S_y + s² c cᵀ, −ς s² c], [−ς s² cᵀ, s²]],  c = G_y A e_t,

    (ς = +1 where the wrong side is ω_t < b_y), and

        train_error_t = Σ_y E_{ω_{−t}} P(v > 0, o > 0 | ω_{−t}),

    a smooth integrand over ω_{−t} ~ N(0, Q_{−t,−t}) and the T Genz variables of the orthant
    (`genz_orthant`), taken on the first ``npoints`` points of the project's Sobol' set of 2T − 1
    dimensions (`qmc_rule`, seed ``seed``).  A task whose ω_t is (nearly) a function of the others'
    (s² ≤ 1e-10 Q_tt: a coupled task of weight 0), or a channel with a singular label cone, gets None
    (the caller keeps the indicator).  Measured: docs/REPLICA_QMC.md."""
    T = len(chans)
    E = B.E                                             # 1 × 2: z_0 − z_1 = √2 h
    labels = list(product(*[range(2) for _ in chans]))
    Lb = block_diag(*[ch.L for ch in chans])
    S = Lb @ V0 @ Lb.T + np.diag([ch.sigma ** 2 for ch in chans])
    cones = list(joint_label_cones(chans, Lb, S, labels, DOUBLE_R, singular=True))
    if any(singular_cone(Su, DOUBLE_R) for _, Su in cones):
        return [None] * T
    sign0 = np.sign(E[0, 0] - E[0, 1])                  # h_t > 0 ⟺ class 0 when sign0 > 0
    g, w = qmc_rule(T - 1, T + 1, npoints, seed)
    n = len(g)
    out = []
    for t in range(T):
        rest = [s for s in range(T) if s != t]
        Qrr = Q[np.ix_(rest, rest)]
        kq = np.linalg.solve(Qrr, Q[rest, t])
        var = float(Q[t, t] - Q[t, rest] @ kq)
        if var <= 1e-10 * float(Q[t, t]):
            out.append(None)        # ω_t (nearly) a function of ω_{−t}: the caller's indicator instead
            continue
        vals, vecs = np.linalg.eigh(Qrr)
        om_r = g @ ((vecs * np.sqrt(vals)) @ vecs.T).T                 # ω_{−t} ~ N(0, Q_rr)
        m = om_r @ kq
        om_bar = np.empty((n, T))
        om_bar[:, rest] = om_r
        om_bar[:, t] = m
        Br = SoftmaxBlocks.of(E, B.weights[rest])
        err = 0.0
        for y, (Gy, Su) in zip(labels, cones):
            gt = B.weights[t] * (0.5 - (y[t] == 0)) * (E[0, 0] - E[0, 1])   # w ∇_h CE at h_t = 0
            Yr = np.tile(np.concatenate([np.eye(2)[y[s]] for s in rest]), (n, 1))
            _, pr, _ = prox_cross_entropy(om_r - gt * V[rest, t], Yr, V[np.ix_(rest, rest)], Br)
            gv = np.zeros((n, T))
            gv[:, t] = gt
            gv[:, rest] = _gradient(pr.reshape(n, T - 1, 2), Yr, Br)
            b = gv @ V[t]                                                  # the boundary b_y(ω_{−t})
            sg = 1.0 if (y[t] == 0) == (sign0 > 0) else -1.0               # wrong side: ω_t < b (ς = +1)
            GA = Gy @ A
            c = GA[:, t]
            mu = np.column_stack([om_bar @ GA.T, sg * (b - m)])
            Sf = np.block([[Su + var * np.outer(c, c), -sg * var * c[:, None]],
                           [-sg * var * c[None, :], np.array([[var]])]])
            P, _ = genz_orthant(mu, Sf, w, grad=False)
            err += float(P.mean())
        out.append(err)
    return out

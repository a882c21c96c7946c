"""The QMC loss channel of `replica_qmc` in mpmath: `--precision mp` and `mtsp check` for one task
with C ≥ 4.

The same rule — the first n points of the project's scrambled Sobol' set (exact dyadic numbers,
so the mp points are the double ones), g = Φ⁻¹ of the first d coordinates, the Genz variables w
the rest — and the same integrand term by term, written again for mp numbers: Φ⁻¹ by Newton's
method on `mpmath.ncdf` from the double quantile (the upper half through Φ⁻¹(u) = −Φ⁻¹(1 − u),
exact for dyadic u), the Genz product and its forward-differentiated gradient (`genz_orthant`),
the prox by `mp_replica._prox_mp` from the double prox, the sums by `mpmath.fsum`.  At the same n
the mp channel differs from the double one by the double arithmetic's errors only.  Cost: about
n·C mp prox solves per map evaluation (n = 128 and C = 5: ≈ 10 s), so the mp route runs on its own
short rule (`MP_QMC_POINTS` unless given) and the double fixed point it polishes is solved on the
same points (`mp_replica.solve_erm_mp`).
"""
from __future__ import annotations

import mpmath
import numpy as np
from scipy.special import ndtri

from .online import _class_diffs

__all__ = ["MP_QMC_POINTS", "genz_orthant_mp", "ndtri_mp", "qmc_channel_hats_mp"]

MP_QMC_POINTS = 128   # the mp route's QMC rule when none is given (points of the same Sobol' set)
_TINY = 1e-300        # the double path's floor on Genz's tail mass (`replica_qmc._TINY`)


def ndtri_mp(u):
    """Φ⁻¹(u) at the working precision: Newton's method on ncdf(z) = u from the double quantile,
    by symmetry in the upper half."""
    u = mpmath.mpf(u)
    if u > 0.5:
        return -ndtri_mp(1 - u)
    z = mpmath.mpf(float(ndtri(float(u))))
    tol = mpmath.eps * 16
    for _ in range(60):
        step = (mpmath.ncdf(z) - u) / mpmath.npdf(z)
        z -= step
        if abs(step) <= tol * (1 + abs(z)):
            return z
    raise ArithmeticError(f"ndtri_mp({mpmath.nstr(u, 5)}): Newton did not converge")


def genz_orthant_mp(mu: list, Lc: mpmath.matrix, w: list):
    """`replica_qmc.genz_orthant` for one row in mp: (P̂, ∇_μ P̂) with Lc the Cholesky factor."""
    m = len(mu)
    z, dz = [], []
    P = mpmath.mpf(1)
    dlog = [mpmath.mpf(0)] * m
    for i in range(m):
        t = (mu[i] + mpmath.fsum(Lc[i, j] * z[j] for j in range(i))) / Lc[i, i]
        dt = [((1 if k == i else 0) + mpmath.fsum(Lc[i, j] * dz[j][k] for j in range(i))) / Lc[i, i]
              for k in range(m)]
        e = mpmath.ncdf(t)
        P *= e
        mills = mpmath.npdf(t) / e
        dlog = [a + mills * b for a, b in zip(dlog, dt)]
        if i < m - 1:
            q = max(e * (1 - w[i]), mpmath.mpf(_TINY))
            zi = -ndtri_mp(q)
            ratio = (1 - w[i]) * mpmath.npdf(t) / mpmath.npdf(zi)
            z.append(zi)
            dz.append([-ratio * b for b in dt])
    return P, [P * b for b in dlog]


def qmc_channel_hats_mp(ch, Q: mpmath.matrix, M: mpmath.matrix, V: mpmath.matrix, npoints: int,
                        seed: int, train: bool = False):
    """(Q̂, M̂, V̂) of `replica_qmc.qmc_channel_hats` in mp on its first ``npoints`` points; with
    ``train`` also (train_loss, train_error, test_loss) on the same points, the test loss
    E_ω Σ_y P(y|ω) CE(Eᵀω, y) as in `mp_replica.channel_hats_mp`."""
    from .mp_replica import _add_point, _lse, _m, _reduced_basis_mp, _sym_factor, summed_hats
    from .replica import NEGLIGIBLE, SoftmaxBlocks, prox_cross_entropy, reduced_basis
    from .sobol import sobol_points
    d, C, r = ch.d, ch.C, ch.r
    E = _reduced_basis_mp(C)
    L = _m(ch.L)
    F = _sym_factor(Q)
    Qinv_M = Q ** -1 * M
    A = Qinv_M.T
    V0 = mpmath.eye(r) - M.T * Qinv_M
    S = L * V0 * L.T + mpmath.mpf(ch.sigma) ** 2 * mpmath.eye(d)
    cls = []
    for c in range(C):
        Dc = _m(_class_diffs(C, c)) * E.T
        cls.append((Dc * L, mpmath.cholesky(Dc * S * Dc.T)))
    u = sobol_points(2 * d - 1, npoints, seed)
    wk = mpmath.mpf(1) / npoints
    Fd = np.array(F.tolist(), dtype=float)
    omega_d = ndtri(u[:, :d]) @ Fd.T
    Vd = np.array(V.tolist(), dtype=float)
    Bd = SoftmaxBlocks.of(reduced_basis(C), ch.weight)
    start = {c: prox_cross_entropy(omega_d, np.tile(np.eye(C)[c], (npoints, 1)), Vd, Bd)[0] for c in range(C)}
    w = mpmath.mpf(ch.weight)
    terms = {"Q": [], "M": [], "V": []}
    tl, te, tst = [], [], []
    for k in range(npoints):
        g = mpmath.matrix([ndtri_mp(mpmath.mpf(float(x))) for x in u[k, :d]])
        wv = [mpmath.mpf(float(x)) for x in u[k, d:]]
        omega = F * g
        a = A * omega
        zt = [mpmath.fsum(E[i, j] * omega[i] for i in range(d)) for j in range(C)] if train else None
        for c in range(C):
            Gc, Lc = cls[c]
            P, v = genz_orthant_mp(list(Gc * a), Lc, wv)
            grad = Gc.T * mpmath.matrix(v)
            if train:
                tst.append(wk * P * (_lse(zt) - zt[c]))
            if wk * (P + mpmath.fsum(abs(x) for x in grad)) <= NEGLIGIBLE:
                continue
            _add_point(terms, (tl, te) if train else None, omega, c, V, E, w, _m(start[c][k]).T, wk, P, grad)
    sums = {"Q": mpmath.zeros(d, d), "M": mpmath.zeros(d, max(r, 1)), "V": mpmath.zeros(d, d)}
    out = summed_hats(terms, sums, ch.alpha, r)
    return out + ((mpmath.fsum(tl), mpmath.fsum(te), mpmath.fsum(tst)),) if train else out

"""The cone reduction and the Genz transform, written once for both number types.

`quadrature.cone_expectation` (float64; mpmath with `mp_quadrature.mp_rule`'s keywords) computes

    E[ 1{A f > 0} · Φ(P f) ]   and   E[ 1{A f > 0} · Γ(P f) · (L f)ᵀ ],   f = F ζ, ζ ~ N(0, I),

by one algorithm, in an arithmetic (`DOUBLE`: float64 NumPy arrays; `MP`: NumPy object arrays of
mpf at the working precision) that supplies the few operations it needs:

1. `cone_plan`: the cone rows ``A F`` orthonormalised in order (Gram–Schmidt, twice, with rank
   detection): ``A F = Λ E₁``, Λ lower-trapezoidal, so the event is a sequence of one-sided bounds
   on ``η₁ = E₁ ζ`` (row i bounds the last coordinate it uses); the part of ``P F`` orthogonal to
   ``E₁`` spans ``η₂ = E₂ ζ`` (rank detected relative to ``P F`` itself); every other direction of
   ζ averages out, and fields entering linearly are replaced by their conditional mean given
   (η₁, η₂).  The plan is data: which coordinates are cone (Genz) and which smooth (Gauss–Hermite)
   dimensions, their coefficients, and whether the last cone coordinate needs no nodes.
2. `genz`: points u ∈ [0, 1]^r₁ to η₁ — coordinate j a normal truncated to the bounds its rows
   give, P(X < x | lo < X < hi) = u_j, the truncation mass a factor of the weight (the last one
   integrated exactly when the integrand does not depend on it); ``signs`` evaluates the union of
   the cones diag(s) A at once (Gram–Schmidt of diag(s) A is that of A with basis vector j
   flipped by the sign of the row that introduced it).
3. `orthant_probability`: P(X > 0) in closed form for ≤ 3 nonsingular rows (Sheppard, Plackett);
   `wide_sector_halves`: a two-row sector wider than 90° as its two halves.

`quadrature.cone_expectation` executes a plan in either arithmetic (``ar=``): the product rule's
1-d rules are the arithmetic's (`rule01`, `gauss_hermite`), the rest is the same code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache

import mpmath
import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

from mtsp.model import reduced_basis

__all__ = ["DOUBLE", "MP", "ConePlan", "cone_plan", "condition", "label_cones", "gaussian_factor", "genz", "orthonormalise_rows", "orthant_probability",
           "wide_sector_halves"]

RANK_TOL = 1e-11


class _Double:
    """float64: NumPy arrays, LAPACK, scipy.special — for the cone kernel, the replica's loss channel
    (`replica`) and the integrator (`integrators`)."""
    name = "double"
    tiny = 1e-300
    inf = np.inf
    dtype, eps, log_sqrt_2pi = float, float(np.finfo(float).eps), 0.5 * np.log(2.0 * np.pi)
    exp, log, log1p = staticmethod(np.exp), staticmethod(np.log), staticmethod(np.log1p)
    sinh, cosh, sin, digits = staticmethod(np.sinh), staticmethod(np.cosh), staticmethod(np.sin), 15
    ndtr, ndtri, log_ndtr = staticmethod(ndtr), staticmethod(ndtri), staticmethod(log_ndtr)
    inv, solve, det = staticmethod(np.linalg.inv), staticmethod(np.linalg.solve), staticmethod(np.linalg.det)
    eigvalsh, basis, linspace = staticmethod(np.linalg.eigvalsh), staticmethod(reduced_basis), staticmethod(np.linspace)

    def array(self, x):
        return np.asarray(x, dtype=float)

    def scalar(self, x):
        return float(x)

    def tol(self, tol):
        """A tolerance stated for double (the prox's Newton, its roundoff allowance): itself."""
        return tol

    def rank_tol(self):
        return RANK_TOL

    def sector_cos_max(self):
        return 1 - 1e-9

    def zeros(self, shape):
        return np.zeros(shape)

    def full(self, shape, x):
        return np.full(shape, x)

    def dot(self, a, b):
        return a @ b

    def norm(self, v):
        return np.linalg.norm(v)

    def matmul(self, A, B):
        return A @ B

    def pinv(self, M):
        """Moore–Penrose pseudo-inverse (singular values below 1e-10 of the largest dropped)."""
        return np.linalg.pinv(M, rcond=1e-10)

    def eye(self, n):
        return np.eye(n)

    def smooth_basis(self, Pperp, top, tol):
        """(E₂, C₂) with Pperp = C₂ E₂, E₂ orthonormal rows: the singular directions above
        tol · 1e3 · ``top`` (SVD)."""
        if Pperp.size and np.abs(Pperp).max() > 0:
            U, s, Vt = np.linalg.svd(Pperp, full_matrices=False)
            keep = s > tol * max(top, 1e-300) * 1e3
            return Vt[keep], U[:, keep] * s[keep]
        return np.zeros((0, Pperp.shape[1])), np.zeros((Pperp.shape[0], 0))

    def eigh(self, S):
        """(eigenvalues, eigenvectors as columns) of a symmetric matrix (ascending, LAPACK)."""
        return np.linalg.eigh(S)

    def asin(self, x):
        return np.arcsin(np.clip(x, -1, 1))

    def sqrt(self, x):
        return np.sqrt(x)

    def const(self, x):
        return float(x)

    pi = np.pi

    def rows(self, x, cols=None):
        """x (None: no rows) as a float array, with ``cols`` columns when given."""
        x = np.zeros((0, cols)) if x is None else np.asarray(x, float)
        return x if cols is None else x.reshape(-1, cols)

    def precision(self):
        return None

    def rule01(self, n):
        """(u, 1 − u, w): `quadrature.tanh_sinh01`'s n-point rule on [0, 1]."""
        from .quadrature import tanh_sinh01
        return tanh_sinh01(n)

    def sum(self, x):
        return x.sum()

    def each_distinct(self, fn, *cols):
        """fn(self, *cols) (elementwise over the columns; in double on all of them at once)."""
        return fn(self, *cols)

    def legendre(self, n):
        """The n-point Gauss–Legendre rule on [−1, 1] (NumPy's; read-only arrays, once per n)."""
        return _leggauss(n)

    def gauss_hermite(self, n):
        """`quadrature.gauss_hermite`'s n-point rule for E[f(x)], x ~ N(0, 1)."""
        from .quadrature import gauss_hermite
        return gauss_hermite(n)

    def cholesky(self, S):
        """The lower Cholesky factor, or None where S is not positive definite."""
        try:
            return np.linalg.cholesky(S)
        except np.linalg.LinAlgError:
            return None

    def tie_tol(self):
        """Relative size below which a coefficient of a tie counts as zero."""
        return 1e-12

    def pivot_tol(self):
        """Cholesky pivots below this × the largest standard deviation: a singular Q."""
        return 1e-9

    def merge_tol(self):
        """Cuts closer than this (relative) are one (None: only equal cuts)."""
        return None

    def refine_roots(self, phi, x):
        """The roots of φ near the double roots x: x itself in double."""
        return x

    # -- for the integrator (`integrators`): vectors are arrays, stage storage a 2-d array --
    def coefficients(self, qs):
        return np.array([float(q) for q in qs], dtype=float)

    def matrix(self, rows):
        return np.array([[float(q) for q in row] for row in rows], dtype=float)

    def vector(self, y):
        return np.asarray(y, float).copy()

    def stages(self, n, size):
        return np.empty((n, size))

    def stage_sum(self, coefs, K):
        return coefs @ K

    def axpy(self, y, h, v):
        return y + h * v

    def times(self, h, v):
        return h * v

    def scaled(self, v, y, y_new, rtol, atol):
        return v / (atol + np.maximum(np.abs(y), np.abs(y_new)) * rtol)

    def step_norm(self, v, kind):
        if kind == "rms":
            return float(np.linalg.norm(v) / math.sqrt(v.size))
        return float(np.abs(v).max())

    def resolution(self, t):
        return 10 * abs(np.nextafter(t, np.inf) - t)

    def isfinite(self, x):
        return math.isfinite(x)

    def dense(self, K, P):
        return K.T @ P

    def interpolate(self, y0, h, Q, x):
        return y0 + h * (Q @ (x ** np.arange(1, Q.shape[1] + 1)))

    def slope(self, Q, x):
        j = np.arange(1, Q.shape[1] + 1)
        return Q @ (j * x ** (j - 1))


class _Mp:
    """mpmath at the working precision: NumPy object arrays of mpf, sums by `mpmath.fsum`,
    `mp.eigsy`; Φ by erfc and Φ⁻¹ by Halley's method (`mp_quadrature.ndtri_mp`), both tails by
    complements (the rules carry u and 1 − u), so no probability near 1 is ever formed.  The same
    methods as `_Double`: the cone kernel, the replica's loss channel, the integrator (whose
    vectors are lists of mpf)."""
    name = "mp"
    tiny = mpmath.mpf(10) ** -300
    inf = mpmath.inf
    dtype, eps, log_sqrt_2pi = object, property(lambda s: mpmath.eps), property(lambda s: mpmath.log(2 * mpmath.pi) / 2)
    exp, log, log1p, sqrt, array, sinh, cosh, sin = (staticmethod(np.frompyfunc(f, 1, 1)) for f in (
        mpmath.exp, mpmath.log, mpmath.log1p, mpmath.sqrt, mpmath.mpf, mpmath.sinh, mpmath.cosh, mpmath.sin))
    digits = property(lambda s: mpmath.mp.dps)
    ndtr, log_ndtr, ndtri = (property(lambda s, k=k: s._normal[k]) for k in range(3))
    tol = staticmethod(lambda t: t * mpmath.mpf(2) ** (53 - mpmath.mp.prec))   # a double tolerance × ε_mp / ε_double
    det = staticmethod(lambda M: mpmath.det(mpmath.matrix(M.tolist())))
    linspace = staticmethod(lambda a, b, n: np.array(mpmath.linspace(a, b, n), dtype=object))

    @cached_property
    def special(self):
        """`mp_quadrature`: the node sets and special functions of the working precision (it imports this module)."""
        from . import mp_quadrature
        return mp_quadrature

    @cached_property
    def _normal(self):
        """(Φ, log Φ, Φ⁻¹) elementwise, once per distinct value of a call (the nodes of one parent share
        their bounds) (`mp_quadrature.ncdf`, `ndtri_mp` by the nearer tail)."""
        ncdf, ndtri_mp = self.special.ncdf, self.special.ndtri_mp

        def once_per_value(f):
            def apply(x):
                if not isinstance(x, np.ndarray):   # one number
                    return f(x)
                memo: dict = {}

                def value(v):
                    key = getattr(v, "_mpf_", v)    # (an mpf's own hash costs 8× its tuple's)
                    out = memo.get(key)
                    if out is None:
                        out = memo[key] = f(v)
                    return out
                return np.frompyfunc(value, 1, 1)(x)
            return apply
        return tuple(once_per_value(f) for f in (ncdf, lambda x: mpmath.log(ncdf(x)),
                                                  lambda q: ndtri_mp(q) if q <= 0.5 else -ndtri_mp(1 - q)))

    def scalar(self, x):
        return mpmath.mpf(x.numerator) / x.denominator if isinstance(x, Fraction) else mpmath.mpf(x)

    def eigvalsh(self, S):
        return self.eigh(S)[0]

    def inv(self, M):
        return np.array(mpmath.inverse(mpmath.matrix(M.tolist())).tolist(), dtype=object).reshape(M.shape)

    def solve(self, J, G):
        return self.inv(J) @ G if J.ndim == 2 else np.stack([self.inv(j) @ g for j, g in zip(J, G)])

    def basis(self, C):
        """`model.reduced_basis` (Helmert rows) in mp."""
        rows = np.array([[1] * k + [-k] + [0] * (C - k - 1) for k in range(1, C)], dtype=object)
        return rows / np.array([mpmath.sqrt(k * (k + 1)) for k in range(1, C)], dtype=object)[:, None]

    def rank_tol(self):
        """10^-(dps−10), at most 1e-11: 1e-20 at 30 digits."""
        return mpmath.mpf(10) ** (-max(11, mpmath.mp.dps - 10))

    def sector_cos_max(self):
        return 1 - 1000 * self.rank_tol()

    def gram_floor(self):
        """10^(5 − dps): an eigenvalue of a Gram matrix M Mᵀ below this × its largest is rounding (`mp.eigsy`'s
        eigenvalues carry ≈ ε ‖M Mᵀ‖, either sign), so a rank is decided above it: singular values of M
        from √(gram_floor) ≈ 3e-13 relative at 30 digits (the double's SVD cuts at 1e-10 and 1e-8)."""
        return mpmath.mpf(10) ** (5 - mpmath.mp.dps)

    def zeros(self, shape):
        return self.full(shape, mpmath.mpf(0))

    def full(self, shape, x):
        out = np.empty(shape, dtype=object)
        out.fill(x)
        return out

    def dot(self, a, b):
        return mpmath.fsum(x * y for x, y in zip(a, b))

    def norm(self, v):
        return mpmath.sqrt(self.dot(v, v))

    def matmul(self, A, B):
        out = self.zeros((A.shape[0], B.shape[1]))
        for i in range(A.shape[0]):
            for j in range(B.shape[1]):
                out[i, j] = self.dot(A[i], B[:, j])
        return out

    def pinv(self, M):
        """Moore–Penrose pseudo-inverse M⁺ = Mᵀ (M Mᵀ)⁺ over the eigenvalues w of M Mᵀ whose singular value √w
        is above `rank_tol` of the largest (as the double's rcond) and w above `gram_floor` (else a
        rank-deficient M kept its rounding: 1e14 off measured): a field of zero variance (a trunk started at
        zero) conditions on nothing."""
        return self.matmul(M.T, self.pinv_psd(self.matmul(M, M.T), max(self.rank_tol() ** 2, self.gram_floor())))

    def pinv_psd(self, G, rel):
        """G⁺ = U diag(1/w) Uᵀ of a symmetric PSD G over its eigenvalues w above ``rel`` × the largest (and 0)."""
        w, U = self.eigh(G)
        top = max(max(w, default=mpmath.mpf(0)), 0)
        n, G = len(w), self.zeros(G.shape)
        for k in (k for k in range(n) if w[k] > 0 and w[k] > rel * top):
            for i in range(n):
                for j in range(n):
                    G[i, j] += U[i, k] * U[j, k] / w[k]
        return G

    def eye(self, n):
        out = self.zeros((n, n))
        for i in range(n):
            out[i, i] = mpmath.mpf(1)
        return out

    def smooth_basis(self, Pperp, top, tol):
        """(E₂, C₂) with Pperp = C₂ E₂: eigenvectors of the Gram Pperp Pperpᵀ (mp.eigsy) above
        (tol · 1e3 · ``top``)² and `gram_floor` × ``top``² (below it, dependent projections kept a
        direction of rounding: a spurious smooth dimension), largest first."""
        p, d = Pperp.shape
        E2, cols = [], []
        if p and d:
            ev, U = mpmath.eigsy(mpmath.matrix(self.matmul(Pperp, Pperp.T).tolist()))
            for k in sorted(range(p), key=lambda k: -ev[k]):
                if top > 0 and ev[k] > max((tol * 1000) ** 2, self.gram_floor()) * top ** 2:
                    s = mpmath.sqrt(ev[k])
                    E2.append([mpmath.fsum(U[i, k] * Pperp[i, c] for i in range(p)) / s for c in range(d)])
                    cols.append([U[i, k] * s for i in range(p)])
        E2 = np.array(E2, dtype=object).reshape(len(E2), d)
        C2 = np.array(cols, dtype=object).reshape(len(cols), p).T
        return E2, C2

    def eigh(self, S):
        """(eigenvalues, eigenvectors as columns) of a symmetric matrix (mp.eigsy's order)."""
        E, Q = mpmath.eigsy(mpmath.matrix(S.tolist()))
        n = S.shape[0]
        return (np.array([E[i] for i in range(n)], dtype=object),
                np.array([[Q[i, k] for k in range(n)] for i in range(n)], dtype=object).reshape(n, n))

    def asin(self, x):
        return mpmath.asin(x)

    def const(self, x):
        return mpmath.mpf(x)

    @property
    def pi(self):
        return +mpmath.pi

    def to_mp(self, a):
        """A (nested) array / list of floats or an mpmath matrix as nested lists of mpf (exact)."""
        if isinstance(a, mpmath.matrix):
            return [[a[i, j] for j in range(a.cols)] for i in range(a.rows)]
        if isinstance(a, np.ndarray):
            a = a.tolist()
        return [self.to_mp(x) for x in a] if isinstance(a, (list, tuple)) else mpmath.mpf(a)

    def rows(self, x, cols=None):
        """x (an array, nested lists, an mpmath matrix; None: no rows) as an object array of mpf
        (floats convert exactly), with ``cols`` columns when given."""
        if isinstance(x, np.ndarray) and x.dtype == object:
            out = x
        elif x is None or (isinstance(x, np.ndarray) and x.size == 0) or (isinstance(x, (list, tuple)) and not len(x)):
            return self.zeros((0, cols or 0))
        else:
            out = np.array(self.to_mp(x), dtype=object)
        return out if cols is None else out.reshape(-1, cols)

    def precision(self):
        return mpmath.mp.prec

    def rule01(self, n):
        """(u, 1 − u, w): `mp_quadrature.tanh_sinh01_mp`'s n-point rule on [0, 1]."""
        return self.special.tanh_sinh01_mp(n, mpmath.mp.dps)

    def sum(self, x):
        return mpmath.fsum(x)

    def each_distinct(self, fn, *cols):
        """fn(self, *cols) for a function elementwise over the columns whose result is decided by the first three,
        evaluated on their distinct rows alone (a product rule repeats each node of a coordinate at every node of
        the others; a point costs tens of µs) and spread back."""
        rows: dict = {}
        keys = zip(*([getattr(v, "_mpf_", v) for v in c] for c in cols[:3]))
        back = np.array([rows.setdefault(key, len(rows)) for key in keys], dtype=int)
        first = np.unique(back, return_index=True)[1]
        return tuple(r[back] for r in fn(self, *(c[first] for c in cols)))

    def legendre(self, n):
        """The n-point Gauss–Legendre rule on [−1, 1] (``mp.gauss_quadrature`` at dps + 10 digits, once per n and dps)."""
        return tuple(np.array(v, dtype=object) for v in self.special.gauss_rule("legendre", n, mpmath.mp.dps))

    def gauss_hermite(self, n):
        """`mp_quadrature.gauss_rule`'s n-point rule for E[f(x)], x ~ N(0, 1)."""
        return tuple(np.array(v, dtype=object) for v in self.special.gauss_rule("hermite", n, mpmath.mp.dps))

    def cholesky(self, S):
        """The lower Cholesky factor (mpmath), or None where S is not positive definite."""
        try:
            L = mpmath.cholesky(mpmath.matrix(S.tolist()))
        except (ValueError, ZeroDivisionError):
            return None
        n = S.shape[0]
        return np.array([[L[i, j] for j in range(n)] for i in range(n)], dtype=object).reshape(n, n)

    def tie_tol(self):
        """10^-(dps−5): a coefficient of a tie below this (relative) counts as zero."""
        return mpmath.mpf(10) ** (-mpmath.mp.dps + 5)

    def pivot_tol(self):
        return mpmath.mpf(10) ** (-(mpmath.mp.dps // 2))

    def merge_tol(self):
        return self.tie_tol()

    def refine_roots(self, phi, x):
        """The roots of φ near the double roots x, by bisection on x(1 ± 1e-6) to the working
        precision (all at once); a root whose interval does not bracket a sign change stays x."""
        x = np.array([mpmath.mpf(v) for v in x], dtype=object)
        if not len(x):
            return x
        d = mpmath.mpf(10) ** -6
        lo, hi = x * (1 - d), x * (1 + d)
        lo, hi = np.where(lo < hi, lo, hi), np.where(lo < hi, hi, lo)
        flo = phi(lo)
        ok = np.array([not a * b > 0 for a, b in zip(flo, phi(hi))], dtype=bool)
        for _ in range(int(3.5 * mpmath.mp.dps) + 10):
            mid = (lo + hi) / 2
            fm = phi(mid)
            same = np.array([(a > 0) == (b > 0) for a, b in zip(fm, flo)], dtype=bool)
            lo, flo, hi = np.where(same, mid, lo), np.where(same, fm, flo), np.where(same, hi, mid)
        return np.where(ok, (lo + hi) / 2, x)

    # -- for the integrator (`integrators`): vectors are lists of mpf --
    def coefficients(self, qs):
        return [self.scalar(q) for q in qs]

    def matrix(self, rows):
        return [self.coefficients(row) for row in rows]

    def vector(self, y):
        return [mpmath.mpf(v) for v in y]

    def stages(self, n, size):
        return [None] * n

    def stage_sum(self, coefs, K):
        return [mpmath.fsum(c * k[i] for c, k in zip(coefs, K) if c) for i in range(len(K[0]))]

    def axpy(self, y, h, v):
        return [yi + h * vi for yi, vi in zip(y, v)]

    def times(self, h, v):
        return [h * vi for vi in v]

    def scaled(self, v, y, y_new, rtol, atol):
        return [vi / (atol + max(abs(a), abs(b)) * rtol) for vi, a, b in zip(v, y, y_new)]

    def step_norm(self, v, kind):
        if kind == "rms":
            return mpmath.sqrt(mpmath.fsum(x * x for x in v) / len(v))
        return max(abs(x) for x in v)

    def resolution(self, t):
        return 10 * mpmath.eps * max(1, abs(t))

    def isfinite(self, x):
        return bool(mpmath.isfinite(x))

    def dense(self, K, P):
        return [[mpmath.fsum(K[s][i] * P[s][j] for s in range(len(P))) for j in range(len(P[0]))]
                for i in range(len(K[0]))]

    def interpolate(self, y0, h, Q, x):
        powers = [x ** (j + 1) for j in range(len(Q[0]))]
        return [y + h * mpmath.fsum(q * p for q, p in zip(row, powers)) for y, row in zip(y0, Q)]

    def slope(self, Q, x):
        powers = [(j + 1) * x ** j for j in range(len(Q[0]))]
        return [mpmath.fsum(q * p for q, p in zip(row, powers)) for row in Q]


DOUBLE = _Double()
MP = _Mp()


@lru_cache(maxsize=None)
def _leggauss(n: int):
    out = np.polynomial.legendre.leggauss(n)
    for v in out:
        v.setflags(write=False)
    return out


def gaussian_factor(ar, cov, tol=None):
    """A factor F (n × d, d = numerical rank: eigenvalues above tol × the largest) with
    F Fᵀ = cov, for a PSD (possibly singular) cov, from its eigen-decomposition."""
    cov = 0.5 * (cov + cov.T)
    if cov.shape[0] == 0:
        return ar.zeros((0, 0))
    vals, vecs = ar.eigh(cov)
    tol = ar.rank_tol() if tol is None else tol
    scale = max(max(vals), 0.0)
    keep = vals > tol * max(scale, ar.tiny)
    if scale == 0.0:
        return ar.zeros((cov.shape[0], 0))
    return vecs[:, keep] * ar.sqrt(vals[keep])


def condition(ar, FX, Fx):
    """Gaussian conditioning: for X = FX ζ and x = Fx ζ, ζ ~ N(0, I), X | x ~ N(A x, S) with
    A = FX Fx⁺, S = FX (I − Fx⁺ Fx) FXᵀ.  Returns (A, S, Fx Fxᵀ = Cov(x), I − Fx⁺ Fx).
    No conditioning fields (Fx with 0 rows): A has 0 columns and S = FX FXᵀ."""
    if not Fx.shape[0]:
        return ar.zeros((FX.shape[0], 0)), ar.matmul(FX, FX.T), ar.zeros((0, 0)), ar.eye(Fx.shape[1])
    Pinv = ar.pinv(Fx)
    proj = ar.eye(Fx.shape[1]) - ar.matmul(Pinv, Fx)
    return ar.matmul(FX, Pinv), ar.matmul(ar.matmul(FX, proj), FX.T), ar.matmul(Fx, Fx.T), proj


def label_cones(ar, FX, Fx, Flam=None):
    """The label events given x: X = FX ζ the label fields (one row per class), class c the cone
    u_c = D_c X > 0, D_c = (e_c − e_j)_{j≠c}; given x = Fx ζ, u_c ~ N(D_c A x, D_c S D_cᵀ) and
    Cov(λ, u_c | x) = Flam (I − Fx⁺ Fx) FXᵀ D_cᵀ for λ = Flam ζ (`condition`).  Returns
    ([(D_c A, D_c S D_cᵀ, Cov(λ, u_c | x) or None) per class], `condition`'s (A, S, Cov(x), I − Fx⁺ Fx))."""
    cond = condition(ar, FX, Fx)
    A, S, _, proj = cond
    Clx = None if Flam is None else ar.matmul(ar.matmul(Flam, proj), FX.T)
    eye = ar.eye(FX.shape[0])
    cones = []
    for c in range(FX.shape[0]):
        D = np.array([eye[c] - eye[j] for j in range(len(eye)) if j != c])
        cones.append((ar.matmul(D, A), ar.matmul(ar.matmul(D, S), D.T), None if Clx is None else ar.matmul(Clx, D.T)))
    return cones, cond


def orthonormalise_rows(ar, rows, tol):
    """Gram–Schmidt on rows in order: rows = coef @ basis, coef lower-trapezoidal.

    Returns (coef (m × r), basis (r × d), last (m,)) where last[i] is the index of the last
    basis row that row i uses (-1 for a zero row)."""
    m, d = rows.shape
    basis: list = []
    coef = ar.zeros((m, min(m, d)))
    last = np.full(m, -1, dtype=int)
    scale = max(np.abs(rows).max(initial=0.0), ar.tiny)
    for i in range(m):
        v = rows[i].copy()
        for _ in range(2):  # re-orthogonalise once for numerical stability
            for j, b in enumerate(basis):
                c = ar.dot(b, v)
                coef[i, j] += c
                v -= c * b
        nv = ar.norm(v)
        if nv > tol * scale * 1e3 and len(basis) < d:
            basis.append(v / nv)
            coef[i, len(basis) - 1] = nv
        nz = np.nonzero(np.abs(coef[i, :len(basis)]) > tol * scale * 1e3)[0]
        last[i] = nz[-1] if nz.size else -1
    r = len(basis)
    B = np.array(basis) if r else ar.zeros((0, d))
    return coef[:, :r], B, last


def orthant_probability(ar, S):
    """Closed form P(X > 0) for a zero-mean Gaussian X of dimension ≤ 3 with nonsingular
    covariance S: 1/2; 1/4 + asin ρ/(2π); 1/8 + Σ_{i<j} asin ρ_ij/(4π).  None otherwise."""
    m = S.shape[0]
    if m == 0:
        return ar.const(1.0)
    if m > 3 or any(S[i, i] <= 0 for i in range(m)):
        return None
    d = ar.sqrt(np.diag(S))
    rho = S / np.outer(d, d)
    if m == 1:
        return ar.const(0.5)
    if min(ar.eigvalsh(rho)) < 1e-12:
        return None
    if m == 2:
        return ar.const(0.25) + ar.asin(rho[0, 1]) / (2 * ar.pi)
    s = sum(ar.asin(rho[i, j]) for i, j in ((0, 1), (0, 2), (1, 2)))
    return ar.const(0.125) + s / (4 * ar.pi)


def wide_sector_halves(ar, rows, A, nonstrict):
    """A cone whose first two rows {a₁f > 0, a₂f > 0} (``rows`` on the fields, ``A`` = rows F)
    open wider than 90° (unit normals at an acute angle in the whitened fields — an argmax cone of
    three classes, typically) as its two halves on either side of the bisecting hyperplane:
    {â₂ > 0, m > 0, rest} and {â₁ > 0, −m > 0, rest}, m = â₁ − â₂ (â = a/‖aF‖; on m > 0, â₂ > 0
    implies â₁ > 0).  Near 180° the Genz rule's inner bound turns steep at the end of its range
    and the product rule stalls (measured on a 165° sector: the double's 2-dim rule stalled at
    1.1e-8 with a third row; mp at 16 / 24 / 32 nodes 3.8e-4 / 2e-7 / 5e-8, its halves 3.9e-10 /
    1.5e-12 / 4e-17).  Returns two (rows, nonstrict) pairs, or None when the first two rows are
    not such a pair."""
    if rows.shape[0] < 2:
        return None
    n1, n2 = ar.norm(A[0]), ar.norm(A[1])
    if n1 == 0 or n2 == 0:
        return None
    cos = ar.dot(A[0], A[1]) / (n1 * n2)
    if not (0 < cos < ar.sector_cos_max()):
        return None
    m = rows[0] / n1 - rows[1] / n2
    ns = np.zeros(rows.shape[0], bool) if nonstrict is None else np.asarray(nonstrict, bool)
    h1 = (np.vstack([rows[1], m, rows[2:]]), np.r_[ns[1], False, ns[2:]])
    h2 = (np.vstack([rows[0], -m, rows[2:]]), np.r_[ns[0], True, ns[2:]])
    return h1, h2


@dataclass
class ConePlan:
    """The route of one cone expectation (see the module docstring): ``coef`` (m × r₁), ``last``
    (m,), ``intro`` (r₁,: the row that introduced each basis vector), ``P1`` (p × r₁) and ``C2``
    (p × r₂): the projections in the coordinates η₁, η₂; ``E1``, ``E2``: the bases on ζ;
    ``sample_r1``: the cone coordinates that need nodes (the last one does not when the
    integrand ignores it); ``empty``: a cone row is identically zero (the event has probability 0)."""
    coef: np.ndarray
    last: np.ndarray
    intro: np.ndarray
    E1: np.ndarray
    E2: np.ndarray
    P1: np.ndarray
    C2: np.ndarray
    sample_r1: int
    empty: bool
    rows: int

    @property
    def r1(self) -> int:
        return self.E1.shape[0]

    @property
    def r2(self) -> int:
        return self.E2.shape[0]

    @property
    def dims(self) -> int:
        return self.sample_r1 + self.r2

    def linear(self, ar, Lf):
        """(L F E₁ᵀ, L F E₂ᵀ): the linear fields' coefficients on η₁, η₂ (their conditional mean)."""
        return ar.matmul(Lf, self.E1.T), ar.matmul(Lf, self.E2.T)


def drop_sure_rows(ar, A, nonstrict):
    """A non-strict row (an exact tie resolved in the event's favour) with zero variance holds
    surely: drop it; a strict one fails surely (left in: `cone_plan` marks the cone empty)."""
    if nonstrict is None or not A.shape[0]:
        return A
    zero = np.array([max(abs(x) for x in r) if len(r) else 0 for r in A]) <= \
        ar.rank_tol() * max(np.abs(A).max(), ar.tiny) * 1e3
    return A[~(zero & np.asarray(nonstrict, bool))]


def cone_plan(ar, A, P, skip_last_cone: bool = False, pure: bool = False) -> ConePlan:
    """The plan of E[1{A f > 0} Φ(P f)] for whitened rows ``A`` = (cone rows) F and ``P`` =
    (projection rows) F; ``pure``: a cone probability (no integrand: the last cone coordinate
    is integrated exactly, no projections)."""
    tol = ar.rank_tol()
    coef, E1, last = orthonormalise_rows(ar, A, tol)
    d = A.shape[1] if A.ndim == 2 else P.shape[1]
    empty = bool(A.shape[0] and (last < 0).any())
    r1 = E1.shape[0]
    if pure:
        P = ar.zeros((0, d))
        skip_last_cone = True
    P1 = ar.matmul(P, E1.T)
    Pperp = P - ar.matmul(P1, E1)
    top = np.abs(P).max(initial=0.0) if P.size else 0.0
    E2, C2 = ar.smooth_basis(Pperp, top, tol)
    r2 = E2.shape[0]
    sample_r1 = r1 - 1 if (skip_last_cone and r1 > 0 and r2 == 0) else r1
    intro = np.array([int(np.nonzero(last == j)[0][0]) for j in range(r1)], dtype=int) if not empty else \
        np.zeros(0, dtype=int)
    return ConePlan(coef, last, intro, E1, E2, P1, C2, sample_r1, empty, A.shape[0])


def tanh_sinh01(ar, n: int, t_max):
    """The n-point tanh–sinh (double-exponential) rule on [0, 1] in the arithmetic ``ar``: (u, 1 − u, w).

    t_k = −t_max + k·2t_max/(n − 1) (t = 0 for n = 1), s = (π/2) sinh t, u = 1/(1 + e^{−2s}) = ½(1 + tanh s)
    and 1 − u = 1/(1 + e^{2s}) each formed directly (full relative accuracy at both ends), weights
    ∝ cosh t / cosh² s summing to 1.  The Genz coordinates are quantiles Φ⁻¹(u), so integrands grow like
    √log(1/(1 − u)) at the ends of [0, 1]; the double-exponential rule converges exponentially despite
    such endpoint singularities (Gauss–Legendre only algebraically).  ``t_max`` is each number type's
    policy (`quadrature.tanh_sinh01`, `mp_quadrature.tanh_sinh01_mp`): the nodes reach
    1/(1 + e^{π sinh t_max}) from the ends."""
    t = ar.linspace(-t_max, t_max, n) if n > 1 else ar.zeros(1)
    s = ar.pi / 2 * ar.sinh(t)
    w = ar.cosh(t) / ar.cosh(s) ** 2
    return 1 / (1 + ar.exp(-2 * s)), 1 / (1 + ar.exp(2 * s)), w / ar.sum(w)


def truncated_normal(ar, lo, hi, u, uc=None):
    """x with P(X < x | lo < X < hi) = u for X ~ N(0, 1), and the mass P(lo < X < hi), elementwise
    (``uc`` = 1 − u where the rule carries it, else formed here), with no probability near 1 formed:
    an interval with lo > 0 is mirrored (X → −X, u ↔ 1 − u) so that its lower end lo′ is ≤ 0; then
    a = Φ(lo′), Φ(hi′) or 1 − Φ(hi′) from the tail Φ(−|hi′|) (`_interval`), mass = max(Φ(hi′) − a, 0),
    and x = Φ⁻¹(a + u·mass) where that is ≤ ½ (or hi′ ≤ 0), else −Φ⁻¹(Φ(−hi′) + (1 − u)·mass).  One-sided
    intervals (hi = +∞ throughout, the common case) take one Φ per point, of the tail p beyond |lo|:
    mass = p (lo > 0) or 1 − p, and the probability (1 − u)·mass where it is the smaller one.  The
    probability is clamped to ≥ ``ar.tiny`` and x to [lo, hi] (an empty interval, mass 0, keeps a finite x).
    Evaluated on the distinct (lo, hi, u) alone where the arithmetic's points are costly (`each_distinct`)."""
    return ar.each_distinct(_truncated_normal, lo, hi, u, 1 - u if uc is None else uc)


def _truncated_normal(ar, lo, hi, u, uc):
    upper = np.asarray(lo > 0, bool)
    if bool(np.all(np.asarray(hi == ar.inf, bool))):
        p = ar.ndtr(-np.abs(lo))
        rest = 1 - p
        mass = np.where(upper, p, rest)
        q = p + u * rest                                  # lo ≤ 0: P(X < x)
        direct = ~upper & np.asarray(q <= 0.5, bool)      # else P(X > x) = (1 − u)·mass, x mirrored
        x = ar.ndtri(np.maximum(np.where(direct, q, uc * mass), ar.tiny))
        return np.maximum(np.where(direct, x, -x), lo), mass
    a, tail, above, mass = _interval(ar, lo, hi, upper)
    q, qc = a + np.where(upper, uc, u) * mass, tail + np.where(upper, u, uc) * mass   # qc: 1 − q where hi′ > 0
    direct = np.asarray(q <= 0.5, bool) | ~above
    x = ar.ndtri(np.maximum(np.where(direct, q, qc), ar.tiny))
    return np.clip(np.where(direct ^ upper, x, -x), lo, hi), mass


def _interval(ar, lo, hi, upper):
    """(a, tail, hi′ > 0, mass) of `truncated_normal` on the mirrored interval (lo′, hi′) (``upper``: lo > 0)."""
    hi_t = np.where(upper, -lo, hi)
    a, tail = ar.ndtr(np.where(upper, -hi, lo)), ar.ndtr(-np.abs(hi_t))
    above = np.asarray(hi_t > 0, bool)
    return a, tail, above, np.maximum(np.where(above, 1 - tail, tail) - a, ar.const(0.0))


def interval_mass(ar, lo, hi):
    """P(lo < X < hi), X ~ N(0, 1), elementwise (`truncated_normal`'s mass)."""
    return _interval(ar, lo, hi, np.asarray(lo > 0, bool))[3]


def genz(ar, plan: ConePlan, U1, W, U1c=None, signs=None):
    """(η₁, weight) at points ``U1`` (npts × sample_r₁, in [0, 1]; ``U1c`` = 1 − U1 for the mp
    arithmetic) with prior weights ``W``: coordinate j a normal truncated to the bounds of the
    rows it ends (`ConePlan.last`), the truncation mass a factor of the weight; a coordinate
    beyond sample_r₁ contributes its mass alone.  ``signs`` (npts × m of ±1): each point's cone
    is diag(s) A (the flipped basis, see the module docstring)."""
    coef, last, intro = plan.coef, plan.last, plan.intro
    npts = W.shape[0]
    r1 = plan.r1
    eta1 = ar.zeros((npts, r1))  # coordinates on the (unflipped) basis E1
    weight = W.copy()
    for j in range(r1):
        rows = np.nonzero(last == j)[0]
        lo = ar.full(npts, -ar.inf)
        hi = ar.full(npts, ar.inf)
        flip = 1.0 if signs is None else signs[:, intro[j]]  # sign of basis vector j
        for i in rows:
            si = 1.0 if signs is None else signs[:, i]
            c = si * flip * coef[i, j]  # the coefficient on the flipped coordinate η_j·flip
            rest = si * (eta1[:, :j] @ coef[i, :j]) if j else ar.zeros(npts)
            bound = -rest / c
            if signs is None:
                if c > 0:
                    lo = np.maximum(lo, bound)
                else:
                    hi = np.minimum(hi, bound)
            else:
                lo = np.where(c > 0, np.maximum(lo, bound), lo)
                hi = np.where(c < 0, np.minimum(hi, bound), hi)
        if j < plan.sample_r1:
            x, mass = truncated_normal(ar, lo, hi, U1[:, j], None if U1c is None else U1c[:, j])
            eta1[:, j] = x * flip
        else:
            mass = interval_mass(ar, lo, hi)
        weight = weight * mass
    return eta1, weight

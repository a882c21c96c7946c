"""Symbolic online-SGD system of a setup (SymPy).

`derive_online(setup)` builds, for the setup's *structure* (student kind, K, activation, classes
per task, shared/separate inputs), the N → ∞ equations of motion

    dR/dt   = −η Σ_t c_t m1_t[:, K:] − ηκ R
    dQ/dt   = −η Σ_t c_t (m1_t[:, :K] + m1_t[:, :K]ᵀ) + η² D − 2ηκ Q
    dV_t/dt = −η_V c_t mv_t

(c_t = w_t, or π_t w_t with separate inputs; D the SGD-noise matrix of MODEL.md) as explicit SymPy
matrices in the order parameters Q, R, V_t, the teacher Gram T and noise σ_t, and in *reduced
integrals*: Gaussian expectations that the derivation could not close, each of a stated reduced
dimension, named after numeric.online's term dictionaries.  For linear trunks and glm students the
label terms are closed by Stein's lemma and orthant formulas (see `closed_forms`):

    P_t[c] = P(y_t = c),   L_t[c] = E[1{y_t = c} (h, λ)]

whenever C_t ≤ 4 (P) and C_t ≤ 5 (L).  Parameters (T, σ, w, π, η, η_V, κ) stay symbols, so one
derivation serves every setup of the same structure (the cache key).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .closed_forms import orthant_probability, stein_linear
from .structure import structure_key

__all__ = ["OnlineSystem", "derive_online", "structure_key"]


def _mat(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}_{j}"))


def _sym_mat(name: str, n: int) -> sp.Matrix:
    return sp.Matrix(n, n, lambda i, j: sp.Symbol(f"{name}_{min(i, j)}_{max(i, j)}"))


def _diff(C: int, c: int) -> sp.Matrix:
    """(C−1) × C rows e_c − e_j (j ≠ c): the cone of {argmax = c}."""
    rows = []
    for j in range(C):
        if j != c:
            r = [0] * C
            r[c], r[j] = 1, -1
            rows.append(r)
    return sp.Matrix(rows)


@dataclass
class OnlineSystem:
    key: tuple
    K: int
    classes: tuple
    offsets: tuple
    linear: bool
    inputs: str
    train_heads: bool
    Q: sp.Matrix
    R: sp.Matrix
    V: list                     # per task (symbols, or the glm selectors)
    T: sp.Matrix
    sigma: list
    w: list
    pi: list
    eta: sp.Symbol
    etav: sp.Symbol
    kappa: sp.Symbol
    integrals: dict             # name -> (Matrix of symbols, description, reduced dimension)
    closed: dict                # name -> (Matrix of symbols, Matrix of expressions)
    dQ: sp.Matrix = None
    dR: sp.Matrix = None
    dV: list = field(default_factory=list)
    loss: list = field(default_factory=list)

    @property
    def M(self) -> int:
        return sum(self.classes)

    def pairs(self):
        n = len(self.classes)
        if self.inputs == "shared":
            return [(t, s) for t in range(n) for s in range(n)]
        return [(t, t) for t in range(n)]


def _label_closed_forms(sysm: OnlineSystem, t: int):
    """P_t[c] and L_t[c] = E[1{y_t=c} ℓ], ℓ = (h, λ), in closed form (None where too large)."""
    C, o = sysm.classes[t], sysm.offsets[t]
    blk = slice(o, o + C)
    S_nu = sysm.T[blk, blk] + sysm.sigma[t] ** 2 * sp.eye(C)
    cov_l_nu = sp.Matrix.vstack(sysm.R[:, blk], sysm.T[:, blk])  # Cov(ℓ, ν_t)
    P, L = [], []
    for c in range(C):
        D = _diff(C, c)
        S = D * S_nu * D.T
        P.append(orthant_probability(S))
        L.append(stein_linear(S, cov_l_nu * D.T))
    P = None if any(p is None for p in P) else sp.Matrix(P)
    L = None if any(x is None for x in L) else sp.Matrix.hstack(*L).T  # C × (K+M)
    return P, L


def derive_online(model) -> OnlineSystem:
    """The symbolic system of a TheoryModel's structure (see the module docstring)."""
    K, classes, M = model.K, tuple(model.classes), model.M
    n = len(classes)
    offsets = tuple(model.offsets)
    Q = _sym_mat("Q", K)
    R = _mat("R", K, M)
    if model.train_heads:
        V = [_mat(f"V{t}", C, K) for t, C in enumerate(classes)]
    else:
        V = [sp.Matrix(v.astype(int).tolist()) for v in model.heads0]
    sysm = OnlineSystem(
        key=structure_key(model), K=K, classes=classes, offsets=offsets, linear=model.linear,
        inputs=model.inputs, train_heads=model.train_heads, Q=Q, R=R, V=V, T=_sym_mat("T", M),
        sigma=[sp.Symbol(f"sigma_{t}", nonnegative=True) for t in range(n)],
        w=[sp.Symbol(f"w_{t}", nonnegative=True) for t in range(n)],
        pi=[sp.Symbol(f"pi_{t}", positive=True) for t in range(n)],
        eta=sp.Symbol("eta", positive=True), etav=sp.Symbol("eta_V", positive=True),
        kappa=sp.Symbol("kappa", nonnegative=True), integrals={}, closed={})
    if model.linear:
        _assemble_linear(sysm)
    else:
        _assemble_nonlinear(sysm)
    return sysm


def _coeffs(s: OnlineSystem):
    if s.inputs == "shared":
        return list(s.w)
    return [p * w for p, w in zip(s.pi, s.w)]


def _finish(s: OnlineSystem, m1, m2, mv):
    K, n = s.K, len(s.classes)
    c = _coeffs(s)
    Edl = sp.zeros(K, K + s.M)
    for t in range(n):
        Edl += c[t] * m1[t]
    Edh, Edlam = Edl[:, :K], Edl[:, K:]
    if s.inputs == "shared":
        D = sp.zeros(K, K)
        for (t, u), m in m2.items():
            D += s.w[t] * s.w[u] * m
    else:
        D = sp.zeros(K, K)
        for t in range(n):
            D += s.pi[t] * s.w[t] ** 2 * m2[t, t]
    s.dQ = -s.eta * (Edh + Edh.T) + s.eta ** 2 * D - 2 * s.eta * s.kappa * s.Q
    s.dR = -s.eta * Edlam - s.eta * s.kappa * s.R
    s.dV = [-s.etav * c[t] * mv[t] for t in range(n)] if s.train_heads else []


def _assemble_linear(s: OnlineSystem):
    K, n, L_ = s.K, len(s.classes), s.K + s.M
    ints = s.integrals
    A, B, Y, P, L, PP = {}, {}, {}, {}, {}, {}
    for t, C in enumerate(s.classes):
        A[t] = _mat(f"A{t}", C, L_)
        ints[f"A{t}"] = (A[t], rf"E[s_{t}(z_{t})\,\ell^\top],\ \ell=(h,\lambda)", C - 1)
        ints[f"Lse{t}"] = (sp.Matrix([[sp.Symbol(f"Lse{t}")]]), rf"E[\log\sum_c e^{{z_{{{t}c}}-z_{{{t}0}}}}]", C - 1)
        Pc, Lc = _label_closed_forms(s, t)
        if Pc is None:
            P[t] = _mat(f"P{t}", C, 1)
            ints[f"P{t}"] = (P[t], rf"P(y_{t}=c)", C - 1)
        else:
            P[t] = _mat(f"P{t}", C, 1)
            s.closed[f"P{t}"] = (P[t], Pc)
        L[t] = _mat(f"L{t}", C, L_)
        if Lc is None:
            ints[f"L{t}"] = (L[t], rf"E[1\{{y_{t}=c\}}\,\ell]", C - 1)
        else:
            s.closed[f"L{t}"] = (L[t], Lc)
    for t, u in s.pairs():
        Ct, Cu = s.classes[t], s.classes[u]
        if t <= u:
            B[t, u] = _mat(f"B{t}{u}", Ct, Cu)
            ints[f"B{t}{u}"] = (B[t, u], rf"E[s_{t} s_{u}^\top]", (Ct - 1) + (Cu - 1 if u != t else 0))
        Y[t, u] = _mat(f"Y{t}{u}", Ct, Cu)
        # C_t ≤ 3: P(y_t = c | z_u) in closed form (Φ, Φ₂) inside one integral over z_u's differences
        ints[f"Y{t}{u}"] = (Y[t, u], rf"E[P(y_{t}=c \mid z_{u})\,s_{u}(z_{u})]" if Ct <= 3 else
                         rf"E[1\{{y_{t}=c\}}\,s_{u}(z_{u})]", (Cu - 1) if Ct <= 3 else (Ct - 1) + (Cu - 1))
        if t < u:
            PP[t, u] = _mat(f"PP{t}{u}", Ct, Cu)
            ints[f"PP{t}{u}"] = (PP[t, u], rf"P(y_{t}=c, y_{u}=d)", (Ct - 1) + (Cu - 1))
    V = s.V
    m1, mv, m2 = [], [], {}
    for t in range(n):
        m1.append(V[t].T * (A[t] - L[t]))
        mv.append((A[t] - L[t])[:, :K])
    for t, u in s.pairs():
        if t == u:
            Yt = Y[t, t]
            m2[t, u] = V[t].T * (B[t, t] - Yt.T - Yt + sp.diag(*P[t])) * V[t]
        else:
            Btu = B[t, u] if t < u else B[u, t].T
            PPtu = PP[t, u] if t < u else PP[u, t].T
            m2[t, u] = V[t].T * (Btu - Y[u, t].T - Y[t, u] + PPtu) * V[u]
    _finish(s, m1, m2, mv)
    s.loss = [sp.Symbol(f"Lse{t}") - sum(((V[t][c, :] - V[t][0, :]) * L[t][c, :K].T)[0, 0]
                                          for c in range(s.classes[t])) for t in range(n)]


def _assemble_nonlinear(s: OnlineSystem):
    """Nonlinear trunks.  Reduced dimensions: every term is an integral over h (K dims) — the
    label terms too, with P(y_t|h) and E[1{y_t=c} λ | h] in closed form for C_t ≤ 3 (otherwise
    K + C_t − 1 with the label cone) — and the label–label term of two tasks K + C_u − 1 (the
    cones of one task, the other's labels in closed form given h and those fields)."""
    K, n, L_ = s.K, len(s.classes), s.K + s.M

    def lab(C):
        return K if C <= 3 else K + C - 1
    ints = s.integrals
    Eal, Ebl, Esg, Eyg, Eaa, Eab, Ebb, Ebb2 = {}, {}, {}, {}, {}, {}, {}, {}
    for t, C in enumerate(s.classes):
        Eal[t] = _mat(f"Eal{t}", K, L_)
        ints[f"Eal{t}"] = (Eal[t], rf"E[a_{t}(h)\,\ell^\top]", K)
        Ebl[t] = _mat(f"Ebl{t}", K, L_)
        ints[f"Ebl{t}"] = (Ebl[t], rf"\sum_c E[1\{{y_{t}=c\}}\,b_{{{t}c}}(h)\,\ell^\top]", lab(C))
        Esg[t] = _mat(f"Esg{t}", C, K)
        ints[f"Esg{t}"] = (Esg[t], rf"E[s_{t}\,g(h)^\top]", K)
        Eyg[t] = _mat(f"Eyg{t}", C, K)
        ints[f"Eyg{t}"] = (Eyg[t], rf"E[1\{{y_{t}=c\}}\,g(h)]", lab(C))
        Ebb[t] = _mat(f"Ebb{t}", K, K)
        ints[f"Ebb{t}"] = (Ebb[t], rf"\sum_c E[1\{{y_{t}=c\}}\,b_{{{t}c}}b_{{{t}c}}^\top]", lab(C))
        ints[f"Lse{t}"] = (sp.Matrix([[sp.Symbol(f"Lse{t}")]]), rf"E[\log\sum_c e^{{z_{{{t}c}}}}]", K)
        ints[f"Eyz{t}"] = (sp.Matrix([[sp.Symbol(f"Eyz{t}")]]), rf"\sum_c E[1\{{y_{t}=c\}} z_{{{t}c}}]", lab(C))
    for t, u in s.pairs():
        Eaa[t, u] = _mat(f"Eaa{t}{u}", K, K)
        ints[f"Eaa{t}{u}"] = (Eaa[t, u], rf"E[a_{t} a_{u}^\top]", K)
        Eab[t, u] = _mat(f"Eab{t}{u}", K, K)
        ints[f"Eab{t}{u}"] = (Eab[t, u], rf"\sum_c E[1\{{y_{u}=c\}}\,a_{t} b_{{{u}c}}^\top]", lab(s.classes[u]))
        if t < u:
            Ebb2[t, u] = _mat(f"Ebb2{t}{u}", K, K)
            ints[f"Ebb2{t}{u}"] = (Ebb2[t, u], rf"\sum_{{cd}} E[1\{{y_{t}=c,y_{u}=d\}}\,b_{{{t}c}} b_{{{u}d}}^\top]",
                                K + s.classes[u] - 1 if max(s.classes[t], s.classes[u]) <= 3
                                else K + s.classes[t] + s.classes[u] - 2)
    m1 = [Eal[t] - Ebl[t] for t in range(n)]
    mv = [Esg[t] - Eyg[t] for t in range(n)]
    m2 = {}
    for t, u in s.pairs():
        if t == u:
            m2[t, u] = Eaa[t, t] - Eab[t, t] - Eab[t, t].T + Ebb[t]
        else:
            E2 = Ebb2[t, u] if t < u else Ebb2[u, t].T
            m2[t, u] = Eaa[t, u] - Eab[t, u] - Eab[u, t].T + E2
    _finish(s, m1, m2, mv)
    s.loss = [sp.Symbol(f"Lse{t}") - sp.Symbol(f"Eyz{t}") for t in range(n)]

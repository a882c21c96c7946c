"""The integrands of the reduced integrals of nonlinear trunks, derived in SymPy.

Every reduced integral of a nonlinear trunk (`system._assemble_nonlinear`) is an expectation over
the trunk fields h ∈ R^K of an integrand built, node by node, from a few *primitives*:

    h_k, g_k = g(h_k), dg_k = g′(h_k)                         (`pointwise` activations)
    p_tc = P(y_t = c | h),  v_tc = the Stein vector of that cone (`pointwise` cone formulas)
    A_ik: E[λ_i | h] = Σ_k A_ik h_k,  Cl_tcim = Cov(λ_i, u_tcm | h)   (Gaussian conditioning)

and the heads V_t.  With z_t = V_t g, the softmax s_t = exp(z_t − lse_t), lse_t = log Σ_c e^{z_tc},
a_tk = dg_k Σ_c s_tc V_t[c, k], b_tck = dg_k V_t[c, k] and
L_tc = E[1{y_t = c} ℓ | h] = (h p_tc, A h p_tc + Cl_tc v_tc) for ℓ = (h, λ):

    Eaa_tu = E[a_t a_uᵀ]                 Eab_tu = E[a_t Σ_c p_uc b_ucᵀ]
    Esg_t  = E[s_t gᵀ]                   Eyg_t  = E[p_t gᵀ]
    Ebb_t  = E[Σ_c p_tc b_tc b_tcᵀ]      Ebl_t  = E[Σ_c b_tc L_tcᵀ]
    Lse_t  = E[lse_t]                    Eyz_t  = E[Σ_c p_tc z_tc]
    Eal_t  = E[a_t ℓᵀ]                   (ℓ enters linearly: the kernel conditions it on h)

and the label–label term of two tasks on shared inputs, inside the cone y_b = d of the task b of
more classes (q_c = P(y_a = c | h, ν_b − ν_b0) in closed form):

    Ebb2_ab = Σ_d E[1{y_b = d} (Σ_c q_c b_ac) b_bdᵀ]

Linear trunks (and glm students) integrate over the logit differences u_t = (z_tc − z_t0)_{c≥1}
of one task or two (`linear_integrands`): s_t = softmax(0, u_t), lse_t = log(1 + Σ_c e^{u_tc}),

    A_t = E[s_t ℓᵀ],  B_tt = E[s_t s_tᵀ],  Lse_t = E[lse_t],  B_ts = E[s_t s_sᵀ],
    Y_ts = E[p_t s_sᵀ] (p_tc = P(y_t = c | u_s) in closed form) or, inside the label cone y_t = c,
    E[1{y_t = c} s_s] with P_t = E[1{y_t = c}] and L_t = E[1{y_t = c} ℓ].

`codegen` prints these expressions (CSE'd) as the mp back-end's integrand functions, so the mp
path evaluates the derivation's integrands, not a second hand-written copy of them.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from mtsp.model import label_label_tasks   # shared with the mp path's integration (numeric.mp_online)

__all__ = ["HIntegrands", "nonlinear_integrands", "label_label_tasks", "linear_integrands"]


@dataclass
class HIntegrands:
    plain: list          # [(name, Matrix)]: E[integrand] over h
    linear: list         # [(name, Matrix K × 1)]: E[factor · ℓᵀ] (ℓ = (h, λ) conditioned on h)
    label_label: dict    # (a, b, d) → Matrix K × K inside the cone y_b = d
    args: str            # the printed functions' arguments


def _sym(name):
    return sp.Symbol(name, real=True)


def nonlinear_integrands(s, display: bool = False) -> HIntegrands:
    """Integrands of `s`'s reduced integrals (a nonlinear-trunk OnlineSystem) in the primitives.
    ``display``: keep z_tc, lse_t, s_tc and a_tk as named symbols (for the equation sheet)."""
    K, classes, M = s.K, s.classes, s.M
    n = len(classes)
    V = s.V
    h = [_sym(f"h_{k}") for k in range(K)]
    g = [_sym(f"g_{k}") for k in range(K)]
    dg = [_sym(f"dg_{k}") for k in range(K)]
    p = [[_sym(f"p{t}_{c}") for c in range(C)] for t, C in enumerate(classes)]
    v = [[[_sym(f"v{t}_{c}_{m}") for m in range(C - 1)] for c in range(C)] for t, C in enumerate(classes)]
    A = [[_sym(f"Alam_{i}_{k}") for k in range(K)] for i in range(M)]
    Cl = [[[[_sym(f"Cl{t}_{c}_{i}_{m}") for m in range(C - 1)] for i in range(M)] for c in range(C)]
          for t, C in enumerate(classes)]
    if display:
        z = [[_sym(f"z{t}_{c}") for c in range(C)] for t, C in enumerate(classes)]
        lse = [_sym(f"lse_{t}") for t in range(n)]
        sm = [[_sym(f"s{t}_{c}") for c in range(C)] for t, C in enumerate(classes)]
        a = [[_sym(f"a{t}_{k}") for k in range(K)] for t in range(n)]
    else:
        z = [[sum(V[t][c, k] * g[k] for k in range(K)) for c in range(C)] for t, C in enumerate(classes)]
        lse = [sp.log(sum(sp.exp(x) for x in z[t])) for t in range(n)]
        sm = [[sp.exp(x - lse[t]) for x in z[t]] for t in range(n)]
        a = [[dg[k] * sum(sm[t][c] * V[t][c, k] for c in range(C)) for k in range(K)]
             for t, C in enumerate(classes)]
    b = [[[dg[k] * V[t][c, k] for k in range(K)] for c in range(C)] for t, C in enumerate(classes)]
    lam_mean = [sum(A[i][k] * h[k] for k in range(K)) for i in range(M)]
    L = [[[h[k] * p[t][c] for k in range(K)]
          + [lam_mean[i] * p[t][c] + sum(Cl[t][c][i][m] * v[t][c][m] for m in range(C - 1)) for i in range(M)]
          for c in range(C)] for t, C in enumerate(classes)]

    def mat(rows, cols, f):
        return sp.Matrix(rows, cols, f)
    plain = []
    for t, u in s.pairs():
        plain.append((f"Eaa{t}{u}", mat(K, K, lambda k, k2: a[t][k] * a[u][k2])))
        Cu = classes[u]
        plain.append((f"Eab{t}{u}", mat(K, K, lambda k, k2: a[t][k] * sum(p[u][c] * b[u][c][k2] for c in range(Cu)))))
    for t, C in enumerate(classes):
        plain.append((f"Esg{t}", mat(C, K, lambda c, k: sm[t][c] * g[k])))
        plain.append((f"Eyg{t}", mat(C, K, lambda c, k: p[t][c] * g[k])))
        plain.append((f"Ebb{t}", mat(K, K, lambda k, k2: sum(p[t][c] * b[t][c][k] * b[t][c][k2] for c in range(C)))))
        plain.append((f"Ebl{t}", mat(K, K + M, lambda k, j: sum(b[t][c][k] * L[t][c][j] for c in range(C)))))
        plain.append((f"Lse{t}", sp.Matrix([[lse[t]]])))
        plain.append((f"Eyz{t}", sp.Matrix([[sum(p[t][c] * z[t][c] for c in range(C))]])))
    linear = [(f"Eal{t}", sp.Matrix(a[t])) for t in range(n)]
    label_label = {}
    if s.inputs == "shared":
        q = None
        for t, u in s.pairs():
            if t < u:
                a_, b_ = label_label_tasks(classes, t, u)
                q = [_sym(f"q_{c}") for c in range(classes[a_])]
                ba = [dg[k] * sum(q[c] * V[a_][c, k] for c in range(classes[a_])) for k in range(K)]
                for d in range(classes[b_]):
                    label_label[a_, b_, d] = mat(K, K, lambda k, k2: ba[k] * dg[k2] * V[b_][d, k2])
    return HIntegrands(plain, linear, label_label, "V, h, g, dg, p, v, Alam, Cl")


def _softmax_of_diffs(u):
    """(softmax(0, u), log(1 + Σ e^u)) as SymPy expressions."""
    lse = sp.log(1 + sum(sp.exp(x) for x in u))
    return [sp.exp(-lse)] + [sp.exp(x - lse) for x in u], lse


def linear_integrands(s) -> dict:
    """name → (plain outputs, linear factors) over the logit differences `u` (and label
    probabilities `p`) of a linear-trunk system `s`; see the module docstring.  Names:
    ``self{t}`` (B_tt, Lse_t | A_t), ``pair{t}{u}`` (B_tu over (u_t, u_u)), ``labelsoft{t}{u}``
    (Y_tu from p_t), ``cone{t}{u}`` (Y_tu, P_t | L_t inside y_t's cones, t = u) and ``conesoft{u}``
    (Y_tu inside y_t's cones, t ≠ u)."""
    classes = s.classes
    out = {}

    def u_syms(C, offset=0):
        return [_sym(f"u_{offset + i}") for i in range(C - 1)]
    for t, C in enumerate(classes):
        sm, lse = _softmax_of_diffs(u_syms(C))
        out[f"self{t}"] = ([sp.Matrix(C, C, lambda i, j: sm[i] * sm[j]), sp.Matrix([[lse]])], [sp.Matrix(sm)])
        out[f"cone{t}{t}"] = ([sp.Matrix(sm), sp.Matrix([[1]])], [sp.Matrix([[1]])])
        out[f"conesoft{t}"] = ([sp.Matrix(sm)], [])
    for t, u in s.pairs():
        Ct, Cu = classes[t], classes[u]
        if t < u:
            a, _ = _softmax_of_diffs(u_syms(Ct))
            b, _ = _softmax_of_diffs(u_syms(Cu, Ct - 1))
            out[f"pair{t}{u}"] = ([sp.Matrix(Ct, Cu, lambda i, j: a[i] * b[j])], [])
        p = [_sym(f"p_{c}") for c in range(Ct)]
        b, _ = _softmax_of_diffs(u_syms(Cu))
        out[f"labelsoft{t}{u}"] = ([sp.Matrix(Ct, Cu, lambda c, d: p[c] * b[d])], [])
    return out

"""Right-hand side of the N → ∞ online-SGD equations (MODEL.md, "The online theory").

With per-sample trunk gradient δ = g′(h) ⊙ Σ_t w_t V_tᵀ (softmax(z_t) − e_{y_t}), split by task as
δ = Σ_t w_t (a_t − b_{t,y_t}) with a_t = g′(h) ⊙ V_tᵀ s_t(z_t) and b_{t,c} = g′(h) ⊙ V_t[c]:

    dR/dt   = −η Σ_t c_t E[(a_t − b_{t,y_t}) λᵀ] − ηκ R
    dQ/dt   = −η Σ_t c_t (E[(a_t − b_{t,y_t}) hᵀ] + transpose) + η² D − 2ηκ Q
    dV_t/dt = −η_V c_t E[(s_t − e_{y_t}) g(h)ᵀ]

with c_t = w_t (shared inputs) or π_t w_t (separate inputs: a sample carries one task), and the
SGD-noise term D = Σ_{t,s} w_t w_s E[(a_t − b_{t,y_t})(a_s − b_{s,y_s})ᵀ] (shared inputs) or
Σ_t π_t w_t² E[(a_t − b_{t,y_t})(a_t − b_{t,y_t})ᵀ] (separate inputs).

Each expectation is reduced before it is integrated (see `quadrature`):
  * labels are cones {ν_{t,c} − ν_{t,j} > 0}; a term with 1{y_t = c} is one cone integral;
  * fields entering linearly (λ, and h where g is linear) are replaced by conditional means;
  * linear trunks (and glm students): the softmax depends on h only through the C_t − 1
    logit differences of task t, so each term integrates over those alone, task by task;
    label–label terms of two tasks are pure cone probabilities, constant in time (cached);
  * relu trunks: every expectation is split over the 2^K sign orthants of h, inside which the
    integrand is smooth;
  * erf / tanh trunks: integrals over h ∈ R^K with the label cone.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, owens_t

from .activations import activation
from .model import State, TheoryModel, argmax_cone, cone_stack
from .quadrature import ConeResult, cone_expectation, gaussian_factor

__all__ = ["Accuracy", "Moments", "moments", "rhs", "rhs_state", "linear_terms", "assemble_linear",
           "nonlinear_terms", "assemble_nonlinear", "terms"]


@dataclass(frozen=True)
class Accuracy:
    """Point budgets of the product rules (per cone integral)."""
    budget: int = 6000          # smooth + label integrals of the equations of motion
    metric_budget: int = 40000  # pure cone probabilities (errors)
    qmc_points: int = 2 ** 15   # nonlinear-trunk errors (randomised QMC), per replicate; 2^13 was
    #                             off by 2.7 of its own SEs in a 3e6-sample Monte-Carlo check
    qmc_replicates: int = 8
    qmc_seed: int = 0           # scrambling of the fixed Sobol' tier (a second seed estimates its error)


@dataclass
class Moments:
    """Per-task expectations from which the equations are assembled.

    m1[t]    = E[(a_t − b_{t,y_t}) ℓᵀ], ℓ = (h, λ)          (K × (K+M))
    m2[t,s]  = E[(a_t − b_{t,y_t})(a_s − b_{s,y_s})ᵀ]       (K × K)
    mv[t]    = E[(s_t − e_{y_t}) g(h)ᵀ]                      (C_t × K)
    loss[t]  = E[CE(z_t, y_t)]
    """
    m1: list
    m2: dict
    mv: list
    loss: np.ndarray


def _diff_rows(rows: np.ndarray) -> np.ndarray:
    """Rows of the logit differences z_j − z_0 (j ≥ 1): softmax depends on nothing else."""
    return rows[1:] - rows[0]


def softmax(z: np.ndarray, axis: int = 1) -> np.ndarray:
    """Row-wise softmax (max-shifted; leaner than scipy's for the small class counts here)."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def logsumexp(z: np.ndarray, axis: int = 1) -> np.ndarray:
    m = z.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _softmax_from_diffs(u: np.ndarray) -> np.ndarray:
    z = np.concatenate([np.zeros((u.shape[0], 1)), u], axis=1)
    return softmax(z, axis=1)


def _lse_from_diffs(u: np.ndarray) -> np.ndarray:
    z = np.concatenate([np.zeros((u.shape[0], 1)), u], axis=1)
    return logsumexp(z, axis=1)


def _needed_pairs(model: TheoryModel):
    T = model.n_tasks
    if model.inputs == "shared":
        return [(t, s) for t in range(T) for s in range(T)]
    return [(t, t) for t in range(T)]


_pair_prob_cache: dict = {}


def _label_pair_probs(model: TheoryModel, factor, t: int, s: int, acc: Accuracy) -> np.ndarray:
    """P(y_t = c, y_s = d): teacher-only, constant in time — cached by (T, σ, t, s)."""
    key = (model.gram.tobytes(), model.noise.tobytes(), t, s, acc.metric_budget)
    if key in _pair_prob_cache:
        return _pair_prob_cache[key]
    Ct, Cs = model.classes[t], model.classes[s]
    out = np.zeros((Ct, Cs))
    one = lambda p: (np.ones((p.shape[0], 1)), None)  # noqa: E731
    for c in range(Ct):
        for d in range(Cs):
            rows = cone_stack(argmax_cone(model.rows_nu(t), c), argmax_cone(model.rows_nu(s), d))
            out[c, d] = cone_expectation(factor, rows, np.zeros((0, model.n_fields)), one,
                                         skip_last_cone=True, budget=acc.metric_budget).plain[0]
    _pair_prob_cache[key] = out
    return out


SPLIT_SPREAD = 4.0  # logit-difference std above which softmax integrals are split by argmax


def _softmax_expectation(model, st, factor, cone, tasks, proj, fn, lin, acc):
    """E[1{cone} Φ(p)], E[1{cone} Γ(p) ℓᵀ] with p the logit differences of `tasks` (linear trunk).

    When the logits are widely spread the softmax is nearly a step across the boundaries of the
    student's argmax cones and no smooth rule resolves it; the domain is then split exactly into
    those cones (Gaussian cones: z is linear in the fields), inside each of which the integrand is
    smooth and its boundary layer sits where the tanh–sinh nodes of the Genz coordinates cluster."""
    spread = np.linalg.norm(proj @ factor, 2) if proj.size else 0.0
    if spread <= SPLIT_SPREAD:
        return cone_expectation(factor, cone, proj, fn, lin, budget=acc.budget, seed=acc.qmc_seed)
    zrows = [model.rows_logits(st, t) for t in tasks]
    plain = linear = 0.0
    for pieces in itertools.product(*[range(z.shape[0]) for z in zrows]):
        r = cone_expectation(factor, cone_stack(cone, *[argmax_cone(z, c) for z, c in zip(zrows, pieces)]),
                             proj, fn, lin, budget=acc.budget, seed=acc.qmc_seed, spread_nodes=False)
        plain = plain + r.plain
        linear = None if lin is None else linear + r.linear
    return ConeResult(plain, linear)


def linear_terms(model: TheoryModel, st: State, factor, acc: Accuracy) -> dict:
    """Integrals of a linear trunk (and glm): a_t = V_tᵀ s_t, b_{t,c} = V_t[c] do not depend on h,
    so every smooth integrand is a function of the logit differences of one or two tasks."""
    T, K = model.n_tasks, model.K
    ell = np.vstack([model.rows_h(), model.rows_lambda()])  # ℓ = (h, λ)
    V = st.V
    diffs = [_diff_rows(model.rows_logits(st, t)) for t in range(T)]
    Es = [None] * T       # E[s_t ℓᵀ]            (C_t × (K+M))
    Ess = {}              # E[s_t s_sᵀ]
    Else = np.zeros(T)
    for t in range(T):
        C = model.classes[t]

        def fn(u, C=C):
            s = _softmax_from_diffs(u)
            phi = np.concatenate([(s[:, :, None] * s[:, None, :]).reshape(len(u), -1),
                                  _lse_from_diffs(u)[:, None]], axis=1)
            return phi, s
        r = _softmax_expectation(model, st, factor, None, [t], diffs[t], fn, ell, acc)
        Ess[t, t] = r.plain[:C * C].reshape(C, C)
        Else[t] = r.plain[-1]
        Es[t] = r.linear
    pairs = _needed_pairs(model)
    for t, s in pairs:
        if t < s:
            Ct, Cs = model.classes[t], model.classes[s]

            def fn2(u, Ct=Ct):
                a, b = _softmax_from_diffs(u[:, :Ct - 1]), _softmax_from_diffs(u[:, Ct - 1:])
                return (a[:, :, None] * b[:, None, :]).reshape(len(u), -1), None
            r = _softmax_expectation(model, st, factor, None, [t, s], np.vstack([diffs[t], diffs[s]]),
                                     fn2, None, acc)
            Ess[t, s] = r.plain.reshape(Ct, Cs)
            Ess[s, t] = Ess[t, s].T
    # label-conditioned terms
    Py = [np.zeros(c) for c in model.classes]              # P(y_t = c)
    Eyl = [np.zeros((c, K + model.M)) for c in model.classes]  # E[1{y_t=c} ℓ]
    Eys = {}                                                 # E[1{y_t=c} s_s] → (C_t × C_s)
    partners = {t: sorted({s for (tt, s) in pairs if tt == t}) for t in range(T)}
    for t in range(T):
        Ct = model.classes[t]
        for s in partners[t]:
            Eys[t, s] = np.zeros((Ct, model.classes[s]))
        for c in range(Ct):
            cone = argmax_cone(model.rows_nu(t), c)
            for s in partners[t]:
                proj = diffs[s]
                if s == t:
                    def fn3(u, c=c):
                        sm = _softmax_from_diffs(u)
                        return np.concatenate([sm, np.ones((len(u), 1))], axis=1), \
                            np.ones((len(u), 1))
                    r = _softmax_expectation(model, st, factor, cone, [s], proj, fn3, ell, acc)
                    Cs = model.classes[s]
                    Eys[t, s][c] = r.plain[:Cs]
                    Py[t][c] = r.plain[Cs]
                    Eyl[t][c] = r.linear[0]
                else:
                    r = _softmax_expectation(model, st, factor, cone, [s], proj,
                                             lambda u: (_softmax_from_diffs(u), None), None, acc)
                    Eys[t, s][c] = r.plain
    P_pair = {(t, s): _label_pair_probs(model, factor, t, s, acc) for (t, s) in pairs if t != s}
    return {"A": Es, "B": Ess, "Lse": Else, "Y": Eys, "P": Py, "L": Eyl, "PP": P_pair}


def assemble_linear(model: TheoryModel, st: State, terms: dict) -> Moments:
    """Moments of a linear trunk from its integrals (hand-written reference assembly):

    m1_t = V_tᵀ (A_t − L_t),  mv_t = (A_t − L_t)[:, :K],
    m2_tt = V_tᵀ (B_tt − Y_ttᵀ − Y_tt + diag P_t) V_t,
    m2_ts = V_tᵀ (B_ts − Y_stᵀ − Y_ts + P_ts) V_s,
    loss_t = Lse_t − Σ_c (V_t[c] − V_t[0])·L_t[c, :K]
    with A_t = E[s_t ℓᵀ], B_ts = E[s_t s_sᵀ], Y_ts[c] = E[1{y_t=c} s_s], P_t[c] = P(y_t = c),
    L_t[c] = E[1{y_t=c} ℓ], P_ts[c, d] = P(y_t = c, y_s = d), Lse_t = E[lse(z_t − z_t0)]."""
    T, K = model.n_tasks, model.K
    V = st.V
    Es, Ess, Eys, Py, Eyl = terms["A"], terms["B"], terms["Y"], terms["P"], terms["L"]
    m1, mv, m2 = [], [], {}
    for t in range(T):
        m1.append(V[t].T @ (Es[t] - Eyl[t]))
        mv.append(Es[t][:, :K] - Eyl[t][:, :K])
    for t, s in _needed_pairs(model):
        if t == s:
            Y = Eys[t, t]
            m2[t, s] = V[t].T @ (Ess[t, t] - Y.T - Y + np.diag(Py[t])) @ V[t]
        else:
            m2[t, s] = V[t].T @ (Ess[t, s] - Eys[s, t].T - Eys[t, s] + terms["PP"][t, s]) @ V[s]
    loss = np.array([terms["Lse"][t] - sum((V[t][c] - V[t][0]) @ Eyl[t][c, :K]
                                           for c in range(model.classes[t])) for t in range(T)])
    return Moments(m1, m2, mv, loss)


MAX_SPLIT_K = 4
FAST_LABELS = True  # nonlinear trunks: label terms via closed forms given h (label_given_h) where valid


def _orthant_signs(K: int):
    return list(itertools.product((1.0, -1.0), repeat=K))


def _orthant_splits(model: TheoryModel):
    """The 2^K sign orthants of h as extra cone rows (nonlinear trunks; linear: no split).

    relu is linear inside each orthant, so the split makes its integrands smooth; erf and tanh
    change on the scale 1 of h around h = 0 while h may spread much wider, and after the split
    that transition sits at the orthant boundary, where the tanh–sinh nodes of the Genz
    coordinates cluster (measured: Gauss–Hermite errs by 7.7e-3 on E[sech² h] at std 1.6 with 16
    nodes; the split rule with 8 nodes per axis agrees with Monte Carlo at std 5)."""
    if model.linear or model.K > MAX_SPLIT_K:
        # wide trunks: 2^K pieces would cost more than they gain; the integrals over h then have
        # more than 4 dimensions and use the scrambled-Sobol' tier directly
        return [None]
    H = model.rows_h()
    # h_k > 0 (strict) or h_k ≤ 0 (non-strict): relu′(0) = 0 puts h = 0 on the negative side
    return [(np.array([sg * H[k] for k, sg in enumerate(signs)]), np.array([sg < 0 for sg in signs]))
            for signs in _orthant_signs(model.K)]


def _with_split(cone, split):
    if split is None:
        return cone
    if cone is None:
        return split
    return cone_stack(cone, split)


def orthant_nodes(st: State) -> int:
    """Nodes per axis inside the sign orthants of a nonlinear trunk: erf/tanh change over |h| ≲ 1
    near the orthant boundary while h spreads over s = √λ_max(Q); Monte-Carlo checks at s = 5
    (4e6 samples) need ~15 nodes (8 nodes: 2 % error in dR), s ≈ 1.3 is fine with 8."""
    s = float(np.sqrt(max(np.linalg.eigvalsh(st.Q)[-1], 0.0)))
    return int(np.clip(np.ceil(4 + 2.2 * s), 0, 20))


def bivariate_normal_cdf(a, b, rho):
    """P(X < a, Y < b) for standard normals of correlation rho (Owen's T representation):
    Φ₂ = ½(Φ(a) + Φ(b)) − T(a, (b − ρa)/(a√(1−ρ²))) − T(b, (a − ρb)/(b√(1−ρ²))) − β,
    β = ½ when a·b < 0 (or one is 0 and a + b < 0), else 0."""
    a = np.where(a == 0, 1e-300, a)
    b = np.where(b == 0, 1e-300, b)
    r = np.sqrt(max(1.0 - rho * rho, 1e-300))
    beta = np.where(a * b < 0, 0.5, 0.0)
    return 0.5 * (ndtr(a) + ndtr(b)) - owens_t(a, (b - rho * a) / (a * r)) \
        - owens_t(b, (a - rho * b) / (b * r)) - beta


LABEL_GIVEN_H_MIN_RESIDUAL = 0.05  # residual/total variance of a label cone below which p(y|h) is too steep


def label_given_h(model: TheoryModel, factor, t: int):
    """P(y_t = c | h) and E[1{y_t = c} (h, λ) | h] in closed form, for C_t ≤ 3.

    Given h the label fields ν_t are Gaussian, N(A h, S); the event y_t = c is the cone
    u = D_c ν_t > 0 of dimension C_t − 1: P = Φ(μ/s) (C = 2) or Φ₂ (C = 3, Owen's T), and by
    Stein's lemma with a mean, E[1{u>0} λ | h] = E[λ|h] P + Cov(λ, u|h) v with
    v_j = φ(μ_j/s_j)/s_j · P(u_{−j} > 0 | u_j = 0, h).  This turns every label term of a
    nonlinear trunk into one integral over h.  Returns None (use the label cones instead) when
    C_t > 3 or a cone's residual variance given h is a small part of its total (p(y|h) steep)."""
    C = model.classes[t]
    if C > 3:
        return None
    Fh = model.rows_h() @ factor
    Pinv = np.linalg.pinv(Fh, rcond=1e-10)
    Fnu, Flam = model.rows_nu(t) @ factor, model.rows_lambda() @ factor
    A_nu, A_lam = Fnu @ Pinv, Flam @ Pinv
    proj = np.eye(factor.shape[1]) - Pinv @ Fh
    S_nu, C_lam_nu = Fnu @ proj @ Fnu.T, Flam @ proj @ Fnu.T
    Q = Fh @ Fh.T
    classes = []
    for c in range(C):
        D = np.array([np.eye(C)[c] - np.eye(C)[j] for j in range(C) if j != c])
        Su = D @ S_nu @ D.T
        total = np.linalg.eigvalsh(Su + D @ A_nu @ Q @ A_nu.T @ D.T)[-1]
        if np.linalg.eigvalsh(Su)[0] < LABEL_GIVEN_H_MIN_RESIDUAL * total:
            return None
        classes.append((D @ A_nu, Su, C_lam_nu @ D.T))

    def at(h):
        n = len(h)
        p = np.empty((n, C))
        L = np.empty((n, C, h.shape[1] + A_lam.shape[0]))
        lam_mean = h @ A_lam.T
        for c, (Au, Su, Clu) in enumerate(classes):
            mu = h @ Au.T
            sd = np.sqrt(np.diag(Su))
            z = mu / sd
            if C == 2:
                pc = ndtr(z[:, 0])
                v = (np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)) / sd
            else:
                rho = Su[0, 1] / (sd[0] * sd[1])
                pc = bivariate_normal_cdf(z[:, 0], z[:, 1], rho)
                v = np.empty((n, 2))
                for j, k in ((0, 1), (1, 0)):
                    m = mu[:, k] - Su[k, j] / Su[j, j] * mu[:, j]
                    s_c = np.sqrt(Su[k, k] - Su[k, j] ** 2 / Su[j, j])
                    v[:, j] = np.exp(-0.5 * z[:, j] ** 2) / np.sqrt(2 * np.pi) / sd[j] * ndtr(m / s_c)
            p[:, c] = pc
            L[:, c, :h.shape[1]] = h * pc[:, None]
            L[:, c, h.shape[1]:] = lam_mean * pc[:, None] + v @ Clu.T
        return p, L
    return at


def nonlinear_terms(model: TheoryModel, st: State, factor, acc: Accuracy) -> dict:
    """Nonlinear trunk: integrals over h ∈ R^K (with the label cones), split into sign orthants."""
    T, K, M = model.n_tasks, model.K, model.M
    mn = orthant_nodes(st)
    g = activation(model.activation)
    V = st.V
    ell = np.vstack([model.rows_h(), model.rows_lambda()])
    H = model.rows_h()
    pairs = _needed_pairs(model)
    splits = _orthant_splits(model)

    def trunk(h):
        gh, dg = g(h)
        s = [softmax(gh @ V[t].T, axis=1) for t in range(T)]
        a = [dg * (s[t] @ V[t]) for t in range(T)]
        return gh, dg, s, a

    partners = {t: sorted({u for (tt, u) in pairs if tt == t}) for t in range(T)}
    labs = [label_given_h(model, factor, t) if FAST_LABELS else None for t in range(T)]

    def label_parts(h, gh, dg, a, t):
        """Σ_c P(y_t=c|h)·(a_u b_tcᵀ, b_tc b_tcᵀ, g, z_tc, b_tc ℓ̂_cᵀ): the label terms of task t
        with P(y_t = c | h) and ℓ̂_c = E[1{y_t=c} ℓ | h] in closed form (label_given_h)."""
        n = len(h)
        p, L = labs[t](h)
        Vt = V[t]
        pb = dg * (p @ Vt)                               # Σ_c p_c b_tc
        parts = [(a[u][:, :, None] * pb[:, None, :]).reshape(n, -1) for u in partners[t]]
        bb = np.einsum("nc,ck,cl->nkl", p, Vt, Vt) * (dg[:, :, None] * dg[:, None, :])
        parts += [bb.reshape(n, -1), (p[:, :, None] * gh[:, None, :]).reshape(n, -1),
                  (p * (gh @ Vt.T)).sum(axis=1)[:, None],
                  (dg[:, :, None] * np.einsum("ck,ncl->nkl", Vt, L)).reshape(n, -1)]
        return parts

    # smooth (no label) part, and the label terms of the tasks with closed forms given h
    def fn0(h):
        gh, dg, s, a = trunk(h)
        n = len(h)
        parts = [(a[t][:, :, None] * a[u][:, None, :]).reshape(n, -1) for t, u in pairs]
        parts += [(s[t][:, :, None] * gh[:, None, :]).reshape(n, -1) for t in range(T)]
        parts += [logsumexp(gh @ V[t].T, axis=1)[:, None] for t in range(T)]
        for t in range(T):
            if labs[t] is not None:
                parts += label_parts(h, gh, dg, a, t)
        return np.concatenate(parts, axis=1), np.concatenate(a, axis=1)

    plain = 0.0
    linear = 0.0
    for sp in splits:
        r = cone_expectation(factor, sp, H, fn0, ell, budget=acc.budget, seed=acc.qmc_seed, spread_nodes=False, min_nodes=mn)
        plain = plain + r.plain
        linear = linear + r.linear
    pos = 0
    Eaa = {}
    for t, u in pairs:
        Eaa[t, u] = plain[pos:pos + K * K].reshape(K, K)
        pos += K * K
    Esg = []
    for t in range(T):
        C = model.classes[t]
        Esg.append(plain[pos:pos + C * K].reshape(C, K))
        pos += C * K
    Else = plain[pos:pos + T]
    pos += T
    Ea_l = [linear[t * K:(t + 1) * K] for t in range(T)]
    fast = {}
    for t in range(T):
        if labs[t] is not None:
            C = model.classes[t]
            size = len(partners[t]) * K * K + K * K + C * K + 1 + K * (K + M)
            fast[t] = plain[pos:pos + size]
            pos += size
    Eb_l = [np.zeros((K, K + M)) for _ in range(T)]
    Eab = {(t, u): np.zeros((K, K)) for t, u in pairs}    # Σ_c E[1{y_u=c} a_t b_ucᵀ]
    Ebb = {t: np.zeros((K, K)) for t in range(T)}          # Σ_c E[1{y_t=c} b_tc b_tcᵀ]
    Eyg = [np.zeros((C, K)) for C in model.classes]        # E[1{y_t=c} g(h)]
    Eyz = np.zeros(T)

    def add_ab_bb(plain, t):
        """Accumulate the Eab (one K×K block per partner) and Ebb blocks that lead a label-term
        result vector; return the offset of what follows."""
        pos = 0
        for u in partners[t]:
            Eab[u, t] += plain[pos:pos + K * K].reshape(K, K)
            pos += K * K
        Ebb[t] += plain[pos:pos + K * K].reshape(K, K)
        return pos + K * K

    for t in range(T):
        C = model.classes[t]
        if t in fast:
            plain = fast[t]
            pos = add_ab_bb(plain, t)
            Eyg[t] += plain[pos:pos + C * K].reshape(C, K)
            pos += C * K
            Eyz[t] += plain[pos]
            pos += 1
            Eb_l[t] += plain[pos:pos + K * (K + M)].reshape(K, K + M)
            continue
        for c in range(C):
            cone = argmax_cone(model.rows_nu(t), c)

            def fn1(h, t=t, c=c):
                gh, dg, s, a = trunk(h)
                n = len(h)
                b = dg * V[t][c]
                parts = [(a[u][:, :, None] * b[:, None, :]).reshape(n, -1) for u in partners[t]]
                parts += [(b[:, :, None] * b[:, None, :]).reshape(n, -1), gh, (gh @ V[t][c])[:, None]]
                return np.concatenate(parts, axis=1), b
            plain = 0.0
            linear = 0.0
            for sp in splits:
                r = cone_expectation(factor, _with_split(cone, sp), H, fn1, ell, budget=acc.budget, seed=acc.qmc_seed, spread_nodes=False, min_nodes=mn)
                plain = plain + r.plain
                linear = linear + r.linear
            pos = add_ab_bb(plain, t)
            Eyg[t][c] = plain[pos:pos + K]
            Eyz[t] += plain[pos + K]
            Eb_l[t] += linear
    # label–label terms of two tasks (shared inputs)
    Ebb2 = {}
    for t, u in pairs:
        if t < u:
            acc_ = np.zeros((K, K))
            for c in range(model.classes[t]):
                for d in range(model.classes[u]):
                    cone = cone_stack(argmax_cone(model.rows_nu(t), c), argmax_cone(model.rows_nu(u), d))

                    if model.activation == "relu" and splits[0] is not None:
                        # inside a sign orthant g′ is constant: a pure cone probability
                        for signs, sp in zip(_orthant_signs(K), splits):
                            on = (np.asarray(signs) > 0).astype(float)
                            prob = cone_expectation(factor, _with_split(cone, sp), H, None,
                                                    budget=acc.budget, seed=acc.qmc_seed, spread_nodes=False, min_nodes=mn).plain[0]
                            acc_ += prob * np.outer(on * V[t][c], on * V[u][d])
                        continue

                    def fn2(h, t=t, u=u, c=c, d=d):
                        _, dg = g(h)
                        bt, bu = dg * V[t][c], dg * V[u][d]
                        return (bt[:, :, None] * bu[:, None, :]).reshape(len(h), -1), None
                    for sp in splits:  # an O(η²) term: a quarter of the budget
                        acc_ += cone_expectation(factor, _with_split(cone, sp), H, fn2,
                                                 budget=acc.budget // 4, seed=acc.qmc_seed,
                                                 spread_nodes=False, min_nodes=mn).plain.reshape(K, K)
            Ebb2[t, u] = acc_
            Ebb2[u, t] = acc_.T
    return {"Eal": Ea_l, "Ebl": Eb_l, "Esg": Esg, "Eyg": Eyg, "Eaa": Eaa, "Eab": Eab, "Ebb": Ebb,
            "Ebb2": Ebb2, "Lse": Else, "Eyz": Eyz}


def assemble_nonlinear(model: TheoryModel, st: State, terms: dict) -> Moments:
    """Moments of a nonlinear trunk from its integrals (hand-written reference assembly):

    m1_t = E[a_t ℓᵀ] − Σ_c E[1{y_t=c} b_tc ℓᵀ],  mv_t = E[s_t gᵀ] − (E[1{y_t=c} g])_c,
    m2_tt = E[a_t a_tᵀ] − Ab_tt − Ab_ttᵀ + Σ_c E[1{y_t=c} b_tc b_tcᵀ],
    m2_ts = E[a_t a_sᵀ] − Ab_ts − Ab_stᵀ + Σ_cd E[1{y_t=c, y_s=d} b_tc b_sdᵀ],
    with Ab_ts = Σ_c E[1{y_s=c} a_t b_scᵀ]; loss_t = E[lse z_t] − Σ_c E[1{y_t=c} z_tc]."""
    T = model.n_tasks
    m1 = [terms["Eal"][t] - terms["Ebl"][t] for t in range(T)]
    mv = [terms["Esg"][t] - terms["Eyg"][t] for t in range(T)]
    m2 = {}
    Eaa, Eab = terms["Eaa"], terms["Eab"]
    for t, u in _needed_pairs(model):
        if t == u:
            m2[t, u] = Eaa[t, t] - Eab[t, t] - Eab[t, t].T + terms["Ebb"][t]
        else:
            m2[t, u] = Eaa[t, u] - Eab[t, u] - Eab[u, t].T + terms["Ebb2"][t, u]
    return Moments(m1, m2, mv, terms["Lse"] - terms["Eyz"])


def terms(model: TheoryModel, st: State, acc: Accuracy = Accuracy()) -> dict:
    """The numerical integrals of the equations at state `st` (see linear_terms/nonlinear_terms)."""
    factor = gaussian_factor(model.field_cov(st))
    return (linear_terms if model.linear else nonlinear_terms)(model, st, factor, acc)


def moments(model: TheoryModel, st: State, acc: Accuracy = Accuracy()) -> Moments:
    """All per-task expectations at the state `st`."""
    factor = gaussian_factor(model.field_cov(st))
    if model.linear:
        return assemble_linear(model, st, linear_terms(model, st, factor, acc))
    return assemble_nonlinear(model, st, nonlinear_terms(model, st, factor, acc))


def rhs_state(model: TheoryModel, st: State, acc: Accuracy = Accuracy()):
    """(dQ/dt, dR/dt, [dV_t/dt]) at state `st` — the equations in the module docstring."""
    mo = moments(model, st, acc)
    K, M, T = model.K, model.M, model.n_tasks
    eta, etav, kappa = model.lr, model.head_lr, model.weight_decay
    if model.inputs == "shared":
        c = model.weights.copy()
    else:
        c = model.shares * model.weights
    Edl = sum(c[t] * mo.m1[t] for t in range(T))   # E[δ ℓᵀ]
    Edh, Edlam = Edl[:, :K], Edl[:, K:]
    if model.inputs == "shared":
        D = sum(model.weights[t] * model.weights[s] * mo.m2[t, s] for (t, s) in mo.m2)
    else:
        D = sum(model.shares[t] * model.weights[t] ** 2 * mo.m2[t, t] for t in range(T))
    dQ = -eta * (Edh + Edh.T) + eta ** 2 * D - 2 * eta * kappa * st.Q
    dR = -eta * Edlam - eta * kappa * st.R
    dV = tuple(-etav * c[t] * mo.mv[t] for t in range(T)) if model.train_heads else ()
    return dQ, dR, dV, mo


def rhs(model: TheoryModel, y: np.ndarray, acc: Accuracy = Accuracy()) -> np.ndarray:
    """Packed right-hand side for ODE integrators."""
    st = model.unpack(y)
    dQ, dR, dV, _ = rhs_state(model, st, acc)
    return model.pack(State(dQ, dR, dV if model.train_heads else st.V))

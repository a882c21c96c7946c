"""The DMFT of the full_batch protocol, stated symbolically (docs/DMFT.md), and its equation sheet.

`reduced_cross_entropy(C)`: the sample-side loss of one glm task in the C − 1 centred coordinates,
derived with SymPy from CE(z, y) = −z_y + log Σ_c e^{z_c} with z = U h (U: orthonormal basis
orthogonal to the all-ones vector): δ = ∂CE/∂h and D = ∂δ/∂h, checked against the closed forms
δ = Uᵀ(p − e_y), D = Uᵀ(diag p − ppᵀ)U that `numeric.dmft.losses.CrossEntropy` evaluates.

`trunk_sample_loss(C, K, activation)`: the sample-side loss of a shared trunk, ℓ = CE(V g(h), y)
with symbolic heads V (C × K), derived with SymPy: δ = ∂ℓ/∂h and D = ∂δ/∂h, checked against the
closed forms δ = g′(h) ⊙ Vᵀ(p − e_y), D = diag g′ Vᵀ(diag p − ppᵀ)V diag g′ + diag(g″ ⊙ Vᵀ(p − e_y))
that `numeric.dmft.trunk.Trunk` evaluates (relu: g″ is the kink's Dirac mass, which the engine's
Stein response needs no form of, numeric/dmft/response.py).

`dmft_sheet(setup)`: Markdown + LaTeX — glm: per task the effective learning rate, weight decay
and α of its single-task DMFT; shared trunks: the trunk's sample-side loss, the heads' update and,
with separate inputs, the populations' weights; then the sample-side process, the weight-side
kernels and the teacher overlap.
"""
from __future__ import annotations

import os

import sympy as sp

from mtsp.errors import ReachError

__all__ = [
    "activation_symbolic",
    "centred_basis_symbolic",
    "dmft_sheet",
    "reduced_cross_entropy",
    "task_parameters",
    "trunk_sample_loss",
    "write_dmft_derivation",
]


def centred_basis_symbolic(C: int) -> sp.Matrix:
    """U (C × (C−1)), Helmert basis: orthonormal columns orthogonal to (1, ..., 1)."""
    U = sp.zeros(C, C - 1)
    for j in range(1, C):
        for i in range(j):
            U[i, j - 1] = 1 / sp.sqrt(j * (j + 1))
        U[j, j - 1] = -sp.Integer(j) / sp.sqrt(j * (j + 1))
    return U


def reduced_cross_entropy(C: int):
    """(h symbols, per label y: (loss, δ, D)) of the cross-entropy in the reduced coordinates;
    asserts δ = Uᵀ(p − e_y) and D = Uᵀ(diag p − ppᵀ)U symbolically."""
    h = sp.Matrix(sp.symbols(f"h1:{C}", real=True))
    U = centred_basis_symbolic(C)
    z = U * h
    lse = sp.log(sum(sp.exp(zc) for zc in z))
    p = sp.Matrix([sp.exp(zc) for zc in z]) / sum(sp.exp(zc) for zc in z)
    out = {}
    for y in range(C):
        loss = lse - z[y]
        delta = sp.Matrix([sp.diff(loss, hi) for hi in h])
        D = delta.jacobian(h)
        e = sp.zeros(C, 1)
        e[y] = 1
        closed_delta = U.T * (p - e)
        closed_D = U.T * (sp.diag(*p) - p * p.T) * U
        for a, b in ((delta, closed_delta), (D, closed_D)):
            # numerical identity check at a rational point (exact symbolic simplification of
            # exponential sums is slow); both sides are analytic, so a mismatch would show
            pt = {hi: sp.Rational(k + 1, 7) * (-1) ** k for k, hi in enumerate(h)}
            diff = (a - b).subs(pt).evalf(30)
            assert max(abs(v) for v in diff) < 1e-25, "reduced cross-entropy derivation mismatch"
        out[y] = (loss, delta, D)
    return h, out


def activation_symbolic(name: str, x: sp.Symbol):
    """g(x) of MODEL.md's activations (erf: erf(x/√2)); relu as Max(x, 0)."""
    return {"linear": x, "relu": sp.Max(x, 0), "erf": sp.erf(x / sp.sqrt(2)),
            "tanh": sp.tanh(x)}[name]


def trunk_sample_loss(C: int, K: int, activation: str, label: int = 0):
    """(h, V, ℓ, δ) of one task's loss on a shared trunk, ℓ = CE(V g(h), y = label), with
    symbolic fields h (K) and heads V (C × K); asserts that δ = ∂ℓ/∂h and D = ∂δ/∂h (SymPy
    derivatives, at rational heads) equal the closed forms of the module docstring at a rational
    point (for relu one off the kink, where g″ = 0)."""
    h = sp.Matrix(sp.symbols(f"h1:{K + 1}", real=True))
    V = sp.Matrix(C, K, lambda c, k: sp.Symbol(f"V{c + 1}{k + 1}", real=True))
    x = sp.Symbol("x", real=True)
    g = activation_symbolic(activation, x)
    g1, g2 = sp.diff(g, x), sp.diff(g, x, 2)

    def ce(Vm):
        z = Vm * h.applyfunc(lambda hk: g.subs(x, hk))
        return sp.log(sum(sp.exp(zc) for zc in z)) - z[label], z
    loss, _ = ce(V)
    delta = sp.Matrix([sp.diff(loss, hk) for hk in h])
    Vq = sp.Matrix(C, K, lambda c, k: sp.Rational((-1) ** (c + k) * (c + 2 * k + 1), 7))
    lq, z = ce(Vq)
    dq = sp.Matrix([sp.diff(lq, hk) for hk in h])
    Dq = dq.jacobian(h)
    pt = {hk: sp.Rational(k + 2, 5) for k, hk in enumerate(h)}     # > 0: off relu's kink
    zn = z.subs(pt).evalf(40)
    p = zn.applyfunc(sp.exp) / sum(sp.exp(zc) for zc in zn)
    e = sp.zeros(C, 1)
    e[label] = 1
    b = Vq.T * (p - e)
    G1 = sp.diag(*[g1.subs(x, pt[hk]).evalf(40) for hk in h])
    closed_delta = G1 * b
    closed_D = G1 * Vq.T * (sp.diag(*p) - p * p.T) * Vq * G1 + sp.diag(
        *[g2.subs(x, pt[hk]).evalf(40) * b[k] for k, hk in enumerate(h)])
    for lhs, rhs in ((dq, closed_delta), (Dq, closed_D)):
        diff = lhs.subs(pt).evalf(40) - rhs
        assert max(abs(v) for v in diff) < 1e-25, "trunk sample-loss derivation mismatch"
    return h, V, loss, delta


def task_parameters(setup, t: int):
    """Symbolic (η_t, κ_t, α_t) of task t's single-task DMFT (glm tasks decouple; see
    numeric/dmft/solve.py)."""
    eta, kappa = sp.nsimplify(setup.training.lr), sp.nsimplify(setup.training.weight_decay)
    w = sp.nsimplify(setup.tasks[t].weight)
    if setup.training.inputs == "separate":
        alphas = [sp.nsimplify(x.alpha) for x in setup.tasks]
        frac, alpha = alphas[t] / sum(alphas), alphas[t]
    else:
        frac, alpha = sp.Integer(1), sp.nsimplify(setup.training.alpha)
    lr = eta * w * frac
    return lr, (kappa / (w * frac) if w != 0 else sp.Integer(0)), alpha


EQUATIONS = r"""
**Sample side** (one training sample, teacher fields $\lambda$ and label $y$ frozen), steps $k = 0..K$, $a_k = \eta h_k$:

$$h_k = M_k T^{+}\lambda + \zeta_k - \frac{1}{\alpha}\sum_{j<k} a_j\,\chi(k,j)\,\delta_j,\qquad \delta_k = \delta(h_k;\,y),$$

$\zeta$ Gaussian, independent of $(\lambda, y)$, covariance $C_\perp(k,l)$. Response to a field perturbation:

$$G(k,k) = I,\qquad G(k,j) = -\frac{1}{\alpha}\sum_{l=j}^{k-1} a_l\,\chi(k,l)\,D_l\,G(l,j).$$

**Weight side** (linear, Gaussian): $w_{k+1} = (1-\eta\kappa h_k)\,w_k - a_k\sum_{l\le k} R(k,l)\,w_l - \frac{a_k}{\alpha}\xi_k$, $w_0 \sim N(0, \sigma_0^2 I)$,

$$R(k,l) = E[D_k\,G(k,l)],\qquad E[\xi_k\xi_l^\top] = \alpha\,C_\delta(k,l) = \alpha\,E[\delta_k\delta_l^\top],$$

$$\chi(j+1,j) = I,\qquad \chi(k+1,j) = (1-\eta\kappa h_k)\,\chi(k,j) - a_k\sum_{l\le k}R(k,l)\,\chi(l,j),\qquad \chi(0,-1) = I,$$

$$C_\perp(k,l) = \sigma_0^2\,\chi(k,-1)\chi(l,-1)^\top + \frac{1}{\alpha}\sum_{i<k}\sum_{j<l} a_i a_j\,\chi(k,i)\,C_\delta(i,j)\,\chi(l,j)^\top.$$

**Teacher overlap**: $M_{k+1} = (1-\eta\kappa h_k)\,M_k - a_k\,E[\delta_k\lambda^\top]$, $M_0 = 0$.

**Order parameters**: $Q_k = U\,(M_k T^{+} M_k^\top + C_\perp(k,k))\,U^\top + \sigma_0^2\prod_{j<k}(1-\eta\kappa h_j)^2\,\mathbf{1}\mathbf{1}^\top/C$, teacher overlap $U M_k$; test metrics from $(Q_k, UM_k, T)$ as for the online engine.
"""


TRUNK = r"""
**Shared trunk**: the sample side carries the $K$ trunk fields $h$; with $b = \sum_t c_t V_t^\top(p_t - e_{y_t})$, $p_t = \mathrm{softmax}(V_t\,g(h))$:

$$\delta = g'(h)\odot b,\qquad D = \mathrm{diag}\,g'(h)\,\Big[\sum_t c_t V_t^\top(\mathrm{diag}\,p_t - p_tp_t^\top)V_t\Big]\,\mathrm{diag}\,g'(h) + \mathrm{diag}\big(g''(h)\odot b\big).$$

Heads (finitely many parameters, weighted path averages $\omega_p$): $V_{t,k+1} = V_{t,k} - \eta_V h_k \sum_p \omega_p\,c_{p,t}\,(p_{t,p} - e_{y_{t,p}})\,g(h_{k,p})^\top$. Test metrics from $(Q_k, M_k, V_{t,k})$, $Q_k = M_kT^{+}M_k^\top + C_\perp(k,k)$.
"""

SEPARATE = r"""
**Separate inputs**: one sample-side population per task $t$ (its own label only, $c_s = w_t\,1[s = t]$), all with the same $\zeta$, $M$, $\chi$ and memory coefficient $1/\alpha$ with $\alpha = \sum_t\alpha_t$; every path average of the weight side and of the heads is the mixture $\sum_t (\alpha_t/\alpha)\,E_t[\cdot]$ (so $E[\xi\xi^\top] = \sum_t \alpha_t E_t[\delta\delta^\top]$).
"""

KINK = r"""
**relu**: $g''$ is a Dirac mass at the kink, where training drives many fields (a sliding mode), and the force $\delta_a = b_a\,1[h_a > 0]$ jumps (plain explicit gradient descent). The response needs no derivative of $\delta$: by Gaussian integration by parts over each path's initial normals $g$ and weight noise $\eta$ (covariance $C_\eta(i,j) = \alpha\,E[\delta_i\delta_j^\top]$, whitened innovations $\xi = L^{-1}\eta$), $Y(k,j) = \sum_l R(k,l)\chi(l,j)$ is $a_j Y(k,j) = -\alpha\,(E[\delta_k\xi^\top]L^{-1})_j$ and $\sigma_0 Y(k,-1) = E[\delta_k g^\top]$, exact for any force; on a uniform grid, since its variance grows as the step shrinks (docs/DMFT.md §7).
"""


def _trunk_sheet(setup) -> list[str]:
    st, tr = setup.student, setup.training
    K = int(st.hidden)
    out = [f"Shared trunk: K = {K}, activation {st.activation}, $\\sigma_0 = {st.init_scale}$, "
           f"$\\eta = {sp.latex(sp.nsimplify(tr.lr))}$, $\\eta_V = {sp.latex(sp.nsimplify(tr.head_lr))}$, "
           f"$\\kappa = {sp.latex(sp.nsimplify(tr.weight_decay))}$.", ""]
    if tr.inputs == "separate" and len(setup.tasks) > 1:
        alphas = [sp.nsimplify(t.alpha) for t in setup.tasks]
        out += ["Populations (separate inputs): " + ", ".join(
            f"{t.name}: $\\alpha_t = {sp.latex(a)}$, weight $\\alpha_t/\\alpha = {sp.latex(a / sum(alphas))}$"
            for t, a in zip(setup.tasks, alphas)) + f"; $\\alpha = {sp.latex(sum(alphas))}$.", ""]
    else:
        out += [f"Shared inputs: one population, every path with every task's label, "
                f"$\\alpha = {sp.latex(sp.nsimplify(tr.alpha))}$.", ""]
    for task in setup.tasks:
        C = int(task.classes)
        _, _, loss, delta = trunk_sample_loss(C, K, st.activation) if C * K <= 12 else (None,) * 4
        out += [f"## Task {task.name}: C = {C}, noise σ = {task.noise}, weight {task.weight}", ""]
        if loss is not None:
            out += [f"Loss for label $y = 0$: $\\ell = {sp.latex(loss)}$", "",
                    f"$\\delta_1 = \\partial\\ell/\\partial h_1 = {sp.latex(delta[0])}$", "",
                    "(checked: δ and D = ∂δ/∂h equal the closed forms below.)", ""]
    out += [TRUNK]
    if tr.inputs == "separate" and len(setup.tasks) > 1:
        out += [SEPARATE]
    if st.activation == "relu":
        out += [KINK]
    return out


def dmft_sheet(setup) -> str:
    """The equation sheet of `setup` (full_batch; glm or shared trunk)."""
    if setup.training.protocol != "full_batch":
        raise ReachError("training.protocol", f"the dmft equations are for full_batch, not "
                                  f"{setup.training.protocol!r}")
    if setup.student.kind != "glm":
        out = [f"# DMFT of full-batch training — {setup.name or 'setup'}", ""] + _trunk_sheet(setup)
        out += ["## Equations", EQUATIONS,
                "(For a trunk the fields are the K trunk fields: U = I, no common mode.) "
                "Solved forward in time (causal): see docs/DMFT.md."]
        return "\n".join(out) + "\n"
    out = [f"# DMFT of full-batch training — {setup.name or 'setup'}", "",
           ("glm tasks decouple: each is a single-task DMFT in its C − 1 centred logit "
            "coordinates $h = U^\\top z$ (Helmert basis $U$)."), ""]
    for t, task in enumerate(setup.tasks):
        C = int(task.classes)
        lr, kappa, alpha = task_parameters(setup, t)
        _, per_label = reduced_cross_entropy(C)
        U = centred_basis_symbolic(C)
        out += [f"## Task {task.name}: C = {C}, noise σ = {task.noise}", "",
                (f"Effective $\\eta = {sp.latex(lr)}$, $\\kappa = {sp.latex(kappa)}$, "
                 f"$\\alpha = {sp.latex(alpha)}$, $\\sigma_0 = {setup.student.init_scale}$."), "",
                f"$U = {sp.latex(U)}$", ""]
        loss, delta, _ = per_label[0]
        out += [f"Loss for label $y = 0$: $\\ell = {sp.latex(sp.simplify(loss))}$", "",
                f"$\\delta = \\partial\\ell/\\partial h = {sp.latex(sp.simplify(delta))}$", "",
                (r"(checked: $\delta = U^\top(p - e_y)$, $D = \partial\delta/\partial h = "
                 r"U^\top(\mathrm{diag}\,p - pp^\top)U$ for every label.)"), ""]
    out += ["## Equations (every task)", EQUATIONS,
            "Solved forward in time (causal): see docs/DMFT.md."]
    return "\n".join(out) + "\n"


def write_dmft_derivation(setup, out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "dmft_equations.md")
    with open(path, "w") as f:
        f.write(dmft_sheet(setup))
    return [path]

"""The DMFT of the full_batch protocol, stated symbolically (docs/DMFT.md), and its equation sheet.

`reduced_cross_entropy(C)`: the sample-side loss of one glm task in the C − 1 centred coordinates,
derived with SymPy from CE(z, y) = −z_y + log Σ_c e^{z_c} with z = U h (U: orthonormal basis
orthogonal to the all-ones vector): δ = ∂CE/∂h and D = ∂δ/∂h, checked against the closed forms
δ = Uᵀ(p − e_y), D = Uᵀ(diag p − ppᵀ)U that `numeric.dmft.losses.CrossEntropy` evaluates.

`dmft_sheet(setup)`: Markdown + LaTeX — per task the effective learning rate, weight decay and α of
its single-task DMFT, the sample-side process, the weight-side kernels and the teacher overlap.
"""
from __future__ import annotations

import sympy as sp

from mtsp.errors import ReachError

__all__ = [
    "centred_basis_symbolic",
    "dmft_sheet",
    "reduced_cross_entropy",
    "task_parameters",
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


def dmft_sheet(setup) -> str:
    """The equation sheet of `setup` (full_batch, glm)."""
    if setup.training.protocol != "full_batch":
        raise ReachError("training.protocol", f"the dmft equations are for full_batch, not "
                                  f"{setup.training.protocol!r}")
    if setup.student.kind != "glm":
        raise ReachError("student.kind", "the dmft equations are derived for glm students so far")
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
    import os
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "dmft_equations.md")
    with open(path, "w") as f:
        f.write(dmft_sheet(setup))
    return [path]

"""The replica engine's prior (regularizer) channel, derived with SymPy, and its equation sheet.

Per input coordinate i the student weights of all tasks, w ∈ R^{T d} (d = C − 1 reduced classes),
see the Gaussian channel of the replica-symmetric free energy

    w* = argmin_w ½ wᵀ (Λ ⊗ I_d + V̂) w − wᵀ b,   b = M̂ u + ξ̂,   u ~ N(0, G), ξ̂ ~ N(0, Q̂),

with Λ = λ I_T + μ L_T (ridge and all-pairs coupling: (μ/2) Σ_{t<s} ‖W_t − W_s‖² =
(μ/2) tr Wᵀ(L_T ⊗ I) W, L_T = T I − 1 1ᵀ) and block-diagonal hats from the loss channels (one block
per task; one full block when coupled tasks share their inputs — the derivation holds for any
symmetric V̂).
`derive_prior_channel` solves the stationarity condition symbolically and reads off
V = ∂w*/∂b, M = E[w* uᵀ], Q = E[w* w*ᵀ]:

    V = (Λ ⊗ I_d + V̂)⁻¹,   M = V M̂ G,   Q = V (M̂ G M̂ᵀ + Q̂) V,

which `numeric.replica.prior_channel` evaluates (a test lambdifies this derivation against it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import sympy as sp

from mtsp.errors import ReachError
from mtsp.model import erm_problem   # the reduced problem whose numbers the sheet prints

__all__ = ["PriorChannel", "derive_prior_channel", "replica_sheet", "write_replica_derivation"]


@dataclass
class PriorChannel:
    """The derivation for T tasks with d-dim blocks: symbols and the derived matrices."""
    T: int
    d: int
    lam: sp.Symbol
    mu: sp.Symbol
    Vhat: list          # per task, d×d symmetric symbol matrices
    Qhat: list
    Mhat: list          # per task, d×r (r = d here: a full-rank teacher block)
    G: sp.Matrix        # joint teacher covariance of the u's (symmetric symbols, unit diagonal blocks)
    Lam: sp.Matrix
    V: sp.Matrix
    M: sp.Matrix
    Q: sp.Matrix


def _sym(name: str, d: int) -> sp.Matrix:
    return sp.Matrix(d, d, lambda i, j: sp.Symbol(f"{name}_{min(i, j)}{max(i, j)}"))


def derive_prior_channel(T: int, d: int = 1, joint: bool = False) -> PriorChannel:
    """Solve ∇_w [½ wᵀ (Λ ⊗ I_d + V̂) w − wᵀ b] = 0 for w* (linear in b), then V = ∂w*/∂b,
    M = E[w* uᵀ] = V M̂ G and Q = E[w* w*ᵀ] = V E[b bᵀ] Vᵀ with E[b bᵀ] = M̂ G M̂ᵀ + Q̂; each is
    checked symbolically against the closed form.  ``joint``: the hats are one full (T d)-block
    (coupled tasks on shared inputs, one joint loss channel) instead of one block per task."""
    lam, mu = sp.symbols("lambda mu", positive=True)
    L_T = T * sp.eye(T) - sp.ones(T, T)
    Lam = lam * sp.eye(T) + mu * L_T
    n = T if not joint else 1
    k = d if not joint else T * d
    Vhat = [_sym(f"Vh{t + 1}", k) for t in range(n)]
    Qhat = [_sym(f"Qh{t + 1}", k) for t in range(n)]
    Mhat = [sp.Matrix(k, k, lambda i, j, t=t: sp.Symbol(f"Mh{t + 1}_{i}{j}")) for t in range(n)]
    G = sp.Matrix(T * d, T * d, lambda i, j: (1 if i == j else 0) if i // d == j // d else
                  sp.Symbol(f"G_{min(i, j)}{max(i, j)}"))
    Vhat_bd = sp.diag(*Vhat)
    A = sp.kronecker_product(Lam, sp.eye(d)) + Vhat_bd
    b = sp.Matrix(sp.symbols(f"b0:{T * d}"))
    w = sp.Matrix(sp.symbols(f"w0:{T * d}"))
    energy = (w.T * A * w)[0] / 2 - (w.T * b)[0]
    grad = sp.Matrix([sp.diff(energy, wi) for wi in w])
    sol = sp.solve(list(grad), list(w), dict=True)[0]
    w_star = w.subs(sol)
    V = w_star.jacobian(b)
    assert sp.simplify(w_star - V * b) == sp.zeros(T * d, 1)          # w* is linear in b
    assert sp.simplify(V * A - sp.eye(T * d)) == sp.zeros(T * d, T * d)  # V = (Λ ⊗ I + V̂)⁻¹
    Mhat_bd = sp.diag(*Mhat)
    Ebb = Mhat_bd * G * Mhat_bd.T + sp.diag(*Qhat)
    M = V * Mhat_bd * G       # E[w* uᵀ] = V M̂ E[u uᵀ]
    Q = V * Ebb * V.T
    return PriorChannel(T, d, lam, mu, Vhat, Qhat, Mhat, G, Lam, V, M, Q)


LOSS_CHANNEL = r"""
## Loss channel of task t (one per task; separate inputs, or shared inputs without coupling)

(Coupled tasks on shared inputs have one joint loss channel: ω ∈ R^{Σ d_t} the stacked reduced
fields with the full Q, joint teacher u ~ N(0, G) with V⁰ = G − Mᵀ Q⁻¹ M, joint labels y = (y_t)
whose P(y | a) is one orthant of Σ_t (C_t − 1) dimensions, the prox of Σ_t w_t CE(E_tᵀ h_t, y_t)
under the full V, and full hats — the same formulas below with these joint objects.)

Reduced student field ω ~ N(0, Q_tt); teacher u_t | ω ~ N(A ω, V⁰) with A = M_ttᵀ Q_tt⁻¹,
V⁰ = I − M_ttᵀ Q_tt⁻¹ M_tt; labels: the argmax of Eᵀ(L_t u_t + σ_t ξ), so P(y | a) is a Gaussian
orthant probability of the C − 1 label differences (Φ for C = 2, Φ₂ for C = 3, Genz's separation of
variables beyond) with gradient ∇_a P = Gᵀ v (v: φ·Φ Stein vectors, or for one task with C ≥ 5 the
gradient of the Genz product, its variables and ω on one fixed QMC rule; no δ on decision boundaries).

$$h_y(\omega) = \arg\min_h\; w_t\,\mathrm{CE}(E^\top h, y) + \tfrac12 (h-\omega)^\top V_{tt}^{-1}(h-\omega),\qquad
f_y = -w_t\nabla\ell(h_y),\quad H_y = w_t\nabla^2\ell(h_y)$$

$$\hat Q_t = \alpha_t\,\mathbb{E}_\omega \sum_y P(y|\omega)\, f_y f_y^\top,\qquad
\hat V_t = \alpha_t\,\mathbb{E}_\omega \sum_y P(y|\omega)\,(I + H_y V_{tt})^{-1} H_y,\qquad
\hat M_t = \alpha_t\,\mathbb{E}_\omega \sum_y f_y\, \nabla_a P(y|a)^\top\big|_{a = A\omega}$$

Predictions: gen_error, label_error, test_loss from (Q_tt, M_tt) as a glm student with
Q = Eᵀ Q_tt E, R = Eᵀ M_tt L_tᵀ E against the reduced teacher Gram Eᵀ L_t L_tᵀ E; train_loss and
train_error = E_ω Σ_y P(y|ω) [CE(h_y, y), 1{argmax Eᵀh_y ≠ y}].
"""


def replica_sheet(setup, pc: PriorChannel | None = None) -> str:
    """Markdown equation sheet of the replica engine for `setup`: the derived prior channel (scalar
    blocks, the setup's T), the loss channel, and the setup's Λ, α_t, σ_t, reduced teacher."""

    model, channels, Lam, G = erm_problem(setup)
    T = model.n_tasks
    pc = pc or derive_prior_channel(T, 1)
    tr = setup.training
    lines = [f"# Replica equations (erm): {setup.name}", "",
             (f"glm students, {T} task(s), inputs {tr.inputs}, ridge λ = {tr.ridge:g}, "
              f"coupling μ = {tr.coupling:g}."), "",
             ("Reduced coordinates: ζ = E z, E the (C−1)×C orthonormal rows ⟂ 1 (softmax and argmax "
              "ignore the all-ones direction; the ridge sends it to 0)."), "",
             "## Prior channel (derived by SymPy, `mtsp.derive.replica.derive_prior_channel`)", "",
             ("$$V = (\\Lambda\\otimes I_d + \\hat V)^{-1},\\quad M = V\\hat M G,\\quad "
              "Q = V(\\hat M G\\hat M^\\top + \\hat Q)V,\\qquad \\Lambda = \\lambda I_T + \\mu L_T$$"), "",
             f"With scalar blocks (d = 1) and T = {T}:", "",
             f"$$\\Lambda = {sp.latex(pc.Lam)}$$", "",
             f"$$V = {sp.latex(pc.V)}$$", ""]
    lines += [LOSS_CHANNEL, "## This setup", ""]
    with np.printoptions(precision=6, suppress=True):
        lines.append(f"Λ = {np.array2string(Lam)}")
        lines.append("")
        for t, ch in enumerate(channels):
            lines.append(f"- task {model.names[t]}: C = {ch.C}, α = {ch.alpha:g}, σ = {ch.sigma:g}, "
                         f"w = {ch.weight:g}, reduced teacher factor L (rank {ch.r}) = "
                         f"{np.array2string(ch.L).replace(chr(10), ' ')}")
        lines.append("")
        lines.append(f"G (joint teacher covariance of the u's) = {np.array2string(G).replace(chr(10), ' ')}")
    return "\n".join(lines) + "\n"


def write_replica_derivation(setup, out_dir: str) -> list[str]:
    """Write `replica_equations.md` for `setup` into `out_dir`; returns the paths written."""
    if setup.training.protocol != "erm":
        raise ReachError("engine", f"the replica equations are those of the erm protocol, "
                                  f"not {setup.training.protocol!r}")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "replica_equations.md")
    with open(path, "w") as f:
        f.write(replica_sheet(setup))
    return [path]

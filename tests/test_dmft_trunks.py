"""DMFT of shared trunks beyond the linear / shared-inputs case (numeric/dmft/trunk.py,
numeric/dmft/response.py, docs/DMFT.md §7)."""
from __future__ import annotations

import numpy as np
import pytest
from mtsp.numeric.dmft.engine import run_dmft
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft, trunk_loss
from mtsp.numeric.dmft.trunk import Trunk
from scipy.special import softmax

from mtsp.setup import setup_from_dict

HEADS = [[0.5, -0.1], [-0.5, 0.2]]


def two_tasks(activation="erf", inputs="shared", alphas=(2.0, 2.0), rho=0.9, noise=(0.2, 1.0),
              head_lr=1.0, times=(1.0,)):
    tasks = [{"name": "A", "classes": 2, "noise": noise[0]}, {"name": "B", "classes": 2, "noise": noise[1]}]
    tr = {"protocol": "full_batch", "lr": 1.0, "head_lr": head_lr, "weight_decay": 0.05,
          "times": list(times), "inputs": inputs}
    if inputs == "separate":
        for t, a in zip(tasks, alphas):
            t["alpha"] = a
    else:
        tr["alpha"] = alphas[0]
    return setup_from_dict({"tasks": tasks, "teacher": {"alignment": rho},
                            "student": {"kind": "shared", "hidden": 2, "activation": activation,
                                        "init_scale": 0.3, "head_init": [HEADS, HEADS]},
                            "training": tr})


@pytest.mark.parametrize("activation", ["linear", "erf", "tanh", "relu"])
@pytest.mark.parametrize("separate", [False, True])
def test_trunk_gradient_and_hessian_are_derivatives_of_the_loss(activation, separate):
    """δ and D of `Trunk` against central differences (step 1e-5) of the per-path loss
    Σ_t c_t CE(V_t g(h), y_t) and of δ, at random fields away from relu's kink (|h| > 0.05).
    Measured: max error 7.2e-11 (δ), 1.6e-10 (D)."""
    rng = np.random.default_rng(3)
    loss = Trunk((2, 3), (0.3, 0.5), (1.0, 0.7), (np.array(HEADS), rng.normal(size=(3, 2))), 1.0,
                 activation, (1.0, 2.5) if separate else None)
    gram = np.eye(5)
    data = loss.sample(gram, rng.standard_normal((40, loss.normals(gram))))
    h = rng.normal(size=(40, 2))
    h += 0.1 * np.sign(h)
    state = loss.initial_state()

    def per_path_loss(hh):
        a = loss.act(hh)[0]
        return sum(data.coef[:, t] * -np.log(softmax(a @ V.T, axis=1)[np.arange(40), data.label[:, t]])
                   for t, V in enumerate(state))
    delta, D = loss.grad_hess(h, data, state)
    eps = 1e-5
    for a in range(2):
        e = np.zeros(2)
        e[a] = eps
        num = (per_path_loss(h + e) - per_path_loss(h - e)) / (2 * eps)
        assert np.max(np.abs(num - delta[:, a])) < 1e-9
        numD = (loss.grad(h + e, data, state) - loss.grad(h - e, data, state)) / (2 * eps)
        assert np.max(np.abs(numD - D[:, :, a])) < 1e-9
    if separate:                       # each path carries exactly its own task's label
        assert np.all((data.coef != 0).sum(axis=1) == 1)
        w = loss.path_weights(40)
        assert np.isclose(w.sum(), 1.0) and np.isclose(w[data.coef[:, 1] != 0].sum(), 2.5 / 3.5)


def test_finite_difference_response_equals_the_linear_recursion_for_a_smooth_trunk():
    """For erf (smooth) the finite-difference response (`response.FiniteDifferenceResponse`, step
    u = 1e-3) and the per-path linear recursion are the same R up to O(u²) and float32 rounding:
    same paths, 12 steps, two tasks. Measured: max |ΔR| 2.0e-7 against max |R| 0.43; the
    difference of the resulting test-field covariance Cperp 3.8e-8."""
    s = two_tasks("erf")
    loss, alpha = trunk_loss(s)
    gram = np.asarray(s.gram(), float)
    out = []
    for kink in (False, True):
        loss.kink = kink
        out.append(run_dmft(loss, gram, lr=1.0, weight_decay=0.05, alpha=alpha, init_scale=0.3,
                            steps=np.full(12, 0.1), n_paths=600, n_response=300,
                            rng=np.random.default_rng(5), kink_step=1e-3, kink="difference"))
    a, b = out
    assert np.max(np.abs(a.R)) > 0.3
    assert np.max(np.abs(a.R - b.R)) < 2e-6
    assert np.max(np.abs(a.Cperp - b.Cperp)) < 4e-7


@pytest.mark.parametrize("kink, paths, step", [("implicit", 50000, 0.05), ("difference", 20000, 0.05),
                                               ("jumps", 50000, 4.0)])
def test_relu_response_at_the_first_step_has_the_kink_term(kink, paths, step):
    """At step 0 the fields are ζ_0 ~ N(0, σ₀² I), independent of the labels (C = 2, equally
    likely), so with b = Σ_t V_tᵀ(p_t − e_{y_t}) and H_t = diag p_t − p_t p_tᵀ

        R(0, 0)₁₁ = E[1[h₁ > 0] (Σ_t V_tᵀ H_t V_t)₁₁] + φ_σ₀(0) E[b₁ | h₁ = 0],

    the second term being relu's kink (a Dirac mass in g″). Grid quadrature against the implicit
    kink (default γ = 4, step 0.05: the ramp 0 < h₁ < c|b₁|, c = 0.1, carries the kink term;
    50000 paths) and the finite-difference response (u = 0.05, 20000 paths; heads with a strong
    second column so that E[b₁ | h₁ = 0] ≠ 0) and the flipped copies of kink "jumps" (window
    w = 4 · a|b|/α = 0.1|b|, 50000 paths). Measured: implicit 0.2808 ± 0.0067 (mean and SD
    over six seeds), finite differences 0.2842 and 0.2835 (two seeds), jumps 0.2858 ± 0.0030 (six
    seeds), quadrature
    0.2808, of which the kink term 0.148; without it (linear recursion, no ramp) 0.135 vs 0.1327."""
    heads = [[0.5, 2.0], [-0.5, -2.0]]
    s0 = 1.0
    loss = Trunk((2, 2), (0.2, 1.0), (1.0, 1.0), (np.array(heads),) * 2, 1.0, "relu")
    tr = run_dmft(loss, np.eye(4), lr=1.0, weight_decay=0.0, alpha=2.0, init_scale=s0,
                  steps=np.array([0.05]), n_paths=paths, n_response=paths,
                  rng=np.random.default_rng(2), kink_step=step, train_metrics=False, n_sources=10,
                  kink=kink)
    V = np.array(heads)
    x = np.linspace(-8 * s0, 8 * s0, 1601)
    w = np.exp(-0.5 * (x / s0) ** 2)
    w /= w.sum()                                           # grid weights of N(0, σ₀²)
    h1, h2 = np.meshgrid(x, x, indexing="ij")
    a = np.stack([np.maximum(h1, 0), np.maximum(h2, 0)], axis=-1)
    p = softmax(a @ V.T, axis=-1)
    curv = 2 * ((p * V[:, 0] ** 2).sum(-1) - (p @ V[:, 0]) ** 2)       # two equal tasks
    regular = np.sum(np.outer(w, w) * (h1 > 0) * curv)
    b1 = 2 * (p[800] @ V[:, 0] - 0.5 * V[:, 0].sum())     # at h₁ = 0, labels averaged
    kink = np.exp(0.0) / (s0 * np.sqrt(2 * np.pi)) * np.sum(w * b1)
    assert kink > 0.1
    assert abs(tr.R[0, 0, 0, 0] - (kink + regular)) < 0.03, (tr.R[0, 0, 0, 0], kink, regular)


def test_relu_flipped_copies_equal_finite_differences():
    """Kink "jumps" (plain explicit Euler; the jump's boundary terms carried by flipped copies,
    `response.FlipResponse`, window w = 0.1 a|b|/α) against the finite-difference response of
    the same dynamics (kink "difference", u = 0.02; exact up to O(u)), two steps of 0.5, same
    40000 paths: the lagged responses R(1, 0)₂₂ and R(2, 1)₂₂, where the copies carry about half
    of the response (without them, the linear recursion alone: −0.19 to −0.22 and −0.19 to −0.24).
    Measured (seeds 0–2): jumps −0.427 / −0.369 / −0.432 and −0.281 / −0.312 / −0.349, finite
    differences −0.443 / −0.344 / −0.407 and −0.280 / −0.328 / −0.335 (largest difference
    0.025); bound 0.08."""
    heads = [[0.5, 2.0], [-0.5, -2.0]]
    out = []
    for kink, step in (("jumps", 0.1), ("difference", 0.02)):
        loss = Trunk((2, 2), (0.2, 1.0), (1.0, 1.0), (np.array(heads),) * 2, 1.0, "relu")
        out.append(run_dmft(loss, np.eye(4), lr=1.0, weight_decay=0.0, alpha=2.0, init_scale=1.0,
                            steps=np.array([0.5, 0.5]), n_paths=40000, n_response=40000,
                            rng=np.random.default_rng(1), kink_step=step, train_metrics=False,
                            n_sources=10, kink=kink).R)
    jumps, fd = out
    for k, j in ((1, 0), (2, 1)):
        assert jumps[k, j, 1, 1] < -0.26
        assert abs(jumps[k, j, 1, 1] - fd[k, j, 1, 1]) < 0.08, (k, j, jumps[k, j], fd[k, j])


def test_separate_inputs_with_identical_tasks_are_one_task_with_half_the_head_rate():
    """Two identical tasks (alignment 1, same noise and heads) on separate inputs with α_A = α_B =
    1: the trunk sees all 2N samples as one task with α = 2, and each head the gradient of half
    of them, so in the N → ∞ limit both tasks equal one task at α = 2 with head_lr/2. Measured
    at t = 1 (linear trunk, 3 × 2000 paths): 0.2778 ± 0.0001 vs 0.2769 ± 0.0007."""
    sep = two_tasks("linear", "separate", (1.0, 1.0), rho=1.0, noise=(0.5, 0.5))
    one = setup_from_dict({"tasks": [{"name": "A", "classes": 2, "noise": 0.5}],
                           "student": {"kind": "shared", "hidden": 2, "activation": "linear",
                                       "init_scale": 0.3, "head_init": [HEADS]},
                           "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0,
                                        "head_lr": 0.5, "weight_decay": 0.05, "times": [1.0]}})
    opts = DmftOptions(n_paths=1000, n_response=300, batches=3, scan=2)
    a, b = solve_dmft(sep, opts).tasks, solve_dmft(one, opts).tasks["A"]
    for name in ("A", "B"):
        se = np.hypot(a[name]["gen_error_se"][0], b["gen_error_se"][0])
        assert abs(a[name]["gen_error"][0] - b["gen_error"][0]) <= 4 * se + 1e-3


def test_equation_sheet_of_a_tanh_trunk_on_separate_inputs():
    """`mtsp derive --engine dmft` for a shared trunk: the SymPy derivation of δ and D of each
    task's loss on the trunk (asserted equal to the closed forms at a rational point inside
    `trunk_sample_loss`) and the sheet's trunk, population and equation parts."""
    from mtsp.derive.dmft import dmft_sheet
    text = dmft_sheet(two_tasks("tanh", "separate", (1.0, 3.0)))
    assert "Populations (separate inputs)" in text and r"\frac{3}{4}" in text
    assert r"\tanh" in text and r"C_\perp(k,l)" in text and "diag}\\big(g''(h)" in text


def test_implicit_kink_is_the_proximal_step_of_the_kink():
    """`trunk._implicit_kink` with b > 0: h − c δ̂ is the proximal point of the kink b·relu(h) with
    parameter c (argmin_y b·relu(y) + (y − h)²/(2c), by brute force on a grid of step 1e-5), so a
    field driven onto the kink lands on it with its equivalent control; with b < 0 it ramps from
    0 to b over 0 < h < c|b|; D̂ equals central differences of δ̂ away from the ramp's corners.
    Measured: max |Δδ̂| 4.7e-5 (the grid's step is 1e-5), max |ΔD̂| 1.1e-10 (396 of 400 points)."""
    from mtsp.numeric.dmft.trunk import _implicit_kink
    rng = np.random.default_rng(0)
    c = 0.1
    h = rng.uniform(-0.2, 0.3, size=(400, 2))
    b = rng.uniform(-1.5, 1.5, size=(400, 2))
    H = rng.normal(size=(400, 2, 2))
    D = (h > 0)[:, :, None] * H * (h > 0)[:, None, :]
    delta, Dh = _implicit_kink(h, b, D, c)
    y = np.linspace(-1.0, 1.0, 200001)
    for p in range(40):
        for a in range(2):
            if b[p, a] > 0:
                prox = y[np.argmin(b[p, a] * np.maximum(y, 0) + (y - h[p, a]) ** 2 / (2 * c))]
                assert abs((h[p, a] - prox) / c - delta[p, a]) < 5e-4
    assert np.allclose(delta, np.sign(b) * np.minimum(np.maximum(h, 0) / c, np.abs(b)))
    ramp = (h > 0) & (h < c * np.abs(b))
    assert ramp.sum() > 50 and np.all(Dh[ramp.nonzero()[0], ramp.nonzero()[1], ramp.nonzero()[1]]
                                      == np.sign(b[ramp]) / c)
    eps = 1e-6
    far = np.all((np.abs(h) > 1e-3) & (np.abs(h - c * np.abs(b)) > 1e-3), axis=1)
    for a in range(2):       # b frozen: D̂'s column a is the derivative of δ̂ at fixed b off the ramp
        e = np.zeros(2)
        e[a] = eps
        up = _implicit_kink(h + e, b + eps * H[:, :, a] * (h[:, a:a + 1] > 0), D, c)[0]
        dn = _implicit_kink(h - e, b - eps * H[:, :, a] * (h[:, a:a + 1] > 0), D, c)[0]
        assert np.max(np.abs(((up - dn) / (2 * eps) - Dh[:, :, a])[far])) < 1e-9


def test_crossing_term_of_the_repelling_kink_is_its_density():
    """`trunk._attracting_ramp` (kink "crossing"): where b < 0 the force is the plain jump
    b·1[h > 0], where b > 0 the ramp of `_implicit_kink`; a field that crossed the kink since the
    previous step gets b/|Δh| on D's diagonal, whose path mean is the Dirac term b·ρ(0) (co-area).
    Fields h_prev uniform on (−1, 1) (ρ(0) = 1/2) moved by Δh uniform in ±(0.02, 0.2): the mean
    of D's kink part over b = −1 paths, measured −0.5029 (seeds 0–3: −0.496 to −0.505); bound 0.02."""
    from mtsp.numeric.dmft.trunk import _attracting_ramp, _implicit_kink
    rng = np.random.default_rng(1)
    n, c = 400000, 0.1
    h_prev = rng.uniform(-1.0, 1.0, size=(n, 1))
    h = h_prev + rng.choice([-1.0, 1.0], size=(n, 1)) * rng.uniform(0.02, 0.2, size=(n, 1))
    b = np.where(rng.random((n, 1)) < 0.5, -1.0, 0.7)
    D = np.zeros((n, 1, 1))
    delta, Dh = _attracting_ramp(h, b, D, c, h_prev)
    neg = b[:, 0] < 0
    assert np.array_equal(delta[neg], (h[neg] > 0) * b[neg])
    assert np.allclose(delta[~neg], _implicit_kink(h[~neg], b[~neg], D[~neg], c)[0])
    kink_part = Dh[neg, 0, 0]
    assert abs(kink_part.mean() + 0.5) < 0.02, kink_part.mean()

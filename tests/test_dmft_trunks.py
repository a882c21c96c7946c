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
    for response in ("recursion", "difference"):
        out.append(run_dmft(loss, gram, lr=1.0, weight_decay=0.05, alpha=alpha, init_scale=0.3,
                            steps=np.full(12, 0.1), n_paths=600, n_response=300,
                            rng=np.random.default_rng(5), fd_step=1e-3, response=response))
    a, b = out
    assert np.max(np.abs(a.R)) > 0.3
    assert np.max(np.abs(a.R - b.R)) < 2e-6
    assert np.max(np.abs(a.Cperp - b.Cperp)) < 4e-7


def test_stein_response_equals_the_linear_recursion_for_a_smooth_trunk():
    """The Stein response (`response.SteinResponse`: Gaussian integration by parts over the
    paths' initial and weight noise, no derivative of δ) against the exact per-path linear
    recursion on an erf trunk (two tasks with different heads, so that the noise spans both
    fields), two steps of 0.3, same 20000 paths: the rows R(1, 0) and R(1, 1) (max |R| 0.83),
    which need the weight noise's step 0, its initial condition and the χ bookkeeping (a wrong sign
    or a wrong 1/a_j, α scale shows as ≥ 0.3).  Measured, seeds 0–3: max |ΔR| 0.061, 0.051,
    0.018, 0.036 with Stein's ridge (0.061, 0.044, 0.018, 0.038 before it; Stein's sampling
    error, the recursion's is 10× smaller); bound 0.15."""
    heads = (np.array([[0.5, 2.0], [-0.5, -2.0]]), np.array([[1.5, -0.5], [-1.5, 0.5]]))
    out = []
    for response in ("recursion", "stein"):
        loss = Trunk((2, 2), (0.2, 1.0), (1.0, 1.0), heads, 1.0, "erf")
        out.append(run_dmft(loss, np.eye(4), lr=1.0, weight_decay=0.0, alpha=2.0, init_scale=1.0,
                            steps=np.full(2, 0.3), n_paths=20000, n_response=20000, n_sources=2000,
                            rng=np.random.default_rng(0), train_metrics=False, response=response).R)
    rec, stein = out
    assert np.max(np.abs(rec[1, :2])) > 0.8
    assert np.max(np.abs(rec[1, :2] - stein[1, :2])) < 0.15, (rec[1, :2], stein[1, :2])


@pytest.mark.parametrize("response, paths", [("stein", 20000), ("difference", 20000)])
def test_relu_response_at_the_first_step_has_the_kink_term(response, paths):
    """At step 0 the fields are ζ_0 ~ N(0, σ₀² I), independent of the labels (C = 2, equally
    likely), so with b = Σ_t V_tᵀ(p_t − e_{y_t}) and H_t = diag p_t − p_t p_tᵀ

        R(0, 0)₁₁ = E[1[h₁ > 0] (Σ_t V_tᵀ H_t V_t)₁₁] + φ_σ₀(0) E[b₁ | h₁ = 0],

    the second term being relu's kink (a Dirac mass in g″). Grid quadrature against the Stein
    response (relu's default: E[δ_0 ζ_0ᵀ]/σ₀², no kink treatment) and the finite-difference
    response (u = 0.05); heads with a strong second column so that E[b₁ | h₁ = 0] ≠ 0.
    Measured: Stein 0.2868, 0.2816, 0.2776, 0.2833, 0.2791, 0.2836 (seeds 0–5), finite
    differences 0.2842 and 0.2835 (two seeds), quadrature 0.2808, of which the kink term 0.148;
    without it (linear recursion) 0.135 vs 0.1327."""
    heads = [[0.5, 2.0], [-0.5, -2.0]]
    s0 = 1.0
    loss = Trunk((2, 2), (0.2, 1.0), (1.0, 1.0), (np.array(heads),) * 2, 1.0, "relu")
    tr = run_dmft(loss, np.eye(4), lr=1.0, weight_decay=0.0, alpha=2.0, init_scale=s0,
                  steps=np.array([0.05]), n_paths=paths, n_response=paths,
                  rng=np.random.default_rng(2), fd_step=0.05, train_metrics=False, n_sources=10,
                  response=response)
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


def test_relu_stein_response_equals_finite_differences():
    """relu's default response (Stein) against the finite-difference response of the same
    dynamics (plain explicit Euler, u = 0.02; exact up to O(u)), two steps of 0.5, same 40000
    paths: the lagged responses R(1, 0)₂₂ and R(2, 1)₂₂, about half of which is the kink's (the
    linear recursion alone gives −0.19 to −0.22 and −0.19 to −0.24).  Measured (seeds 0–2): Stein
    −0.411 / −0.370 / −0.424 and −0.287 / −0.343 / −0.349 (with its ridge; −0.344 for seed 1
    before it), finite differences −0.443 / −0.344 /
    −0.407 and −0.280 / −0.328 / −0.335 (largest difference 0.032); bound 0.08."""
    heads = [[0.5, 2.0], [-0.5, -2.0]]
    out = []
    for response in ("stein", "difference"):
        loss = Trunk((2, 2), (0.2, 1.0), (1.0, 1.0), (np.array(heads),) * 2, 1.0, "relu")
        out.append(run_dmft(loss, np.eye(4), lr=1.0, weight_decay=0.0, alpha=2.0, init_scale=1.0,
                            steps=np.array([0.5, 0.5]), n_paths=40000, n_response=40000,
                            rng=np.random.default_rng(1), fd_step=0.02, train_metrics=False,
                            n_sources=10, response=response).R)
    stein, fd = out
    for k, j in ((1, 0), (2, 1)):
        assert stein[k, j, 1, 1] < -0.26
        assert abs(stein[k, j, 1, 1] - fd[k, j, 1, 1]) < 0.08, (k, j, stein[k, j], fd[k, j])


WIDE_7 = {"name": "wide 7", "tasks": [{"name": "A", "classes": 2, "noise": 2.0, "weight": 0.25}],
          "teacher": {"alignment": 1.0, "class_map": "random", "seed": 48},
          "student": {"kind": "shared", "hidden": 3, "activation": "relu", "init_scale": 1.5,
                      "head_init": [[[0.106, -0.026, -0.11], [-0.037, -0.054, 0.072]]]},
          "training": {"protocol": "full_batch", "inputs": "shared", "lr": 0.5, "head_lr": 5.0,
                       "alpha": 0.926, "times": [3.0]}}


def test_relu_stein_response_that_is_noise_raises_instead_of_diverging(monkeypatch):
    """The guard (a safety net since the ridge, docs/DMFT.md §7): a Stein response whose
    split-half error a_k × noise exceeds engine.STEIN_NOISE_LIMIT stops with a ConvergenceError
    naming the response, before any number comes back.  Seed 5 wide setup 7 of
    benchmarks/dmft_random_setups.py (relu, heads of scale 0.1, task weight 0.25) tripped the limit
    20 at step 2 before the ridge (error 32; the solution then blew up: test_loss 3.95e8 at t = 3,
    returned silently); with the ridge its error is 0.6–2.0 (400–8000 paths), so the limit is
    lowered to 0.1 here; < 1 s."""
    from mtsp.errors import ConvergenceError
    from mtsp.numeric.dmft import engine
    monkeypatch.setattr(engine, "STEIN_NOISE_LIMIT", 0.1)
    with pytest.raises(ConvergenceError, match="^response: the Stein response is noise") as err:
        solve_dmft(setup_from_dict(WIDE_7), DmftOptions(n_paths=400, n_response=100, batches=1,
                                                       scan=2, step_correction=0, response="stein"))
    assert err.value.residual > 0.1 and err.value.status["time"] < 3.0


def test_relu_default_response_falls_back_to_finite_differences_where_stein_is_noise(monkeypatch):
    """The same guard at the default response: the Stein noise is caught and the solve runs again
    with response="difference", saying so (a DmftResponseWarning, stats["response"]).  Against a
    simulation at N = 4000 (8 seeds; docs/DMFT.md §5): test_loss 0.6953 / 0.6939, gen_error 0.4996 /
    0.4993 at t = 1 / 3; here (2 × 2000 paths, 400 response) 0.6953 / 0.6938 and 0.4996 / 0.4992
    (measured within 1e-4); the limit lowered to 0.1 as above (the Stein route itself agrees
    there since the ridge: tests/test_dmft_stein.py); 2.5 s."""
    from mtsp.numeric.dmft import engine
    from mtsp.numeric.dmft.solve import DmftResponseWarning
    monkeypatch.setattr(engine, "STEIN_NOISE_LIMIT", 0.1)
    su = setup_from_dict({**WIDE_7, "training": {**WIDE_7["training"], "times": [1.0, 3.0]}})
    with pytest.warns(DmftResponseWarning, match="^response: the Stein response is noise"):
        res = solve_dmft(su, DmftOptions(n_paths=2000, n_response=400, batches=2, scan=2, step_correction=0))
    assert res.stats["response"] == "difference"
    A = res.tasks["A"]
    assert np.allclose(A["test_loss"], [0.6953, 0.6939], atol=1e-3)
    assert np.allclose(A["gen_error"], [0.4996, 0.4993], atol=1e-3)


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



def test_finite_difference_response_too_large_is_refused_before_allocating():
    """2 n_r ((K+1) d)² float32: 600 steps of 4 fields on 8000 response paths would be 344 GiB —
    refused naming `response` before any array is made (< 0.1 s)."""
    from types import SimpleNamespace

    from mtsp.errors import ReachError
    from mtsp.numeric.dmft.response import FiniteDifferenceResponse
    with pytest.raises(ReachError, match="^response: the finite-difference response needs 344.5 GiB"):
        FiniteDifferenceResponse(SimpleNamespace(dim=4), None, np.ones(8000), 600, 1.0, 0.01)


def test_step_correction_halves_dt_where_the_coarse_grid_is_not_first_order():
    """Seed 6 setup 5 of `benchmarks/dmft_random_setups.py --space wide` (four tasks on a K = 3
    trunk, drawn heads of scale 2.5, weight 2, κ = 1) had 50 of 88 rows out, train_loss clipped
    at 0: gradient descent at the step correction's 2 dt = 0.4 is not first order there, and the
    extrapolation from it was garbage. Here two of its tasks (B cut to 3 classes, D) on a linear
    trunk at t = 1 (600 paths, one batch): at 77acf87 the default dt 0.2 gave train_loss 0.0 / 0.0
    (clipped), test_loss 0.259 / 0.286 and gen_error 0.338 / 0.417, against 0.154 / 0.567,
    0.929 / 0.867 and 0.366 / 0.453 at dt 0.1 and at dt 0.05 (the two within 1e-4); the correction of B's test_loss at step 0.2 is 72 % of
    its value (0.933 against 1.607 at 0.4), against a few 1e-3 where it is right
    (`solve.STEP_CORRECTION_LIMIT` 25 %). Now the default solve halves dt (a DmftStepWarning)
    and lands within 1e-3 of dt 0.05 (measured 1e-4); an explicit dt keeps the
    ConvergenceError. 3 s."""
    from dataclasses import replace

    from mtsp.errors import ConvergenceError
    from mtsp.numeric.dmft.solve import DmftStepWarning
    s = setup_from_dict({
        "tasks": [{"name": "B", "classes": 3, "noise": 0.0, "rank": 3, "weight": 2.0},
                  {"name": "D", "classes": 2, "noise": 3.0}],
        "teacher": {"alignment": -0.3, "class_map": "aligned", "seed": 17, "norm": 3.0},
        "student": {"kind": "shared", "hidden": 3, "activation": "linear", "init_scale": 0.2,
                    "head_init": [[[3.85, 0.407, 1.928], [0.21, -5.309, -4.002], [-3.227, 1.172, -1.28]],
                                  [[0.861, -3.506, 1.931], [-1.945, -3.276, -0.983]]]},
        "training": {"protocol": "full_batch", "alpha": 1.9, "lr": 1.0, "weight_decay": 1.0,
                     "head_lr": 0.5, "times": [1.0]}})
    opts = DmftOptions(n_paths=600, n_response=150, batches=1, step_correction=1, scan=2)
    with pytest.warns(DmftStepWarning, match="not first order"):
        res = solve_dmft(s, opts)
    assert res.stats["dt"] == 0.1
    fine = solve_dmft(s, replace(opts, dt=0.05))
    for name in "BD":
        for key in ("train_loss", "test_loss", "gen_error"):
            assert abs(res.tasks[name][key][0] - fine.tasks[name][key][0]) < 1e-3, (name, key)
    with pytest.raises(ConvergenceError, match="not first order") as err:
        solve_dmft(s, replace(opts, dt=0.2))
    assert err.value.key == "step_correction" and err.value.residual > 0.25


def test_zero_variance_teacher_classes_tie_at_the_first_index():
    """A class whose teacher logit has zero variance (rank 3 < C = 6, aligned map: task B of wide
    seed 6 setup 5) has the exact zero logit of MODEL.md: where the three signal logits are all
    negative (1/8 of the samples), classes 3–5 tie and argmax keeps the first index, as in the
    simulator (`validate.simulate`, exact zero rows). At 77acf87 the DMFT's paths took λ from
    `sqrt_psd` of this four-task Gram, whose zero rows carried rounding up to 1.3e-8, so those
    labels were 3 or 5 at random (228 / 272 of 500): B's train_loss at t = 0.2 was 1.028 against
    the simulations' 0.943 / 0.941 / 0.944 at N = 1000 / 2000 / 4000, C's test_loss 1.248 against
    1.262 (docs/DMFT.md §5); with exact zero rows (`losses.teacher_factor`) 0.943 and 1.261
    (2 × 2000 paths, dt 0.025). < 1 s."""
    s = setup_from_dict({
        "tasks": [{"name": "A", "classes": 3, "noise": 0.5, "norm": 0.25},
                  {"name": "B", "classes": 6, "noise": 0.0, "rank": 3, "weight": 2.0},
                  {"name": "C", "classes": 3, "noise": 2.0, "norm": 0.5},
                  {"name": "D", "classes": 2, "noise": 3.0}],
        "teacher": {"alignment": -0.3, "class_map": "aligned", "seed": 17, "norm": 3.0},
        "student": {"kind": "shared", "hidden": 3, "activation": "linear"},
        "training": {"protocol": "full_batch", "alpha": 1.9, "lr": 1.0, "times": [1.0]}})
    gram = np.asarray(s.gram(), float)
    loss, _ = trunk_loss(s)
    data = loss.sample(gram, np.random.default_rng(0).standard_normal((4000, loss.normals(gram))))
    lam_b = data.lam[:, 3:9]
    assert np.all(lam_b[:, 3:] == 0.0)
    tied = (lam_b[:, :3] < 0).all(axis=1)
    assert 400 < tied.sum() < 600
    assert np.all(data.label[tied, 1] == 3)
    assert np.all(data.label[~tied, 1] == np.argmax(lam_b[~tied, :3], axis=1))

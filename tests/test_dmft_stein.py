"""The Stein response where the paths' noise is nearly degenerate (numeric/dmft/response.py,
`SteinResponse`'s ridge; docs/DMFT.md §7): seed 5 wide setups 7 and 8 of
benchmarks/dmft_random_setups.py, whose plain Stein estimate was noise (the guard stopped it and
the default route fell back to finite differences), now on the Stein route itself."""
from __future__ import annotations

import warnings

import numpy as np
from mtsp.numeric.dmft import engine
from mtsp.numeric.dmft.solve import DmftOptions, DmftResponseWarning, solve_dmft

from mtsp.setup import setup_from_dict

WIDE_7 = {"name": "wide 7", "tasks": [{"name": "A", "classes": 2, "noise": 2.0, "weight": 0.25}],
          "teacher": {"alignment": 1.0, "class_map": "random", "seed": 48},
          "student": {"kind": "shared", "hidden": 3, "activation": "relu", "init_scale": 1.5,
                      "head_init": [[[0.106, -0.026, -0.11], [-0.037, -0.054, 0.072]]]},
          "training": {"protocol": "full_batch", "inputs": "shared", "lr": 0.5, "head_lr": 5.0,
                       "alpha": 0.926, "times": [1.0, 3.0]}}
WIDE_8 = {"name": "wide 8", "tasks": [{"name": "A", "classes": 2, "noise": 0.1}],
          "teacher": {"gram": [[0.6970556976357652, -0.4964880536882336],
                               [-0.4964880536882336, 0.6206850542347103]]},
          "student": {"kind": "shared", "hidden": 2, "activation": "relu", "init_scale": 1.5,
                      "head_init": [[[0.206, 0.673], [0.65, 0.932]]]},
          "training": {"protocol": "full_batch", "inputs": "shared", "lr": 0.25, "head_lr": 0.1,
                       "alpha": 7.725396703424016, "times": [1.0, 3.0, 10.0]}}


def test_default_route_on_wide_7_stays_stein_and_agrees_with_simulation_and_differences(monkeypatch):
    """Seed 5 wide setup 7 (relu K = 3, heads of scale 0.1, task weight 0.25: δ small and nearly
    constant along a path, noise pivots down to 1e-8 of the diagonal).  Before the ridge the plain
    Stein estimate's split-half error was 32–468 (limit 20) and the default route fell back to
    response="difference" (a DmftResponseWarning).  Now it stays "stein" with the guard lowered
    to 2, a tenth of its limit (split-half maxima measured 0.56–1.04 over four seeds at these 2 ×
    2000 paths), and gives test_loss 0.6953 / 0.6938, gen_error 0.4996 / 0.4992 at t = 1 / 3
    against the N = 4000 simulation's 0.6953 / 0.6939 and 0.4996 / 0.4993 and the difference
    response's 0.6953 / 0.6938 and 0.4996 / 0.4992 (same paths; measured within 1e-4); 1.5 s."""
    monkeypatch.setattr(engine, "STEIN_NOISE_LIMIT", 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DmftResponseWarning)
        res = solve_dmft(setup_from_dict(WIDE_7), DmftOptions(n_paths=2000, n_response=400, batches=2,
                                                             scan=2, step_correction=0))
    assert res.stats["response"] == "stein"
    A = res.tasks["A"]
    assert np.allclose(A["test_loss"], [0.6953, 0.6939], atol=1e-3)
    assert np.allclose(A["gen_error"], [0.4996, 0.4993], atol=1e-3)


def test_stein_on_wide_8_follows_the_simulation_to_t_10():
    """Seed 5 wide setup 8 (relu K = 2, one C = 2 task of noise 0.1, α 7.7, lr 0.25): the plain
    Stein estimate passed t ≤ 3 but its weight response then ran away (max |χ| 5.9e3 at step 15)
    and at t = 10 it gave gen_error 0.4834 and test_loss 0.7312 (8000 paths) against the
    simulation's 0.4717 ± 0.0003 and 0.6976 (N = 1000, 4 seeds) and the difference response's
    0.4705 and 0.6982.  With the ridge, response="stein" explicitly (no fallback possible), 2 ×
    2000 paths: gen_error 0.4704–0.4720 and test_loss 0.6972–0.6982 at t = 10 over four seeds
    (split-half maxima 2.3–3.3, limit 20); bounds 3e-3 and 2e-3; 1.5 s."""
    res = solve_dmft(setup_from_dict(WIDE_8), DmftOptions(n_paths=2000, batches=2, scan=2,
                                                         step_correction=0, response="stein"))
    A = res.tasks["A"]
    assert abs(A["gen_error"][2] - 0.4717) < 3e-3, A["gen_error"]
    assert abs(A["test_loss"][2] - 0.6976) < 2e-3, A["test_loss"]
    assert np.allclose(A["gen_error"][:2], [0.4964, 0.4899], atol=1e-3)     # simulation, 16 seeds


def _stein_on_nearly_collinear_noise(ridge: bool, seed: int, n: int = 20000, rho: float = 1e-4):
    """`SteinResponse` alone on η_0 = u, η_1 = u + ρ v (u, v standard normal; C_η = [[1, 1],
    [1, 1 + ρ²]], eigenvalue ≈ ρ²/2 along (1, −1)/√2) and δ_2 = tanh(η_0 + η_1) + 0.3 w (w an
    independent normal): ∂E[δ_2]/∂η_0 = ∂E[δ_2]/∂η_1 = E[sech²(2u)].  α = a_j = 1, χ = I, so
    R(2, j) = Y(2, j) = −∂E[δ_2]/∂η_j.  Returns (R(2, 0), R(2, 1), split-half error)."""
    from mtsp.numeric.dmft.response import SteinResponse
    rng = np.random.default_rng(seed)
    u, v, w = rng.standard_normal((3, n))
    eta = np.stack([u, u + rho * v])
    C = np.array([[1.0, 1.0], [1.0, 1.0 + rho ** 2]])
    st = SteinResponse(3, 1, n, 1.0, np.ones(3), 0.0, np.full(n, 1.0 / n), np.zeros((n, 1)))
    if not ridge:
        st.ridge = 0.0
    for k in range(2):
        st.add_noise(k, eta[k][:, None], C[k:k + 1, :k + 1])
    R = st.step(2, (np.tanh(eta[0] + eta[1]) + 0.3 * w)[:, None], np.eye(3))
    return -R[0, 1], -R[0, 2], st.noise


def test_ridge_keeps_the_resolved_response_and_shrinks_the_unresolved_direction():
    """On nearly collinear noise (`_stein_on_nearly_collinear_noise`, ρ = 1e-4: eigenvalue 5e-9,
    far below the ridge ε = 1/n = 5e-5) the sum ∂/∂η_0 + ∂/∂η_1 is resolved, the difference is
    not.  Exact: E[sech²(2u)] = 0.36474 (Gauss–Hermite, 200 nodes).  Measured over seeds 0–7 with
    the ridge: largest error of the two entries 0.0007–0.0138, split-half error 0.0033–0.0165;
    without it (ε = 0) the entries are off by 3.4–104 (±1/√(nρ²/2) ≈ 100 × δ's noise: the
    failure of the plain estimator on wide setups 7 and 8).  Bounds 0.05 and 1.0; < 0.1 s."""
    x, wq = np.polynomial.hermite_e.hermegauss(200)
    exact = float(np.sum(wq / np.cosh(2 * x) ** 2) / np.sqrt(2 * np.pi))
    assert abs(exact - 0.36474) < 1e-5
    for seed in range(2):
        d0, d1, noise = _stein_on_nearly_collinear_noise(True, seed)
        assert abs(d0 - exact) < 0.05 and abs(d1 - exact) < 0.05, (d0, d1)
        assert noise < 0.05
        p0, p1, _ = _stein_on_nearly_collinear_noise(False, seed)
        assert max(abs(p0 - exact), abs(p1 - exact)) > 1.0, (p0, p1)

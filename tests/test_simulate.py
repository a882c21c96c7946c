"""Tests of the finite-N online simulator (mtsp.validate.simulate)."""
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mtsp.setup import setup_from_dict  # noqa: E402
from mtsp.validate.simulate import (_Model, _activation, simulate,  # noqa: E402
                                    simulate_with_single)


def two_task(kind="shared", activation="relu", inputs="shared", **training):
    d = {"name": "two", "tasks": [{"name": "A", "classes": 3, "noise": 0.5, "weight": 1.0},
                                  {"name": "B", "classes": 2, "noise": 0.2, "weight": 0.7,
                                   "rank": 1}],
         "teacher": {"norm": 1.5, "alignment": 0.6},
         "student": {"kind": kind, "init_scale": 0.3},
         "training": {"protocol": "online", "inputs": inputs, "lr": 0.4, "head_lr": 0.3,
                      "weight_decay": 0.2, "times": [0.5, 1.0], **training}}
    if inputs == "separate":
        d["tasks"][1]["share"] = 2.0
    if kind == "shared":
        d["student"].update(hidden=3, activation=activation)
    return setup_from_dict(d)


PUBLIC_GLM = {"tasks": [{"name": "A", "classes": 2, "noise": 0.3, "norm": 1.0}],
              "student": {"kind": "glm", "init_scale": 0.0},
              "training": {"protocol": "online", "lr": 0.5, "times": [1, 2, 4, 8]}}


@pytest.mark.parametrize("kind", ["shared", "glm"])
def test_initial_order_parameters_exact(kind):
    s = two_task(kind)
    N, S = 300, 3
    m = _Model(s, N, S, "cpu", torch.float64)
    m.init_weights(torch.Generator().manual_seed(1))
    T = s.gram()
    assert m.rank == 4  # task B has rank 1: T is singular
    BB = (m.B @ m.B.transpose(1, 2) / N).numpy()
    WW = (m.W @ m.W.transpose(1, 2) / N).numpy()
    WB = (m.W @ m.B.transpose(1, 2) / N).numpy()
    K = m.K
    for i in range(S):
        np.testing.assert_allclose(BB[i], T, atol=1e-10, rtol=0)
        np.testing.assert_allclose(WW[i], 0.3 ** 2 * np.eye(K), atol=1e-12, rtol=0)
        np.testing.assert_allclose(WB[i], 0.0, atol=1e-12)
    # seeds differ
    assert not torch.allclose(m.B[0], m.B[1])
    if kind == "shared":
        for i in range(S):
            for t, Vt in enumerate(s.heads()):
                np.testing.assert_array_equal(m.V[i, t, :s.classes[t]].numpy(), Vt)


def _autograd_step(s, m, W0, V0, x, y, present):
    """One SGD step of MODEL.md online dynamics through torch autograd of L = Σ_t w_t CE."""
    N = m.N
    W = W0.clone().requires_grad_(True)
    Vs = [V0[:, t, :C].clone().requires_grad_(True) if V0 is not None else None
          for t, C in enumerate(s.classes)]
    h = torch.einsum("skn,sn->sk", W, x) / math.sqrt(N)
    g, _ = _activation(m.act_name)
    a = g(h)
    L = 0.0
    for t, (C, o) in enumerate(zip(s.classes, s.offsets)):
        z = torch.einsum("sck,sk->sc", Vs[t], a) if m.kind == "shared" else h[:, o:o + C]
        ce = torch.logsumexp(z, -1) - z.gather(-1, y[:, t:t + 1]).squeeze(-1)
        L = L + (s.weights()[t] * present[:, t] * ce).sum()
    L.backward()
    eta, etaV, kappa = s.training.lr, s.training.head_lr, s.training.weight_decay
    # ∂L/∂W = (∂L/∂h) xᵀ/√N, so W − (η/√N)(∂L/∂h)xᵀ = W − η ∂L/∂W
    W1 = W0 - eta * W.grad - eta * kappa / N * W0
    V1 = [V0[:, t, :C] - etaV / N * Vs[t].grad if m.kind == "shared" else None
          for t, C in enumerate(s.classes)]
    return W1, V1


@pytest.mark.parametrize("kind,activation,inputs", [
    ("shared", "relu", "shared"), ("shared", "relu", "separate"), ("shared", "erf", "shared"),
    ("shared", "tanh", "shared"), ("shared", "linear", "shared"), ("glm", "linear", "shared")])
def test_step_matches_autograd(kind, activation, inputs):
    s = two_task(kind, activation, inputs)
    N, S = 50, 4
    m = _Model(s, N, S, "cpu", torch.float64)
    gen = torch.Generator().manual_seed(5)
    m.init_weights(gen)
    # move away from the special initial point (W B^T = 0, identical heads)
    m.W += torch.randn(m.W.shape, generator=gen, dtype=torch.float64)
    if m.V is not None:
        m.V[:, :, :, :] += 0.5 * torch.randn(m.V.shape, generator=gen, dtype=torch.float64)
        m.V[:, 1, 2:] = 0.0  # task B has 2 classes: padding rows stay zero
    x = 2.0 * torch.randn(S, N, generator=gen, dtype=torch.float64)
    y = torch.stack([torch.randint(0, C, (S,), generator=gen) for C in s.classes], -1)
    present = torch.ones(S, 2, dtype=torch.float64)
    if inputs == "separate":
        present = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]],
                               dtype=torch.float64)
    W0, V0 = m.W.clone(), None if m.V is None else m.V.clone()
    W1, V1 = _autograd_step(s, m, W0, V0, x, y, present)

    wm = present * m.weights
    wy = torch.nn.functional.one_hot(y, m.Cmax).to(torch.float64) * wm.unsqueeze(-1)
    m.step(x, wm, wy)
    torch.testing.assert_close(m.W, W1, atol=1e-12, rtol=1e-12)
    if kind == "shared":
        for t, C in enumerate(s.classes):
            torch.testing.assert_close(m.V[:, t, :C], V1[t], atol=1e-12, rtol=1e-12)
        assert torch.all(m.V[:, 1, 2:] == 0)
        assert not torch.allclose(m.V, V0)


def test_reproducible_with_fixed_seed():
    s = two_task("shared", "tanh", "separate")
    kw = dict(N=120, seeds=2, test_size=400, grid=5)
    r1 = simulate(s, seed=3, **kw).to_json_dict()
    r2 = simulate(s, seed=3, **kw).to_json_dict()
    r3 = simulate(s, seed=4, **kw).to_json_dict()
    assert r1 == r2
    assert r1 != r3


def test_json_schema_and_single():
    s = two_task("shared", "linear", "separate")
    fractions = []
    r = simulate_with_single(s, N=100, seeds=3, test_size=300, grid=4, progress=fractions.append)
    d = r.to_json_dict()
    json.dumps(d, allow_nan=False)
    assert set(d) == {"setup", "engine", "protocol", "times", "tasks", "N", "seeds", "single"}
    assert d["engine"] == "simulation" and d["protocol"] == "online"
    assert d["times"] == [0.5, 1.0] and d["N"] == 100 and d["seeds"] == 3
    keys = {"gen_error", "gen_error_se", "label_error", "test_loss", "best_gen_error",
            "best_gen_error_time", "best_test_loss", "best_test_loss_time"}
    for part in ("tasks", "single"):
        assert list(d[part]) == ["A", "B"]
        for name, task in d[part].items():
            assert set(task) == keys
            assert len(task["gen_error"]) == 2 and len(task["gen_error_se"]) == 2
            assert task["best_gen_error"] <= min(task["gen_error"]) + 1e-15
            assert 0 < task["best_gen_error_time"] <= 1.0 + 1e-12
    # best_* are the minima of the seed-averaged curves on the grid, at their argmin (a single
    # baseline's grid runs at pi_t · t and its best time is reported on the multitask clock)
    pi = s.shares()
    for ti, name in enumerate(("A", "B")):
        single = r.single_results[name]
        for run, curves, clock in ((r.tasks[name], r.curves[name], r.grid_times),
                                   (r.single[name], single.curves[name], single.grid_times / pi[ti])):
            for key in ("gen_error", "test_loss"):
                i = int(np.argmin(curves[key]))
                assert run[f"best_{key}"] == curves[key][i]
                assert run[f"best_{key}_time"] == pytest.approx(clock[i], abs=1e-12)
            # the value at the last requested time (t = 1) is the curve's last grid value
            assert curves["gen_error"][-1] == run["gen_error"][-1]
    # separate inputs: task t's baseline runs at pi_t * t
    np.testing.assert_allclose(r.single_results["A"].times, pi[0] * np.array([0.5, 1.0]))
    np.testing.assert_allclose(r.single_results["B"].times, pi[1] * np.array([0.5, 1.0]))
    assert fractions[-1] == pytest.approx(1.0)
    assert all(0 <= f <= 1 + 1e-12 for f in fractions)
    # order parameters at the requested times
    assert r.order_params["Q"].shape == (2, 3, 3) and r.order_params["R"].shape == (2, 3, 5)
    assert [v.shape for v in r.order_params["V"]] == [(2, 3, 3), (2, 2, 3)]


def test_simulate_dispatches_on_protocol():
    """simulate() runs every protocol (finite data: tests/test_finite_sim.py)."""
    d = {k: dict(v) if isinstance(v, dict) else v for k, v in PUBLIC_GLM.items()}
    d["training"] = {"protocol": "full_batch", "lr": 1.0, "alpha": 3.0, "times": [0.5]}
    r = simulate(setup_from_dict(d), N=30, seeds=2, test_size=100, grid=2)
    assert r.protocol == "full_batch" and r.solver["method"] == "rk4"
    d["training"] = {"protocol": "erm", "alpha": 3.0, "ridge": 0.5}
    r = simulate(setup_from_dict(d), N=30, seeds=2)
    assert r.protocol == "erm" and r.times is None and r.solver["method"] == "newton-cg"


def test_public_check_glm_online():
    """MODEL.md: glm, C = 2, noise 0.3, σ₀ = 0, lr 0.5: gen_error 0.2841, 0.2223, 0.1612, 0.1111
    at t = 1, 2, 4, 8 (N → ∞)."""
    r = simulate(setup_from_dict(PUBLIC_GLM), N=500, seeds=8, seed=0)
    g, se = r.tasks["A"]["gen_error"], r.tasks["A"]["gen_error_se"]
    ref = np.array([0.2841, 0.2223, 0.1612, 0.1111])
    assert np.all(np.abs(g - ref) <= 4 * se + 0.01), (g, se)
    assert r.tasks["A"]["best_gen_error"] <= g[-1]


def test_regenerated_test_set_is_fixed(monkeypatch):
    """Above the memory limit the test inputs are regenerated block by block, identically."""
    import mtsp.validate.simulate as simmod
    monkeypatch.setattr(simmod, "_MAX_TEST_BYTES", 0)
    monkeypatch.setattr(simmod, "_TEST_BLOCK", 70)
    s = two_task("shared", "erf")
    m = _Model(s, 60, 2, "cpu", torch.float64)
    m.init_weights(torch.Generator().manual_seed(0))
    m.W += torch.randn(m.W.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ts = simmod._TestSet(m, 200, seed=9)
    assert not ts.stored
    h1, h2 = ts.fields(), ts.fields()
    assert h1.shape == (2, 200, 3) and torch.equal(h1, h2)
    # labels were computed from the same regenerated inputs: fields of W = B give the teacher
    m.W = m.B.clone()
    z = ts.fields()
    assert torch.equal(m.pad(z).argmax(-1), ts.clean)
    # the block-wise evaluation equals the plain evaluation on the same inputs, held in memory
    m.init_weights(torch.Generator().manual_seed(2))
    m.W += torch.randn(m.W.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    gen, lab, ce = ts.evaluate()
    ts.X, ts.stored = torch.cat(list(ts._blocks()), dim=1), True
    gen_s, lab_s, ce_s = ts.evaluate()
    assert torch.equal(gen, gen_s) and torch.equal(lab, lab_s)
    torch.testing.assert_close(ce, ce_s, rtol=0, atol=1e-12)
    # a whole run on a regenerated test set: the same training as on a stored one (same seeds),
    # only the 200 test inputs per seed differ — measured |difference| 0.0075 in gen_error and
    # label_error (4 SE of two independent test samples of 2 × 200 points: ≈ 0.14)
    r = simulate(s, N=60, seeds=2, test_size=200, grid=3)
    monkeypatch.setattr(simmod, "_MAX_TEST_BYTES", 10**9)
    r_stored = simulate(s, N=60, seeds=2, test_size=200, grid=3)
    for key in ("gen_error", "label_error"):
        a, b = r.tasks["A"][key], r_stored.tasks["A"][key]
        np.testing.assert_allclose(a * 400, np.round(a * 400), atol=1e-9)  # a fraction of 2 × 200
        se = np.sqrt(2 * b * (1 - b) / 400)
        assert np.all(np.abs(a - b) <= 4 * se), (a, b)

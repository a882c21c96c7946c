"""The derivation layer: closed forms, the generated module, the equation sheet, the cache."""
import ast
import os
import sys

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

from mtsp.derive import derive_online, write_derivation
from mtsp.derive.closed_forms import orthant_probability, stein_linear
import mtsp.derive.codegen as cg
from mtsp.derive.codegen import generate_module, load_module
from mtsp.numeric.model import State, theory_model
from mtsp.numeric.online import Accuracy
from mtsp.numeric.online import rhs as reference_rhs
from mtsp.numeric.online import terms as numeric_terms
from mtsp.numeric.quadrature import gaussian_factor
from mtsp.setup import default_setup, setup_from_dict


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTSP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cg, "_loaded", {})
    monkeypatch.setattr(cg, "_loaded_mp", {})


def _glm(classes, noise=0.3, tasks=1, inputs="shared", rank=None):
    ts = [{"name": f"T{i}", "classes": classes, "noise": noise} for i in range(tasks)]
    if rank:
        ts[0]["rank"] = rank
    return setup_from_dict({"tasks": ts, "teacher": {"alignment": 0.5 if tasks > 1 else 0.0},
                            "student": {"kind": "glm"},
                            "training": {"protocol": "online", "lr": 0.5, "times": [1.0], "inputs": inputs}})


def _random_state(model, rng, scale=0.6):
    """A valid state: order parameters of actual weights W against a teacher B with B Bᵀ = T."""
    F = gaussian_factor(model.gram)
    B = np.hstack([F, np.zeros((model.M, model.K))])
    W = scale * rng.standard_normal((model.K, B.shape[1]))
    V = tuple(v + 0.3 * rng.standard_normal(v.shape) for v in model.heads0) if model.train_heads \
        else model.heads0
    return State(W @ W.T, W @ B.T, V)


def _mp_stein_1d(s_uu, c_lu):
    """E[1{u>0} ℓ] for scalar u by direct mpmath integration: E[1{u>0} u]·Cov(ℓ,u)/Var(u)."""
    with mp.workdps(30):
        su = mp.sqrt(s_uu)
        m1 = mp.quad(lambda x: x * mp.npdf(x, 0, su), [0, mp.inf])
        return float(m1 * c_lu / s_uu)


def test_orthant_closed_forms_against_mpmath():
    S = sp.Matrix([[2.0, 0.7], [0.7, 1.5]])
    p = float(orthant_probability(S))
    with mp.workdps(30):
        rho = mp.mpf(0.7) / mp.sqrt(mp.mpf(2.0) * mp.mpf(1.5))
        # P(X>0, Y>0) = ∫_0^∞ φ(x) Φ(ρx/√(1−ρ²)) dx
        ref = mp.quad(lambda x: mp.npdf(x) * mp.ncdf(rho * x / mp.sqrt(1 - rho ** 2)), [0, mp.inf])
    assert abs(p - float(ref)) < 1e-14


def test_stein_label_term_against_mpmath():
    out = stein_linear(sp.Matrix([[1.7]]), sp.Matrix([[0.4], [-0.9]]))
    for k, c in enumerate((0.4, -0.9)):
        assert abs(float(out[k]) - _mp_stein_1d(1.7, c)) < 1e-14


@pytest.mark.parametrize("C", [2, 3, 4])
def test_closed_label_terms_match_quadrature(C):
    """P(y=c) and E[1{y=c}(h, λ)] from the derivation vs the numerical cone integrals."""
    setup = _glm(C, noise=0.4)
    model = theory_model(setup)
    st = _random_state(model, np.random.default_rng(C))
    mod = load_module(model)
    closed = dict(zip(mod.CLOSED_NAMES, mod._closed_arrays(st.Q, st.R, st.V, model.gram, model.noise)))
    raw = numeric_terms(model, st, Accuracy(budget=200000))
    assert "L0" in closed
    err_L = np.abs(closed["L0"] - raw["L"][0]).max()
    assert err_L < 3e-6, err_L
    if "P0" in closed:
        assert np.abs(closed["P0"].ravel() - raw["P"][0]).max() < 3e-6


@pytest.mark.parametrize("make", [
    lambda: default_setup(),
    lambda: default_setup().replace(**{"training.inputs": "separate"}),
    lambda: default_setup().replace(**{"student.activation": "tanh", "student.hidden": 2}),
    lambda: _glm(3, tasks=2),
    lambda: _glm(3, noise=0.0, rank=1),  # degenerate label cones: closed forms must stand aside
])
def test_generated_rhs_matches_reference(make):
    """The generated engine (what `solve` runs) against the reference engine (what the Monte Carlo
    tests check), two random states per setup. Measured max |difference| over the five setups:
    1.03e-10 (the tanh trunk; the others ≤ 4.5e-11 or exact), entries of size 0.1–0.8."""
    setup = make()
    model = theory_model(setup)
    mod = load_module(model, setup.name)
    rng = np.random.default_rng(1)
    for _ in range(2):
        y = model.pack(_random_state(model, rng))
        a, b = reference_rhs(model, y), mod.rhs(model, y)
        np.testing.assert_allclose(b, a, atol=1e-9, rtol=0)


def _imports(src: str) -> set:
    imported = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in a generated module"
            imported.add(node.module)
    return imported


def test_generated_module_imports_the_kernel_and_defines_no_kernel_routine(tmp_path):
    """The generated module prints expressions only: its functions are the closed forms and the
    assembly, it imports numpy and the public kernel API, and it is a few hundred lines (the
    demo setup: 637; with the kernel pasted in, it was 2,928)."""
    from mtsp.numeric import kernel
    from mtsp.numeric.metrics import task_metrics
    setup = setup_from_dict({"tasks": [{"name": "A", "classes": 3, "noise": 0.3}, {"name": "B", "classes": 3}],
                             "teacher": {"alignment": 0.5},
                             "student": {"kind": "shared", "hidden": 4, "activation": "linear"},
                             "training": {"protocol": "online", "lr": 0.5, "times": [1.0]}})
    model = theory_model(setup)
    src = generate_module(model, "x")
    assert src == generate_module(model, "x")
    assert "Generated by mtsp.derive" in src.splitlines()[0]
    assert len(src.splitlines()) <= 1000
    assert _imports(src) == {"numpy", "mtsp.numeric.kernel"}
    functions = {n.name for n in ast.walk(ast.parse(src)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert functions == {"_closed_arrays", "_assemble"}, functions
    mod = load_module(model)
    assert mod.task_metrics is task_metrics and mod.Accuracy is Accuracy and isinstance(mod.SYSTEM, kernel.GeneratedSystem)
    assert "State y (length 58)" in mod.__doc__ and repr(mod.STRUCTURE) in mod.__doc__
    # it runs as a file of its own where mtsp is importable
    (tmp_path / "gen.py").write_text(src + "\nprint(STRUCTURE)\n")
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "gen.py"], capture_output=True, text=True, cwd=str(tmp_path),
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])})
    assert out.returncode == 0, out.stderr
    assert "online" in out.stdout


def test_cache_reuses_the_module(tmp_path):
    model = theory_model(default_setup())
    m1 = load_module(model)
    files = [f for f in os.listdir(os.environ["MTSP_CACHE_DIR"]) if f.endswith(".py")]
    assert len(files) == 1  # one generated module (beside it: its bytecode, point sets)
    assert files[0].endswith(f"_{cg.derive_fingerprint()}.py")
    other = default_setup().replace(**{"tasks.noisy.noise": 0.3, "teacher.alignment": 0.2})
    assert load_module(theory_model(other)) is m1  # same structure: no new derivation


def test_cache_is_pruned_least_recently_used_first(monkeypatch):
    """Beyond CACHE_ENTRIES generated modules, writing a new one removes the least recently used
    (with its bytecode); a module loaded from disk counts as used."""
    import importlib.util
    monkeypatch.setattr(cg, "CACHE_ENTRIES", 2)
    d = os.environ["MTSP_CACHE_DIR"]
    os.makedirs(d, exist_ok=True)
    stale = [os.path.join(d, f"online_{k:016x}_0000000000000000.py") for k in range(2)]
    for age, path in zip((300, 200), stale):
        with open(path, "w") as f:
            f.write("STRUCTURE = None\n")
        os.utime(path, (0, os.stat(path).st_mtime - age))
    import py_compile
    py_compile.compile(stale[0])
    load_module(theory_model(default_setup()))   # written: the oldest stale entry goes
    assert not os.path.exists(stale[0]) and not os.path.exists(importlib.util.cache_from_source(stale[0]))
    assert os.path.exists(stale[1])
    monkeypatch.setattr(cg, "_loaded", {})
    load_module(theory_model(default_setup()))   # from disk: now the most recently used
    load_module(theory_model(default_setup().replace(**{"student.hidden": 3})))  # written
    assert not os.path.exists(stale[1])
    assert len([f for f in os.listdir(d) if f.endswith(".py")]) == 2


def test_write_derivation(tmp_path):
    paths = write_derivation(default_setup(), str(tmp_path / "d"))
    names = sorted(os.path.basename(p) for p in paths)
    assert names == ["equations.md", "online_equations.py"]
    sheet = open(paths[0]).read()
    assert "\\frac{dR}{dt}" in sheet and "Stein" in sheet and "| $A0$" in sheet


def test_system_is_symbolic_in_parameters():
    s = derive_online(theory_model(default_setup()))
    free = {x.name for x in s.dR.free_symbols}
    assert {"eta", "kappa"} <= free and any(n.startswith("R_") for n in free)
    assert any(n.startswith("T_") for n in {x.name for e in s.closed.values() for x in e[1].free_symbols})


def test_generated_mp_module_imports_only_mpmath():
    from mtsp.derive.codegen import generate_mp_module
    setup = setup_from_dict({"tasks": [{"name": "A", "classes": 2, "noise": 0.3}, {"name": "B", "classes": 2}],
                             "teacher": {"alignment": 0.5},
                             "student": {"kind": "shared", "hidden": 2, "activation": "linear",
                                         "init_scale": 0.2},
                             "training": {"protocol": "online", "lr": 0.5, "times": [1]}})
    src = generate_mp_module(theory_model(setup), "x")
    assert src == generate_mp_module(theory_model(setup), "x")      # deterministic
    imported = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            imported.add(node.module.split(".")[0])
    assert imported <= {"numpy", "scipy", "math", "mpmath", "__future__"}, imported


def _nonlinear_setup(act, K, C, inputs):
    return setup_from_dict({"tasks": [{"name": "A", "classes": C, "noise": 0.3}, {"name": "B", "classes": 2}],
                            "teacher": {"alignment": 0.5},
                            "student": {"kind": "shared", "hidden": K, "activation": act, "init_scale": 0.7},
                            "training": {"protocol": "online", "lr": 0.5, "times": [1], "inputs": inputs}})


@pytest.mark.parametrize("act,K,C,inputs", [("tanh", 2, 3, "shared"), ("relu", 3, 2, "separate")])
def test_derived_mp_integrands_match_the_model_definitions(act, K, C, inputs):
    """The mp back-end's integrands (printed from derive.integrands) against MODEL.md's definitions
    evaluated directly in NumPy at random nodes and primitives: a_t = g′(h) ⊙ V_tᵀ softmax(V_t g),
    b_tc = g′(h) ⊙ V_t[c], L_tc = (h p_tc, A h p_tc + Cl_tc v_tc)."""
    from mtsp.derive.codegen import load_mp_module
    from mtsp.numeric.activations import activation
    model = theory_model(_nonlinear_setup(act, K, C, inputs))
    mod = load_mp_module(model)
    rng = np.random.default_rng(5)
    T, M = model.n_tasks, model.M
    V = [rng.normal(size=(c, K)) for c in model.classes]
    h = rng.normal(size=K)
    g, dg = activation(act)(h)
    p = [rng.dirichlet(np.ones(c)) for c in model.classes]
    v = [rng.normal(size=(c, c - 1)) for c in model.classes]
    A = rng.normal(size=(M, K))
    Cl = [rng.normal(size=(c, M, c - 1)) for c in model.classes]
    with mp.workdps(30):
        plain, lin = mod._h_integrand_mp([mp.matrix(x.tolist()) for x in V], [mp.mpf(x) for x in h],
                                         [mp.mpf(x) for x in g], [mp.mpf(x) for x in dg],
                                         [[mp.mpf(x) for x in q] for q in p],
                                         [[[mp.mpf(x) for x in r] for r in vt] for vt in v],
                                         [[mp.mpf(x) for x in r] for r in A],
                                         [[[[mp.mpf(x) for x in r] for r in m] for m in ct] for ct in Cl])
    z = [Vt @ g for Vt in V]
    s = [np.exp(zt - zt.max()) / np.exp(zt - zt.max()).sum() for zt in z]
    a = [dg * (Vt.T @ st) for Vt, st in zip(V, s)]
    b = [dg[None, :] * Vt for Vt in V]
    L = [np.array([np.concatenate([h * p[t][c], A @ h * p[t][c] + Cl[t][c] @ v[t][c]])
                   for c in range(model.classes[t])]) for t in range(T)]
    want = {}
    pairs = [(t, u) for t in range(T) for u in range(T)] if inputs == "shared" else [(t, t) for t in range(T)]
    for t, u in pairs:
        want[f"Eaa{t}{u}"] = np.outer(a[t], a[u])
        want[f"Eab{t}{u}"] = np.outer(a[t], p[u] @ b[u])
    for t in range(T):
        want[f"Esg{t}"] = np.outer(s[t], g)
        want[f"Eyg{t}"] = np.outer(p[t], g)
        want[f"Ebb{t}"] = sum(p[t][c] * np.outer(b[t][c], b[t][c]) for c in range(model.classes[t]))
        want[f"Ebl{t}"] = sum(np.outer(b[t][c], L[t][c]) for c in range(model.classes[t]))
        want[f"Lse{t}"] = np.log(np.exp(z[t]).sum())
        want[f"Eyz{t}"] = p[t] @ z[t]
    pos = 0
    assert {n for n, _, _ in mod.H_LAYOUT} == set(want)
    for name, r, c in mod.H_LAYOUT:
        got = np.array([float(x) for x in plain[pos:pos + r * c]]).reshape(r, c)
        pos += r * c
        np.testing.assert_allclose(got, np.reshape(want[name], (r, c)), rtol=1e-12, atol=1e-13, err_msg=name)
    assert pos == len(plain)
    got = np.array([float(x) for x in lin])
    np.testing.assert_allclose(got, np.concatenate(a), rtol=1e-12, atol=1e-13)
    for (ta, tb, d), f in mod.LABEL_LABEL_MP.items():   # Σ_c q_c b_ac b_bdᵀ in the cone y_b = d
        q = rng.dirichlet(np.ones(model.classes[ta]))
        with mp.workdps(30):
            got = f([mp.matrix(x.tolist()) for x in V], [mp.mpf(x) for x in dg], [mp.mpf(x) for x in q])[0]
        np.testing.assert_allclose(np.array([float(x) for x in got]).reshape(K, K),
                                   np.outer(q @ b[ta], b[tb][d]), rtol=1e-12, atol=1e-13)
    assert bool(mod.LABEL_LABEL_MP) == (inputs == "shared")


def test_derived_mp_linear_integrands_match_the_definitions():
    """Linear trunks: softmax(0, u) products, log(1 + Σ e^u) and p sᵀ as printed for mp."""
    from mtsp.derive.codegen import load_mp_module
    setup = setup_from_dict({"tasks": [{"name": "A", "classes": 3}, {"name": "B", "classes": 2, "noise": 0.5}],
                             "teacher": {"alignment": 0.5},
                             "student": {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.3},
                             "training": {"protocol": "online", "lr": 0.5, "times": [1]}})
    mod = load_mp_module(theory_model(setup))
    rng = np.random.default_rng(2)
    u = rng.normal(0, 3, 3)
    sm = lambda x: np.exp(np.r_[0, x]) / np.exp(np.r_[0, x]).sum()  # noqa: E731
    with mp.workdps(30):
        f = lambda name, x, p=None: mod.LINEAR_INTEGRANDS_MP[name]([mp.mpf(y) for y in x], p)  # noqa: E731
        plain, lin = f("self0", u[:2])
        s0 = sm(u[:2])
        np.testing.assert_allclose([float(x) for x in plain], np.r_[np.outer(s0, s0).ravel(), np.log1p(np.exp(u[:2]).sum())],
                                   rtol=1e-13)
        np.testing.assert_allclose([float(x) for x in lin], s0, rtol=1e-13)
        plain, _ = f("pair01", u)
        np.testing.assert_allclose([float(x) for x in plain], np.outer(s0, sm(u[2:])).ravel(), rtol=1e-13)
        p = rng.dirichlet(np.ones(3))
        plain, _ = f("labelsoft01", u[2:], [mp.mpf(x) for x in p])
        np.testing.assert_allclose([float(x) for x in plain], np.outer(p, sm(u[2:])).ravel(), rtol=1e-13)

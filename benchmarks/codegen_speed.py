"""Speed of the generated NumPy right-hand side against (a) `lambdify` of the SymPy expressions
and (b) the mpmath back-end, in one run (two-task shared linear trunk, C = 2, K = 2).

What (a) is: an *unreduced integral* route is ill-defined without Monte Carlo (the raw
expectations over the argmax indicator have no deterministic rule), so the lambdify route keeps
the same quadrature integrals and replaces the generated code by `sympy.lambdify` of the
unsimplified, un-CSE'd symbolic closed forms and assembled equations (dQ, dR, dV_t, losses);
that isolates what the code generator (CSE, inlined array access) buys.  The closed-form part
alone is also timed, generated vs lambdified.
Run: PYTHONPATH=. python benchmarks/codegen_speed.py
"""
import time

import mpmath
import numpy as np
import sympy as sp

from mtsp.derive import GENERATED
from mtsp.derive.codegen import load_module
from mtsp.derive.system import derive_online
from mtsp.numeric.model import State, theory_model
from mtsp.numeric.engine import generated_system
from mtsp.numeric.mp_online import MpRules, mp_state
from mtsp.numeric.online import Accuracy
from mtsp.numeric.quadrature import gaussian_factor
from mtsp.setup import setup_from_dict


def timeit(f, reps):
    f()
    t0 = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t0) / reps


def main():
    su = setup_from_dict({
        "tasks": [{"name": "A", "classes": 2, "noise": 0.5}, {"name": "B", "classes": 2, "noise": 1.0}],
        "teacher": {"alignment": 0.9}, "student": {"kind": "shared", "hidden": 2, "activation": "linear"},
        "training": {"protocol": "online", "lr": 0.5, "times": [1.0]}})
    model = theory_model(su)
    rng = np.random.default_rng(0)
    F = gaussian_factor(model.gram)
    B = np.hstack([F, np.zeros((model.M, model.K))])
    W = 0.6 * rng.standard_normal((model.K, B.shape[1]))
    st = State(W @ W.T, W @ B.T, tuple(v + 0.3 * rng.standard_normal(v.shape) for v in model.heads0))
    mod = load_module(model)
    acc = Accuracy()

    s = derive_online(model)
    closed_names = sorted(s.closed)
    closed_exprs = [e for k in closed_names for e in s.closed[k][1]]
    outs = [e for m in [s.dQ, s.dR] + list(s.dV) + [sp.Matrix(s.loss)] for e in m]
    integral_syms = sorted({x for e in outs for x in e.free_symbols} - set().union(
        s.Q.free_symbols, s.R.free_symbols, *[v.free_symbols for v in s.V], s.T.free_symbols,
        set(s.sigma), set(s.w), set(s.pi), {s.eta, s.etav, s.kappa}), key=lambda x: x.name)
    params = sorted(set().union(s.Q.free_symbols, s.R.free_symbols, *[v.free_symbols for v in s.V],
                                s.T.free_symbols, set(s.sigma), set(s.w), set(s.pi),
                                {s.eta, s.etav, s.kappa}), key=lambda x: x.name)
    f_closed = sp.lambdify(params, closed_exprs, "numpy", cse=False)
    f_assemble = sp.lambdify(params + integral_syms, outs, "numpy", cse=False)

    def values():
        v = {}
        K, M = model.K, model.M
        for i in range(K):
            for j in range(K):
                v[f"Q_{min(i, j)}_{max(i, j)}"] = st.Q[i, j]
            for j in range(M):
                v[f"R_{i}_{j}"] = st.R[i, j]
        for i in range(M):
            for j in range(M):
                v[f"T_{min(i, j)}_{max(i, j)}"] = model.gram[i, j]
        for t, V in enumerate(st.V):
            for i in range(V.shape[0]):
                for j in range(V.shape[1]):
                    v[f"V{t}_{i}_{j}"] = V[i, j]
        for t in range(model.n_tasks):
            v[f"sigma_{t}"], v[f"w_{t}"], v[f"pi_{t}"] = model.noise[t], model.weights[t], model.shares[t]
        v["eta"], v["eta_V"], v["kappa"] = model.lr, model.head_lr, model.weight_decay
        return v

    def lambdify_rhs():
        v = values()
        pv = [v[p.name] for p in params]
        terms = mod.integrals(model, st, acc)
        closed = f_closed(*pv)
        iv = []
        for x in integral_syms:
            name = x.name.split("_")[0]
            idx = x.name.split("_")[1:]
            a = terms[name]
            iv.append(float(a) if not idx else float(np.asarray(a)[int(idx[0]), int(idx[1])]))
        return closed, f_assemble(*(pv + iv))

    t_gen = timeit(lambda: mod.rhs_state(model, st, acc), 50)
    t_lam = timeit(lambdify_rhs, 50)
    t_cg = timeit(lambda: mod._closed_arrays(st.Q, st.R, st.V, model.gram, model.noise), 2000)
    pv0 = [values()[p.name] for p in params]
    t_cl = timeit(lambda: f_closed(*pv0), 2000)
    with mpmath.workdps(30):
        m = mp_state(st)
        system = generated_system(GENERATED, model, "", "mpmath")
        t_mp = timeit(lambda: system.rhs_state(model, m, rules=MpRules(24)), 2)
    print(f"generated NumPy RHS        {t_gen * 1e3:9.3f} ms")
    print(f"lambdify (same integrals)  {t_lam * 1e3:9.3f} ms   ratio {t_lam / t_gen:6.2f}x")
    print(f"mpmath back-end (dps 30)   {t_mp * 1e3:9.1f} ms   ratio {t_mp / t_gen:8.0f}x")
    print(f"closed forms only: generated {t_cg * 1e6:.1f} µs, lambdify {t_cl * 1e6:.1f} µs "
          f"(ratio {t_cl / t_cg:.2f}x)")


if __name__ == "__main__":
    main()

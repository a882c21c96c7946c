"""Where a linear trunk's softmax integrals must be split into the student's argmax cones (SPLIT_SPREAD).

`mtsp check examples/model_example.toml` failed at t = 13.3 (task B's logit differences spread
2.88, just below the old SPLIT_SPREAD = 3): the smooth Gauss–Hermite rule over the logit
differences missed E[s sᵀ] by 2e-5.  Two parts:

    python benchmarks/split_spread.py errors
        E[s_B s_Bᵀ] and E[lse z_B] at the example's t = 13.3 state with task B's head scaled (spread
        1.2 … 3.5), by both routes (`SoftmaxRoute` with and without task B wide, executed by
        `online._softmax_expectation`), against an independent reference: the trapezoid rule on
        a 1200² grid over h (exponentially convergent here; 600² differs by ≤ 3e-13).
    python benchmarks/split_spread.py solves BASE_TREE [--repeats 3]
        double solves (default accuracy, `mtsp.solve`) of the linear examples and the demo, this
        tree against BASE_TREE (a checkout of the base commit), interleaved in fresh processes:
        best wall times over 3 interleaved rounds and the largest change of any printed number.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SETUPS = ["examples/model_example.toml", "examples/two_related_one_noisy.toml",
          "examples/unrelated_narrow_trunk.toml", "demo"]


def reference(st, t: int, n: int = 1200):
    """E[s sᵀ] and E[lse z] of task t, z = V_t h, h ~ N(0, Q) (K = 2): trapezoid rule on [-13, 13]²."""
    L = np.linalg.cholesky(np.asarray(st.Q, float))
    x = np.linspace(-13.0, 13.0, n)
    w = np.exp(-x ** 2 / 2)
    w /= w.sum()
    X = np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    W = np.outer(w, w).ravel()
    z = (X @ L.T) @ np.asarray(st.V[t], float).T
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    S = e.sum(axis=1, keepdims=True)
    s = e / S
    return np.einsum("p,pi,pj->ij", W, s, s), W @ (m[:, 0] + np.log(S[:, 0]))


def self_term(model, st, t: int, wide: bool):
    """E[s_t s_tᵀ] and E[lse z_t] by the double path's "self" route, split (wide) or smooth."""
    from mtsp.numeric.online import (Accuracy, SoftmaxRoute, _diff_rows, _lse_from_diffs,
                                     _softmax_expectation, _softmax_from_diffs)
    from mtsp.numeric.quadrature import gaussian_factor
    F = gaussian_factor(model.field_cov(st))
    C = model.classes[t]

    def fn(u):
        sm = _softmax_from_diffs(u)
        return np.concatenate([(sm[:, :, None] * sm[:, None, :]).reshape(len(u), -1),
                               _lse_from_diffs(u)[:, None]], axis=1), None
    route = SoftmaxRoute("self", t, t, (t,), wide=(t,) if wide else ())
    r = _softmax_expectation(model, st, F, None, (t,), _diff_rows(model.rows_logits(st, t)), fn, None,
                             Accuracy(), route=route)
    return r.plain[:C * C].reshape(C, C), r.plain[-1]


def errors():
    from mtsp.api import solve
    from mtsp.numeric.model import State, theory_model
    from mtsp.numeric.online import SPLIT_SPREAD, _diff_rows
    from mtsp.numeric.quadrature import gaussian_factor
    from mtsp.setup import load_setup
    setup = load_setup("examples/model_example.toml")
    model = theory_model(setup)
    res = solve(setup)
    st0 = res.state(40 / 3)
    print(f"E[s_B s_Bᵀ], E[lse z_B] at the model example's t = 13.3 state, task B's head scaled; relative "
          f"error against the trapezoid reference (SPLIT_SPREAD = {SPLIT_SPREAD})")
    print(f"{'scale':>5} {'spread':>6}   {'smooth: E[ssᵀ]':>14} {'E[lse]':>8}   {'split: E[ssᵀ]':>13} {'E[lse]':>8}")
    for k in (0.42, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0, 1.04, 1.2):
        V = [np.asarray(v, float) for v in st0.V]
        V[1] = V[1] * k
        st = State(st0.Q, st0.R, tuple(V))
        spread = np.linalg.norm(_diff_rows(model.rows_logits(st, 1)) @ gaussian_factor(model.field_cov(st)), 2)
        B, lse = reference(st, 1)
        row = f"{k:5.2f} {spread:6.2f}"
        for wide in (False, True):
            Bq, lq = self_term(model, st, 1, wide)
            row += f"   {np.abs(Bq - B).max() / np.abs(B).max():14.1e} {abs(lq - lse) / abs(lse):8.1e}"
        print(row, flush=True)


def one_tree(repeats: int):
    """Solves every setup `repeats` times in this process; prints {name: [best seconds, json]}."""
    from mtsp.api import solve
    from mtsp.setup import default_setup, load_setup
    out = {}
    for name in SETUPS:
        setup = default_setup() if name == "demo" else load_setup(name)
        best, js = float("inf"), None
        for _ in range(repeats):
            t0 = time.perf_counter()
            js = solve(setup).to_json_dict()
            best = min(best, time.perf_counter() - t0)
        out[name] = [best, js]
    print(json.dumps(out))


def _numbers(x):
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in _numbers(x[k])]
    if isinstance(x, (list, tuple)):
        return [v for e in x for v in _numbers(e)]
    return [float(x)] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


def solves(base: str, repeats: int, rounds: int = 3):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = {"base": [], "this": []}
    for _ in range(rounds):   # interleaved: base, this, base, this
        for label, tree in (("base", base), ("this", here)):
            env = dict(os.environ, PYTHONPATH=tree)
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "_one", "--repeats", str(repeats)],
                               cwd=tree, env=env, capture_output=True, text=True, check=True)
            runs[label].append(json.loads(p.stdout.strip().splitlines()[-1]))
    print(f"{'setup':40s} {'base s':>7s} {'this s':>7s}  max |change| of any number (this vs base)")
    for name in SETUPS:
        tb = min(r[name][0] for r in runs["base"])
        tt = min(r[name][0] for r in runs["this"])
        a, b = np.array(_numbers(runs["base"][0][name][1])), np.array(_numbers(runs["this"][0][name][1]))
        d = float(np.abs(a - b).max()) if a.shape == b.shape else float("nan")
        print(f"{name:40s} {tb:7.2f} {tt:7.2f}  {d:.2e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["errors", "solves", "_one"])
    ap.add_argument("base", nargs="?")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    if a.what == "errors":
        errors()
    elif a.what == "_one":
        one_tree(a.repeats)
    else:
        solves(a.base, a.repeats)


if __name__ == "__main__":
    main()

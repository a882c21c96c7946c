"""Same numbers before / after a change of the kernel: run it with PYTHONPATH at each tree and compare.

- double_kernel: a SHA-256 of 375 `quadrature.cone_expectation` results (random cones, projections,
  linear rows; product / Sobol' / RQMC rules, budgets, sign batches, wide-sector halves, ties,
  pure probabilities and closed orthants) — bitwise;
- double_linear_terms: a SHA-256 of `online.linear_terms` at 48 states (six linear / glm structures,
  spreads from small to widely split logits) at the default accuracy and with fast_labels=False;
- mp_kernel: 10 `quadrature.cone_expectation` integrals in mp (`mp_quadrature.mp_rule`) printed to 25 digits, with their times.

    PYTHONPATH=/path/to/tree python benchmarks/kernel_same_numbers.py > out.txt   (diff two trees' outputs)
"""
import hashlib
import time

import mpmath
import numpy as np

from mtsp.numeric.model import State, theory_model
from mtsp.numeric.independent_checks import pointwise
from mtsp.numeric.cone import MP, gaussian_factor as factor_in
from mtsp.numeric.mp_quadrature import mp_rule
from mtsp.numeric.online import Accuracy, linear_terms
from mtsp.numeric.quadrature import cone_expectation, gaussian_factor, orthant_probability
from mtsp.setup import setup_from_dict


def double_kernel():
    rng = np.random.default_rng(3)
    h = hashlib.sha256()
    def fn(p):
        z = np.hstack([np.zeros((p.shape[0], 1)), p[:, :2]])
        e = np.exp(z - z.max(1, keepdims=True))
        s = e / e.sum(1, keepdims=True)
        return np.hstack([s, np.log(e.sum(1, keepdims=True)) + z.max(1, keepdims=True)]), s
    vals = []
    for trial in range(60):
        n = 6
        X = rng.standard_normal((n, n - (trial % 3 == 0)))
        cov = X @ X.T / n
        F = gaussian_factor(cov)
        nc = trial % 4
        A = rng.standard_normal((nc, n))
        if nc >= 2 and trial % 5 == 0:
            A[1] = -A[0] + 0.3 * A[1]
        P = rng.standard_normal((2, n))
        L = rng.standard_normal((2, n))
        kw = [dict(budget=4000), dict(rule="product", n_cone=10, n_gh=8), dict(budget=200000), dict(rule="qmc", n_qmc=2**10),
              dict(budget=3000, split_wide=True), dict(rule="rqmc", n_qmc=256, replicates=4)][trial % 6]
        cone = (A, np.array([i % 2 == 0 for i in range(nc)])) if trial % 7 == 0 and nc else A
        r = cone_expectation(F, cone, P, fn, L, **kw)
        vals += [r.plain, r.linear, r.plain_se]
        r = cone_expectation(F, cone, np.zeros((0, n)), None, budget=2000)
        vals.append(r.plain)
        if nc:
            sb = np.array([[1] * nc, [-1] + [1] * (nc - 1)])
            r = cone_expectation(F, A, P, fn, L, budget=3000, sign_batch=sb)
            vals += [r.plain, r.linear]
        if nc and nc <= 3:
            vals.append(np.array([orthant_probability(A @ cov @ A.T) or -1.0]))
    for v in vals:
        if v is not None:
            h.update(np.ascontiguousarray(np.asarray(v, float)).tobytes())
    print(len(vals), h.hexdigest())


def double_linear_terms():
    h = hashlib.sha256()
    n = 0
    for C, K, inputs, kind in [(3, 2, "shared", "shared"), (2, 2, "shared", "shared"), (3, 1, "shared", "shared"),
                               (3, 2, "separate", "shared"), (3, None, "shared", "glm"), ((3, 2), 2, "shared", "shared")]:
        cl = C if isinstance(C, tuple) else (C, C)
        stu = {"kind": "glm"} if kind == "glm" else {"kind": "shared", "hidden": K, "activation": "linear"}
        su = setup_from_dict({"tasks": [{"name": "A", "classes": cl[0], "noise": 0.5}, {"name": "B", "classes": cl[1], "noise": 0.1}],
                              "teacher": {"alignment": 0.8, "norm": 2.0}, "student": stu,
                              "training": {"protocol": "online", "lr": 0.5, "times": [1.0], "inputs": inputs}})
        m = theory_model(su)
        for seed, scale in [(0, 0.3), (1, 1.5), (2, 4.0), (3, 8.0)]:
            rng = np.random.default_rng(seed)
            F = gaussian_factor(m.gram)
            B = np.hstack([F, np.zeros((m.M, m.K))])
            W = scale * rng.standard_normal((m.K, B.shape[1])) + scale * 0.3 * rng.standard_normal((m.K, m.M)) @ B
            st = State(W @ W.T, W @ B.T, tuple(v + rng.standard_normal(v.shape) for v in m.heads0))
            fac = gaussian_factor(m.field_cov(st))
            for acc in (Accuracy(), Accuracy(fast_labels=False)):
                terms = linear_terms(m, st, fac, acc)
                for key in sorted(terms):
                    v = terms[key]
                    items = sorted(v.items()) if isinstance(v, dict) else list(enumerate(v)) if isinstance(v, list) else [(0, v)]
                    for k, x in items:
                        h.update(np.ascontiguousarray(np.asarray(x, float)).tobytes())
                        n += 1
    print(n, h.hexdigest())


def mp_kernel():
    mpmath.mp.dps = 30
    rng = np.random.default_rng(5)
    def fn(p):
        z = [mpmath.mpf(0)] + list(p[:2])
        m = max(z)
        e = [mpmath.exp(x - m) for x in z]
        s = mpmath.fsum(e)
        return [x / s for x in e] + [m + mpmath.log(s)], [x / s for x in e]
    t_all = time.perf_counter()
    for case, (nc, npj, nodes) in enumerate([(0, 1, None), (0, 2, None), (1, 1, None), (2, 0, None), (2, 1, 16),
                                              (1, 2, 16), (2, 2, 10), (3, 0, None), (2, 1, None), (3, 1, 8)]):
        n = 6
        X = rng.standard_normal((n, n))
        cov = X @ X.T / n
        A = rng.standard_normal((nc, n))
        P = rng.standard_normal((max(npj, 2), n))[:max(npj, 2)]
        L = rng.standard_normal((2, n))
        F = factor_in(MP, MP.rows(cov))
        t0 = time.perf_counter()
        if npj == 0:
            r = cone_expectation(F, A, np.zeros((0, n)), None, **mp_rule(A, None, nodes))
            r2 = cone_expectation(F, A, np.zeros((0, n)), None, closed=False, **mp_rule(A, None, nodes))
            vals = list(r.plain) + list(r2.plain)
        else:
            Pp = P[:npj] if npj >= 2 else np.vstack([P[:1], P[:1] * 0.5])
            r = cone_expectation(F, A, Pp, pointwise(fn), L, reduce=True, **mp_rule(A, fn, nodes))
            vals = list(r.plain) + [x for row in r.linear for x in row]
        dt = time.perf_counter() - t0
        print(f"case {case} cone {nc} proj {npj} nodes {nodes} time {dt:.3f}")
        for v in vals:
            print("  ", mpmath.nstr(v, 25))
    print(f"total {time.perf_counter() - t_all:.2f} s")


if __name__ == "__main__":
    double_kernel()
    double_linear_terms()
    mp_kernel()

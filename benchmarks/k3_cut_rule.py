"""Accuracy of the K = 3 cut rule for the errors of nonlinear trunks (`numeric/tie_cuts.py`).

Random states of one-task K = 3 trunks (relu / tanh / erf in turn, C = 3, teachers of norm 1
and 3, every fourth noisy, wide and correlated Q, heads of random scale): gen_error and
label_error at (24, 32, 24) nodes (`accuracy="high"`'s) and at (32, 48, 40) against the rule at
(64, 64, 48), and the default randomised-QMC tier's distance in its standard errors.
Prints one line per state and the worst differences.
Run: PYTHONPATH=. python benchmarks/k3_cut_rule.py [--states 30] [--seed 0]
"""
import argparse
import time

import numpy as np

from mtsp.numeric.metrics import task_metrics
from mtsp.numeric.model import State, theory_model
from mtsp.numeric.online import Accuracy
from mtsp.numeric.quadrature import gaussian_factor
from mtsp.setup import setup_from_dict

TIERS = {"(24, 32, 24)": (24, 32, 24), "(32, 48, 40)": (32, 48, 40)}
REFERENCE = (64, 64, 48)


def random_case(seed: int):
    act = ["tanh", "erf", "relu"][seed % 3]
    su = setup_from_dict({"tasks": [{"name": "A", "classes": 3, "noise": 0.3 * (seed % 4 == 0)}],
                          "teacher": {"norm": [1.0, 3.0][seed % 2]},
                          "student": {"kind": "shared", "hidden": 3, "activation": act},
                          "training": {"protocol": "online", "lr": 0.5, "times": [1.0]}})
    m = theory_model(su)
    rng = np.random.default_rng(seed)
    B = np.hstack([gaussian_factor(m.gram), np.zeros((m.M, m.K))])
    W = rng.uniform(0.3, 1.5) * rng.standard_normal((m.K, B.shape[1]))
    V = tuple(rng.uniform(0.5, 3) * rng.standard_normal(v.shape) for v in m.heads0)
    return act, m, State(W @ W.T, W @ B.T, V)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--states", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    worst = {k: 0.0 for k in TIERS}
    zmax = 0.0
    for seed in range(a.seed, a.seed + a.states):
        act, m, st = random_case(seed)
        t0 = time.perf_counter()
        ref = task_metrics(m, st, Accuracy(cut_nodes3=REFERENCE), loss=False)[0]
        t_ref = time.perf_counter() - t0
        line = f"{seed:3d} {act:5s} gen {ref.gen_error:.10f}"
        for name, n in TIERS.items():
            t0 = time.perf_counter()
            r = task_metrics(m, st, Accuracy(cut_nodes3=n), loss=False)[0]
            dt = time.perf_counter() - t0
            d = max(abs(r.gen_error - ref.gen_error), abs(r.label_error - ref.label_error))
            worst[name] = max(worst[name], d)
            line += f"  {name} {d:.1e} ({dt:.2f} s)"
        q = task_metrics(m, st, Accuracy(cut_nodes3=()), loss=False)[0]
        z = (q.gen_error - ref.gen_error) / q.gen_error_se
        zmax = max(zmax, abs(z))
        print(line + f"  ref {t_ref:.1f} s  qmc se {q.gen_error_se:.1e} z {z:+.2f}", flush=True)
    print("worst difference from", REFERENCE, {k: f"{v:.1e}" for k, v in worst.items()},
          f"max |z| of the QMC tier {zmax:.2f}")


if __name__ == "__main__":
    main()

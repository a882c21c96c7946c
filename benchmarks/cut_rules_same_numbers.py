"""Same numbers and speed of the cut rules for the errors of nonlinear trunks (`numeric/tie_cuts.py`,
`metrics`, in mp `mp_online.task_metrics_mp`): on random states (tanh / erf / relu, K = 1, 2, 3,
C = 2, 3, noiseless and noisy tasks) the double gen_error / label_error (K ≤ 2 at the default
nodes, K = 3 at (12, 16, 12)) as exact float reprs, and the mp gen_error / label_error /
test_loss at dps 20 (K ≤ 2: 24 outer nodes, 16 loss nodes; K = 3: (6, 8, 6)) as 20-digit strings.

    PYTHONPATH=. python benchmarks/cut_rules_same_numbers.py --out FILE.json    # record
    python benchmarks/cut_rules_same_numbers.py --compare A.json B.json         # max differences
    python benchmarks/cut_rules_same_numbers.py --time BEFORE_TREE AFTER_TREE [--rounds 3]

Run once on the tree before a change and once after, and compare (`--compare`); `--time` times four
cases (double K = 2 at the default nodes, double K = 3 at (12, 16, 12), mp K = 2 with the loss,
mp K = 3 at (6, 6, 6) without it) in child processes alternating between the two trees (each tree
needs this file), interleaved, and prints each tree's per-case minimum and median.
"""
import argparse
import json
import time

import mpmath
import numpy as np

from mtsp.numeric.metrics import task_metrics
from mtsp.numeric.model import State, theory_model
from mtsp.numeric.online import Accuracy
from mtsp.numeric.quadrature import gaussian_factor
from mtsp.setup import setup_from_dict


def random_case(seed: int):
    act = ["tanh", "erf", "relu"][seed % 3]
    K = [1, 2, 2, 3][seed % 4]
    C = [2, 3][(seed // 2) % 2]
    su = setup_from_dict({"tasks": [{"name": "A", "classes": C, "noise": 0.3 * (seed % 3 == 1)}],
                          "teacher": {"norm": [1.0, 3.0][(seed // 3) % 2]},
                          "student": {"kind": "shared", "hidden": K, "activation": act},
                          "training": {"protocol": "online", "lr": 0.5, "times": [1.0]}})
    m = theory_model(su)
    rng = np.random.default_rng(seed)
    B = np.hstack([gaussian_factor(m.gram), np.zeros((m.M, m.K))])
    W = rng.uniform(0.3, 1.5) * rng.standard_normal((m.K, B.shape[1]))
    V = tuple(rng.uniform(0.5, 3) * rng.standard_normal(v.shape) for v in m.heads0)
    return f"{seed} {act} K={K} C={C}", m, State(W @ W.T, W @ B.T, V)


def double_case(m, st):
    acc = Accuracy(cut_nodes3=(12, 16, 12)) if m.K == 3 else Accuracy()
    r = task_metrics(m, st, acc, loss=False)[0]
    return [r.gen_error, r.label_error]


def mp_case(m, st):
    with mpmath.workdps(20):
        r = errors_mp(m, st, (6, 8, 6) if m.K == 3 else 24, 16)
        return [mpmath.nstr(x, 20) for x in r]


def errors_mp(m, st, nodes, loss_nodes, loss=True):
    """(gen_error, label_error, test_loss) of task 0 in mp at the cut rule's ``nodes`` (K = 3: per level)."""
    from dataclasses import replace

    from mtsp.numeric.mp_online import MP_ACCURACY, task_metrics_mp
    nodes = dict(cut_nodes3=nodes) if m.K == 3 else dict(cut_nodes=nodes, cut_loss_nodes=loss_nodes)
    return task_metrics_mp(m, st, acc=replace(MP_ACCURACY, **nodes), loss=loss, tasks=[0])[0]


TIMED = {"double K=2": (9, "double"), "double K=3": (3, "double"), "mp K=2": (9, "mp"), "mp K=3": (23, "mp3")}


def time_cases():
    """Seconds of each of TIMED in this process (one JSON line)."""
    out = {}
    for name, (seed, kind) in TIMED.items():
        _, m, st = random_case(seed)
        t0 = time.perf_counter()
        if kind == "double":
            double_case(m, st)
        else:
            with mpmath.workdps(20):
                if kind == "mp":
                    errors_mp(m, st, 24, 16)
                else:
                    errors_mp(m, st, (6, 6, 6), None, loss=False)
        out[name] = time.perf_counter() - t0
    print(json.dumps(out))


def interleaved(trees, rounds):
    import os
    import subprocess
    import sys
    times = {t: [] for t in trees}
    for r in range(rounds):
        for tree in (trees if r % 2 == 0 else trees[::-1]):
            env = dict(os.environ, PYTHONPATH=tree)
            res = subprocess.run([sys.executable, os.path.join(tree, "benchmarks", "cut_rules_same_numbers.py"),
                                  "--time-here"], env=env, cwd=tree, capture_output=True, text=True, check=True)
            times[tree].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(r, tree, times[tree][-1], flush=True)
    for tree, rows in times.items():
        print(tree, {k: f"min {min(x[k] for x in rows):.2f} s, median {np.median([x[k] for x in rows]):.2f} s"
                     for k in TIMED})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--compare", nargs=2)
    ap.add_argument("--time", nargs=2)
    ap.add_argument("--time-here", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--states", type=int, default=24)
    a = ap.parse_args()
    if a.time_here:
        return time_cases()
    if a.time:
        return interleaved(a.time, a.rounds)
    if a.compare:
        A, B = (json.load(open(f)) for f in a.compare)
        worst_d = worst_mp = 0.0
        bitwise = 0
        for k in A:
            d = max(abs(x - y) for x, y in zip(A[k]["double"], B[k]["double"]))
            bitwise += A[k]["double"] == B[k]["double"]
            with mpmath.workdps(30):
                mp = max(abs(mpmath.mpf(x) - mpmath.mpf(y)) for x, y in zip(A[k]["mp"], B[k]["mp"]))
            same = A[k]["mp"] == B[k]["mp"]
            print(f"{k:22s} double {d:.1e}  mp {float(mp):.1e} {'(same 20-digit strings)' if same else ''}")
            worst_d, worst_mp = max(worst_d, d), max(worst_mp, float(mp))
        print(f"{len(A)} states: double bitwise equal in {bitwise}, max double difference {worst_d:.1e}; "
              f"max mp difference {worst_mp:.1e}")
        return
    out = {}
    for seed in range(a.states):
        name, m, st = random_case(seed)
        t0 = time.perf_counter()
        d = double_case(m, st)
        t1 = time.perf_counter()
        p = mp_case(m, st)
        t2 = time.perf_counter()
        out[name] = {"double": d, "mp": p, "seconds": [t1 - t0, t2 - t1]}
        print(name, d, p, f"{t1 - t0:.2f} s {t2 - t1:.2f} s", flush=True)
    if a.out:
        json.dump(out, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()

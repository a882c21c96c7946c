"""Seconds of the metrics in double (`metrics.task_metrics`, default accuracy, best of REPEAT) and in mp
(`mp_online.task_metrics_mp`, dps 20, one process) at the double solve's state of two two-task setups of
`mp_solve.setup`: a nonlinear tanh K = 2, C = 2 trunk at t = 1 and a linear K = 2, C = 3 trunk at t = 1 (mp
nodes 16), with the numbers (17 / 22 digits) so that two trees can be compared.  Only the API both sides of
issue 14's metrics change offer is used, so one copy of this file times any tree:

    python benchmarks/metrics_speed.py --trees BEFORE_TREE AFTER_TREE [--rounds 3]   # interleaved, child processes
    PYTHONPATH=TREE python benchmarks/metrics_speed.py                             # one tree, one JSON line
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPEAT = 5


def here():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
    import mpmath
    from mp_solve import setup

    from mtsp.derive import GENERATED
    from mtsp.numeric.metrics import task_metrics
    from mtsp.numeric.model import theory_model
    from mtsp.numeric.mp_online import task_metrics_mp
    from mtsp.numeric.solve import solve_online
    out = {}
    for name, su, nodes in (("tanh K=2", setup(2, 1.0, "tanh", 2), None), ("linear K=2 C=3", setup(3, 1.0, "linear", 2), 16)):
        model = theory_model(su)
        st = solve_online(su, times=[1.0], generated=GENERATED, processes=1).state(1.0)
        best = float("inf")
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            d = task_metrics(model, st)
            best = min(best, time.perf_counter() - t0)
        with mpmath.workdps(20):
            t0 = time.perf_counter()
            m = task_metrics_mp(model, st, nodes, processes=1)
            t_mp = time.perf_counter() - t0
            out[name] = {"double s": best, "mp s": t_mp,
                         "double": [repr(float(x)) for r in d for x in (r.gen_error, r.label_error, r.test_loss)],
                         "mp": [mpmath.nstr(x, 22) for r in m for x in r]}
    print(json.dumps(out))


def interleaved(trees, rounds):
    me = os.path.abspath(__file__)
    runs = {t: [] for t in trees}
    for r in range(rounds):
        for tree in (trees if r % 2 == 0 else trees[::-1]):
            env = dict(os.environ, PYTHONPATH=tree)
            res = subprocess.run([sys.executable, me], env=env, cwd=tree, capture_output=True, text=True, check=True)
            runs[tree].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(r, tree, {k: (f"double {v['double s']:.4f} s", f"mp {v['mp s']:.2f} s")
                            for k, v in runs[tree][-1].items()}, flush=True)
    first = runs[trees[0]][0]
    for tree, rs in runs.items():
        same = all(x[k]["double"] == first[k]["double"] and x[k]["mp"] == first[k]["mp"] for x in rs for k in first)
        print(tree, "numbers identical to", trees[0], "round 0:", same)
        for k in first:
            print(f"  {k}: double min {min(x[k]['double s'] for x in rs):.4f} s, mp min {min(x[k]['mp s'] for x in rs):.2f} s")
    for k, v in first.items():
        print(k, "double", " ".join(v["double"]), "| mp", " ".join(v["mp"]))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", nargs=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    interleaved(a.trees, a.rounds) if a.trees else here()

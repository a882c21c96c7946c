"""How long `solve --precision mp` takes on the small setups it is meant for, and how far the
double solve at `accuracy="high"` is from it — one table, one run.

Two tasks on shared inputs (the setups of `benchmarks/mp_solve.py`: linear trunks with noise
0.5 / 1.0 and alignment 0.9; nonlinear trunks with teacher norm 3, alignment 0.6, noise 0.5 / 0),
times [t/2, t], dps 20, the default mp nodes; the mp integrals on `solve.default_processes()`
processes.  Run: PYTHONPATH=. python benchmarks/mp_solve_times.py [--t 0.2] [--only NAME ...]
"""
import argparse
import os
import time

import numpy as np

from mp_solve import setup  # noqa: E402  (benchmarks/ is the script's directory)
from mtsp.api import solve   # derive, then numeric

CASES = [  # name, (classes, activation, hidden)
    ("linear C=2 K=1", (2, "linear", 1)),
    ("linear C=2 K=2", (2, "linear", 2)),
    ("linear C=3 K=1", (3, "linear", 1)),
    ("linear C=3 K=2", (3, "linear", 2)),
    ("tanh C=2 K=1", (2, "tanh", 1)),
    ("tanh C=3 K=1", (3, "tanh", 1)),
    ("tanh C=2 K=2", (2, "tanh", 2)),
    ("erf C=2 K=2", (2, "erf", 2)),
    ("relu C=2 K=2", (2, "relu", 2)),
    ("tanh C=3 K=2", (3, "tanh", 2)),
    ("tanh C=2 K=3", (2, "tanh", 3)),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t", type=float, default=0.2)
    ap.add_argument("--dps", type=int, default=20)
    ap.add_argument("--only", nargs="*", default=None, help="case names (as printed) to run")
    a = ap.parse_args()
    import mpmath.libmp
    from mtsp.numeric.solve import default_processes
    print(f"# mp backend {mpmath.libmp.BACKEND}, {default_processes()} process(es), {os.cpu_count()} cores; "
          f"t ≤ {a.t}, dps {a.dps}", flush=True)
    print(f"{'setup':16s} {'mp':>9s} {'double-high':>12s} {'max|Δgen_error|':>16s} {'max|Δtest_loss|':>16s}  mp stats")
    for name, (C, act, K) in CASES:
        if a.only and name not in a.only:
            continue
        su = setup(C, a.t, act, K)
        t0 = time.perf_counter()
        hi = solve(su, accuracy="high")
        t_hi = time.perf_counter() - t0
        t0 = time.perf_counter()
        mp = solve(su, precision="mp", dps=a.dps)
        t_mp = time.perf_counter() - t0
        dg = max(np.abs(np.array(hi.tasks[k]["gen_error"]) - np.array(mp.tasks[k]["gen_error"])).max() for k in mp.tasks)
        dl = max(np.abs(np.array(hi.tasks[k]["test_loss"]) - np.array(mp.tasks[k]["test_loss"])).max() for k in mp.tasks)
        st = {k: mp.stats[k] for k in ("nfev", "steps")}
        print(f"{name:16s} {t_mp:8.1f}s {t_hi:11.1f}s {dg:16.2e} {dl:16.2e}  {st}", flush=True)


if __name__ == "__main__":
    main()

"""Time per (α, λ) point of the replica engine, and of one exact ERM minimiser at N = 1000, in one run.

Two structures (issue 16's targets: < 1 s per point for one three-class task, < 5 s for two coupled
three-class tasks, on 2 cores): one C = 3 task (noise 0.5) and two coupled C = 3 tasks (separate
inputs, alignment 0.8, μ = 1, noise 0.5), on a grid α ∈ {0.5, 1, 2, 3, 5} × λ ∈ {0.01, 0.1, 1}.
Each point is solved cold (default start) and warm (from the previous point of the sweep along α),
with the predictions included (`solve_erm`: fixed point + errors); the ERM simulation time is one
seed's L-BFGS minimiser (`replica_vs_erm.erm_minimiser`, gtol 1e-7) at the same point, N = 1000.

    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 python benchmarks/replica_speed.py [--sim-points 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from mtsp.numeric.erm import solve_erm
from replica_vs_erm import erm_minimiser, setup

ALPHAS = (0.5, 1.0, 2.0, 3.0, 5.0)
RIDGES = (0.01, 0.1, 1.0)


def one_task(alpha, ridge):
    return setup([{"name": "A", "classes": 3, "noise": 0.5}], alpha, ridge, name="one C3 task")


def two_coupled(alpha, ridge):
    return setup([{"name": "A", "classes": 3, "noise": 0.5, "alpha": alpha},
                  {"name": "B", "classes": 3, "noise": 0.5, "alpha": alpha}],
                 None, ridge, 1.0, "separate", {"alignment": 0.8}, name="two coupled C3 tasks")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim-points", type=int, default=3, help="ERM minimisers timed per structure")
    ap.add_argument("--N", type=int, default=1000)
    a = ap.parse_args(argv)
    print(f"# replica engine: seconds per (alpha, ridge) point (fixed point + predictions); "
          f"cores visible {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    for make in (one_task, two_coupled):
        cold, warm, rows = [], [], []
        for ridge in RIDGES:
            prev = None
            for alpha in ALPHAS:
                s = make(alpha, ridge)
                t0 = time.perf_counter()
                out = solve_erm(s)
                tc = time.perf_counter() - t0
                t0 = time.perf_counter()
                out_w = solve_erm(s, start=prev) if prev is not None else out
                tw = time.perf_counter() - t0 if prev is not None else tc
                prev = out_w["fixed_points"]
                g = out["tasks"]["A"]["gen_error"][0]
                gw = out_w["tasks"]["A"]["gen_error"][0]
                cold.append(tc)
                warm.append(tw)
                rows.append(f"  alpha {alpha:>4g} ridge {ridge:>5g}: cold {tc:6.2f} s "
                            f"({out['stats']['iterations'][0]:>3} it), warm {tw:6.2f} s "
                            f"({out_w['stats']['iterations'][0]:>3} it)  gen_error {g:.6f} "
                            f"(warm − cold {gw - g:+.1e})")
        print(f"{make(1.0, 0.1).name}:")
        print("\n".join(rows))
        print(f"  per point: cold median {np.median(cold):.2f} s, max {max(cold):.2f} s; "
              f"warm median {np.median(warm):.2f} s, max {max(warm):.2f} s")
        sims = []
        for alpha, ridge in [(2.0, 0.1), (5.0, 0.01), (1.0, 1.0)][:a.sim_points]:
            t0 = time.perf_counter()
            erm_minimiser(make(alpha, ridge), a.N, 7, 1e-7)
            sims.append(time.perf_counter() - t0)
        print(f"  ERM minimiser at N = {a.N} (one seed, L-BFGS gtol 1e-7): "
              + ", ".join(f"{t:.1f} s" for t in sims)
              + f"; ratio simulation / theory (medians) {np.median(sims) / np.median(cold):.0f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

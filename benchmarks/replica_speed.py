"""Time per (α, λ) point of the replica engine, and of the ERM simulation at N = 1000, in one run.

Two structures (issue 16's targets: < 1 s per point for one three-class task, < 5 s for two coupled
three-class tasks, on 2 cores): one C = 3 task (noise 0.5) and two coupled C = 3 tasks (separate
inputs, alignment 0.8, μ = 1, noise 0.5), on a grid α ∈ {0.5, 1, 2, 3, 5} × λ ∈ {0.01, 0.1, 1}.
Each point is solved cold (default start) and warm (from the previous point of the sweep along α),
with the predictions included (`solve_erm`: fixed point + errors).

The simulation is the project's (`mtsp.simulate`, what `mtsp simulate` / `mtsp validate` run for
erm: per seed the exact minimiser by Newton–CG in float64 to gradient rms 1e-10, validate/erm.py;
torch on one thread, seeds batched) at the same setup and N = 1000: one seed alone, and `--seeds`
seeds in one batch (per-seed time = total / seeds), at `--sim-points` points of the grid. The
ratio simulation / theory is taken point by point against the cold theory time.

    PYTHONPATH=. python benchmarks/replica_speed.py [--sim-points 3] [--seeds 8] [--N 1000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from mtsp.numeric.erm import solve_erm
from mtsp.validate.simulate import simulate
from replica_vs_erm import setup

ALPHAS = (0.5, 1.0, 2.0, 3.0, 5.0)
RIDGES = (0.01, 0.1, 1.0)
SIM_POINTS = ((2.0, 0.1), (5.0, 0.01), (1.0, 1.0), (0.5, 0.1), (3.0, 1.0))


def one_task(alpha, ridge):
    return setup([{"name": "A", "classes": 3, "noise": 0.5}], alpha, ridge, name="one C3 task")


def two_coupled(alpha, ridge):
    return setup([{"name": "A", "classes": 3, "noise": 0.5, "alpha": alpha},
                  {"name": "B", "classes": 3, "noise": 0.5, "alpha": alpha}],
                 None, ridge, 1.0, "separate", {"alignment": 0.8}, name="two coupled C3 tasks")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim-points", type=int, default=3, help="grid points simulated per structure")
    ap.add_argument("--seeds", type=int, default=8, help="seeds of the batched simulation")
    ap.add_argument("--N", type=int, default=1000)
    a = ap.parse_args(argv)
    import torch
    print(f"# replica engine: seconds per (alpha, ridge) point (fixed point + predictions); "
          f"cores visible {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; torch threads "
          f"{torch.get_num_threads()} (the simulator runs on one)")
    for make in (one_task, two_coupled):
        cold, warm, rows, cold_at = [], [], [], {}
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
                cold_at[(alpha, ridge)] = (tc, g)
                rows.append(f"  alpha {alpha:>4g} ridge {ridge:>5g}: cold {tc:6.2f} s "
                            f"({out['stats']['iterations'][0]:>3} it), warm {tw:6.2f} s "
                            f"({out_w['stats']['iterations'][0]:>3} it)  gen_error {g:.6f} "
                            f"(warm − cold {gw - g:+.1e})")
        print(f"{make(1.0, 0.1).name}:")
        print("\n".join(rows))
        print(f"  per point: cold median {np.median(cold):.2f} s, max {max(cold):.2f} s; "
              f"warm median {np.median(warm):.2f} s, max {max(warm):.2f} s")
        sys.stdout.flush()
        ratios1, ratios_s = [], []
        for alpha, ridge in SIM_POINTS[:a.sim_points]:
            s = make(alpha, ridge)
            t0 = time.perf_counter()
            simulate(s, N=a.N, seeds=1)
            t1 = time.perf_counter() - t0
            t0 = time.perf_counter()
            sim = simulate(s, N=a.N, seeds=a.seeds)
            ts = time.perf_counter() - t0
            th, g = cold_at[(alpha, ridge)]
            gs, se = sim.tasks["A"]["gen_error"][0], sim.tasks["A"]["gen_error_se"][0]
            ratios1.append(t1 / th)
            ratios_s.append(ts / a.seeds / th)
            print(f"  simulation N = {a.N} at alpha {alpha:g} ridge {ridge:g}: one seed {t1:.2f} s; "
                  f"{a.seeds} seeds {ts:.2f} s = {ts / a.seeds:.2f} s per seed "
                  f"(Newton {sim.solver['newton_iterations']} it, grad rms "
                  f"{sim.solver['grad_rms_max']:.1e}); theory {th:.2f} s; ratio simulation / "
                  f"theory: one seed {t1 / th:.1f}, per seed {ts / a.seeds / th:.1f}; "
                  f"gen_error {gs:.4f} ± {se:.4f} vs theory {g:.4f}")
            sys.stdout.flush()
        print(f"  ratio simulation / theory (median over the simulated points): one seed "
              f"{np.median(ratios1):.1f}, per seed of {a.seeds} {np.median(ratios_s):.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

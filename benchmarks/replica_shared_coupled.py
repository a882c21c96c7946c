"""Replica engine vs exact ERM minimisers for coupled tasks on shared inputs (MODEL.md `erm`,
inputs = "shared", coupling μ > 0): every sample carries a label for every task, so the tasks'
loss channels share the sample (`numeric.replica.loss_channel_hats` with several tasks).

Per setup: the replica prediction (`numeric.erm.solve_erm`, its time, iterations, residual and
nodes per axis) and the simulator of `mtsp simulate` for erm (`validate.erm.run_erm`: the exact
minimiser of each seed by truncated Newton to a root-mean-square gradient ≤ 1e-10, float64; the
gen_error of each minimiser exact from its order parameters, so the spread over seeds is the
datasets' only).  Agreement criterion of issue 16: |theory − mean| < 4 SE + 0.003.

    PYTHONPATH=. python benchmarks/replica_shared_coupled.py [--N 1000] [--seeds 32] [--only k,...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from mtsp.numeric.erm import solve_erm
from mtsp.validate.erm import run_erm

sys.path.insert(0, os.path.dirname(__file__))
from replica_vs_erm import agreement_row, setup  # noqa: E402

CASES = [
    setup([{"name": "A", "classes": 2, "noise": 0.3}, {"name": "B", "classes": 2, "noise": 0.5}],
          2.0, 0.1, 1.0, "shared", {"alignment": 0.7}, name="2x C2 shared align0.7 a2 l0.1 mu1"),
    setup([{"name": "A", "classes": 2, "noise": 0.0}, {"name": "B", "classes": 2, "noise": 0.6}],
          1.0, 0.05, 3.0, "shared", {"alignment": 0.3}, name="2x C2 shared align0.3 clean+noisy a1 l0.05 mu3"),
    setup([{"name": "A", "classes": 2, "noise": 0.2}, {"name": "B", "classes": 2, "noise": 0.2}],
          4.0, 0.01, 0.3, "shared", {"alignment": 0.9, "norm": 2.0},
          name="2x C2 shared align0.9 norm2 a4 l0.01 mu0.3"),
    setup([{"name": "A", "classes": 2, "noise": 0.3}, {"name": "B", "classes": 2, "noise": 0.0},
           {"name": "C", "classes": 2, "noise": 0.6}],
          2.0, 0.1, 0.5, "shared", {"alignment": 0.5}, name="3x C2 shared align0.5 a2 l0.1 mu0.5"),
    setup([{"name": "A", "classes": 2, "noise": 0.5}, {"name": "B", "classes": 2, "noise": 0.5},
           {"name": "C", "classes": 2, "noise": 0.5}],
          0.5, 0.3, 2.0, "shared", {"alignment": 0.8}, name="3x C2 shared align0.8 a0.5 l0.3 mu2"),
]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--only", default="")
    a = ap.parse_args(argv)
    only = {int(k) for k in a.only.split(",") if k}
    print(f"# replica vs exact ERM minimisers (validate.erm.run_erm, Newton-CG, gradient rms ≤ 1e-10), "
          f"coupled tasks on shared inputs, N = {a.N}, {a.seeds} seeds; agree: |theory − sim| < 4 SE + 0.003")
    fails = 0
    for k, s in enumerate(CASES):
        if only and k not in only:
            continue
        t0 = time.perf_counter()
        th = solve_erm(s)
        t_th = time.perf_counter() - t0
        fp = th["fixed_points"][0][1]
        sim = run_erm(s, a.N, a.seeds, "cpu", torch.float64, seed=1)
        print(f"[{k}] {s.name}: theory {t_th:.1f} s (iterations {fp.iterations}, residual "
              f"{fp.residual:.1e}, nodes per axis {fp.nodes}); simulation {sim.wall_time:.1f} s "
              f"(max gradient rms {sim.solver['grad_rms_max']:.1e})")
        for t in s.tasks:
            fails += not agreement_row(t.name, th["tasks"][t.name]["gen_error"][0],
                                       float(sim.tasks[t.name]["gen_error"][0]),
                                       float(sim.tasks[t.name]["gen_error_se"][0]))
        sys.stdout.flush()
    print(f"# {fails} disagreement(s)")
    return fails


if __name__ == "__main__":
    sys.exit(main())

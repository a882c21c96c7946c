"""Speed of the DMFT against the full-batch simulator, in one run (issue 17, item 4).

glm, C = 2, noise 0.3, σ₀ = 0.1, α = 2, lr 1, times up to 31 (the default grid: ~200 steps).
Prints the DMFT wall time of one path batch (4000 paths, 1000 for the response) and of the default
solve (8 batches), and the simulator's at N = 1000 (8 seeds, RK4 step 0.2, float32).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/dmft_speed.py
"""
from __future__ import annotations

import time

import torch
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft
from mtsp.validate.simulate import simulate

from mtsp.setup import setup_from_dict


def main():
    s = setup_from_dict({"tasks": [{"name": "A", "classes": 2, "noise": 0.3}],
                         "student": {"kind": "glm", "init_scale": 0.1},
                         "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0,
                                      "times": [10, 31]}})
    t0 = time.perf_counter()
    one = solve_dmft(s, DmftOptions(batches=1, scan=10))
    t1 = time.perf_counter()
    full = solve_dmft(s)
    t2 = time.perf_counter()
    sim = simulate(s, N=1000, seeds=8, dtype=torch.float32, dt=0.2)
    t3 = time.perf_counter()
    print(f"DMFT: {one.stats['steps']} steps; one batch (4000 paths): {t1 - t0:.1f} s; default "
          f"(8 batches): {t2 - t1:.1f} s; gen_error(t=31) {full.tasks['A']['gen_error'][1]:.4f} ± "
          f"{full.tasks['A']['gen_error_se'][1]:.4f}")
    print(f"simulation N = 1000, 8 seeds, RK4 step 0.2, float32: {t3 - t2:.1f} s; gen_error(t=31) "
          f"{sim.tasks['A']['gen_error'][1]:.4f} ± {sim.tasks['A']['gen_error_se'][1]:.4f}")


if __name__ == "__main__":
    main()

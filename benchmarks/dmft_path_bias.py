"""The DMFT's finite-path bias (issue 17): gen_error of the two-task shared linear trunk of
benchmarks/dmft_speed.py at t = 1, 3, 10, 31 against the number of Gaussian paths per batch (the
response paths a fifth of them), beside one large simulation, in one run on one device.

    PYTHONPATH=$PWD python benchmarks/dmft_path_bias.py [--device cuda] [--paths 3000 12000 48000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dmft_speed import trunk_setup  # noqa: E402
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft  # noqa: E402
from mtsp.validate.simulate import simulate  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--paths", type=int, nargs="+", default=[3000, 12000, 48000])
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--N", type=int, default=8000)
    ap.add_argument("--seeds", type=int, default=32)
    a = ap.parse_args()
    s = trunk_setup()
    t0 = time.perf_counter()
    sim = simulate(s, N=a.N, seeds=a.seeds, device=a.device, dtype=torch.float32, dt=0.2)
    print(f"# {a.device}; simulation N = {a.N}, {a.seeds} seeds, float32, RK4 step 0.2: "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    rows = {name: [f"{m:.4f} ± {e:.4f}" for m, e in zip(sim.tasks[name]["gen_error"],
                                                        sim.tasks[name]["gen_error_se"])]
            for name in sim.tasks}
    print("simulation  " + "  ".join(f"{n}: " + ", ".join(r) for n, r in rows.items()), flush=True)
    for n in a.paths:
        t0 = time.perf_counter()
        res = solve_dmft(s, DmftOptions(n_paths=n, n_response=max(n // 5, 100), batches=a.batches,
                                        device=a.device))
        line = "  ".join(f"{name}: " + ", ".join(
            f"{m:.4f} ± {e:.4f}" for m, e in zip(res.tasks[name]["gen_error"],
                                                res.tasks[name]["gen_error_se"]))
            for name in res.tasks)
        print(f"{a.batches} × {n:6d} paths ({time.perf_counter() - t0:.1f} s)  {line}", flush=True)


if __name__ == "__main__":
    main()

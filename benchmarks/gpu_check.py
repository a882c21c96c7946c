"""The GPU check of issue "The online engine, end to end": simulate a two-task setup on CUDA at
N = 4000 with 32 seeds, report throughput (SGD steps × seeds per second) and agreement with theory.

    python benchmarks/gpu_check.py [--N 4000] [--seeds 32] [--device cuda]

Prepared for a session that is lent a GPU (run it as one short script on the device machine);
on a CPU-only machine use --device cpu with smaller N to try it.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from mtsp.numeric.solve import solve
from mtsp.setup import default_setup


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=4000)
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args(argv)
    import torch
    from mtsp.validate.simulate import simulate
    setup = default_setup()
    t0 = time.perf_counter()
    th = solve(setup).to_json_dict()
    t1 = time.perf_counter()
    sim = simulate(setup, N=a.N, seeds=a.seeds, device=a.device, grid=0).to_json_dict()
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    steps = a.N * max(setup.training.times)
    print(f"device {a.device} ({torch.cuda.get_device_name(0) if a.device.startswith('cuda') else 'cpu'}), "
          f"N = {a.N}, {a.seeds} seeds: simulation {t2 - t1:.1f} s = "
          f"{steps * a.seeds / (t2 - t1):.3g} sample-steps/s; theory {t1 - t0:.1f} s")
    worst = 0.0
    for name, v in th["tasks"].items():
        s = sim["tasks"][name]
        z = (np.array(v["gen_error"]) - np.array(s["gen_error"])) / np.array(s["gen_error_se"])
        worst = max(worst, float(np.abs(z).max()))
        print(f"  {name}: theory {np.round(v['gen_error'], 4)}  simulation {np.round(s['gen_error'], 4)} "
              f"± {np.round(s['gen_error_se'], 4)}  z {np.round(z, 2)}")
    print(f"max |z| = {worst:.2f}")


if __name__ == "__main__":
    main()

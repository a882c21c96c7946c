"""The DMFT's late-time estimate against the number of paths (issue 17), on the two-task shared
linear trunk of benchmarks/dmft_speed.py (t = 1, 3, 10, 31; both tasks start with the same heads).

Both tasks' centred heads start on one line of the 2-d trunk space, so the reflection S across it
(`solve.trunk_mirror`) maps the problem onto itself; the N → ∞ solution keeps that symmetry, but it
is unstable late (the heads' antisymmetric part grows ≈ e^{0.3 t} from t ≈ 5 on). Unpaired paths
seed it at O(paths^-1/2), as a finite simulation does at O(N^-1/2), so the estimate at t = 31
depends on when each batch broke it (∝ ln paths), not on a sampling error ∝ paths^-1/2. Per batch
this prints gen_error of both tasks and the antisymmetric part of the heads at t = 31
(`solve.asymmetry`), for unpaired ("sampled") and mirrored paths (`DmftOptions.mirror`), then
each setting's mean ± SE and batch standard deviation. docs/DMFT.md §4.

    PYTHONPATH=$PWD python benchmarks/dmft_path_bias.py [--paths 750 3000] [--batches 8]
        [--device cuda] [--sim-N 1000 --sim-seeds 6]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dmft_speed import trunk_setup  # noqa: E402
from mtsp.numeric.dmft.solve import (DmftOptions, asymmetry, time_grid, trunk_loss,  # noqa: E402
                                     trunk_mirror, trunk_trajectory)
from mtsp.numeric.metrics import task_metrics  # noqa: E402
from mtsp.numeric.model import State, theory_model  # noqa: E402
from mtsp.numeric.online import Accuracy  # noqa: E402

TIMES = [1.0, 3.0, 10.0, 31.0]


def batch(s, model, steps, req, opts, b):
    """gen_error [task][time] and the heads' antisymmetric part at the last time, one batch."""
    Q, R, V, _, _ = trunk_trajectory(s, steps, opts, b)
    states = [State(Q[k], R[k], tuple(V[k])) for k in req]
    ge = np.array([[m.gen_error for m in task_metrics(model, st, Accuracy(), label=False)]
                   for st in states]).T
    return ge, asymmetry(states[-1:], trunk_mirror(trunk_loss(s)[0]))


def simulation(s, N, seeds, device):
    import torch
    from mtsp.validate.simulate import simulate
    t0 = time.perf_counter()
    sim = simulate(s, N=N, seeds=seeds, device=device, dtype=torch.float32, dt=0.2)
    print(f"# simulation N = {N}, {seeds} seeds, RK4 step 0.2, float32 ({time.perf_counter() - t0:.0f} s)")
    for name, d in sim.tasks.items():
        print(f"  {name}: " + ", ".join(f"{m:.4f} ± {e:.4f}" for m, e in zip(d["gen_error"], d["gen_error_se"])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None, help="torch device of the DMFT's path arrays")
    ap.add_argument("--paths", type=int, nargs="+", default=[750, 3000])
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--sim-N", type=int, default=0)
    ap.add_argument("--sim-seeds", type=int, default=6)
    a = ap.parse_args()
    s = trunk_setup()
    model = theory_model(s)
    steps, req = time_grid(TIMES, 0.2, 1.0)
    print(f"# two related tasks, shared linear trunk K = 2, α = 2, κ = 0.05; {len(steps)} steps; "
          f"gen_error at t = {TIMES}; response paths n/5, sources n/2; {a.batches} batches each")
    if a.sim_N:
        simulation(s, a.sim_N, a.sim_seeds, a.device or "cpu")
    for n in a.paths:
        for mirror in (False, True):
            opts = DmftOptions(n_paths=n, n_response=2 * max(n // 10, 50), mirror=mirror,
                               device=a.device)
            t0 = time.perf_counter()
            ge, asym = zip(*(batch(s, model, steps, req, opts, b) for b in range(a.batches)))
            ge, asym = np.array(ge), np.array(asym)            # (batch, task, time)
            label = "mirrored" if mirror else "sampled"
            print(f"{n:6d} paths {label:8s} ({time.perf_counter() - t0:.0f} s)  B(t=31) per batch: "
                  + " ".join(f"{x:.4f}" for x in ge[:, 1, -1])
                  + "  |antisym. heads| " + " ".join(f"{x:.2g}" for x in asym), flush=True)
            mean, sd = ge.mean(0), ge.std(0, ddof=1)
            for t, name in enumerate(("A", "B")):
                print(f"    {name}: " + ", ".join(f"{m:.4f} ± {e / np.sqrt(a.batches):.4f} (sd {e:.4f})"
                                           for m, e in zip(mean[t], sd[t])), flush=True)


if __name__ == "__main__":
    main()

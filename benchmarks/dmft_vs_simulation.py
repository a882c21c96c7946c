"""DMFT (N → ∞) against full-batch simulations (validate/full_batch.py) for glm students.

Cases: C = 2 (noise 0.3) and C = 3 (noise 0.5), α = 0.5, 2, 5, weight decay κ = 0 and 0.1, σ₀ = 0.1,
lr 1, times 1, 3, 10, 30; plus MODEL.md's public check (C = 2, noise 0.3, σ₀ = 0, α = 3, t = 2, 10).
Criterion (issue 17): |DMFT − simulation| ≤ 4·SE + 0.003, SE = √(SE_sim² + SE_dmft²); z = diff/SE.

    PYTHONPATH=$PWD python benchmarks/dmft_vs_simulation.py --N 1000 --seeds 12 [--cases 0,1,...]
        [--float32] [--sim-dt 0.2]
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft
from mtsp.validate.simulate import simulate

from mtsp.setup import setup_from_dict


def cases():
    out = []
    for C, noise in ((2, 0.3), (3, 0.5)):
        for alpha in (0.5, 2.0, 5.0):
            for kappa in (0.0, 0.1):
                out.append((f"C{C}_a{alpha:g}_k{kappa:g}",
                            {"tasks": [{"name": "A", "classes": C, "noise": noise}],
                             "student": {"kind": "glm", "init_scale": 0.1},
                             "training": {"protocol": "full_batch", "alpha": alpha, "lr": 1.0,
                                          "weight_decay": kappa, "times": [1, 3, 10, 30]}}))
    out.append(("public_C2_a3", {"tasks": [{"name": "A", "classes": 2, "noise": 0.3}],
                                 "student": {"kind": "glm", "init_scale": 0.0},
                                 "training": {"protocol": "full_batch", "alpha": 3.0, "lr": 1.0,
                                              "times": [2, 10]}}))
    # two glm tasks on separate inputs with unequal α_t and weights (tasks decouple with the
    # effective learning rates η w_t α_t/Σα_s; numeric/dmft/solve.py)
    out.append(("separate_C2C3_a1a3", {
        "tasks": [{"name": "A", "classes": 2, "noise": 0.3, "alpha": 1.0},
                  {"name": "B", "classes": 3, "noise": 0.5, "alpha": 3.0, "weight": 0.5}],
        "student": {"kind": "glm", "init_scale": 0.1},
        "training": {"protocol": "full_batch", "inputs": "separate", "lr": 1.0,
                     "weight_decay": 0.05, "times": [1, 3, 10]}}))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--cases", default="")
    ap.add_argument("--paths", type=int, default=4000)
    ap.add_argument("--response", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--sim-dt", type=float, default=0.2, help="RK4 step of the simulation")
    ap.add_argument("--float32", action="store_true", help="simulate in float32")
    args = ap.parse_args()
    dtype = torch.float32 if args.float32 else torch.float64
    todo = cases()
    if args.cases:
        todo = [todo[int(i)] for i in args.cases.split(",")]
    print(f"# DMFT: {args.batches} batches x {args.paths} paths ({args.response} for the response);"
          f" simulation: N = {args.N}, {args.seeds} seeds (RK4, step {args.sim_dt}, {dtype})")
    print("# case  t  quantity  dmft ± se  sim ± se  z  within(4SE+0.003)")
    worst = 0.0
    for name, d in todo:
        s = setup_from_dict(d)
        t0 = time.perf_counter()
        th = solve_dmft(s, DmftOptions(n_paths=args.paths, n_response=args.response,
                                       batches=args.batches))
        t1 = time.perf_counter()
        sim = simulate(s, N=args.N, seeds=args.seeds, dtype=dtype, dt=args.sim_dt).to_json_dict()
        t2 = time.perf_counter()
        for task in s.tasks:
            label = name if len(s.tasks) == 1 else f"{name}:{task.name}"
            A, B = th.tasks[task.name], sim["tasks"][task.name]
            for key in ("gen_error", "test_loss", "train_loss", "train_error"):
                for i, t in enumerate(s.training.times):
                    a, sa = A[key][i], A[key + "_se"][i]
                    b = B[key][i]
                    sb = B.get(key + "_se", [0.0] * len(s.training.times))[i]
                    se = math.hypot(sa, sb)
                    z = (a - b) / se if se > 0 else float("inf")
                    ok = abs(a - b) <= 4 * se + 0.003
                    if key == "gen_error":
                        worst = max(worst, abs(z))
                    print(f"{label}  t={t:g}  {key:11s} {a:.4f} ± {sa:.4f}  {b:.4f} ± {sb:.4f}  "
                          f"z = {z:+.2f}  {'ok' if ok else 'FAIL'}", flush=True)
            for key in ("best_gen_error", "best_test_loss"):
                print(f"{label}  best       {key:15s} {A[key]:.4f} ± {A[key + '_se']:.4f} "
                      f"(t {A[key + '_time']:.2f})  sim {B[key]:.4f} (t {B[key + '_time']:.2f})")
        print(f"{name}  time: dmft {t1 - t0:.1f} s ({th.stats['steps']} steps), "
              f"simulation {t2 - t1:.1f} s", flush=True)
    print(f"# largest |z| in gen_error: {worst:.2f}")


if __name__ == "__main__":
    main()

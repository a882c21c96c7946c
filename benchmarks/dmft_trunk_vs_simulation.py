"""DMFT against full-batch simulations for shared linear trunks with trained heads (shared inputs),
with single-task baselines and the multitask benefit (validate.compare's rows: 4·SE + 0.003).

Cases: (1) one task, C = 3, K = 2, α = 2, κ = 0.05; (2) two related tasks (alignment 0.9, C = 2
each, one noisy), K = 2, α = 2; (3) two unrelated tasks (alignment 0), K = 2, α = 2.

    PYTHONPATH=$PWD python benchmarks/dmft_trunk_vs_simulation.py --N 1000 --seeds 8 [--cases 0,1]
"""
from __future__ import annotations

import argparse
import time

import torch
from mtsp.numeric.dmft.solve import DmftOptions, solve_full_batch
from mtsp.validate.compare import compare
from mtsp.validate.simulate import simulate, simulate_with_single

from mtsp.setup import setup_from_dict


def cases():
    heads2 = [[0.5, -0.1], [-0.5, 0.2]]
    def two(rho):
        return {
            "tasks": [{"name": "A", "classes": 2, "noise": 0.2}, {"name": "B", "classes": 2, "noise": 1.0}],
            "teacher": {"alignment": rho},
            "student": {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.2,
                        "head_init": [heads2, heads2]},
            "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0, "weight_decay": 0.05,
                         "times": [1, 3, 10]}}
    return [("trunk_C3_K2_a2", {
        "tasks": [{"name": "A", "classes": 3, "noise": 0.5}],
        "student": {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.2,
                    "head_init": [[[0.5, 0.0], [-0.25, 0.4], [-0.25, -0.4]]]},
        "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0, "weight_decay": 0.05,
                     "times": [1, 3, 10]}}),
        ("trunk_two_related_rho0.9", two(0.9)), ("trunk_two_unrelated_rho0", two(0.0))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--cases", default="")
    ap.add_argument("--paths", type=int, default=3000)
    ap.add_argument("--response", type=int, default=600)
    ap.add_argument("--batches", type=int, default=6)
    args = ap.parse_args()
    todo = cases()
    if args.cases:
        todo = [todo[int(i)] for i in args.cases.split(",")]
    print(f"# DMFT: {args.batches} batches x {args.paths} paths ({args.response} response); "
          f"simulation N = {args.N}, {args.seeds} seeds, RK4 step 0.2, float32")
    for name, d in todo:
        s = setup_from_dict(d)
        single = len(s.tasks) > 1
        t0 = time.perf_counter()
        th = solve_full_batch(s, single=single, opts=DmftOptions(
            n_paths=args.paths, n_response=args.response, batches=args.batches))
        t1 = time.perf_counter()
        sim = (simulate_with_single if single else simulate)(s, N=args.N, seeds=args.seeds,
                                                             dtype=torch.float32, dt=0.2)
        t2 = time.perf_counter()
        cmp = compare(th.to_json_dict(), sim.to_json_dict())
        print(f"## {name}: dmft {t1 - t0:.1f} s, simulation {t2 - t1:.1f} s")
        for r in cmp.rows:
            z = "—" if r["z"] is None else f"{r['z']:+.2f}"
            print(f"{name}  {r['quantity']:9s} {r['run']:19s} {r['task']}  t={r['time']:g}  "
                  f"dmft {r['theory']:.4f}  sim {r['simulation']:.4f} ± {r['se']:.4f}  z = {z}  "
                  f"{'ok' if r['agrees'] else 'FAIL'}", flush=True)
        for e in cmp.early_stopped:
            if e["theory"] is not None and e["simulation"] is not None:
                print(f"{name}  early-stopped {e['quantity']} {e['run']} {e['task']}: dmft "
                      f"{e['theory']:.4f}  sim {e['simulation']:.4f}")
        print(f"{name}  verdict: {cmp.verdict()}", flush=True)


if __name__ == "__main__":
    main()

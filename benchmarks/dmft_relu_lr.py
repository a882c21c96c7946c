"""DMFT (Stein response, relu) against full-batch simulations at learning rates other than 1:
the relu_related case of benchmarks/dmft_trunks_nonlinear.py with lr = head_lr = LR.

    PYTHONPATH=$PWD python benchmarks/dmft_relu_lr.py simulate 2 --times 1,3,10 --seeds 6 --out sim.json
    PYTHONPATH=$PWD python benchmarks/dmft_relu_lr.py dmft 2 --times 1,3,10 --out dmft.json [--dt 0.1]
    PYTHONPATH=$PWD python benchmarks/dmft_relu_lr.py compare 2 --sim sim.json --dmft dmft.json

Output in benchmarks/results/dmft_relu_lr.txt.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dmft_trunks_nonlinear as base  # noqa: E402


def _case(lr, times):
    c = copy.deepcopy(base.CASES["relu_related"])
    c["training"].update(lr=lr, head_lr=lr, times=times)
    c["name"] += f", lr {lr:g}"
    return c


def main():
    from mtsp.numeric.dmft.solve import DmftOptions
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=("simulate", "dmft", "compare"))
    ap.add_argument("lr", type=float)
    ap.add_argument("--times", default="1,3,10,30")
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--out", default="")
    ap.add_argument("--sim", default="")
    ap.add_argument("--dmft", default="")
    ap.add_argument("--paths", type=int, default=8000)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--dt", type=float, default=None)
    args = ap.parse_args()
    name = f"relu_related_lr{args.lr:g}"
    base.CASES[name] = _case(args.lr, [float(t) for t in args.times.split(",")])
    if args.stage == "simulate":
        base.simulate_case(name, args.N, args.seeds, None, args.out)
    elif args.stage == "dmft":
        from mtsp.numeric.dmft.solve import solve_full_batch
        from mtsp.setup import setup_from_dict
        opts = DmftOptions(dt=args.dt, n_paths=args.paths, batches=args.batches)
        t0 = time.perf_counter()
        th = solve_full_batch(setup_from_dict(base.CASES[name]), single=True, opts=opts).to_json_dict()
        th["wall_s"] = time.perf_counter() - t0
        th["opts"] = {"dt": args.dt, "n_paths": args.paths, "batches": args.batches}
        with open(args.out, "w") as f:
            json.dump(th, f)
        print(f"{name}: dmft {th['wall_s']:.0f} s -> {args.out}", flush=True)
    else:
        compare(name, args.sim, args.dmft)


def compare(name, sim_path, dmft_path):
    from mtsp.validate.compare import compare as cmp_rows
    with open(sim_path) as f:
        sim = json.load(f)
    with open(dmft_path) as f:
        th = json.load(f)
    o = th["opts"]
    print(f"## {name}: dmft {th['wall_s']:.0f} s ({o['batches']} batches x {o['n_paths']} paths, "
          f"dt {o['dt']}); simulation N = {sim['N']}, {sim['seeds']} seeds, {sim['wall_s']:.0f} s")
    zs = []
    for r in cmp_rows(th, sim).rows:
        if r["z"] is not None:
            zs.append(abs(r["z"]))
        z = "—" if r["z"] is None else f"{r['z']:+.2f}"
        print(f"{name}  {r['quantity']:9s} {r['run']:19s} {r['task']}  t={r['time']:g}  "
              f"dmft {r['theory']:.4f}  sim {r['simulation']:.4f} ± {r['se']:.4f}  z = {z}  "
              f"{'ok' if r['agrees'] else 'FAIL'}")
    for run in ("tasks", "single"):
        print(f"{name}  dmft gen_error_se {run:6s} " + "  ".join(
            f"{task}: " + " ".join(f"{e:.4f}" for e in d["gen_error_se"]) for task, d in th[run].items())
            + f"  (t = {', '.join(f'{t:g}' for t in th['times'])})")
    print(f"{name}  max |z| = {max(zs):.2f} over {len(zs)} rows", flush=True)


if __name__ == "__main__":
    main()

"""DMFT against full-batch simulations for shared trunks beyond the linear/shared-inputs case:
relu and erf trunks on shared inputs, linear, tanh and relu trunks on separate inputs with unequal
α_t; two tasks with their single-task baselines and the multitask benefit, up to t = 30
(validate.compare's rows, 4·SE + 0.003, plus the early-stopped best_gen_error and its benefit).

Two stages, so that the long simulations run once:

    PYTHONPATH=$PWD python benchmarks/dmft_trunks_nonlinear.py simulate --cases relu_related \
        --N 1000 --seeds 8            # writes benchmarks/results/sim_full_batch_<case>_N1000_S8.json
    PYTHONPATH=$PWD python benchmarks/dmft_trunks_nonlinear.py compare --cases relu_related \
        --sim benchmarks/results/sim_full_batch_relu_related_N1000_S8.json

The early-stopped rows use the simulation's standard error at the requested time nearest to its
best time (the simulation reports none for the minimum itself).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch

from mtsp.setup import setup_from_dict

HERE = os.path.dirname(os.path.abspath(__file__))
TIMES = [1, 3, 10, 30]


def _two(activation, rho, inputs="shared", alphas=(2.0, 2.0), init_scale=0.5):
    heads2 = [[0.5, -0.1], [-0.5, 0.2]]
    tasks = [{"name": "A", "classes": 2, "noise": 0.2}, {"name": "B", "classes": 2, "noise": 1.0}]
    training = {"protocol": "full_batch", "lr": 1.0, "weight_decay": 0.05, "times": TIMES,
                "inputs": inputs}
    if inputs == "separate":
        for t, a in zip(tasks, alphas):
            t["alpha"] = a
    else:
        training["alpha"] = alphas[0]
    return {"name": f"{activation} trunk, rho {rho}, {inputs} inputs",
            "tasks": tasks, "teacher": {"alignment": rho},
            "student": {"kind": "shared", "hidden": 2, "activation": activation,
                        "init_scale": init_scale, "head_init": [heads2, heads2]},
            "training": training}


CASES = {
    "relu_related": _two("relu", 0.9),
    "relu_unrelated": _two("relu", 0.0),
    "erf_related": _two("erf", 0.9),
    "sep_linear_related": _two("linear", 0.9, "separate", (1.0, 3.0), 0.2),
    "sep_relu_related": _two("relu", 0.9, "separate", (1.0, 3.0)),
    "sep_tanh_related": _two("tanh", 0.9, "separate", (1.0, 3.0)),
    "sep_relu_unrelated": _two("relu", 0.0, "separate", (1.0, 3.0)),
    "erf_unrelated": _two("erf", 0.0),
    "sep_tanh_unrelated": _two("tanh", 0.0, "separate", (1.0, 3.0)),
}


def simulate_case(name, N, seeds, dt, out):
    from mtsp.validate.simulate import simulate_with_single
    s = setup_from_dict(CASES[name])
    t0 = time.perf_counter()
    sim = simulate_with_single(s, N=N, seeds=seeds, dtype=torch.float32, dt=dt, grid=30,
                               test_size=4000)
    d = sim.to_json_dict()
    d["wall_s"] = time.perf_counter() - t0
    d["case"] = CASES[name]
    with open(out, "w") as f:
        json.dump(d, f)
    print(f"{name}: simulation N = {N}, {seeds} seeds, {d['wall_s']:.0f} s -> {out}", flush=True)


def _early_rows(th, sim, n_se=4.0, floor=0.003):
    """best_gen_error of each run and the early-stopped benefit, with the simulation's SE taken at
    the requested time nearest to its best time."""
    rows = []
    times = np.asarray(sim["times"], float)

    def se_at(d):
        i = int(np.argmin(np.abs(np.log(times) - math.log(max(d["best_gen_error_time"], 1e-9)))))
        return d["gen_error_se"][i]
    for run in ("tasks", "single"):
        for task, d in th[run].items():
            s = sim[run][task]
            se = math.hypot(se_at(s), d.get("best_gen_error_se", 0.0))
            rows.append((f"best_gen_error {run:6s} {task}", d["best_gen_error"],
                         s["best_gen_error"], se))
    for task in th["tasks"]:
        a = th["single"][task]["best_gen_error"] - th["tasks"][task]["best_gen_error"]
        b = sim["single"][task]["best_gen_error"] - sim["tasks"][task]["best_gen_error"]
        se = math.sqrt(sum(r[3] ** 2 for r in rows if r[0].endswith(f" {task}")))
        rows.append((f"best benefit          {task}", a, b, se))
    out = []
    for label, a, b, se in rows:
        z = (a - b) / se if se > 0 else math.inf
        out.append((label, a, b, se, z, abs(a - b) <= n_se * se + floor))
    return out


def compare_case(name, sim_path, opts):
    from mtsp.numeric.dmft.solve import solve_full_batch
    from mtsp.validate.compare import compare
    with open(sim_path) as f:
        sim = json.load(f)
    s = setup_from_dict(sim["case"])
    t0 = time.perf_counter()
    th = solve_full_batch(s, single=True, opts=opts).to_json_dict()
    t1 = time.perf_counter()
    cmp = compare(th, sim)
    print(f"## {name}: dmft {t1 - t0:.0f} s ({opts.batches} batches x {opts.n_paths} paths, "
          f"{opts.n_response} response, dt {opts.dt}, response {opts.response or 'default'}); simulation N = {sim['N']}, "
          f"{sim['seeds']} seeds, {sim.get('wall_s', float('nan')):.0f} s ({sim_path})")
    zs = []
    for r in cmp.rows:
        z = "—" if r["z"] is None else f"{r['z']:+.2f}"
        if r["z"] is not None:
            zs.append(abs(r["z"]))
        print(f"{name}  {r['quantity']:9s} {r['run']:19s} {r['task']}  t={r['time']:g}  "
              f"dmft {r['theory']:.4f}  sim {r['simulation']:.4f} ± {r['se']:.4f}  z = {z}  "
              f"{'ok' if r['agrees'] else 'FAIL'}", flush=True)
    for run in ("tasks", "single"):
        print(f"{name}  dmft gen_error_se {run:6s} " + "  ".join(
            f"{task}: " + " ".join(f"{e:.4f}" for e in d["gen_error_se"]) for task, d in th[run].items())
            + f"  (t = {', '.join(f'{t:g}' for t in th['times'])})")
    ok = cmp.agrees
    for label, a, b, se, z, agrees in _early_rows(th, sim):
        zs.append(abs(z))
        ok &= agrees
        print(f"{name}  {label}  dmft {a:.4f}  sim {b:.4f} ± {se:.4f}  z = {z:+.2f}  "
              f"{'ok' if agrees else 'FAIL'}")
    print(f"{name}  verdict: {'agree' if ok else 'DISAGREE'}, max |z| = {max(zs):.2f} over "
          f"{len(zs)} rows", flush=True)


def main():
    from mtsp.numeric.dmft.solve import DmftOptions
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=("simulate", "compare"))
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--sim-dt", type=float, default=0.2)
    ap.add_argument("--sim", default="", help="compare: simulation JSON (default: the results "
                    "folder's sim_full_batch_<case>_N<N>_S<seeds>.json)")
    ap.add_argument("--paths", type=int, default=4000)
    ap.add_argument("--response", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--dt", type=float, default=None)
    ap.add_argument("--sources", type=int, default=None)
    ap.add_argument("--method", default=None, help="the response method, engine.RESPONSES (default: stein for relu)")
    args = ap.parse_args()
    for name in args.cases.split(","):
        path = args.sim or os.path.join(HERE, "results",
                                        f"sim_full_batch_{name}_N{args.N}_S{args.seeds}.json")
        if args.stage == "simulate":
            simulate_case(name, args.N, args.seeds, args.sim_dt, path)
        else:
            compare_case(name, path, DmftOptions(dt=args.dt, n_paths=args.paths,
                                                 n_response=args.response, batches=args.batches,
                                                 n_sources=args.sources, response=args.method))


if __name__ == "__main__":
    main()

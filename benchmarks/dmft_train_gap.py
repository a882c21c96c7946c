"""Why the DMFT's training metrics sat below the simulations, measured (docs/DMFT.md §4–5).

Two glm cases that showed the gap: `C2_a2` (C = 2, noise 0.3, α = 2, κ = 0, σ₀ = 0.1, lr 1,
t = 1, 3, 10; docs/DMFT.md §5) and `C3_a071` (task B of seed 2, setup 4 of
benchmarks/dmft_random_setups.py: C = 3, noise 1, norm 4, α = 0.711, κ = 0.05, σ₀ = 0.3, lr 1,
t = 0.5, 1, 3). Subcommands, each printing its own lines:

  step     the DMFT's Euler step: the same batches (same normals) on grids of late step dt
           (`--dts`), paired differences, and the Richardson values 2 f(dt) − f(2 dt);
  paths    the DMFT (step correction off) against the path count n (`--paths`, `--batches`
           per n), and a weighted fit f = a + b/n;
  sim      the simulation (RK4) at several N (`--N`) and steps (`--sim-dts`), `--seeds` each;
  compare  `solve_dmft` with and without the step correction (`DmftOptions.step_correction`);
  pairs    per batch, train_loss of dmft_speed.py's trunk at dt and 2 dt on the same normals (the
           step correction's spread against the batches'), and the time of each solve;
  speed    the defaults' time on benchmarks/dmft_speed.py's case (two-task linear trunk, 194
           steps) with step_correction 0 and the default, interleaved `--repeat` times.

    PYTHONPATH=$PWD nice -n 10 python benchmarks/dmft_train_gap.py step --case C2_a2 \\
        --dts 0.4,0.2,0.1,0.05 --paths 2000 --batches 16
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft
from mtsp.validate.simulate import simulate

from mtsp.setup import setup_from_dict

KEYS = ("train_loss", "train_error", "gen_error", "test_loss")

CASES = {
    "C2_a2": {"tasks": [{"name": "A", "classes": 2, "noise": 0.3}],
              "student": {"kind": "glm", "init_scale": 0.1},
              "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0,
                           "weight_decay": 0.0, "times": [1.0, 3.0, 10.0]}},
    "C3_a071": {"tasks": [{"name": "B", "classes": 3, "noise": 1.0, "norm": 4.0}],
                "student": {"kind": "glm", "init_scale": 0.3},
                "training": {"protocol": "full_batch", "alpha": 0.7114826626034155, "lr": 1.0,
                             "weight_decay": 0.05, "times": [0.5, 1.0, 3.0]}},
}


def setup_of(case: str):
    return setup_from_dict({"name": case, **CASES[case]})


def per_batch(s, batches: int, seed0: int = 0, **opts) -> dict:
    """{key: (batches, times)} of single-batch solves with seeds seed0, seed0 + 1, … (batch b of
    every call has the same normals whatever dt is: common random numbers)."""
    name = s.tasks[0].name
    out = {k: [] for k in KEYS}
    for b in range(batches):
        r = solve_dmft(s, DmftOptions(batches=1, scan=2, seed=seed0 + b, **opts)).tasks[name]
        for k in KEYS:
            out[k].append(r[k])
    return {k: np.array(v) for k, v in out.items()}


def fmt(mean, se) -> str:
    return "  ".join(f"{m:.4f} ± {e:.4f}" for m, e in zip(mean, se))


def mean_se(x):
    x = np.asarray(x)
    return x.mean(0), x.std(0, ddof=1) / np.sqrt(len(x))


def cmd_step(a, s):
    dts = [float(x) for x in a.dts.split(",")]
    vals = {}
    for dt in dts:
        t0 = time.perf_counter()
        vals[dt] = per_batch(s, a.batches, n_paths=a.paths, dt=dt, step_correction=0)
        print(f"dt {dt:g}: {a.batches} × {a.paths} paths ({time.perf_counter() - t0:.0f} s)", flush=True)
        for k in KEYS:
            print(f"   {k:11s} {fmt(*mean_se(vals[dt][k]))}")
    for fine, coarse in zip(dts[1:], dts[:-1]):
        print(f"f({fine:g}) − f({coarse:g}) (paired) and Richardson 2 f({fine:g}) − f({coarse:g}):")
        for k in KEYS:
            d = vals[fine][k] - vals[coarse][k]
            print(f"   {k:11s} diff {fmt(*mean_se(d))}   extrapolated "
                  f"{fmt(*mean_se(2 * vals[fine][k] - vals[coarse][k]))}")


def cmd_paths(a, s):
    ns = [int(x) for x in a.paths_list.split(",")]
    bs = [int(x) for x in a.batches_list.split(",")]
    rows = {k: [] for k in KEYS}
    for n, B in zip(ns, bs):
        t0 = time.perf_counter()
        v = per_batch(s, B, seed0=1000 * n, n_paths=n, step_correction=0)
        print(f"n = {n}: {B} batches ({time.perf_counter() - t0:.0f} s)", flush=True)
        for k in KEYS:
            m, e = mean_se(v[k])
            rows[k].append((n, m, e))
            print(f"   {k:11s} {fmt(m, e)}")
    print("weighted fit f = a + b/n per time (a ± se, b ± se):")
    for k in KEYS:
        n = np.array([r[0] for r in rows[k]], float)
        m = np.array([r[1] for r in rows[k]])
        e = np.array([r[2] for r in rows[k]])
        parts = []
        for j in range(m.shape[1]):
            w = 1.0 / np.maximum(e[:, j], 1e-12)
            A = np.stack([np.ones_like(n), 1.0 / n], 1) * w[:, None]
            coef, *_ = np.linalg.lstsq(A, m[:, j] * w, rcond=None)
            cov = np.linalg.inv(A.T @ A)
            parts.append(f"a {coef[0]:.4f} ± {np.sqrt(cov[0, 0]):.4f}, b {coef[1]:+.2f} ± "
                         f"{np.sqrt(cov[1, 1]):.2f}")
        print(f"   {k:11s} " + " | ".join(parts))


def cmd_sim(a, s):
    name = s.tasks[0].name
    for N in (int(x) for x in a.N.split(",")):
        for dt in (float(x) for x in a.sim_dts.split(",")):
            t0 = time.perf_counter()
            r = simulate(s, N=N, seeds=a.seeds, dtype=torch.float32, dt=dt, seed=a.sim_seed).to_json_dict()
            T = r["tasks"][name]
            print(f"simulation N = {N}, RK4 step {dt:g}, {a.seeds} seeds, data seed {a.sim_seed} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            for k in KEYS:
                print(f"   {k:11s} {fmt(T[k], T[k + '_se'])}")


def cmd_compare(a, s):
    name = s.tasks[0].name
    for corr in (0, 2):
        t0 = time.perf_counter()
        r = solve_dmft(s, DmftOptions(n_paths=a.paths, batches=a.batches, step_correction=corr)).tasks[name]
        print(f"DMFT {a.batches} × {a.paths} paths, step_correction {corr} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        for k in KEYS:
            print(f"   {k:11s} {fmt(r[k], r[k + '_se'])}")


def _trunk():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dmft_speed import trunk_setup
    return trunk_setup()


def cmd_pairs(a, s):
    from mtsp.numeric.dmft.solve import default_dt, time_grid, trunk_trajectory
    trunk = _trunk()
    opts = DmftOptions(n_paths=a.paths, n_response=1000)
    dt = default_dt(float(trunk.training.lr))
    out = {}
    for h in (dt, 2 * dt):
        steps, req = time_grid(trunk.training.times, h, float(trunk.training.lr))
        t0 = time.perf_counter()
        out[h] = np.array([trunk_trajectory(trunk, steps, opts, b)[3][req] for b in range(a.batches)])
        print(f"step {h:g}: {len(steps)} steps, {(time.perf_counter() - t0) / a.batches:.1f} s per batch "
              f"of {a.paths} paths", flush=True)
    for j, name in enumerate(t.name for t in trunk.tasks):
        print(f"task {name}, t = {list(trunk.training.times)}:")
        for b in range(a.batches):
            print(f"   batch {b}: train_loss {np.round(out[dt][b, :, j], 5).tolist()}  correction "
                  f"f(dt) − f(2dt) {np.round(out[dt][b, :, j] - out[2 * dt][b, :, j], 5).tolist()}")


def cmd_speed(a, s):
    trunk = _trunk()
    times = {0: [], DmftOptions().step_correction: []}
    for _ in range(a.repeat):
        for corr in times:
            t0 = time.perf_counter()
            r = solve_dmft(trunk, DmftOptions(step_correction=corr))
            times[corr].append(time.perf_counter() - t0)
            print(f"defaults, step_correction {corr}: {times[corr][-1]:.1f} s; train_loss A, B "
                  f"at t = {r.times}: {np.round(r.tasks['A']['train_loss'], 4).tolist()}, "
                  f"{np.round(r.tasks['B']['train_loss'], 4).tolist()}", flush=True)
    t0, t1 = (np.mean(v) for v in times.values())
    print(f"mean {t0:.1f} s → {t1:.1f} s ({100 * (t1 / t0 - 1):+.0f} %)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["step", "paths", "sim", "compare", "pairs", "speed"])
    ap.add_argument("--case", choices=sorted(CASES), default="C2_a2")
    ap.add_argument("--dts", default="0.4,0.2,0.1,0.05")
    ap.add_argument("--paths", type=int, default=4000)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--paths-list", default="1000,2000,4000,8000,16000")
    ap.add_argument("--batches-list", default="64,32,16,8,4")
    ap.add_argument("--N", default="1000,2000")
    ap.add_argument("--sim-dts", default="0.1")
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--sim-seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    s = setup_of(a.case)
    print(f"# {a.what} {a.case}: {CASES[a.case]}", flush=True)
    {"step": cmd_step, "paths": cmd_paths, "sim": cmd_sim, "compare": cmd_compare,
     "pairs": cmd_pairs, "speed": cmd_speed}[a.what](a, s)


if __name__ == "__main__":
    main()

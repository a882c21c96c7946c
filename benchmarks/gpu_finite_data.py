"""The finite-data simulators on CUDA (issues 16 and 17: "CPU or CUDA"), checked against their CPU
runs and against theory, in one run on one machine:

  1. erm (examples/erm_coupled_tasks.toml): the exact minimisers on CPU and on CUDA (float64, same
     seeds): the largest |z| between the two runs (the generators differ), both times; then the replica engine
     against a CUDA simulation at --N-big with --seeds-big seeds (|Δ| ≤ 4 SE + 0.003).
  2. full_batch (the two-task shared linear trunk of benchmarks/dmft_speed.py, t ≤ 31): gradient
     flow on CPU and on CUDA (float64, same seeds): largest |z|, both times; then the DMFT
     (4 × 3000 paths) against a CUDA simulation at --N-big (float32, RK4 step 0.2).

    PYTHONPATH=$PWD python benchmarks/gpu_finite_data.py [--device cuda] [--N 1000] [--seeds 8]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dmft_speed import trunk_setup  # noqa: E402
from mtsp.api import solve  # noqa: E402
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft  # noqa: E402
from mtsp.setup import load_setup  # noqa: E402
from mtsp.validate.compare import compare  # noqa: E402
from mtsp.validate.simulate import simulate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timed_sim(setup, device, **kw):
    t0 = time.perf_counter()
    res = simulate(setup, device=device, **kw)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return res.to_json_dict(), time.perf_counter() - t0


def _largest_z(a: dict, b: dict) -> float:
    """max |mean_a − mean_b| / sqrt(SE_a² + SE_b²) over every task, quantity and time: the CPU and
    CUDA generators give different draws, so the two runs agree in distribution, not bitwise."""
    worst = 0.0
    for name, task in a["tasks"].items():
        for key, v in task.items():
            if key.endswith("_se") or key + "_se" not in task:
                continue
            x, y = np.asarray(v, float), np.asarray(b["tasks"][name][key], float)
            se = np.hypot(np.asarray(task[key + "_se"], float),
                          np.asarray(b["tasks"][name][key + "_se"], float))
            with np.errstate(divide="ignore", invalid="ignore"):   # 0/0 where both SE are 0
                worst = max(worst, float(np.nanmax(np.abs(x - y) / se)))
    return worst


def _report(title, theory: dict, sim: dict):
    cmp = compare(theory, sim)
    zs = [abs(r["z"]) for r in cmp.rows if r["z"] is not None]
    bad = [r for r in cmp.rows if not r["agrees"]]
    print(f"{title}: {cmp.verdict()}, {len(cmp.rows) - len(bad)}/{len(cmp.rows)} rows, max |z| "
          f"{max(zs):.2f}", flush=True)
    for r in cmp.rows:
        z = "—" if r["z"] is None else f"{r['z']:+.2f}"
        print(f"    {r['quantity']:10s} {r['task']} t={r['time']}  theory {r['theory']:.4f}  sim "
              f"{r['simulation']:.4f} ± {r['se']:.4f}  z = {z}  {'ok' if r['agrees'] else 'FAIL'}",
              flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--N-big", type=int, default=4000)
    ap.add_argument("--seeds-big", type=int, default=32)
    a = ap.parse_args()
    name = torch.cuda.get_device_name() if a.device.startswith("cuda") else a.device
    print(f"# device {a.device} ({name}), torch {torch.__version__}, numpy {np.__version__}",
          flush=True)
    erm = load_setup(os.path.join(ROOT, "examples", "erm_coupled_tasks.toml"))
    fb = trunk_setup()
    for title, s, kw in (("erm", erm, {}), ("full_batch", fb, {"dt": 0.2})):
        cpu, tc = _timed_sim(s, "cpu", N=a.N, seeds=a.seeds, **kw)
        gpu, tg = _timed_sim(s, a.device, N=a.N, seeds=a.seeds, **kw)
        print(f"[{title}] N = {a.N}, {a.seeds} seeds, float64: cpu {tc:.1f} s, {a.device} "
              f"{tg:.1f} s; largest |z| between them {_largest_z(cpu, gpu):.2f}",
              flush=True)
    t0 = time.perf_counter()
    th_erm = solve(erm).to_json_dict()
    t1 = time.perf_counter()
    sim, ts = _timed_sim(erm, a.device, N=a.N_big, seeds=a.seeds_big)
    print(f"[erm] replica {t1 - t0:.1f} s; {a.device} simulation N = {a.N_big}, {a.seeds_big} "
          f"seeds {ts:.1f} s", flush=True)
    _report("[erm] replica vs simulation", th_erm, sim)
    t0 = time.perf_counter()
    th_fb = solve_dmft(fb, DmftOptions(n_paths=3000, n_response=600, batches=4)).to_json_dict()
    t1 = time.perf_counter()
    sim, ts = _timed_sim(fb, a.device, N=a.N_big, seeds=a.seeds_big, dtype=torch.float32, dt=0.2)
    print(f"[full_batch] DMFT {t1 - t0:.1f} s; {a.device} simulation N = {a.N_big}, "
          f"{a.seeds_big} seeds, float32 {ts:.1f} s", flush=True)
    _report("[full_batch] DMFT vs simulation", th_fb, sim)


if __name__ == "__main__":
    main()

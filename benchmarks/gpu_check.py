"""The GPU check of issue "The online engine, end to end": simulate two-task setups on CUDA at
N = 4000 with 32 seeds, report throughput (sample-steps per second, one sample per seed per SGD
step) and agreement with theory (|Δ| ≤ 4·SE + 0.003 at every reported time, as benchmarks/suite.py).

    python benchmarks/gpu_check.py [--N 4000] [--seeds 32] [--device cuda] [--json out.json]

Parts, in this order (each prints as it finishes):
  1. the CUDA SGD step against the CPU step from identical weights and inputs (float64);
  2. throughput of the same short run (t = 1, no extra evaluation grid) on CUDA and on one CPU
     thread (the simulator's CPU mode), so the ratio is measured in one run on one machine;
  3. the demo setup (mtsp demo), multitask and single-task, theory vs CUDA simulation;
  4. the suite's two-task tanh K = 4 case, multitask and single-task, theory vs CUDA simulation.

Prepared for a session that is lent a GPU (run it as one short script on the device machine); on a
CPU-only machine use --device cpu with a small N to try it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mtsp.api import solve  # noqa: E402  (derive, then numeric)
from suite import CASES, agreement, format_row  # noqa: E402
from mtsp.setup import default_setup, setup_from_dict  # noqa: E402


def _sync(device):
    import torch
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def step_equivalence(setup, device, N=512, seeds=4, steps=50):
    """Largest |W_dev − W_cpu| and |V_dev − V_cpu| after `steps` identical SGD steps."""
    import torch
    from mtsp.validate.simulate import _Model
    cpu = _Model(setup, N, seeds, "cpu", torch.float64)
    cpu.init_weights(torch.Generator().manual_seed(0))
    dev = _Model(setup, N, seeds, device, torch.float64)
    dev.B, dev.W = cpu.B.to(dev.device), cpu.W.clone().to(dev.device)
    dev.V = None if cpu.V is None else cpu.V.clone().to(dev.device)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(seeds, N, generator=g, dtype=torch.float64)
        xi = torch.randn(seeds, cpu.M, generator=g, dtype=torch.float64)
        lam = torch.bmm(cpu.B, x.unsqueeze(-1)).squeeze(-1) / math.sqrt(N)
        _, y = cpu.labels(lam, xi)
        wm = torch.ones(seeds, cpu.T, dtype=torch.float64) * cpu.weights
        wy = torch.nn.functional.one_hot(y, cpu.Cmax).to(torch.float64) * wm.unsqueeze(-1)
        cpu.step(x, wm, wy)
        dev.step(x.to(dev.device), wm.to(dev.device), wy.to(dev.device))
    dW = float((dev.W.cpu() - cpu.W).abs().max())
    dV = 0.0 if cpu.V is None else float((dev.V.cpu() - cpu.V).abs().max())
    return dW, dV, float(cpu.W.abs().max())


def throughput(setup, device, N, seeds, t=1.0):
    from mtsp.validate.simulate import simulate
    short = setup_from_dict({**setup.to_dict(), "training": {**setup.to_dict()["training"],
                                                             "times": [t]}})
    _sync(device)
    t0 = time.perf_counter()
    simulate(short, N=N, seeds=seeds, device=device, grid=0)
    _sync(device)
    dt = time.perf_counter() - t0
    return dt, N * t * seeds / dt


def compare(setup, device, N, seeds):
    from mtsp.validate.simulate import simulate_with_single
    t0 = time.perf_counter()
    th = solve(setup, single=True).to_json_dict()
    t1 = time.perf_counter()
    sim = simulate_with_single(setup, N=N, seeds=seeds, device=device).to_json_dict()
    _sync(device)
    t2 = time.perf_counter()
    rows, ok = agreement(th, sim)
    return dict(name=setup.name, ok=ok, max_abs_z=max(abs(r["z"]) for r in rows), theory_s=t1 - t0, sim_s=t2 - t1,
                rows=rows, multitask_benefit={
                    task: [th["tasks"][task]["gen_error"][-1] - th["single"][task]["gen_error"][-1],
                           sim["tasks"][task]["gen_error"][-1] - sim["single"][task]["gen_error"][-1]]
                    for task in th["tasks"]})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=4000)
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json")
    ap.add_argument("--skip-cpu", action="store_true", help="skip the CPU throughput baseline")
    a = ap.parse_args(argv)
    import torch
    out = {"device": a.device, "N": a.N, "seeds": a.seeds}
    name = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "cpu"
    out["device_name"] = name
    print(f"device {a.device} ({name}), torch {torch.__version__}, N = {a.N}, {a.seeds} seeds",
          flush=True)
    demo = default_setup()
    tanh4 = setup_from_dict(next(c for c in CASES if c["name"].startswith("shared tanh K=4")))

    # 1. the step on the device against the CPU step
    for s in (demo, tanh4):
        dW, dV, scale = step_equivalence(s, a.device)
        out.setdefault("step_equivalence", {})[s.name] = {"max_dW": dW, "max_dV": dV}
        print(f"[1] {s.name}: 50 SGD steps {a.device} vs cpu: max|ΔW| {dW:.2e} "
              f"(|W| ≤ {scale:.2f}), max|ΔV| {dV:.2e}", flush=True)

    # 2. throughput, same short run on the device and on the CPU
    simulate_warm = throughput(demo, a.device, 1000, 4, t=0.2)  # noqa: F841 (CUDA warm-up)
    dt_dev, rate_dev = throughput(demo, a.device, a.N, a.seeds)
    out["throughput"] = {a.device: {"seconds": dt_dev, "sample_steps_per_s": rate_dev}}
    print(f"[2] demo setup t = 1 (N·t = {a.N} steps × {a.seeds} seeds): {a.device} {dt_dev:.2f} s "
          f"= {rate_dev:.3g} sample-steps/s", flush=True)
    if not a.skip_cpu and a.device != "cpu":
        dt_cpu, rate_cpu = throughput(demo, "cpu", a.N, a.seeds)
        out["throughput"]["cpu"] = {"seconds": dt_cpu, "sample_steps_per_s": rate_cpu}
        print(f"[2] same run on cpu (one thread): {dt_cpu:.2f} s = {rate_cpu:.3g} sample-steps/s; "
              f"{a.device} is {dt_cpu / dt_dev:.1f}x faster", flush=True)

    # 3-4. theory vs device simulation
    out["cases"] = []
    for part, s in ((3, demo), (4, tanh4)):
        r = compare(s, a.device, a.N, a.seeds)
        out["cases"].append(r)
        print(f"[{part}] [{'agree' if r['ok'] else 'DISAGREE'}] {r['name']}: theory {r['theory_s']:.1f} s, "
              f"{a.device} simulation (multitask + single-task) {r['sim_s']:.1f} s, "
              f"{len(r['rows'])} comparisons, max |z| {r['max_abs_z']:.2f}", flush=True)
        for row in r["rows"]:
            print("      " + format_row(row), flush=True)
        for task, (bt, bs) in r["multitask_benefit"].items():
            print(f"      multitask − single at t_last, {task}: theory {bt:+.4f}, simulation {bs:+.4f}",
                  flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0 if all(r["ok"] for r in out["cases"]) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Time per (α, λ) point of the replica engine, and of the ERM simulation at N = 1000, in one run.

Three structures (issue 16's targets: < 1 s per point for one three-class task, < 5 s for two coupled
three-class tasks, on 2 cores): one C = 3 task (noise 0.5), two coupled C = 3 tasks on separate inputs
(alignment 0.8, μ = 1, noise 0.5: one loss channel per task) and the same two tasks on shared inputs
(one joint loss channel of 9 joint labels over Σ_t (C_t − 1) = 4 fields, on the QMC rule of
`ReplicaAccuracy.joint_points(4)` points), on a grid α ∈ {0.5, 1, 2, 3, 5} × λ ∈ {0.01, 0.1, 1}
(``--alphas``, ``--ridges``).  Each point is solved cold (default start) and warm (from the previous
point of the sweep along α), with the predictions included (`solve_erm`: fixed point + errors);
wall and CPU seconds.  With ``--cli``, `mtsp solve SETUP --json` as a process at α = 2, λ = 0.1
(Python's start and imports included).

The simulation is the project's (`mtsp.simulate`, what `mtsp simulate` / `mtsp validate` run for
erm: per seed the exact minimiser by Newton–CG in float64 to gradient rms 1e-10, validate/erm.py;
torch on one thread, seeds batched) at the same setup and N = 1000: one seed alone, and `--seeds`
seeds in one batch (per-seed time = total / seeds), at `--sim-points` points of the grid. The
ratio simulation / theory is taken point by point against the cold theory time.

    PYTHONPATH=. python benchmarks/replica_speed.py [--only one,separate,shared] [--sim-points 3]
        [--seeds 8] [--N 1000] [--alphas 0.5,1,2,3,5] [--ridges 0.01,0.1,1] [--cli]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from mtsp.numeric.erm import solve_erm
from mtsp.validate.simulate import simulate
from replica_vs_erm import setup

ALPHAS = (0.5, 1.0, 2.0, 3.0, 5.0)
RIDGES = (0.01, 0.1, 1.0)
SIM_POINTS = ((2.0, 0.1), (5.0, 0.01), (1.0, 1.0), (0.5, 0.1), (3.0, 1.0))


def one_task(alpha, ridge):
    return setup([{"name": "A", "classes": 3, "noise": 0.5}], alpha, ridge, name="one C3 task")


def two_coupled(alpha, ridge):
    return setup([{"name": "A", "classes": 3, "noise": 0.5, "alpha": alpha},
                  {"name": "B", "classes": 3, "noise": 0.5, "alpha": alpha}],
                 None, ridge, 1.0, "separate", {"alignment": 0.8}, name="two coupled C3 tasks")


def two_coupled_shared(alpha, ridge):
    return setup([{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 3, "noise": 0.5}],
                 alpha, ridge, 1.0, "shared", {"alignment": 0.8}, name="two coupled C3 tasks, shared inputs")


STRUCTURES = {"one": one_task, "separate": two_coupled, "shared": two_coupled_shared}


def cli_seconds(s) -> float:
    """Wall seconds of `mtsp solve SETUP --json` as a process (start and imports included)."""
    import subprocess
    import tempfile
    tasks = "".join(f'[[tasks]]\nname = "{t.name}"\nclasses = {t.classes}\nnoise = {t.noise}\n'
                    + (f"alpha = {t.alpha}\n" if s.training.inputs == "separate" else "") for t in s.tasks)
    tr = s.training
    text = (f'name = "speed"\n{tasks}[teacher]\nalignment = {s.teacher.alignment}\n[student]\nkind = "glm"\n'
            f'[training]\nprotocol = "erm"\ninputs = "{tr.inputs}"\nridge = {tr.ridge}\ncoupling = {tr.coupling}\n'
            + (f"alpha = {tr.alpha}\n" if tr.inputs == "shared" else ""))
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(text)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mtsp", "solve", f.name, "--json"], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    os.unlink(f.name)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim-points", type=int, default=3, help="grid points simulated per structure")
    ap.add_argument("--seeds", type=int, default=8, help="seeds of the batched simulation")
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--only", default="one,separate,shared", help="structures: one, separate, shared")
    ap.add_argument("--alphas", default=",".join(map(str, ALPHAS)))
    ap.add_argument("--ridges", default=",".join(map(str, RIDGES)))
    ap.add_argument("--cli", action="store_true", help="also time `mtsp solve` as a process at α 2, λ 0.1")
    a = ap.parse_args(argv)
    alphas, ridges = ([float(v) for v in x.split(",")] for x in (a.alphas, a.ridges))
    import torch
    print(f"# replica engine: seconds per (alpha, ridge) point (fixed point + predictions); "
          f"cores visible {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; torch threads "
          f"{torch.get_num_threads()} (the simulator runs on one)")
    for make in (STRUCTURES[k] for k in a.only.split(",")):
        cold, warm, rows, cold_at, cpu = [], [], [], {}, []
        for ridge in ridges:
            prev = None
            for alpha in alphas:
                s = make(alpha, ridge)
                t0, c0 = time.perf_counter(), time.process_time()
                out = solve_erm(s)
                tc, cc = time.perf_counter() - t0, time.process_time() - c0
                t0 = time.perf_counter()
                out_w = solve_erm(s, start=prev) if prev is not None else out
                tw = time.perf_counter() - t0 if prev is not None else tc
                cpu.append(cc)
                prev = out_w["fixed_points"]
                g = out["tasks"]["A"]["gen_error"][0]
                gw = out_w["tasks"]["A"]["gen_error"][0]
                cold.append(tc)
                warm.append(tw)
                cold_at[(alpha, ridge)] = (tc, g)
                rows.append(f"  alpha {alpha:>4g} ridge {ridge:>5g}: cold {tc:6.2f} s ({cc:5.2f} s CPU) "
                            f"({out['stats']['iterations'][0]:>3} it), warm {tw:6.2f} s "
                            f"({out_w['stats']['iterations'][0]:>3} it)  gen_error {g:.6f} "
                            f"(warm − cold {gw - g:+.1e})")
        print(f"{make(1.0, 0.1).name}:")
        print("\n".join(rows))
        print(f"  per point: cold median {np.median(cold):.2f} s, max {max(cold):.2f} s (CPU median "
              f"{np.median(cpu):.2f} s, max {max(cpu):.2f} s); warm median {np.median(warm):.2f} s, max "
              f"{max(warm):.2f} s; load {os.getloadavg()[0]:.1f}")
        if a.cli:
            print(f"  mtsp solve --json as a process at alpha 2 ridge 0.1: {cli_seconds(make(2.0, 0.1)):.2f} s wall")
        sys.stdout.flush()
        ratios1, ratios_s = [], []
        for alpha, ridge in [p for p in SIM_POINTS if p in cold_at][:a.sim_points]:
            s = make(alpha, ridge)
            t0 = time.perf_counter()
            simulate(s, N=a.N, seeds=1)
            t1 = time.perf_counter() - t0
            t0 = time.perf_counter()
            sim = simulate(s, N=a.N, seeds=a.seeds)
            ts = time.perf_counter() - t0
            th, g = cold_at[(alpha, ridge)]
            gs, se = sim.tasks["A"]["gen_error"][0], sim.tasks["A"]["gen_error_se"][0]
            ratios1.append(t1 / th)
            ratios_s.append(ts / a.seeds / th)
            print(f"  simulation N = {a.N} at alpha {alpha:g} ridge {ridge:g}: one seed {t1:.2f} s; "
                  f"{a.seeds} seeds {ts:.2f} s = {ts / a.seeds:.2f} s per seed "
                  f"(Newton {sim.solver['newton_iterations']} it, grad rms "
                  f"{sim.solver['grad_rms_max']:.1e}); theory {th:.2f} s; ratio simulation / "
                  f"theory: one seed {t1 / th:.1f}, per seed {ts / a.seeds / th:.1f}; "
                  f"gen_error {gs:.4f} ± {se:.4f} vs theory {g:.4f}")
            sys.stdout.flush()
        print(f"  ratio simulation / theory (median over the simulated points): one seed "
              f"{np.median(ratios1):.1f}, per seed of {a.seeds} {np.median(ratios_s):.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

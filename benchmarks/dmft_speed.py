"""Speed of the DMFT against the full-batch simulator, in one run (issue 17: 200 time steps of a
two-task shared linear trunk in under 2 minutes on 2 cores, at the accuracy the agreement needs).

Case: two related tasks on a shared linear trunk (case 1 of benchmarks/dmft_trunk_vs_simulation.py:
alignment 0.9, C = 2 each, noise 0.2 / 1.0, K = 2, α = 2, κ = 0.05, lr 1), times 1, 3, 10, 31
(194 grid steps). Prints, all timed in this run:
  * with --before REV: one path batch (3000 paths, 600 for the response) of the engine of git
    revision REV (its numeric/dmft/engine.py) and of the current one, interleaved twice on the
    same fixed normals, and the largest difference of their outputs;
  * the DMFT at the accuracy of the agreement runs (4 batches × 3000 paths, 600 response), alone
    and with the two single-task baselines, and at the engine's defaults (8 × 4000, 1000);
  * the simulation of the multitask setup at N = 1000 (RK4 step 0.2, float32) and the
    agreement rows (validate.compare: |DMFT − simulation| ≤ 4 SE + 0.003) at all four times.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/dmft_speed.py --before 1a768f1

--tree REV [--cases trunk,glm_single,...]: whole solves (`CASES`) of the source tree of git revision
REV (`git archive`, run in a subprocess with PYTHONPATH on it) and of this tree, interleaved
(REV, this, REV, this), each a fresh process; their times and the largest difference of every
output (all metrics at every time, the early-stopped minima, the baselines' too). --no-sim: only
the DMFT timings.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from mtsp.numeric.dmft import solve as dmft_solve
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft, solve_full_batch
from mtsp.validate.compare import compare
from mtsp.validate.simulate import simulate

from mtsp.setup import setup_from_dict

ROOT = Path(__file__).resolve().parents[1]


def trunk_setup():
    heads = [[0.5, -0.1], [-0.5, 0.2]]
    return setup_from_dict({
        "tasks": [{"name": "A", "classes": 2, "noise": 0.2}, {"name": "B", "classes": 2, "noise": 1.0}],
        "teacher": {"alignment": 0.9},
        "student": {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.2,
                    "head_init": [heads, heads]},
        "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0, "weight_decay": 0.05,
                     "times": [1, 3, 10, 31]}})


def engine_at(rev: str):
    """numeric/dmft/engine.py as of git revision `rev`, as a module."""
    code = subprocess.run(["git", "show", f"{rev}:numeric/dmft/engine.py"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    mod = types.ModuleType(f"dmft_engine_{rev}")
    sys.modules[mod.__name__] = mod        # dataclasses look their module up
    exec(compile(code, f"{rev}:numeric/dmft/engine.py", "exec"), mod.__dict__)
    return mod


def outputs(res) -> np.ndarray:
    return np.array([res.tasks[t][k] for t in res.tasks
                     for k in ("gen_error", "test_loss", "train_loss", "train_error")])


def accepting(run):
    """`run` called with only the keyword arguments it accepts (an older engine lacks the newer
    options, left at their defaults)."""
    names = inspect.signature(run).parameters

    def call(*args, **kwargs):
        return run(*args, **{k: v for k, v in kwargs.items() if k in names})
    return call


def before_after(s, rev: str):
    old = engine_at(rev)
    old.run_dmft = accepting(old.run_dmft)
    current = dmft_solve.run_dmft
    opts = DmftOptions(n_paths=3000, n_response=600, batches=1, scan=60)
    times, outs = {"before": [], "after": []}, {}
    try:
        for _ in range(2):
            for name, run in (("before", old.run_dmft), ("after", current)):
                dmft_solve.run_dmft = run
                t0 = time.perf_counter()
                res = solve_dmft(s, opts)
                times[name].append(time.perf_counter() - t0)
                outs[name] = outputs(res)
    finally:
        dmft_solve.run_dmft = current
    diff = np.abs(outs["before"] - outs["after"]).max()
    print(f"one batch (3000 paths, 600 response), {res.stats['steps']} steps, interleaved: engine "
          f"of {rev} {times['before'][0]:.1f} s, {times['before'][1]:.1f} s; current "
          f"{times['after'][0]:.1f} s, {times['after'][1]:.1f} s; largest difference of gen_error, "
          f"test_loss, train_loss, train_error at t = 1, 3, 10, 31: {diff:.1e}", flush=True)


def wide_setup(seed: int, k: int):
    """Setup k of `dmft_random_setups.py --space wide --seed SEED`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import dmft_random_setups
    return setup_from_dict(dmft_random_setups.draws(seed, k + 1, "wide")[k])


def glm_pair():
    """Two glm tasks on shared inputs (C = 2 and 4), t ≤ 10, for the single-task baselines."""
    return setup_from_dict({
        "tasks": [{"name": "A", "classes": 2, "noise": 0.3}, {"name": "B", "classes": 4, "noise": 0.5}],
        "teacher": {"alignment": 0.5},
        "student": {"kind": "glm", "init_scale": 0.1},
        "training": {"protocol": "full_batch", "alpha": 2.0, "lr": 1.0, "times": [1, 3, 10]}})


CASES = {
    # name: (setup, DmftOptions keyword arguments, with the single-task baselines)
    "trunk": (trunk_setup, {}, False),                                   # this file's case, defaults
    "trunk_single": (trunk_setup, {"n_paths": 3000, "n_response": 600, "batches": 4}, True),
    "glm_single": (glm_pair, {"batches": 4}, True),
    "relu_wide": (lambda: wide_setup(6, 2), {"batches": 1}, False),      # relu K = 1, 3 tasks, 300 steps
}


def run_case(name: str) -> dict:
    """One case's solve in this process: {"time", "outputs" (a flat list)}."""
    make, kw, single = CASES[name]
    s = make()
    t0 = time.perf_counter()
    res = solve_full_batch(s, single=single, opts=DmftOptions(**kw))
    dt = time.perf_counter() - t0
    flat = []
    for part in [res.tasks] + ([res.single] if single else []):
        for task in part.values():
            for key in sorted(task):
                v = task[key]
                flat += [float(x) for x in (v if isinstance(v, list) else [v])]
    return {"time": dt, "outputs": flat, "steps": res.stats["steps"]}


def tree_vs_this(rev: str, cases: list[str]):
    """`CASES` solved by the tree of `rev` and by this one, interleaved, each in its own process."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        for case in cases:
            runs = {"before": [], "after": []}
            for _ in range(2):
                for name, tree in (("before", tmp), ("after", str(ROOT))):
                    env = dict(os.environ, PYTHONPATH=tree)
                    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", case],
                                         cwd=tree, env=env, check=True, capture_output=True, text=True)
                    runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            b, a = (np.array(runs[k][-1]["outputs"]) for k in ("before", "after"))
            diff = float(np.nanmax(np.abs(a - b))) if a.shape == b.shape else float("nan")
            tb = ", ".join(f"{r['time']:.1f}" for r in runs["before"])
            ta = ", ".join(f"{r['time']:.1f}" for r in runs["after"])
            print(f"{case} ({runs['after'][0]['steps']} steps): tree of {rev} {tb} s; this tree {ta} s; "
                  f"{a.size} outputs, largest difference {diff:.1e}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="", help="git revision whose engine to time beside this one")
    ap.add_argument("--tree", default="", help="git revision whose whole tree to time beside this one")
    ap.add_argument("--cases", default="trunk,trunk_single,glm_single,relu_wide")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--N", type=int, default=1000)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child)))
        return
    s = trunk_setup()
    print(f"# two related tasks on a shared linear trunk (K = 2, α = 2), t ≤ 31; torch threads "
          f"{torch.get_num_threads()}", flush=True)
    if args.before:
        before_after(s, args.before)
    if args.tree:
        tree_vs_this(args.tree, args.cases.split(","))
    if args.no_sim:
        return
    agree = DmftOptions(n_paths=3000, n_response=600, batches=4)
    t0 = time.perf_counter()
    multi = solve_dmft(s, agree)
    t1 = time.perf_counter()
    solve_full_batch(s, single=True, opts=agree)
    t2 = time.perf_counter()
    solve_dmft(s)
    t3 = time.perf_counter()
    print(f"DMFT {multi.stats['steps']} steps, 4 × 3000 paths (600 response): {t1 - t0:.1f} s; "
          f"with the single-task baselines: {t2 - t1:.1f} s; defaults (8 × 4000, 1000): "
          f"{t3 - t2:.1f} s", flush=True)
    sim = simulate(s, N=args.N, seeds=args.seeds, dtype=torch.float32, dt=0.2)
    t4 = time.perf_counter()
    print(f"simulation N = {args.N}, {args.seeds} seeds, RK4 step 0.2, float32: {t4 - t3:.1f} s",
          flush=True)
    cmp = compare(multi.to_json_dict(), sim.to_json_dict())
    for r in cmp.rows:
        z = "—" if r["z"] is None else f"{r['z']:+.2f}"
        print(f"{r['quantity']:9s} {r['task']}  t={r['time']:g}  dmft {r['theory']:.4f}  sim "
              f"{r['simulation']:.4f} ± {r['se']:.4f}  z = {z}  {'ok' if r['agrees'] else 'FAIL'}")
    for e in cmp.early_stopped:
        if e["theory"] is not None and e["simulation"] is not None:
            print(f"early-stopped {e['quantity']} {e['task']}: dmft {e['theory']:.4f}  sim "
                  f"{e['simulation']:.4f}")
    print(f"verdict: {cmp.verdict()}")


if __name__ == "__main__":
    main()

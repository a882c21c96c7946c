"""Theory vs simulation on randomly drawn setups (a generality check beyond the fixed suite).

Draws online setups across the model (student kind, activation, C, K, rank, noise, norms,
alignment, class map, inputs, weights, learning rates, times) and compares theory with simulation
at every reported time: |Δ| ≤ 4 SE + floor (default floor 0.005 for the O(1/N) finite-size bias).

    python benchmarks/random_setups.py [--n 20] [--seed 0] [--N 1000] [--seeds 6]
                                       [--device cuda] [--max-seconds 400]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from mtsp.api import solve   # derive, then numeric
from mtsp.setup import SetupError, setup_from_dict
from mtsp.validate.simulate import simulate


def draw(rng) -> dict:
    n_tasks = int(rng.integers(1, 3))
    kind = "glm" if rng.random() < 0.3 else "shared"
    tasks = []
    for t in range(n_tasks):
        C = int(rng.integers(2, 5))
        task = {"name": "AB"[t], "classes": C, "noise": float(rng.choice([0.0, 0.3, 1.0, 2.0]))}
        if rng.random() < 0.25:
            task["rank"] = int(rng.integers(1, C + 1))
        if rng.random() < 0.3:
            task["norm"] = float(rng.choice([0.5, 2.0, 4.0]))
        if rng.random() < 0.2:
            task["weight"] = float(rng.choice([0.5, 2.0]))
        tasks.append(task)
    teacher = {"alignment": float(rng.choice([0.0, 0.5, 0.9])),
               "class_map": str(rng.choice(["aligned", "random"])), "seed": int(rng.integers(0, 100))}
    if kind == "glm":
        student = {"kind": "glm", "init_scale": float(rng.choice([0.0, 0.3]))}
    else:
        student = {"kind": "shared", "hidden": int(rng.integers(1, 4)),
                   "activation": str(rng.choice(["linear", "relu", "erf", "tanh"])),
                   "init_scale": float(rng.choice([0.1, 0.3, 0.6]))}
    t_end = float(rng.choice([2.0, 4.0, 8.0]))
    training = {"protocol": "online", "lr": float(rng.choice([0.3, 0.5, 1.0])),
                "times": [t_end / 2, t_end],
                "inputs": "separate" if (n_tasks > 1 and rng.random() < 0.3) else "shared"}
    if rng.random() < 0.2:
        training["weight_decay"] = 0.05
    if kind == "shared" and rng.random() < 0.3:
        training["head_lr"] = float(rng.choice([0.1, 1.0]))
    return {"name": "random", "tasks": tasks, "teacher": teacher, "student": student,
            "training": training}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--floor", type=float, default=0.005)
    ap.add_argument("--device", default="cpu", help="torch device of the simulations (cpu, cuda)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="stop drawing new setups after this many seconds (reports how many ran)")
    a = ap.parse_args(argv)
    start = time.perf_counter()
    rng = np.random.default_rng(a.seed)
    bad = 0
    done = 0
    while done < a.n:
        if a.max_seconds is not None and time.perf_counter() - start > a.max_seconds:
            print(f"stopped after {time.perf_counter() - start:.0f} s (--max-seconds)", flush=True)
            break
        d = draw(rng)
        try:
            setup = setup_from_dict(d)
        except SetupError:
            continue
        done += 1
        t0 = time.perf_counter()
        th = solve(setup).to_json_dict()
        t1 = time.perf_counter()
        sim = simulate(setup, N=a.N, seeds=a.seeds, grid=0, device=a.device).to_json_dict()
        t2 = time.perf_counter()
        worst = 0.0
        ok = True
        for name, v in th["tasks"].items():
            s = sim["tasks"][name]
            for k in range(len(th["times"])):
                diff = abs(v["gen_error"][k] - s["gen_error"][k])
                se = s["gen_error_se"][k]
                ok &= diff <= 4 * se + a.floor
                worst = max(worst, diff / max(se, 1e-9))
        bad += not ok
        print(f"[{'ok' if ok else 'FAIL'}] #{done} theory {t1 - t0:5.1f}s sim {t2 - t1:5.1f}s max|z| {worst:5.2f}  "
              f"{d['student']} tasks={d['tasks']} teacher={d['teacher']} training={d['training']}", flush=True)
        if not ok:
            for name, v in th["tasks"].items():
                print(f"      {name}: theory {np.round(v['gen_error'], 4)} sim "
                      f"{np.round(sim['tasks'][name]['gen_error'], 4)} ± "
                      f"{np.round(sim['tasks'][name]['gen_error_se'], 4)}", flush=True)
    print(f"{done - bad}/{done} random setups agree")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Robustness of the replica engine on random erm setups (theory only): every setup must converge to
the stated residual or raise with its residual; prints time, iterations, nodes and gen_error.

    PYTHONPATH=. python benchmarks/replica_random_setups.py [--n 40] [--seed 1]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from mtsp.numeric.erm import solve_erm

from mtsp.setup import setup_from_dict


def random_setup(rng, k):
    T = int(rng.choice([1, 1, 2, 3]))
    C = int(rng.choice([2, 3]))
    inputs = "separate" if T > 1 and rng.random() < 0.7 else "shared"
    tasks = []
    for t in range(T):
        task = {"name": f"T{t}", "classes": C,
                "noise": 0.0 if rng.random() < 0.3 else float(rng.uniform(0.05, 1.5)),
                "norm": float(np.exp(rng.uniform(np.log(0.3), np.log(4.0)))),
                "rank": int(rng.integers(1, C + 1))}
        if task["noise"] == 0.0 and task["rank"] < C - 1:
            task["noise"] = 0.1       # clean labels of a rank < C − 1 teacher are not supported
        if inputs == "separate":
            task["alpha"] = float(np.exp(rng.uniform(np.log(0.3), np.log(6.0))))
        tasks.append(task)
    training = {"protocol": "erm", "inputs": inputs,
                "ridge": float(np.exp(rng.uniform(np.log(1e-3), np.log(3.0))))}
    if inputs == "shared":
        training["alpha"] = float(np.exp(rng.uniform(np.log(0.3), np.log(6.0))))
    if T > 1 and inputs == "separate" and rng.random() < 0.7:
        training["coupling"] = float(np.exp(rng.uniform(np.log(0.01), np.log(5.0))))
    teacher = {"alignment": float(rng.uniform(0, 1)),
               "class_map": "random" if rng.random() < 0.5 else "aligned", "seed": int(k)}
    return setup_from_dict({"name": f"random {k}", "tasks": tasks, "teacher": teacher,
                            "student": {"kind": "glm"}, "training": training})


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    fails = 0
    for k in range(a.n):
        s = random_setup(rng, k)
        tr = s.training
        desc = (f"T={len(s.tasks)} C={s.tasks[0].classes} {tr.inputs} ridge={tr.ridge:.3g} "
                f"mu={tr.coupling:.3g} " + " ".join(
                    f"[a={t.alpha if t.alpha is not None else tr.alpha:.2g} s={t.noise:.2g} "
                    f"n={t.norm:.2g} r={t.rank}]" for t in s.tasks))
        t0 = time.perf_counter()
        try:
            out = solve_erm(s)
            dt = time.perf_counter() - t0
            fps = [fp for _, fp in out["fixed_points"]]
            g = " ".join(f"{v['gen_error'][0]:.4f}" for v in out["tasks"].values())
            print(f"{k:3d} ok   {dt:6.2f} s it {sum(fp.iterations for fp in fps):4d} nodes "
                  f"{[fp.nodes for fp in fps]} res {max(fp.residual for fp in fps):.1e} gen {g} | {desc}")
        except Exception as e:  # noqa: BLE001 — report every failure
            fails += 1
            print(f"{k:3d} FAIL {time.perf_counter() - t0:6.2f} s {type(e).__name__}: {e} | {desc}")
        sys.stdout.flush()
    print(f"# {fails} failure(s) of {a.n}")


if __name__ == "__main__":
    main()

"""Theory-vs-simulation suite of the online engine (issue: "The online engine, end to end").

Each case is a full setup; theory (N → ∞) and finite-N simulation are compared on gen_error at
every reported time, multitask and single-task, with the criterion |Δ| ≤ 4·SE + 0.003.

    python benchmarks/suite.py [--N 1000] [--seeds 8] [--only NAME ...] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from mtsp.setup import setup_from_dict
from mtsp.api import solve   # derive, then numeric
from mtsp.validate.simulate import simulate_with_single


def _setup(name, tasks, student, times, teacher=None, **training):
    return {"name": name, "tasks": tasks, "teacher": teacher or {"norm": 1.0},
            "student": student, "training": {"protocol": "online", "lr": 0.5, "times": times, **training}}


GLM = {"kind": "glm", "init_scale": 0.0}


def shared(act, K=2, s0=0.3):
    return {"kind": "shared", "hidden": K, "activation": act, "init_scale": s0}


CASES = [
    _setup("glm C=2 noisy", [{"name": "A", "classes": 2, "noise": 0.3}], GLM, [1, 2, 4, 8]),
    _setup("glm C=3 clean", [{"name": "A", "classes": 3}], GLM, [1, 3, 6]),
    _setup("glm C=5 noisy rank 3", [{"name": "A", "classes": 5, "noise": 0.5, "rank": 3}], GLM, [1, 3]),
    _setup("glm 2 tasks related", [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 3}],
           GLM, [1, 3], teacher={"alignment": 0.7}),
    _setup("shared linear 2 tasks related, one noisy",
           [{"name": "clean", "classes": 3}, {"name": "noisy", "classes": 3, "noise": 1.0}],
           shared("linear", 4), [1, 3, 6], teacher={"alignment": 0.9}),
    _setup("shared linear 2 unrelated narrow", [{"name": "A", "classes": 3}, {"name": "B", "classes": 3}],
           shared("linear", 2), [1, 3, 6], teacher={"alignment": 0.0}),
    _setup("shared erf 1 task", [{"name": "A", "classes": 3, "noise": 0.5}], shared("erf", 2), [1, 3, 6]),
    _setup("shared tanh 2 tasks", [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 2}],
           shared("tanh", 2), [1, 3], teacher={"alignment": 0.5}),
    _setup("shared relu 2 tasks", [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 2}],
           shared("relu", 2), [1, 3], teacher={"alignment": 0.5}),
    _setup("shared linear 3 tasks random map", [{"name": "A", "classes": 2}, {"name": "B", "classes": 3, "noise": 0.5},
                                               {"name": "C", "classes": 2, "weight": 0.5}],
           shared("linear", 3), [1, 3], teacher={"alignment": 0.6, "class_map": "random", "norm": 2.0}),
    _setup("shared linear separate inputs", [{"name": "A", "classes": 3, "share": 2.0}, {"name": "B", "classes": 3, "noise": 0.8}],
           shared("linear", 2), [1, 3, 6], teacher={"alignment": 0.8}, inputs="separate"),
    _setup("shared erf weight decay", [{"name": "A", "classes": 2, "noise": 0.2}],
           shared("erf", 1, 0.5), [2, 6], weight_decay=0.05, head_lr=0.2),
    # wide fields: strong teachers and long training make logits and trunk fields large
    _setup("glm C=3 strong teacher, long", [{"name": "A", "classes": 3, "noise": 1.0}], GLM, [5, 20],
           teacher={"norm": 9.0}, lr=1.0),
    _setup("shared tanh strong teachers", [{"name": "A", "classes": 3}, {"name": "B", "classes": 3, "noise": 2.0}],
           shared("tanh", 2, 0.5), [2, 8], teacher={"norm": 4.0, "alignment": 0.9}, lr=1.0),
    _setup("shared relu separate, unequal", [{"name": "A", "classes": 4, "share": 3.0}, {"name": "B", "classes": 2, "noise": 0.5}],
           shared("relu", 3, 0.4), [2, 6], teacher={"norm": 2.0, "alignment": 0.7, "class_map": "random"},
           inputs="separate"),
    # wider trunks (fixed-Sobol' tier for tanh/erf, Sobol' inside sign orthants for relu)
    _setup("shared tanh K=4 2 tasks related, one noisy",
           [{"name": "clean", "classes": 3}, {"name": "noisy", "classes": 3, "noise": 1.0}],
           shared("tanh", 4, 0.1), [1, 3, 6], teacher={"alignment": 0.9}),
    _setup("shared relu K=4 2 tasks", [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 2}],
           shared("relu", 4, 0.3), [1, 3], teacher={"alignment": 0.6, "norm": 2.0}),
    _setup("shared erf K=3 2 tasks unrelated", [{"name": "A", "classes": 3}, {"name": "B", "classes": 3, "noise": 0.5}],
           shared("erf", 3, 0.3), [1, 3, 6], teacher={"alignment": 0.0}),
]


def agreement(th: dict, sim: dict) -> tuple[list, bool]:
    """Rows (run, task, t, theory, sim, se, z, ok) comparing gen_error of theory and simulation
    JSON (multitask and single-task) with |Δ| ≤ 4·SE + 0.003, and whether all agree."""
    rows, ok = [], True
    for part in ("tasks", "single"):
        for task, vals in th[part].items():
            sv = sim[part][task]
            for k, t in enumerate(th["times"]):
                a, b, se = vals["gen_error"][k], sv["gen_error"][k], sv["gen_error_se"][k]
                good = abs(a - b) <= 4 * se + 0.003
                ok &= good
                rows.append({"run": part, "task": task, "t": t, "theory": a, "sim": b, "se": se,
                             "z": (a - b) / se if se > 0 else float("inf"), "ok": good})
    return rows, ok


def format_row(row: dict) -> str:
    return (f"{row['run']:6s} {row['task']:6s} t={row['t']:<4g} theory {row['theory']:.4f} "
            f"sim {row['sim']:.4f} ± {row['se']:.4f}  z={row['z']:+.2f}{'' if row['ok'] else '  <--'}")


def run_case(d, N, seeds):
    setup = setup_from_dict(d)
    t0 = time.perf_counter()
    th = solve(setup, single=True).to_json_dict()
    t1 = time.perf_counter()
    sim = simulate_with_single(setup, N=N, seeds=seeds).to_json_dict()
    t2 = time.perf_counter()
    rows, ok = agreement(th, sim)
    rows = [{"case": d["name"], **row} for row in rows]
    return {"name": d["name"], "ok": ok, "rows": rows, "theory_s": t1 - t0, "sim_s": t2 - t1,
            "theory": th, "sim": sim}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    results = []
    for d in CASES:
        if a.only and not any(o in d["name"] for o in a.only):
            continue
        r = run_case(d, a.N, a.seeds)
        results.append(r)
        print(f"[{'ok' if r['ok'] else 'FAIL'}] {r['name']}: theory {r['theory_s']:.1f}s, "
              f"simulation {r['sim_s']:.1f}s", flush=True)
        for row in r["rows"]:
            print("    " + format_row(row), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    bad = [r["name"] for r in results if not r["ok"]]
    print(f"{len(results) - len(bad)}/{len(results)} cases agree" + (f"; failing: {bad}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

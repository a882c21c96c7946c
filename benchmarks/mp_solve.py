"""Double vs mp: gen_error of a two-task shared trunk (default: linear, K = 2, C = 2 or 3), the
issue's ≤ 1e-7 bar.

Solves the same setup with the double path (default accuracy and `accuracy="high"`) and with the
mp back-end (`precision="mp"`, mp Dormand–Prince), and prints the largest gen_error difference of
each double solve against mp, with the wall times.  ``--activation tanh --hidden 3`` gives the
K = 3 nonlinear case (teacher norm 3, alignment 0.6, σ₀ 0.5, noise 0.5 / 0: the mp errors by the
K = 3 cut rule; a K = 3 mp right-hand side costs tens of seconds, so keep ``--t`` small).
Run: PYTHONPATH=. python benchmarks/mp_solve.py [--classes 2] [--t 1.0] [--activation linear]
     [--hidden 2] [--dps 30] [--mp-nodes 24] [--processes 1|2] [--mp-only]
"""
import argparse
import time

import numpy as np

from mtsp.api import solve   # derive, then numeric
from mtsp.setup import setup_from_dict


def setup(classes=2, t_end=1.0, activation="linear", hidden=2):
    if activation == "linear":
        return setup_from_dict({
            "name": f"two tasks, shared linear trunk, C={classes}",
            "tasks": [{"name": "A", "classes": classes, "noise": 0.5},
                      {"name": "B", "classes": classes, "noise": 1.0}],
            "teacher": {"alignment": 0.9}, "student": {"kind": "shared", "hidden": hidden, "activation": "linear",
                                                       "init_scale": 0.3},
            "training": {"protocol": "online", "lr": 0.5, "times": [t_end / 2, t_end]}})
    return setup_from_dict({
        "name": f"two tasks, shared {activation} trunk K={hidden}, C={classes}",
        "tasks": [{"name": "A", "classes": classes, "noise": 0.5}, {"name": "B", "classes": classes}],
        "teacher": {"alignment": 0.6, "norm": 3.0},
        "student": {"kind": "shared", "hidden": hidden, "activation": activation, "init_scale": 0.5},
        "training": {"protocol": "online", "lr": 0.5, "times": [t_end / 2, t_end]}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--t", type=float, default=1.0)
    ap.add_argument("--activation", default="linear")
    ap.add_argument("--hidden", type=int, default=2)
    ap.add_argument("--dps", type=int, default=30)
    ap.add_argument("--mp-nodes", type=int, default=None)
    ap.add_argument("--processes", type=int, choices=(1, 2), default=None,
                    help="processes of the mp solve (default: 2 on a machine with ≥ 2 cores)")
    ap.add_argument("--mp-only", action="store_true", help="skip the double solves' comparison")
    a = ap.parse_args()
    su = setup(a.classes, a.t, a.activation, a.hidden)
    out = {}
    mp_kw = {"precision": "mp", "dps": a.dps, "mp_nodes": a.mp_nodes, "processes": a.processes}
    runs = (("mp", mp_kw),) if a.mp_only else (("double", {}), ("double-high", {"accuracy": "high"}), ("mp", mp_kw))
    for label, kw in runs:
        t0 = time.perf_counter()
        out[label] = solve(su, **kw)
        print(f"{label:12s} {time.perf_counter() - t0:8.1f} s  stats {out[label].stats}", flush=True)
    ref = out["mp"].tasks
    for label in () if a.mp_only else ("double", "double-high"):
        d = max(np.abs(np.array(out[label].tasks[k]["gen_error"]) - np.array(ref[k]["gen_error"])).max()
                for k in ref)
        print(f"max |gen_error({label}) - gen_error(mp)| = {d:.2e}")
    for k in ref:
        print(k, "mp gen_error:", ref[k]["gen_error_mp"])


if __name__ == "__main__":
    main()

"""Theory vs simulation wall time, measured in one run (these machines are noisy: compare ratios).

For four setups: `mtsp solve` (the generated engine, module already cached — a second solve
does not derive again) against the CPU simulation at N = 1000 with 4 seeds, same times.

    python benchmarks/speed.py [--N 1000] [--seeds 4]
"""
from __future__ import annotations

import argparse
import time

from mtsp.derive.codegen import load_module
from mtsp.numeric.model import theory_model
from mtsp.api import solve   # derive, then numeric
from mtsp.setup import default_setup, setup_from_dict
from mtsp.validate.simulate import simulate

SETUPS = {
    "glm C=2 (public check)": setup_from_dict({
        "tasks": [{"name": "A", "classes": 2, "noise": 0.3}], "student": {"kind": "glm"},
        "training": {"protocol": "online", "lr": 0.5, "times": [1, 2, 4, 8]}}),
    "demo: 2 tasks C=3, linear K=4": default_setup(),
    "2 tasks C=3/2, tanh K=2": setup_from_dict({
        "tasks": [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 2}],
        "teacher": {"alignment": 0.5},
        "student": {"kind": "shared", "hidden": 2, "activation": "tanh", "init_scale": 0.3},
        "training": {"protocol": "online", "lr": 0.5, "times": [1, 2, 4, 8]}}),
    "2 tasks C=3, tanh K=4": setup_from_dict({
        "tasks": [{"name": "clean", "classes": 3}, {"name": "noisy", "classes": 3, "noise": 1.0}],
        "teacher": {"alignment": 0.9},
        "student": {"kind": "shared", "hidden": 4, "activation": "tanh", "init_scale": 0.1},
        "training": {"protocol": "online", "lr": 0.5, "times": [1, 2, 4, 8]}}),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=4)
    a = ap.parse_args(argv)
    print(f"{'setup':34s} {'derive':>8s} {'theory':>8s} {'simulation':>11s} {'ratio':>7s}")
    for name, setup in SETUPS.items():
        model = theory_model(setup)
        t0 = time.perf_counter()
        load_module(model, setup.name)          # derivation + code generation (or cache hit)
        t1 = time.perf_counter()
        solve(setup)
        t2 = time.perf_counter()
        simulate(setup, N=a.N, seeds=a.seeds)
        t3 = time.perf_counter()
        print(f"{name:34s} {t1 - t0:7.2f}s {t2 - t1:7.2f}s {t3 - t2:10.2f}s {(t3 - t2) / (t2 - t1):6.1f}x",
              flush=True)


if __name__ == "__main__":
    main()

"""Theory against large CUDA simulations of setup files (tight error bars: N = 8000, 64 seeds by
default), multitask and single-task, with the criterion of benchmarks/suite.py.

    python benchmarks/gpu_validate.py SETUP.toml [...] [--N 8000] [--seeds 64] [--device cuda]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gpu_check import compare  # noqa: E402
from suite import format_row  # noqa: E402
from mtsp.setup import load_setup  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("setups", nargs="+")
    ap.add_argument("--N", type=int, default=8000)
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args(argv)
    ok = True
    for path in a.setups:
        r = compare(load_setup(path), a.device, a.N, a.seeds)
        ok &= r["ok"]
        print(f"[{'agree' if r['ok'] else 'DISAGREE'}] {r['name']}: theory {r['theory_s']:.1f} s, "
              f"{a.device} simulation N = {a.N}, {a.seeds} seeds (multitask + single-task) "
              f"{r['sim_s']:.1f} s, max |z| {r['max_abs_z']:.2f}", flush=True)
        for row in r["rows"]:
            print("      " + format_row(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

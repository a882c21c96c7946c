"""Wall time and output of `mtsp solve --json` under several configurations, interleaved.

Each configuration is LABEL=PYTHONPATH[:extra options], e.g. a checkout before a change against
this one, or --processes 1 against 2; the rounds interleave them so that a busy machine slows
all alike.  Prints the times per configuration and the largest difference of every JSON number
from the first configuration's output.

Run: python benchmarks/solve_processes.py SETUP --config main=/path/to/old \\
         --config "p2=.:--processes 2" --config "p1=.:--processes 1" [--rounds 3] [--single]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _numbers(a, b, out):
    if isinstance(a, dict):
        for k in a:
            _numbers(a[k], b[k], out)
    elif isinstance(a, list):
        for x, y in zip(a, b):
            _numbers(x, y, out)
    elif isinstance(a, (int, float)) and not isinstance(a, bool):
        out.append(abs(a - b))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("setup")
    ap.add_argument("--config", action="append", required=True, metavar="LABEL=PYTHONPATH[:OPTIONS]")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--single", action="store_true")
    a = ap.parse_args()
    configs = []
    for c in a.config:
        label, rest = c.split("=", 1)
        path, _, opts = rest.partition(":")
        configs.append((label, os.path.abspath(path), opts.split()))
    times = {label: [] for label, _, _ in configs}
    outputs = {}
    for _ in range(a.rounds):
        for label, path, opts in configs:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([path, os.environ.get("PYTHONPATH", "")])}
            cmd = [sys.executable, "-m", "mtsp", "solve", a.setup, "--json", "-q"] + (["--single"] if a.single else []) + opts
            t0 = time.perf_counter()
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            times[label].append(time.perf_counter() - t0)
            outputs[label] = json.loads(out.stdout)
    ref = configs[0][0]
    for label, _, opts in configs:
        diffs = []
        _numbers(outputs[ref], outputs[label], diffs)
        print(f"{label:>10} {' '.join(opts):<16} median {statistics.median(times[label]):6.2f} s  "
              f"(runs {', '.join(f'{t:.2f}' for t in times[label])})  max |diff| vs {ref}: {max(diffs):.3g}")


if __name__ == "__main__":
    main()

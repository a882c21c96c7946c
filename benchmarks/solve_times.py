"""Wall time of `mtsp solve SETUP --json` (a fresh process, generated module already cached) on
a grid of setups with T = 2 tasks, C ≤ 3, K ≤ 4: every activation, K = 1..4, shared and separate
inputs (issue "The online engine, end to end": under 2 s each on 2 cores).

    python benchmarks/solve_times.py [--K 1 2 3 4] [--act linear relu erf tanh] [--repeat 1]
                                     [--times 2 5 10 20] [--norm 4 --lr 1]

Each setup is solved once to fill the module cache, then timed `--repeat` times (the minimum is
reported: these machines are noisy)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

TEMPLATE = """
name = "{name}"
[[tasks]]
name = "clean"
classes = 3
[[tasks]]
name = "noisy"
classes = {C2}
noise = 1.0
[teacher]
alignment = 0.9
norm = {norm}
[student]
kind = "shared"
hidden = {K}
activation = "{act}"
init_scale = 0.1
[training]
protocol = "online"
inputs = "{inputs}"
lr = {lr}
times = {times}
"""


def time_solve(path: str, repeat: int) -> float:
    cmd = [sys.executable, "-m", "mtsp", "solve", path, "--json"]
    subprocess.run(cmd, check=True, capture_output=True)  # derive + cache the module
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, nargs="*", default=[1, 2, 3, 4])
    ap.add_argument("--act", nargs="*", default=["linear", "relu", "erf", "tanh"])
    ap.add_argument("--inputs", nargs="*", default=["shared", "separate"])
    ap.add_argument("--C2", type=int, default=3, help="classes of the second task")
    ap.add_argument("--times", type=float, nargs="*", default=[1, 2, 4, 8],
                    help="reported times (MODEL.md's example: 2 5 10 20)")
    ap.add_argument("--norm", type=float, default=1.0, help="teacher norm (strong teachers: 4)")
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args(argv)
    print(f"# two tasks (C = 3, {a.C2}), teacher norm {a.norm}, lr {a.lr}, times {a.times}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for act in a.act:
            for K in a.K:
                for inputs in a.inputs:
                    name = f"{act} K={K} {inputs}"
                    path = os.path.join(d, "s.toml")
                    with open(path, "w") as f:
                        f.write(TEMPLATE.format(name=name, K=K, act=act, inputs=inputs, C2=a.C2, norm=a.norm,
                                                lr=a.lr, times=[float(t) for t in a.times]))
                    s = time_solve(path, a.repeat)
                    rows.append((name, s))
                    print(f"{name:28s} {s:6.2f} s", flush=True)
    worst = max(rows, key=lambda r: r[1])
    print(f"slowest: {worst[0]} {worst[1]:.2f} s; over 2 s: {sum(s > 2 for _, s in rows)} of {len(rows)}")


if __name__ == "__main__":
    main()

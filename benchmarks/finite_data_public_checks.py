"""MODEL.md's public checks of the finite-data protocols, simulated at N = 1000 with 16 seeds.

    python benchmarks/finite_data_public_checks.py --check full_batch [--dt-check]
    python benchmarks/finite_data_public_checks.py --check erm_c2
    python benchmarks/finite_data_public_checks.py --check erm_c3

Prints each gen_error with its standard error over seeds, the published value and the z-score
(difference over the combined standard error), the solver's diagnostics and the wall time, and
writes the same lines to benchmarks/results/finite_data_public_checks_<check>_N<N>.txt.
--dt-check (full_batch) also runs at half the default step and prints the largest change of any
reported number (exact gen_error, label_error, test_loss; train_loss) beside the smallest SE.
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mtsp.setup import setup_from_dict  # noqa: E402
from mtsp.validate.full_batch import default_dt  # noqa: E402
from mtsp.validate.simulate import simulate  # noqa: E402

GLM2 = {"tasks": [{"name": "A", "classes": 2, "noise": 0.3, "norm": 1.0}],
        "student": {"kind": "glm", "init_scale": 0.0}}
CHECKS = {
    # (setup, published gen_error per reported point, their SE (None: N → ∞ value))
    "full_batch": ({**GLM2, "training": {"protocol": "full_batch", "alpha": 3.0, "lr": 1.0,
                                         "times": [2, 10]}},
                   [0.1804, 0.1593], [0.0009, 0.0007]),
    "erm_c2": ({**GLM2, "training": {"protocol": "erm", "alpha": 3.0, "ridge": 0.1}},
               [0.1554], [0.0007]),
    "erm_c3": ({"tasks": [{"name": "A", "classes": 3, "noise": 0.5, "norm": 1.0}],
                "student": {"kind": "glm"},
                "training": {"protocol": "erm", "alpha": 2.0, "ridge": 0.1}},
               [0.3423], [0.0013]),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", choices=sorted(CHECKS), required=True)
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dt-check", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    d, ref, ref_se = CHECKS[args.check]
    setup = setup_from_dict({"name": f"public {args.check}", **d})
    lines = [f"# {args.check}: N = {args.N}, {args.seeds} seeds, seed {args.seed}, "
             f"device {args.device}, torch {torch.__version__}, {platform.node()}",
             f"# setup: {d}"]

    def say(s):
        print(s, flush=True)
        lines.append(s)

    t0 = time.perf_counter()
    r = simulate(setup, N=args.N, seeds=args.seeds, seed=args.seed, device=args.device)
    wall = time.perf_counter() - t0
    a = r.tasks["A"]
    times = [None] if r.times is None else list(r.times)
    for i, t in enumerate(times):
        g, se = float(a["gen_error"][i]), float(a["gen_error_se"][i])
        z = (g - ref[i]) / math.hypot(se, ref_se[i])
        say(f"t = {t}: gen_error {g:.4f} ± {se:.4f}  published {ref[i]:.4f} ± {ref_se[i]:.4f}  "
            f"z = {z:+.2f}   label_error {a['label_error'][i]:.4f} ± {a['label_error_se'][i]:.4f}"
            f"  test_loss {a['test_loss'][i]:.4f} ± {a['test_loss_se'][i]:.4f}  train_loss "
            f"{a['train_loss'][i]:.4f} ± {a['train_loss_se'][i]:.4f}  train_error "
            f"{a['train_error'][i]:.4f} ± {a['train_error_se'][i]:.4f}")
    if "best_gen_error" in a:
        say(f"best_gen_error {a['best_gen_error']:.4f} at t = {a['best_gen_error_time']:g}; "
            f"best_test_loss {a['best_test_loss']:.4f} at t = {a['best_test_loss_time']:g}")
    say(f"solver: {r.solver}")
    say(f"wall time: {wall:.1f} s")
    if args.dt_check and r.times is not None:
        dt = default_dt(setup)
        t0 = time.perf_counter()
        r2 = simulate(setup, N=args.N, seeds=args.seeds, seed=args.seed, device=args.device,
                      dt=dt / 2)
        wall2 = time.perf_counter() - t0
        keys = ("gen_error", "label_error", "test_loss", "train_loss")
        diff = max(float(np.abs(r2.tasks["A"][k] - a[k]).max()) for k in keys)
        se_min = min(float(np.min(a[k + "_se"])) for k in keys)
        say(f"dt check: dt = {dt:g} vs {dt / 2:g}: largest change of {', '.join(keys)} "
            f"{diff:.2e} (smallest SE {se_min:.1e}); wall time at dt/2 {wall2:.1f} s")
    tail = "" if (args.seeds, args.seed) == (16, 0) else f"_S{args.seeds}_seed{args.seed}"
    out = ROOT / "benchmarks" / "results" / \
        f"finite_data_public_checks_{args.check}_N{args.N}{tail}.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

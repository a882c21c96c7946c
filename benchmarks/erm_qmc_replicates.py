"""The replica (erm) engine's QMC rule on draws of `erm_random_setups.py --space wide`: the old single
rule (one scrambling, `qmc_replicates = (1, 1)`), the default (the mean over independent scramblings
with its standard error, `erm.qmc_replicates`) and a reference of more points and replicates, in one
run, interleaved, with their CPU times; every prediction of every task.

    PYTHONPATH=. python benchmarks/erm_qmc_replicates.py --seed 6 --k 0 [--variants old,default,ref]
        [--ref-points 4] [--ref-replicates 8,8] [--ref-seed 100]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from mtsp.numeric.erm import ACCURACIES, solve_erm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from erm_random_setups import describe, random_erm_setup_wide  # noqa: E402

KEYS = ("gen_error", "label_error", "test_loss", "train_loss", "train_error")


def draw(seed: int, k: int):
    rng = np.random.default_rng(seed)
    for j in range(k + 1):
        s = random_erm_setup_wide(rng, j)
    return s


def variant(name: str, a) -> object:
    acc = ACCURACIES["default"]
    if name == "old":   # main's rule: one scrambling, train_error of coupled two-class tasks the indicator
        return replace(acc, qmc_replicates=(1, 1), boundary_train_error=False)
    if name == "default":
        return acc
    if name == "ref":   # more points per replicate and a fixed number of replicates
        f = a.ref_points
        lo, hi = (int(x) for x in a.ref_replicates.split(","))
        return replace(acc, qmc_points=acc.qmc_points * f,
                       qmc_joint_points=tuple((d, n * f) for d, n in acc.qmc_joint_points),
                       qmc_replicates=(lo, hi), qmc_target=0.0, qmc_seed=a.ref_seed)
    raise SystemExit(f"unknown variant {name}")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--k", type=int, default=0)
    ap.add_argument("--variants", default="old,default,ref")
    ap.add_argument("--ref-points", type=int, default=4, help="reference: points per replicate × this")
    ap.add_argument("--ref-replicates", default="8,8", help="reference: replicates (at least, at most)")
    ap.add_argument("--ref-seed", type=int, default=100, help="reference: the first replicate's qmc_seed")
    ap.add_argument("--single", type=int, default=-1, help="the task alone (Setup.single)")
    a = ap.parse_args(argv)
    s = draw(a.seed, a.k)
    if a.single >= 0:
        s = s.single(a.single)
    print(f"# seed {a.seed} setup {a.k}{' single ' + str(a.single) if a.single >= 0 else ''}: {describe(s)}")
    for name in a.variants.split(","):
        acc = variant(name, a)
        t0 = time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = solve_erm(s, acc)
        t = time.process_time() - t0
        st = out["stats"]
        print(f"{name:8s} cpu {t:7.1f} s  replicates {st.get('qmc_replicates', 1)}  largest SE "
              f"{st.get('qmc_error', float('nan')):.1e}  iterations {st['iterations']} + "
              f"{st.get('qmc_replicate_iterations', 0)} (replicates)")
        for w in caught:
            print(f"         warning: {w.message}")
        for task, pred in out["tasks"].items():
            se = out.get("qmc_error", {}).get(task, {})
            print("   " + task + "  " + "  ".join(f"{k} {pred[k][0]:.5f}" + (f" ± {se[k]:.1e}" if k in se else "")
                                          for k in KEYS))
        sys.stdout.flush()


if __name__ == "__main__":
    main()

"""The full_batch simulator's step check (validate/full_batch.py `check_step`): its cost on the
example setups run as full_batch, and the stiff random draw (dmft_random_setups.py --space wide
--seed 6, setup 5) where the default RK4 step 0.1 is not converged.

Part `examples`: each examples/*.toml online setup switched to full_batch (shared inputs, α = 2, same lr and times),
simulated at N, seeds with the check (the default) and without it (step_check=False), same seed:
the step kept, the check's seconds against the whole run, and whether every output is identical.
Part `stiff`: the stiff draw at N = 1000, 8 seeds: the checked default, the old default dt 0.1 and
dt 0.025 without the check; A's and B's test_loss with SE. Part `scaling`: the step error of one
seed on the stiff draw at N = 100, 200, 1000 (O(1) in N).

    PYTHONPATH=$PWD python benchmarks/full_batch_step_check.py [--part examples|stiff|scaling] [--N 1000]
Output: benchmarks/results/full_batch_step_check.txt
"""
from __future__ import annotations

import argparse
import glob
import sys
import time

import numpy as np

from mtsp.setup import load_setup, setup_from_dict
from mtsp.validate.simulate import simulate

KEYS = ("gen_error", "label_error", "test_loss", "train_loss", "train_error")


def _as_full_batch(path):
    s = load_setup(path)
    d = s.to_dict() if hasattr(s, "to_dict") else None
    if d is None:
        raise SystemExit("setup has no to_dict")
    d["training"] = {**d["training"], "protocol": "full_batch", "alpha": 2.0}
    d["training"]["inputs"] = "shared"
    for t in d["tasks"]:
        t.pop("share", None)
    return setup_from_dict(d)


def examples(a):
    for path in sorted(glob.glob("examples/*.toml")):
        s = load_setup(path)
        if s.training.protocol != "online":
            continue
        s = _as_full_batch(path)
        t0 = time.perf_counter()
        r0 = simulate(s, N=a.N, seeds=a.seeds, step_check=False)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        r1 = simulate(s, N=a.N, seeds=a.seeds)
        t_check = time.perf_counter() - t0
        c = r1.solver["step_check"]
        same = all(np.array_equal(r0.tasks[n][k], r1.tasks[n][k]) for n in r0.tasks for k in KEYS)
        print(f"{path}: lr {s.training.lr:g} times {list(s.training.times)}: step {r1.solver['dt']:g}"
              f" (default {c['dt_requested']:g}, {c['halvings']} halvings, step-doubling difference"
              f" {c['step_error']:.1e}); run without check {t_plain:.1f} s, with {t_check:.1f} s,"
              f" check {c['check_seconds']:.2f} s = {100 * c['check_seconds'] / t_plain:.1f}% ;"
              f" outputs identical: {same}", flush=True)
        se = max(float(np.max(r1.tasks[n][k + "_se"])) for n in r1.tasks
                 for k in ("gen_error", "test_loss"))
        print(f"   largest SE of gen_error/test_loss over tasks and times: {se:.4f}", flush=True)


def stiff(a):
    sys.path.insert(0, "benchmarks")
    from dmft_random_setups import draws
    s = setup_from_dict(draws(6, 6, "wide")[5])
    for label, kw in (("checked default", dict(report=print)),
                      ("dt 0.1 (old default), no check", dict(dt=0.1, step_check=False)),
                      ("dt 0.025, no check", dict(dt=0.025, step_check=False))):
        t0 = time.perf_counter()
        r = simulate(s, N=a.N, seeds=a.seeds, **kw)
        print(f"{label}: {time.perf_counter() - t0:.1f} s, solver {r.solver}", flush=True)
        for n in ("A", "B"):
            d = r.tasks[n]
            print(f"   {n} test_loss {np.round(d['test_loss'], 4).tolist()} "
                  f"SE {np.round(d['test_loss_se'], 4).tolist()}", flush=True)


def scaling(a):
    """Step error on the stiff draw against N: max |metric(h) − metric(0.0125)| per one seed."""
    import torch

    from mtsp.numeric.model import theory_model
    from mtsp.validate.finite_data import exact_metrics
    from mtsp.validate.full_batch import _flow_at
    sys.path.insert(0, "benchmarks")
    from dmft_random_setups import draws
    s = setup_from_dict(draws(6, 6, "wide")[5])
    theory, times = theory_model(s), np.array(s.training.times)

    def metrics(h, N, seed):
        m, states = _flow_at(s, times, h, "rk4", N, seed, "cpu", torch.float64)
        return np.stack([np.stack(exact_metrics(theory, m, *st)) for st in states])

    for N in (100, 200, 1000):
        for seed in (0, 1):
            ref = metrics(0.0125, N, seed)
            row = [float(np.max(np.abs(metrics(h, N, seed) - ref))) for h in (0.1, 0.05, 0.025)]
            print(f"N = {N} seed {seed}: max |m(h) - m(0.0125)| at h = 0.1, 0.05, 0.025: "
                  + ", ".join(f"{r:.2e}" for r in row), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("examples", "stiff", "scaling"), default="examples")
    p.add_argument("--N", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=8)
    a = p.parse_args(argv)
    print(f"# {a.part}, N = {a.N}, {a.seeds} seeds", flush=True)
    {"examples": examples, "stiff": stiff, "scaling": scaling}[a.part](a)


if __name__ == "__main__":
    main()

"""The Stein response's ridge (docs/DMFT.md §7, `response.SteinResponse`): where the paths' noise is
nearly degenerate it keeps the Stein route finite and right; where it is healthy it changes nothing
beyond the sampling error.

    PYTHONPATH=$PWD python benchmarks/dmft_stein_ridge.py degenerate
        seed 5 wide setups 7 and 8 of dmft_random_setups.py (--space wide) at t = 1, 3, 10: the
        default route (must stay "stein", no fallback) against response="difference", with the
        largest split-half error a_k × noise of the Stein response (the guard's measure, limit
        engine.STEIN_NOISE_LIMIT)
    PYTHONPATH=$PWD python benchmarks/dmft_stein_ridge.py healthy --case relu_related
        a relu case of dmft_trunks_nonlinear.py: the Stein response with the ridge and without it
        (ε = 0, the estimator before the ridge), same normals, interleaved batch by batch; values,
        paired differences, times and the split-half maxima

The simulations are not rerun: their values are quoted from benchmarks/results/
(dmft_stein_fallback_wide7.txt, dmft_random_setups_seed5.txt, docs/DMFT.md §5 and §7).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from contextlib import contextmanager

import numpy as np

from mtsp.numeric.dmft import response
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft
from mtsp.setup import setup_from_dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmft_trunks_nonlinear import CASES  # noqa: E402

WIDE_7 = {"name": "wide 7", "tasks": [{"name": "A", "classes": 2, "noise": 2.0, "weight": 0.25}],
          "teacher": {"alignment": 1.0, "class_map": "random", "seed": 48},
          "student": {"kind": "shared", "hidden": 3, "activation": "relu", "init_scale": 1.5,
                      "head_init": [[[0.106, -0.026, -0.11], [-0.037, -0.054, 0.072]]]},
          "training": {"protocol": "full_batch", "inputs": "shared", "lr": 0.5, "head_lr": 5.0,
                       "alpha": 0.926, "times": [1.0, 3.0, 10.0]}}
WIDE_8 = {"name": "wide 8", "tasks": [{"name": "A", "classes": 2, "noise": 0.1}],
          "teacher": {"gram": [[0.6970556976357652, -0.4964880536882336],
                               [-0.4964880536882336, 0.6206850542347103]]},
          "student": {"kind": "shared", "hidden": 2, "activation": "relu", "init_scale": 1.5,
                      "head_init": [[[0.206, 0.673], [0.65, 0.932]]]},
          "training": {"protocol": "full_batch", "inputs": "shared", "lr": 0.25, "head_lr": 0.1,
                       "alpha": 7.725396703424016, "times": [1.0, 3.0, 10.0]}}
SIMULATED = {   # quoted, not rerun
    "wide 7": "N = 4000, 8 seeds: test_loss 0.6953 / 0.6939 / 0.6940, gen_error 0.4996 / 0.4993 / 0.4985 "
              "(dmft_stein_fallback_wide7.txt, docs/DMFT.md §5)",
    "wide 8": "N = 1000, 16 seeds: test_loss 0.7299 / 0.7179 at t = 1 / 3, gen_error 0.4964 / 0.4899 "
              "(dmft_random_setups_seed5.txt); N = 1000, 4 seeds, t = 10: gen_error 0.4717 ± 0.0003, "
              "test_loss 0.6976 (docs/DMFT.md §7)",
}


class _Recorded(response.SteinResponse):
    """SteinResponse that records the guard's measure a_k × noise; `unridged`: ε = 0."""
    unridged = False
    record: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.unridged:
            self.ridge = 0.0

    def step(self, k, delta, chi):
        out = super().step(k, delta, chi)
        if k < len(self.a):
            self.record.append(float(self.a[k] * self.noise))
        return out


@contextmanager
def stein(unridged: bool = False):
    """The engine's Stein response replaced by a recording one (ε = 0 with `unridged`); yields the
    list of a_k × noise of every step solved inside."""
    cls = type("Stein", (_Recorded,), {"unridged": unridged, "record": []})
    orig = response.SteinResponse
    response.SteinResponse = cls
    try:
        yield cls.record
    finally:
        response.SteinResponse = orig


def _row(tag, res, secs, noise=None):
    for name, out in res.tasks.items():
        print(f"  {tag:10s} {name}: gen_error {np.round(out['gen_error'], 4).tolist()} ± "
              f"{np.round(out['gen_error_se'], 4).tolist()}, test_loss {np.round(out['test_loss'], 4).tolist()}"
              f" ± {np.round(out['test_loss_se'], 4).tolist()}, train_loss {np.round(out['train_loss'], 4).tolist()}",
              flush=True)
    extra = f", largest a_k × noise {max(noise):.3g} over every step solved" if noise else ""
    print(f"  {tag:10s} response {res.stats['response']}, {res.stats['n_paths']} paths × "
          f"{res.stats['batches']} batches, {secs:.1f} s{extra}", flush=True)


def degenerate(args):
    for W in (WIDE_7, WIDE_8):
        su = setup_from_dict(W)
        print(f"# {W['name']}: t = {W['training']['times']}; simulation {SIMULATED[W['name']]}", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # a fallback would be a DmftResponseWarning
            with stein() as noise:
                t0 = time.time()
                res = solve_dmft(su, DmftOptions(batches=args.batches))
                _row("stein", res, time.time() - t0, noise)
        assert res.stats["response"] == "stein"
        t0 = time.time()
        res = solve_dmft(su, DmftOptions(batches=args.batches, response="difference"))
        _row("difference", res, time.time() - t0)


def healthy(args):
    W = CASES[args.case]
    W = {**W, "training": {**W["training"], "times": [float(t) for t in args.times.split(",")]}}
    su = setup_from_dict(W)
    print(f"# {args.case} (dmft_trunks_nonlinear.py), t = {W['training']['times']}, {args.batches} "
          f"batches × {args.paths} paths, dt {args.dt or 'default'}, step_correction 0, scan 2; batch b of both runs on the "
          f"same normals (seed b); interleaved", flush=True)
    out = {False: [], True: []}
    secs = {False: 0.0, True: 0.0}
    peak = {False: 0.0, True: 0.0}
    for b in range(args.batches):
        for unridged in (True, False):
            opts = DmftOptions(n_paths=args.paths, batches=1, seed=b, scan=2, step_correction=0,
                               response="stein", dt=args.dt)
            with stein(unridged) as noise:
                t0 = time.time()
                res = solve_dmft(su, opts)
                secs[unridged] += time.time() - t0
            peak[unridged] = max(peak[unridged], max(noise))
            out[unridged].append({k: v["gen_error"] for k, v in res.tasks.items()})
            print(f"  batch {b} {'ε = 0  ' if unridged else 'ridge  '} "
                  + "; ".join(f"{k} {np.round(v, 4).tolist()}" for k, v in out[unridged][-1].items())
                  + f"  ({time.time() - t0:.1f} s, largest a_k × noise {max(noise):.3g})", flush=True)
    for name in out[False][0]:
        for unridged in (True, False):
            x = np.array([o[name] for o in out[unridged]])
            print(f"  {name} {'ε = 0' if unridged else 'ridge'}: gen_error {np.round(x.mean(0), 4).tolist()} ± "
                  f"{np.round(x.std(0, ddof=1) / np.sqrt(len(x)), 4).tolist()}")
        dx = np.array([o[name] for o in out[False]]) - np.array([o[name] for o in out[True]])
        print(f"  {name} ridge − (ε = 0), paired: {np.round(dx.mean(0), 5).tolist()} ± "
              f"{np.round(dx.std(0, ddof=1) / np.sqrt(len(dx)), 5).tolist()}")
    print(f"  time: ridge {secs[False]:.1f} s, ε = 0 {secs[True]:.1f} s; largest a_k × noise: ridge "
          f"{peak[False]:.3g}, ε = 0 {peak[True]:.3g}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("degenerate")
    d.add_argument("--batches", type=int, default=8)
    h = sub.add_parser("healthy")
    h.add_argument("--case", default="relu_related", choices=[c for c in CASES if "relu" in c])
    h.add_argument("--times", default="1,3,10,30")
    h.add_argument("--paths", type=int, default=8000)
    h.add_argument("--batches", type=int, default=4)
    h.add_argument("--dt", type=float, default=None, help="the DMFT step (default 0.2/max(1, lr))")
    a = ap.parse_args(argv)
    {"degenerate": degenerate, "healthy": healthy}[a.what](a)


if __name__ == "__main__":
    main()

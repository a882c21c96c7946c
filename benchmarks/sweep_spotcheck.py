"""Spot-check the example sweeps (examples/sweeps/) against simulation: two grid points per map.

For each example map, two of its grid points are solved by the sweep (theory, N → ∞) and
simulated with their single-task baselines (``simulate_with_single``, default N = 1000, 8 seeds).
Printed per point and task: gen_error multitask and single (theory; simulation ± SE) and the
benefit Δ = single − multi with its z-score (SE of Δ = √(SE_multi² + SE_single²): the two runs are
treated as independent, which is conservative).

    python benchmarks/sweep_spotcheck.py [--N 1000] [--seeds 8] [--json out.json] [--only 1,4]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from mtsp.api import sweep
from mtsp.numeric.sweep import parse_values, point_setup
from mtsp.setup import load_setup

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples" / "sweeps"

# (example, setup file, the map's --vary specs, two points given by their grid values)
MAPS = [
    ("1 related clean", "related_clean.toml", {"teacher.alignment": "0:1:11"},
     [{"teacher.alignment": 0.9}, {"teacher.alignment": 0.3}]),
    ("2 noisy gains", "noisy_gains.toml", {"tasks.noisy.noise": "0:3:13"},
     [{"tasks.noisy.noise": 2.0}, {"tasks.noisy.noise": 0.5}]),
    ("3 unrelated narrow", "unrelated_narrow.toml", {"student.hidden": "1,2,3,4,6"},
     [{"student.hidden": 2}, {"student.hidden": 6}]),
    ("4 noise x alignment", "noise_alignment_map.toml",
     {"tasks.B.noise": "0:3:10", "teacher.alignment": "0:1:10"},
     [{"tasks.B.noise": 2.0, "teacher.alignment": 8}, {"tasks.B.noise": 0.0, "teacher.alignment": 4}]),
]


def _grid_point(vary_specs: dict, point: dict) -> dict:
    """A point on the map's grid: a value given as an int for a float axis is the index into it."""
    out = {}
    for key, spec in vary_specs.items():
        vals = parse_values(spec, key)
        v = point[key]
        if isinstance(v, int) and not all(isinstance(x, int) for x in vals):
            v = vals[v]
        if v not in vals:
            raise SystemExit(f"{key}={v} is not on the grid {vals}")
        out[key] = vals[vals.index(v)]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--only", default=None, help="comma list of example numbers (default all)")
    a = ap.parse_args(argv)
    from mtsp.validate.simulate import simulate_with_single
    only = None if a.only is None else {int(x) for x in a.only.split(",")}
    rows = []
    print(f"{'example':22s} {'point':40s} {'task':6s} {'theory multi/single/Δ':>26s}   "
          f"{'simulation multi/single/Δ ± SE':>40s}  {'z(Δ)':>6s}", flush=True)
    for n, (label, fname, specs, points) in enumerate(MAPS, start=1):
        if only and n not in only:
            continue
        base = load_setup(EX / fname)
        for p in points:
            point = _grid_point(specs, p)
            t0 = time.perf_counter()
            th = sweep(base, {k: [v] for k, v in point.items()}, jobs=1).records[0]
            s = point_setup(base, point, base.training.times[-1])
            sim = simulate_with_single(s, N=a.N, seeds=a.seeds, device=a.device).to_json_dict()
            secs = time.perf_counter() - t0
            ptxt = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in point.items())
            for task in th["multi"]:
                tm, ts, td = (th["multi"][task]["gen_error"], th["single"][task]["gen_error"],
                              th["benefit"][task])
                sm, ss = sim["tasks"][task]["gen_error"][-1], sim["single"][task]["gen_error"][-1]
                em, es = sim["tasks"][task]["gen_error_se"][-1], sim["single"][task]["gen_error_se"][-1]
                sd, se = ss - sm, math.sqrt(em ** 2 + es ** 2)
                z = (sd - td) / se if se > 0 else float("nan")
                rows.append(dict(example=label, point=point, task=task, theory_multi=tm,
                                 theory_single=ts, theory_benefit=td, sim_multi=sm, sim_multi_se=em,
                                 sim_single=ss, sim_single_se=es, sim_benefit=sd, sim_benefit_se=se,
                                 z_benefit=z, N=a.N, seeds=a.seeds, seconds=round(secs, 1)))
                print(f"{label:22s} {ptxt:40s} {task:6s} {tm:.4f}/{ts:.4f}/{td:+.4f}   "
                      f"{sm:.4f}±{em:.4f}/{ss:.4f}±{es:.4f}/{sd:+.4f}±{se:.4f}  {z:+6.2f}",
                      flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

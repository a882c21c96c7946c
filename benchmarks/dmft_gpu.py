"""The DMFT's torch option on a GPU (issue 17: "torch on a GPU as an option for large path counts").

Case: the two-task shared linear trunk of benchmarks/dmft_speed.py (194 steps to t = 31). Prints:
  1. one path batch (3000 paths, 600 for the response) with numpy and with torch on `--device`,
     same normals: the largest difference of the outputs, and both times;
  2. one batch at a large path count (--paths, --response) with numpy and on the device;
  3. the solve at 4 batches of that large count on the device, with its error bars, beside the
     agreement runs' 4 × 3000 (numpy).
numpy runs with one BLAS thread (as the engine always does).

    PYTHONPATH=$PWD python benchmarks/dmft_gpu.py [--device cuda] [--paths 20000] [--response 4000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dmft_speed import outputs, trunk_setup  # noqa: E402
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft  # noqa: E402


def timed(s, opts):
    import torch
    t0 = time.perf_counter()
    res = solve_dmft(s, opts)
    if opts.device and str(opts.device).startswith("cuda"):
        torch.cuda.synchronize()
    return res, time.perf_counter() - t0


def main():
    import torch
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--paths", type=int, default=20000)
    ap.add_argument("--response", type=int, default=4000)
    ap.add_argument("--skip-numpy-large", action="store_true")
    args = ap.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    print(f"# device {args.device} ({name}), torch {torch.__version__}, numpy {np.__version__}, "
          f"python {sys.version.split()[0]}", flush=True)
    s = trunk_setup()
    small = DmftOptions(n_paths=3000, n_response=600, batches=1, scan=60)
    timed(s, DmftOptions(n_paths=500, n_response=100, batches=1, scan=4, device=args.device))  # warm-up
    a, ta = timed(s, small)
    b, tb = timed(s, DmftOptions(**{**small.__dict__, "device": args.device}))
    print(f"[1] one batch 3000 paths (600 response), {a.stats['steps']} steps: numpy {ta:.1f} s, "
          f"{args.device} {tb:.1f} s; largest output difference {np.abs(outputs(a) - outputs(b)).max():.1e}",
          flush=True)
    big = DmftOptions(n_paths=args.paths, n_response=args.response, batches=1, scan=60)
    c, tc = timed(s, DmftOptions(**{**big.__dict__, "device": args.device}))
    line = f"[2] one batch {args.paths} paths ({args.response} response): {args.device} {tc:.1f} s"
    if not args.skip_numpy_large:
        d, td = timed(s, big)
        line += (f", numpy {td:.1f} s; largest output difference "
                 f"{np.abs(outputs(c) - outputs(d)).max():.1e}")
    print(line, flush=True)
    full, tf = timed(s, DmftOptions(n_paths=args.paths, n_response=args.response, batches=4,
                                    device=args.device))
    ref, tr = timed(s, DmftOptions(n_paths=3000, n_response=600, batches=4))
    print(f"[3] 4 batches: {args.paths} paths on {args.device} {tf:.1f} s; 3000 paths numpy {tr:.1f} s")
    for t in ("A", "B"):
        for i, time_ in enumerate(full.times):
            print(f"    {t} t={time_:g}  gen_error {full.tasks[t]['gen_error'][i]:.4f} ± "
                  f"{full.tasks[t]['gen_error_se'][i]:.4f} (large)   {ref.tasks[t]['gen_error'][i]:.4f} ± "
                  f"{ref.tasks[t]['gen_error_se'][i]:.4f} (3000)")


if __name__ == "__main__":
    main()

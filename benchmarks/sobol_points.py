"""The project's own Sobol' points (`numeric/sobol.py`): what they cost and what they change.

1. Generation time of 2^17 scrambled points (the largest fixed set, `--accuracy high`) for the
   dimensions the rules use, against the import of scipy.stats.qmc that the former disk cache of
   SciPy-generated point sets avoided.
2. Right-hand sides with the project's scramblings (seeds 0, 1) and with SciPy's (patched in,
   seeds 0, 1) against `accuracy="high"` at the reported times of each setup's trajectory:
   relative max |rhs − high| — the two generators' errors should be alike.

    python benchmarks/sobol_points.py [SETUP.toml ...]

Without arguments: the wider trunks of the fixed-Sobol' tiers (tanh and erf K = 3, relu K = 4:
Sobol' inside its sign orthants) and examples/strong_teachers_tanh.toml (tanh K = 2: the 4-dim
label–label term on fixed Sobol' points).
"""
import functools
import subprocess
import sys
import time

import numpy as np
from mtsp.numeric import online, quadrature
from mtsp.numeric.sobol import sobol_points
from mtsp.api import solve
from mtsp.numeric.solve import HIGH_ACCURACY
from scipy.special import ndtri

from mtsp.setup import load_setup, setup_from_dict


def _two_tasks(name, activation, hidden, init_scale, alignment, tasks, lr, times, norm=1.0):
    return setup_from_dict({"name": name, "tasks": tasks,
                            "teacher": {"alignment": alignment, "norm": norm},
                            "student": {"kind": "shared", "hidden": hidden, "activation": activation,
                                        "init_scale": init_scale},
                            "training": {"protocol": "online", "inputs": "shared", "lr": lr, "times": times}})


DEFAULT_SETUPS = [
    lambda: _two_tasks("tanh K = 3, two related tasks, one noisy", "tanh", 3, 0.1, 0.9,
                       [{"name": "clean", "classes": 3}, {"name": "noisy", "classes": 3, "noise": 1.0}],
                       1.0, [1.0, 3.0, 6.0]),
    lambda: _two_tasks("erf K = 3, two unrelated tasks", "erf", 3, 0.3, 0.0,
                       [{"name": "A", "classes": 3}, {"name": "B", "classes": 3, "noise": 0.5}],
                       0.5, [1.0, 3.0, 6.0]),
    lambda: _two_tasks("relu K = 4, two tasks", "relu", 4, 0.3, 0.6,
                       [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 2}],
                       0.5, [1.0, 3.0], norm=2.0),
    lambda: load_setup("examples/strong_teachers_tanh.toml"),
]


def generation_times():
    for dim in (3, 5, 8, 12, 24):
        best = min(_timed(sobol_points, dim, 2 ** 17, seed) for seed in range(3))
        print(f"2^17 scrambled points, {dim:2d} dims: {1e3 * best:6.1f} ms", flush=True)
    cmd = [sys.executable, "-c",
           "import time; t = time.perf_counter(); import scipy.stats.qmc; print(time.perf_counter() - t)"]
    best = min(float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout) for _ in range(3))
    print(f"import scipy.stats.qmc (fresh process): {1e3 * best:6.1f} ms", flush=True)


def _timed(f, *args):
    t = time.perf_counter()
    f(*args)
    return time.perf_counter() - t


@functools.lru_cache(maxsize=64)
def _scipy_points(r1, r2, n, seed):
    from scipy.stats import qmc
    if r1 + r2 == 0:
        return np.zeros((1, 0)), np.zeros((1, 0)), np.ones(1)
    u = qmc.Sobol(r1 + r2, scramble=True, rng=seed).random(n)
    return np.ascontiguousarray(u[:, :r1]), ndtri(u[:, r1:]), np.full(n, 1.0 / n)


def rhs_errors(setup):
    res = solve(setup, parallel=False)
    own = quadrature._points_sobol
    for t in setup.training.times:
        y = res.trajectory(t)
        high = online.rhs(res.model, y, HIGH_ACCURACY)
        scale = np.abs(high).max()
        cols = []
        try:
            for name, points in (("own", own), ("scipy", _scipy_points)):
                quadrature._points_sobol = points
                for seed in (0, 1):
                    r = online.rhs(res.model, y, online.Accuracy(qmc_seed=seed))
                    cols.append(f"{name}{seed} {np.abs(r - high).max() / scale:.1e}")
        finally:
            quadrature._points_sobol = own
        print(f"{setup.name[:40]:40s} t={t:5.1f}  rel |rhs - high|: " + "  ".join(cols), flush=True)


if __name__ == "__main__":
    generation_times()
    for make in [(lambda p=p: load_setup(p)) for p in sys.argv[1:]] or DEFAULT_SETUPS:
        rhs_errors(make())

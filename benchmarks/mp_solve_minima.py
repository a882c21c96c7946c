"""What the one solve driver's two ways to the minima cost in mp (`solve._solve_online`, ``minima``):
"steps" (the mp default: metrics at every accepted step) against "refine" (the double default: a
scan of 24 grid points plus the reported times, then a bounded Brent search per task and metric).

Per setup (`benchmarks/mp_solve.setup`, t ≤ t_end, dps 20, 16 mp nodes, one process): the mp solve's
right-hand sides and metric evaluations, their mean seconds, and its wall time; the metric
evaluations the double solve of the same setup makes with ``minima="refine"`` (counted, one process),
and what the mp solve would spend on as many mp metric evaluations (that count × the mp mean).

    PYTHONPATH=. python benchmarks/mp_solve_minima.py [--t 0.2] > benchmarks/results/mp_solve_minima.txt
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from mp_solve import setup  # noqa: E402

from mtsp.derive import GENERATED  # noqa: E402
from mtsp.numeric import mp_solve, solve  # noqa: E402


class Counted(mp_solve.MpNumbers):
    """`MpNumbers` counting and timing its metric evaluations."""
    calls, seconds = 0, 0.0

    def _metrics(self, *args):
        t0 = time.perf_counter()
        try:
            return super()._metrics(*args)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - t0


def double_metric_calls(su) -> int:
    """Metric evaluations (`metrics.task_metrics` calls) of the default double solve, one process."""
    calls = [0]
    inner = solve.task_metrics

    def counting(*a, **k):
        calls[0] += 1
        return inner(*a, **k)
    solve.task_metrics = counting
    try:
        solve.solve_online(su, processes=1, generated=GENERATED)
    finally:
        solve.task_metrics = inner
    return calls[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t", type=float, default=0.2)
    a = ap.parse_args()
    print(f"# mp solve (dps 20, 16 nodes, 1 process) to t = {a.t}: minima over the steps vs the double's "
          f"grid scan + Brent (counted on the double solve); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'setup':<8} {'rhs':>4} {'steps':>5} {'metrics':>7} {'s/metric':>8} {'mp wall':>8} "
          f"{'refine metrics':>14} {'≈ mp s on them':>14}")
    for name, su in (("lin2", setup(2, a.t, "linear", 2)), ("tanh1", setup(2, a.t, "tanh", 1)),
                     ("lin3k1", setup(3, a.t, "linear", 1))):
        numbers = Counted(20, 16, None, 1, GENERATED)
        t0 = time.perf_counter()
        r = solve.solve_online(su, processes=1, numbers=numbers)
        wall = time.perf_counter() - t0
        per = numbers.seconds / numbers.calls
        n = double_metric_calls(su)
        print(f"{name:<8} {r.stats['nfev']:>4} {r.stats['steps']:>5} {numbers.calls:>7} {per:>8.2f} {wall:>7.1f}s "
              f"{n:>14} {n * per:>13.1f}s", flush=True)


if __name__ == "__main__":
    main()

"""mp test_loss of linear trunks (`task_metrics_mp`, dps 20, default and 24 nodes) at the double solve's states of the
given setups, next to the double test_loss (late times: wide logits).  PYTHONPATH=. python benchmarks/mp_linear_loss_wide.py examples/model_example.toml ..."""
import sys
import mpmath
from mtsp.setup import load_setup
from mtsp.numeric.solve import solve_online
from mtsp.derive import GENERATED
from mtsp.numeric.mp_online import task_metrics_mp
for f in sys.argv[1:]:
    su = load_setup(f)
    res = solve_online(su, processes=1, generated=GENERATED)
    m = res.model
    for t in su.training.times:
        st = m.unpack(res.trajectory(t))
        with mpmath.workdps(20):
            for node in (None, 24):
                out = task_metrics_mp(m, st, node, label=False, loss=True)
                print(f, t, node, [mpmath.nstr(o[2], 18) for o in out],
                      [res.tasks[k]["test_loss"][list(su.training.times).index(t)] for k in res.tasks], flush=True)

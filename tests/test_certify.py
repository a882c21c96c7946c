"""The trajectory certificate (`numeric.certify`): its bound holds against an mp solve, and it
refuses digits that a perturbed trajectory does not have."""
import numpy as np
import pytest

from mtsp.api import certify
from mtsp.numeric.certify import format_certificate
from mtsp.numeric.integrators import dormand_prince
from mtsp.numeric.metrics import task_metrics
from mtsp.numeric.online import Accuracy
from mtsp.derive import GENERATED
from mtsp.numeric.solve import SolveResult, solve_online
from mtsp.setup import setup_from_dict

SMALL = {"tasks": [{"name": "A", "classes": 2, "noise": 0.5}, {"name": "B", "classes": 2, "noise": 1.0}],
         "teacher": {"alignment": 0.9},
         "student": {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.3},
         "training": {"protocol": "online", "lr": 0.5, "times": [0.1, 0.2]}}
NODES = 16   # the mp nodes of the right-hand side, in the certificate and in the mp solve alike


@pytest.fixture(scope="module")
def small():
    from mtsp.numeric.mp_solve import solve_online_mp
    su = setup_from_dict(SMALL)
    return su, solve_online_mp(su, dps=20, nodes=NODES, processes=1, generated=GENERATED)


def _actual(res, mp):
    return {n: [abs(a - b) for a, b in zip(res.tasks[n]["gen_error"], mp.tasks[n]["gen_error"])] for n in mp.tasks}


def test_certificate_holds_against_an_mp_solve(small):
    """Two tasks (C = 2, linear K = 2, t ≤ 0.2), the default double solve: every bound is at
    least the actual distance of the printed gen_error from the mp solve (dps 20, 16 nodes), and
    within 4× of it.  Measured: actual 2.8e-10 / 1.6e-11 / 8.6e-11 / 3.3e-12, bounds 2.0–2.2×
    these (the first-order estimate, 1.00–1.08×, doubled)."""
    su, mp = small
    res = solve_online(su, processes=1, generated=GENERATED)
    cert = certify(su, states=2, nodes=NODES, processes=1, solution=res)
    actual = _actual(res, mp)
    for name, e in cert["tasks"].items():
        for bound, act in zip(e["bound"], actual[name]):
            assert act <= bound <= 4 * act, (name, act, bound)
    text = format_certificate(cert)
    assert "decimals" in text and "0.4806336" in text


def test_certificate_refuses_the_digits_of_a_perturbed_trajectory(small):
    """A trajectory integrated with a deliberately wrong right-hand side (every component off by
    1e-5): its gen_errors are 4.3e-9–7.2e-7 off the mp solve's (measured); the certificate, which
    sees the perturbation as a defect, bounds that error (measured: 2.0× it) and certifies fewer
    decimals than for the exact trajectory."""
    su, mp = small
    good = solve_online(su, processes=1, generated=GENERATED)
    model = good.model
    from mtsp.derive.codegen import load_module
    rhs = load_module(model).rhs
    traj = dormand_prince(lambda t, y: rhs(model, y, Accuracy()) + 1e-5, model.pack(model.initial_state()),
                          0.2, 1e-6, 1e-8)
    tasks = {n: {"gen_error": []} for n in model.names}
    for t in su.training.times:
        for n, m in zip(model.names, task_metrics(model, model.unpack(traj(t)), Accuracy(), loss=False, label=False)):
            tasks[n]["gen_error"].append(m.gen_error)
    bad = SolveResult(su.name, "online", "ode", list(su.training.times), tasks, None, traj, model)
    cert_bad = certify(su, states=2, nodes=NODES, processes=1, solution=bad)
    cert_good = certify(su, states=2, nodes=NODES, processes=1, solution=good)
    actual = _actual(bad, mp)
    for name in model.names:
        for k, act in enumerate(actual[name]):
            assert act > 1e-9 and cert_bad["tasks"][name]["bound"][k] >= act
            assert cert_bad["tasks"][name]["decimals"][k] < cert_good["tasks"][name]["decimals"][k]
    assert np.isfinite(cert_bad["quadrature_defect_max"])

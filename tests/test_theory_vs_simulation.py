"""Theory against small simulations, as evidence: the criterion of `mtsp validate` (4 SE + 0.003,
tests/agreement.py) on gen_error, label_error, test_loss and best_* of every task, with enough
seeds at small N that 4 SE ≈ 0.01.

N = 100 with 128 seeds (1000 test inputs each) gives SE ≈ 0.002 on the errors and is the
cheapest way there (measured on the three CASES, simulation time: N = 400 × 6 seeds 1.4–3.4 s
with SE 0.003–0.008; N = 200 × 64 seeds 1.7–2.5 s; N = 100 × 128 seeds 1.3–1.9 s).  The
finite-size bias at N = 100 is within the floor: every |z| measured here is below 2.
The full suite at N = 1000 is benchmarks/suite.py.
"""
from pathlib import Path

import numpy as np
import pytest

from mtsp.api import solve   # derive, then numeric
from mtsp.setup import load_setup, setup_from_dict
from mtsp.validate.compare import compare

from agreement import assert_agrees

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
torch = pytest.importorskip("torch")
from mtsp.validate.simulate import simulate, simulate_with_single  # noqa: E402

N, SEEDS, TEST_SIZE, GRID = 100, 128, 1000, 8

CASES = {
    "glm C=3 noisy": {"tasks": [{"name": "A", "classes": 3, "noise": 0.5}], "student": {"kind": "glm"},
                      "training": {"protocol": "online", "lr": 0.5, "times": [1, 3]}},
    "tanh trunk, 2 tasks": {"tasks": [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 2}],
                            "teacher": {"alignment": 0.5},
                            "student": {"kind": "shared", "hidden": 2, "activation": "tanh", "init_scale": 0.3},
                            "training": {"protocol": "online", "lr": 0.5, "times": [1, 3]}},
    "linear trunk, separate inputs": {
        "tasks": [{"name": "A", "classes": 3, "share": 2.0}, {"name": "B", "classes": 3, "noise": 0.8}],
        "teacher": {"alignment": 0.8},
        "student": {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.2},
        "training": {"protocol": "online", "lr": 0.5, "times": [1, 3], "inputs": "separate"}},
}


@pytest.mark.parametrize("name", list(CASES))
def test_theory_matches_small_simulation(name):
    """gen_error, label_error, test_loss at t = 1, 3 and best_* of every task within 4 SE + 0.003
    (SE ≈ 0.002, so the tolerance is ≈ 0.01).  Measured worst |diff| / tolerance over the 8 (one
    task) or 16 compared values: glm 0.19, tanh trunk 0.26, separate inputs 0.29.  CPU time
    1.3–2.1 s each (the old N = 400, 6-seed version: 1.1–1.8 s, same run)."""
    setup = setup_from_dict(CASES[name])
    sim = simulate(setup, N=N, seeds=SEEDS, test_size=TEST_SIZE, grid=GRID)
    assert max(sim.tasks[t]["gen_error_se"].max() for t in sim.tasks) < 0.003   # the evidence's size
    worst = assert_agrees(solve(setup), sim)
    print(name, "worst |diff| / tolerance", round(worst, 3))


# the benefit Δ = gen_error(single) − gen_error(multitask) with the sign the seed paper's theory
# gives, at a time where it is largest against its standard error: (example, task, time, sign)
BENEFIT_CLAIMS = [("two_related_one_noisy", "noisy", 8.0, +1),   # the noisy task gains from its partner
                  ("two_related_one_noisy", "noisy", 2.0, -1),   # ... after an early loss
                  ("two_related_one_noisy", "clean", 2.0, -1),   # the clean one pays a price
                  ("unrelated_narrow_trunk", "A", 8.0, -1),      # unrelated tasks compete for 2 units
                  ("unrelated_narrow_trunk", "B", 8.0, -1)]
MIN_Z = 5.0   # the simulation must resolve each claimed sign by at least this many SE


@pytest.mark.parametrize("example", sorted({c[0] for c in BENEFIT_CLAIMS}))
def test_benefit_signs_of_the_examples(example):
    """The multitask benefit of the examples, theory against simulation (N = 100, 128 seeds, single-
    task baselines from the same seeds): `compare`'s rows — gen_error of the multitask and single
    runs and the benefit at t = 1, 2, 4, 8 — all agree (4 SE + 0.003), and the benefit has the sign
    claimed in BENEFIT_CLAIMS both in theory and in the simulation, where it is at least MIN_Z
    standard errors from zero (so the sign is the simulation's evidence, not the theory's own
    output).  Measured (theory / simulation, SE of Δ ≈ 0.002–0.003): two_related_one_noisy
    Δ_noisy(8) +0.047 / +0.042 (12.7 SE), Δ_noisy(2) −0.068 / −0.065 (20 SE), Δ_clean(2) −0.025 /
    −0.025 (9 SE; at t = 8 only −0.010 / −0.011, 5–6 SE, too close to MIN_Z across installs);
    unrelated_narrow_trunk Δ_A(8) −0.146 / −0.148 (55 SE), Δ_B(8) −0.185 / −0.184 (90 SE);
    max |z| of all rows 1.9.  CPU time 4.5 s each (the old theory-only version of both: 5.4 s)."""
    setup = load_setup(EXAMPLES / f"{example}.toml")
    theory = solve(setup, single=True)
    sim = simulate_with_single(setup, N=N, seeds=SEEDS, test_size=TEST_SIZE, grid=0)
    comparison = compare(theory.to_json_dict(), sim.to_json_dict())
    bad = [r for r in comparison.rows if not r["agrees"]]
    assert not bad, bad
    benefit = {(r["task"], r["time"]): r for r in comparison.rows if r["quantity"] == "benefit"}
    for ex, task, time, sign in BENEFIT_CLAIMS:
        if ex != example:
            continue
        r = benefit[task, time]
        assert np.sign(r["theory"]) == sign, (task, time, r)
        assert sign * r["simulation"] >= MIN_Z * r["se"], (task, time, r)
    print(example, "max |z|", round(comparison.max_abs_z, 2))

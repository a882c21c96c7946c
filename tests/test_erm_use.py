"""The erm protocol in use: learning curves (`mtsp validate --vary`, validate/curves.py), the optimal
ridge (`mtsp ridge`, numeric/ridge.py) and `mtsp sweep` through the replica engine.  Two-class
setups: each replica solve takes milliseconds, each test a few seconds."""
import csv
import json

import numpy as np
import pytest

from mtsp.cli import main
from mtsp.errors import ReachError, RequestError
from mtsp.numeric import sweep as sweep_mod
from mtsp.numeric.erm import solve_erm
from mtsp.numeric.ridge import ridge_curve
from mtsp.api import solve   # derive, then numeric
from mtsp.api import sweep
from mtsp.numeric.sweep import point_setup
from mtsp.setup import setup_from_toml
from tiny_setups import TINY_ERM_ONE, TINY_ERM_TWO


def write(tmp_path, text, name="setup.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# ----------------------------------------------------------------------------------------------
# learning curves

def test_cli_learning_curve_files_and_theory(tmp_path, capsys):
    """gen_error(α) of two coupled tasks with the simulation (N = 200, 3 seeds; deterministic
    seeds, measured max |z| = 2.5): report, JSON, CSV and plots; the theory line passes through
    exactly `mtsp solve --single` of each grid point.  6.3 s at load 12 on the 2 cores."""
    pytest.importorskip("torch")
    out = tmp_path / "curve"
    rc = main(["validate", write(tmp_path, TINY_ERM_TWO), "--vary", "training.alpha=0.5,2",
               "--N", "200", "--seeds", "3", "--theory-points", "3", "--out", str(out), "-q"])
    o = capsys.readouterr().out
    assert rc == 0, o
    assert "agree at all 2 values of training.alpha" in o
    for f in ("report.md", "results.json", "curve.csv", "theory_line.csv", "gen_error.png",
              "benefit.png"):
        assert (out / f).exists(), f
    js = json.loads((out / "results.json").read_text())
    assert js["key"] == "training.alpha" and js["values"] == [0.5, 2] and len(js["points"]) == 2
    line = js["theory_line"]
    assert line["values"] == [0.5, 1.25, 2.0]
    base = setup_from_toml(TINY_ERM_TWO)
    for v in (0.5, 1.25, 2):
        th = solve(point_setup(base, {"training.alpha": v}), single=True)
        i = line["values"].index(v)
        for name in ("A", "B"):
            assert line["tasks"][name][i] == th.tasks[name]["gen_error"][0]
            assert line["single"][name][i] == th.single[name]["gen_error"][0]
    rows = list(csv.DictReader(open(out / "curve.csv")))
    # per point: multitask and single gen_error of 2 tasks, and 2 benefits
    assert len(rows) == 12 and {r["training.alpha"] for r in rows} == {"0.5", "2"}
    assert all(r["agrees"] == "True" for r in rows)


@pytest.mark.parametrize("args, msg", [
    (["--vary", "training.alpha=1,2", "--vary", "training.ridge=0.1,1"],
     "mtsp: error: vary: a learning curve varies exactly one key"),
    (["--theory-points", "3"], "mtsp: error: --theory-points: applies to a learning curve"),
    (["--vary", "training.alpha=1,-1"], "mtsp: error: training.alpha: "),
    (["--vary", "training.alpha=1", "--N", "1"], "mtsp: error: N: 1 is too small"),
])
def test_cli_learning_curve_refuses_before_running(tmp_path, capsys, args, msg):
    pytest.importorskip("torch")
    rc = main(["validate", write(tmp_path, TINY_ERM_TWO), "--out", str(tmp_path / "o"), "-q"]
              + args)
    assert rc == 2 and msg in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------
# the optimal ridge

def test_optimal_ridge_is_a_minimiser():
    """gen_error at λ*(1 ± 0.05) is larger than at λ* on both sides, and by nearly the same
    amount (λ* within a fraction of ε of the minimum: measured +4.3e-6 / +4.7e-6 at α = 1,
    +6.4e-6 / +7.0e-6 at α = 3, the solver's own error ≲ 1e-10).  About 1 s."""
    s = setup_from_toml(TINY_ERM_ONE)
    c = ridge_curve(s, {"training.alpha": [1, 3]}, jobs=1)
    for r in c.rows:
        assert r["at_bound"] is None and 1e-3 < r["ridge"] < 10
        p = point_setup(s, {"training.alpha": r["value"]})
        g = solve_erm(p.replace(**{"training.ridge": r["ridge"]}))["tasks"]["A"]["gen_error"][0]
        assert g == r["gen_error"] == r["tasks"]["A"]
        up, down = (solve_erm(p.replace(**{"training.ridge": r["ridge"] * f}))["tasks"]["A"]
                    ["gen_error"][0] - g for f in (1.05, 0.95))
        assert up > 1e-6 and down > 1e-6
        assert 0.5 < up / down < 2
        assert r["gen_error0"] >= r["gen_error"]      # the setup's own ridge is no better


def test_cli_ridge_table_files_and_the_bound_note(tmp_path, capsys):
    """A search interval above λ* (≈ 0.27 and 0.22 at α = 1, 3) ends at its lower bound: the
    table marks it, stderr says so, ridge.json records the side.  About 2 s."""
    out = tmp_path / "r"
    rc = main(["ridge", write(tmp_path, TINY_ERM_ONE), "--vary", "training.alpha=1,3",
               "--bounds", "0.5,10", "--jobs", "1", "--out", str(out)])
    o, e = capsys.readouterr()
    assert rc == 0
    assert o.count("(≤, bound)") == 2
    assert "the minimum sits at the lower end of the search interval [0.5, 10]" in e
    for f in ("ridge.json", "ridge.csv", "ridge.png"):
        assert (out / f).exists(), f
    js = json.loads((out / "ridge.json").read_text())
    assert [p["at_bound"] for p in js["points"]] == ["lower", "lower"]
    assert js["key"] == "training.alpha" and js["engine"] == "replica"


@pytest.mark.parametrize("kw, err, msg", [
    ({"bounds": (1.0, 0.1)}, RequestError, "^bounds: need 0 < LO < HI"),
    ({"task": "C"}, RequestError, "^task: no task 'C'"),
    ({"vary": {"training.ridge": [0.1]}}, RequestError, "^training.ridge: the ridge is what"),
])
def test_ridge_refusals(kw, err, msg):
    s = setup_from_toml(TINY_ERM_ONE)
    vary = kw.pop("vary", None)
    with pytest.raises(err, match=msg):
        ridge_curve(s, vary, **kw)


def test_ridge_refuses_other_protocols():
    from tiny_setups import TINY_TWO_TASKS
    with pytest.raises(ReachError, match="^training.protocol: the optimal ridge is a question"):
        ridge_curve(setup_from_toml(TINY_TWO_TASKS))


# ----------------------------------------------------------------------------------------------
# mtsp sweep with erm

def test_sweep_erm_equals_solve_and_reuses_baselines():
    """Each point's multitask and single-task gen_error are `solve --single`'s exactly; the two
    baselines (coupling dropped) are solved once for the three points; μ = 0 gives each task its
    single-task answer (measured |Δ| ≤ 7e-13).  Under 1 s."""
    s = setup_from_toml(TINY_ERM_TWO)
    res = sweep(s, {"training.coupling": [0, 0.5, 2]}, jobs=1)
    assert res.engine == "replica" and res.at is None
    assert res.stats["multi_solves"] == 3 and res.stats["single_solves"] == 2
    for r in res.records:
        th = solve(point_setup(s, {"training.coupling": r["training.coupling"]}), single=True)
        for name in ("A", "B"):
            assert r["multi"][name]["gen_error"] == th.tasks[name]["gen_error"][0]
            assert r["single"][name]["gen_error"] == th.single[name]["gen_error"][0]
    assert max(abs(d) for d in res.records[0]["benefit"].values()) < 1e-10
    assert res.records[2]["benefit"]["A"] != 0
    with pytest.raises(RequestError, match="^at: an erm setup has no time"):
        sweep(s, {"training.coupling": [0]}, at=1.0, jobs=1)
    with pytest.raises(RequestError, match="^engine: the 'erm' protocol is solved by replica"):
        sweep(s, {"training.coupling": [0]}, engine="ode", jobs=1)


def test_sweep_skips_a_point_the_engine_refuses(monkeypatch):
    """A ReachError raised while solving a point skips that point with its message."""
    s = setup_from_toml(TINY_ERM_TWO)
    real = sweep_mod._run_one

    def refusing(job):
        if job[1].training.coupling == 2:
            raise ReachError("training.coupling", "refused here")
        return real(job)
    monkeypatch.setattr(sweep_mod, "_run_one", refusing)
    told = []
    res = sweep(s, {"training.coupling": [0.5, 2]}, jobs=1, on_skip=lambda p, m: told.append(m))
    assert [r["training.coupling"] for r in res.records] == [0.5]
    assert res.skipped == [{"index": 1, "point": {"training.coupling": 2},
                            "error": "training.coupling: refused here"}]
    assert told == ["training.coupling: refused here"]
    assert res.stats["points"] == 2 and res.stats["valid_points"] == 1


def test_cli_sweep_erm_map(tmp_path, capsys):
    """`mtsp sweep` on an erm setup: the table, the map and the files.  About 2 s."""
    out = tmp_path / "s"
    rc = main(["sweep", write(tmp_path, TINY_ERM_TWO), "--vary", "training.coupling=0.5,2",
               "--vary", "teacher.alignment=0,0.9", "--jobs", "1", "--out", str(out), "-q"])
    o = capsys.readouterr().out
    assert rc == 0 and "(engine replica)" in o
    for f in ("sweep.json", "sweep.csv", "benefit_map.png", "points/point_0003.toml"):
        assert (out / f).exists(), f
    js = json.loads((out / "sweep.json").read_text())
    assert js["protocol"] == "erm" and js["at"] is None and len(js["points"]) == 4
    # related teachers gain from the coupling, unrelated ones lose (both tasks)
    d = {(p["training.coupling"], p["teacher.alignment"]): p["benefit"] for p in js["points"]}
    assert all(d[(m, 0.9)][t] > 0 > d[(m, 0)][t] for m in (0.5, 2) for t in ("A", "B"))
    assert np.isfinite([p["multi"]["A"]["gen_error"] for p in js["points"]]).all()


def test_api_names():
    import mtsp
    from mtsp.numeric import erm, ridge
    from mtsp.validate import curves
    assert mtsp.optimal_ridge is erm.optimal_ridge and mtsp.ridge_curve is ridge.ridge_curve
    assert mtsp.validate.validate_curve is curves.validate_curve


def test_training_alpha_that_changes_nothing_is_refused(tmp_path, capsys):
    """Separate inputs where every task sets its own alpha: varying training.alpha would give a
    flat curve; sweep, validate --vary and ridge refuse it by key."""
    text = TINY_ERM_TWO.replace('name = "B"', 'name = "B"\nalpha = 2.0').replace(
        'name = "A"', 'name = "A"\nalpha = 1.5')
    f = write(tmp_path, text)
    for cmd in (["sweep", f, "--jobs", "1"], ["ridge", f], ["validate", f]):
        rc = main(cmd + ["--vary", "training.alpha=1,2", "-q"])
        assert rc == 2, cmd
        assert "mtsp: error: training.alpha: every task sets its own alpha" in capsys.readouterr().err

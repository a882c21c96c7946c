"""Tests of parameter sweeps (mtsp.numeric.sweep), their plots (mtsp.validate.maps) and `mtsp sweep`."""
import csv
import json
import sys
import warnings

import numpy as np
import pytest

from mtsp.cli import main
from mtsp.api import solve   # derive, then numeric
from mtsp.numeric import sweep as sweep_mod
from mtsp.api import sweep   # derive, then numeric
from mtsp.numeric.sweep import (SweepError, SweepResult, check_key, parse_values, parse_vary,
                                point_setup, setup_toml, single_key)
from mtsp.setup import SetupError, setup_from_toml

# two small tasks, a one-unit shared trunk, separate inputs with unequal shares (so the single-task
# baselines run at pi_t * t), two times: cheap, and every rule of the sweep is exercised
BASE = """
name = "tiny sweep"
[[tasks]]
name = "A"
classes = 2
noise = 0.3
share = 2.0
[[tasks]]
name = "B"
classes = 2
[teacher]
alignment = 0.5
[student]
kind = "shared"
hidden = 1
init_scale = 0.1
[training]
protocol = "online"
inputs = "separate"
lr = 0.5
times = [0.5, 1]
"""
GRID = {"tasks.B.noise": [0, 0.5], "teacher.alignment": [0.2, 0.6]}


@pytest.fixture(scope="module")
def base():
    return setup_from_toml(BASE)


@pytest.fixture(scope="module")
def result(base):
    return sweep(base, GRID, at=0.5, jobs=1)


def write(tmp_path, text=BASE, name="base.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# ----------------------------------------------------------------------------------------------
# KEY=VALUES

def test_parse_values_lists_and_ranges():
    assert parse_values("0,0.5,0.9") == [0, 0.5, 0.9]
    assert parse_values(" 1, 2 ,3") == [1, 2, 3] and all(isinstance(v, int) for v in parse_values("1,2,3"))
    assert parse_values("linear,relu") == ["linear", "relu"]
    assert parse_values("0:1:5") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert parse_values("0:1:11")[3] == 0.3                     # no binary noise
    assert parse_values("1:4:4") == [1, 2, 3, 4] and isinstance(parse_values("1:4:4")[0], int)
    assert parse_values("0.5:0.5:1") == [0.5]
    assert parse_values("1:0:3") == [1.0, 0.5, 0.0]
    assert parse_values("-1e-1,2E0") == [-0.1, 2.0]


@pytest.mark.parametrize("text", ["", "1:2", "a:b:3", "0:1:0", "0:1:x", "1,,2", "1,1", "0:1:2:3",
                                  "nan"])
def test_parse_values_refuses(text):
    with pytest.raises(SweepError) as e:
        parse_values(text, "teacher.alignment")
    assert str(e.value).startswith("teacher.alignment: ")


def test_parse_vary_and_dotted_keys(base):
    assert parse_vary("tasks.B.noise=0:2:3") == ("tasks.B.noise", [0.0, 1.0, 2.0])
    assert parse_vary("student.hidden=1,2") == ("student.hidden", [1, 2])
    with pytest.raises(SweepError, match="^vary: expected KEY=VALUES"):
        parse_vary("teacher.alignment")
    for key in ("teacher.alignment", "tasks.A.noise", "tasks.0.noise", "student.hidden",
                "training.lr", "training.head_lr", "tasks.B.share"):
        check_key(base, key)
    for key, msg in [("tasks.C.noise", "no task 'C'"), ("tasks.A.name", "cannot vary 'name'"),
                     ("teacher.gram", "cannot vary 'gram'"), ("training.times", "cannot vary"),
                     ("foo.bar", "cannot vary this key"), ("alignment", "cannot vary this key")]:
        with pytest.raises(SweepError, match=msg) as e:
            check_key(base, key)
        assert e.value.key == key
    # one key in two spellings is refused
    with pytest.raises(SweepError, match="varied twice"):
        sweep(base, {"tasks.A.noise": [0], "tasks.0.noise": [1]}, jobs=1)


def test_point_setup_is_the_base_with_the_values(base):
    s = point_setup(base, {"tasks.B.noise": 0.5, "teacher.alignment": 0.6}, 0.5)
    assert s.tasks[1].noise == 0.5 and s.teacher.alignment == 0.6 and s.training.times == (0.5,)
    assert s.tasks[0] == base.tasks[0] and s.student == base.student
    assert load_setup_text(setup_toml(s)) == s
    with pytest.raises(SetupError, match="^teacher.alignment: "):
        point_setup(base, {"teacher.alignment": -2}, 0.5)


def load_setup_text(text):
    return setup_from_toml(text)


# ----------------------------------------------------------------------------------------------
# the values

def test_sweep_equals_solve_of_the_same_point_exactly(base, result):
    """Not re-fitted: every number is the one `solve --single` gives on the point's setup."""
    assert len(result.records) == 4 and result.at == 0.5
    for r in result.records:
        point = {k: r[k] for k in GRID}
        ref = solve(point_setup(base, point, 0.5), single=True)
        for t in ("A", "B"):
            assert r["multi"][t]["gen_error"] == ref.tasks[t]["gen_error"][0]
            assert r["single"][t]["gen_error"] == ref.single[t]["gen_error"][0]
            assert r["benefit"][t] == ref.single[t]["gen_error"][0] - ref.tasks[t]["gen_error"][0]


def test_default_at_equals_solve_of_the_base_with_the_values(base):
    """At the last time (the default) the sweep equals `solve` on the base setup itself, all its
    times kept."""
    res = sweep(base, {"teacher.alignment": [0.6]}, jobs=1)
    assert res.at == 1.0
    ref = solve(base.replace(**{"teacher.alignment": 0.6}), single=True)
    for t in ("A", "B"):
        assert res.records[0]["multi"][t]["gen_error"] == ref.tasks[t]["gen_error"][-1]
        assert res.records[0]["single"][t]["gen_error"] == ref.single[t]["gen_error"][-1]


def test_cli_sweep_equals_cli_solve_on_the_point_file(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["sweep", write(tmp_path), "--vary", "tasks.B.noise=0,0.5", "--at", "0.5",
               "--json", "--out", str(out), "--jobs", "1", "-q"])
    js = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(js["points"]) == 2
    for p in js["points"]:
        f = out / "points" / f"point_{p['index']:04d}.toml"
        assert main(["solve", str(f), "--single", "--json", "-q"]) == 0
        ref = json.loads(capsys.readouterr().out)
        assert ref["times"] == [0.5]
        for t in ("A", "B"):
            assert p["multi"][t]["gen_error"] == ref["tasks"][t]["gen_error"][0]
            assert p["single"][t]["gen_error"] == ref["single"][t]["gen_error"][0]


def test_single_task_baselines_are_computed_once(base, monkeypatch):
    """A's baseline depends on nothing varied (alignment is not a single-task parameter); B's only
    on its noise: 1 + 2 single-task solves for 4 points."""
    calls = []
    real = sweep_mod._evaluate

    def counting(setup, engine, generated):
        calls.append(len(setup.tasks))
        return real(setup, engine, generated)
    monkeypatch.setattr(sweep_mod, "_evaluate", counting)
    res = sweep(base, GRID, at=0.5, jobs=1)
    assert calls.count(2) == 4 and calls.count(1) == 3
    assert res.stats["multi_solves"] == 4 and res.stats["single_solves"] == 3
    singles_A = {r["single"]["A"]["gen_error"] for r in res.records}
    assert len(singles_A) == 1
    # the key: alignment and the name do not matter to a lone task, its own parameters do
    s1 = point_setup(base, {"teacher.alignment": 0.2}, 0.5).single(0)
    s2 = point_setup(base, {"teacher.alignment": 0.6}, 0.5).single(0)
    s3 = point_setup(base, {"tasks.A.noise": 0.4}, 0.5).single(0)
    assert single_key(s1, [0.5], "ode") == single_key(s2, [0.5], "ode")
    assert single_key(s1, [0.5], "ode") != single_key(s3, [0.5], "ode")
    assert single_key(s1, [0.5], "ode") != single_key(s1, [0.25], "ode")


def test_local_processes_give_the_same_numbers(base, result):
    res = sweep(base, GRID, at=0.5, jobs=2)
    assert res.stats["executor"] == "processes (2)"
    assert res.records == result.records


def test_invalid_points_are_skipped(base):
    skipped = []
    res = sweep(base, {"teacher.alignment": [0.5, -2.0]}, jobs=1,
                on_skip=lambda p, m: skipped.append((p, m)))
    assert [r["teacher.alignment"] for r in res.records] == [0.5]
    assert res.skipped[0]["point"] == {"teacher.alignment": -2.0}
    assert res.skipped[0]["error"].startswith("teacher.alignment: ")
    assert skipped == [({"teacher.alignment": -2.0}, res.skipped[0]["error"])]
    with pytest.raises(SweepError, match="^vary: no valid grid point"):
        sweep(base, {"teacher.alignment": [-2.0, -3.0]}, jobs=1)
    with pytest.raises(SweepError, match=r"^at: must lie in \(0, 1\]"):
        sweep(base, {"teacher.alignment": [0.5]}, at=2.0, jobs=1)


def test_progress_is_reported(base):
    seen = []
    sweep(base, {"teacher.alignment": [0.2]}, at=0.5, jobs=1, progress=lambda f, n=None: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


# ----------------------------------------------------------------------------------------------
# JSON, CSV, table

def test_json_schema(result):
    js = json.loads(json.dumps(result.to_json_dict()))
    assert {"base", "vary", "at", "points"} <= set(js)
    assert js["vary"] == {"tasks.B.noise": [0, 0.5], "teacher.alignment": [0.2, 0.6]}
    assert js["at"] == 0.5 and js["base"]["name"] == "tiny sweep"
    p = js["points"][1]
    assert p["tasks.B.noise"] == 0 and p["teacher.alignment"] == 0.6     # first key slowest
    assert set(p["multi"]) == set(p["single"]) == set(p["benefit"]) == {"A", "B"}
    for t in ("A", "B"):
        assert set(p["multi"][t]) == {"gen_error"} and set(p["single"][t]) == {"gen_error"}
        assert p["benefit"][t] == p["single"][t]["gen_error"] - p["multi"][t]["gen_error"]


def test_csv_and_table(result, tmp_path):
    tab = result.table()
    assert tab.dtype.names == tuple(result.columns())
    assert tab.dtype["tasks.B.noise"] == np.float64 and tab.dtype["index"] == np.int64
    assert len(tab) == 4
    path = result.to_csv(tmp_path / "s.csv")
    rows = list(csv.reader(open(path)))
    assert rows[0] == result.columns() == [
        "index", "tasks.B.noise", "teacher.alignment", "multi.A.gen_error", "single.A.gen_error",
        "benefit.A", "multi.B.gen_error", "single.B.gen_error", "benefit.B"]
    assert len(rows) == 5
    for row, rec in zip(rows[1:], tab):
        assert [float(x) for x in row] == [float(x) for x in rec]   # repr precision: exact


def test_string_valued_keys_make_a_string_column(base):
    res = SweepResult(base.to_dict(), {"student.activation": ["linear", "tanh"]}, 1.0, "ode",
                      ["A", "B"], [_fake(i, {"student.activation": v}, 0.01 * i)
                                   for i, v in enumerate(["linear", "tanh"])])
    assert res.table()["student.activation"].tolist() == ["linear", "tanh"]


# ----------------------------------------------------------------------------------------------
# plots and files

def _fake(i, point, delta):
    return dict(index=i, **point, multi={"A": {"gen_error": 0.3}, "B": {"gen_error": 0.3 - delta}},
                single={"A": {"gen_error": 0.3 + delta}, "B": {"gen_error": 0.3}},
                benefit={"A": delta, "B": delta})


def test_map_and_curve_plots_are_written(base, tmp_path):
    from mtsp.validate.maps import write_sweep
    xs, ys = [0.0, 1.0, 2.0], [0.0, 0.5, 1.0]
    recs = [_fake(i, {"tasks.B.noise": x, "teacher.alignment": y}, y - 0.4 - 0.1 * x)
            for i, (x, y) in enumerate((x, y) for x in xs for y in ys)]
    res = SweepResult(base.to_dict(), {"tasks.B.noise": xs, "teacher.alignment": ys}, 1.0, "ode",
                      ["A", "B"], recs)
    v1, v2, Z = res.grid("A")
    assert v1 == xs and v2 == ys and Z.shape == (3, 3) and Z[2, 0] == pytest.approx(0.6)
    paths = [str(p) for p in write_sweep(res, tmp_path / "map", points=True)]
    png = tmp_path / "map" / "benefit_map.png"
    assert str(png) in paths and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((tmp_path / "map" / "points").glob("*.toml"))) == 9
    one = SweepResult(base.to_dict(), {"teacher.alignment": ys}, 1.0, "ode", ["A", "B"],
                      [_fake(i, {"teacher.alignment": y}, y - 0.4) for i, y in enumerate(ys)])
    write_sweep(one, tmp_path / "curve", points=False)
    assert (tmp_path / "curve" / "benefit.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "curve" / "sweep.json").read_text())["points"][0]["index"] == 0


def test_map_with_a_skipped_point_and_unsorted_values(base, tmp_path):
    from mtsp.validate.maps import plot_benefit_maps
    xs, ys = [2.0, 0.0], [1.0, 0.0, 0.5]
    recs = [_fake(i, {"a.x": x, "a.y": y}, y - 0.4) for i, (x, y) in
            enumerate((x, y) for x in xs for y in ys) if (x, y) != (0.0, 0.5)]
    res = SweepResult(base.to_dict(), {"a.x": xs, "a.y": ys}, 1.0, "ode", ["A", "B"], recs)
    assert np.isnan(res.grid("A")[2]).sum() == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # e.g. pcolormesh on non-monotonic coordinates
        plot_benefit_maps(res, tmp_path / "m.png")
    assert (tmp_path / "m.png").exists()


# ----------------------------------------------------------------------------------------------
# the command line

def test_cli_sweep_table_files_and_skipped_point(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["sweep", write(tmp_path), "--vary", "teacher.alignment=0.2,-2", "--at", "0.5",
               "--out", str(out), "--jobs", "1", "-q"])
    o, e = capsys.readouterr()
    assert rc == 0
    assert "skipped point teacher.alignment=-2: teacher.alignment: " in e
    assert "Δ A" in o and "0.2" in o
    for f in ("sweep.json", "sweep.csv", "benefit.png", "points/point_0000.toml"):
        assert (out / f).exists(), f
    assert not (out / "points" / "point_0001.toml").exists()


@pytest.mark.parametrize("args, msg", [
    (["--vary", "tasks.C.noise=0,1"], "mtsp: error: tasks.C.noise: no task 'C'"),
    (["--vary", "teacher.alignment=0:1"], "mtsp: error: teacher.alignment: range '0:1'"),
    (["--vary", "teacher.alignment=-2,-3"], "mtsp: error: vary: no valid grid point"),
    (["--vary", "teacher.alignment=0.5", "--at", "3"], "mtsp: error: at: must lie in"),
    (["--vary", "teacher.alignment=0.5", "--vary", "teacher.alignment=0.2"],
     "mtsp: error: teacher.alignment: varied twice"),
])
def test_cli_sweep_refuses_with_exit_2(tmp_path, capsys, args, msg):
    rc = main(["sweep", write(tmp_path)] + args + ["-q", "--jobs", "1"])
    assert rc == 2 and msg in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Dask distributed

def test_dask_executor_on_a_local_cluster(base, result):
    """The same numbers from a Dask cluster (two worker processes started here) as locally."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        res = sweep(base, GRID, at=0.5, scheduler=cluster.scheduler_address)
        assert res.stats["executor"].startswith("dask (tcp://")
        assert res.records == result.records
        with distributed.Client(cluster) as client:      # an existing client is used as is
            res2 = sweep(base, {"teacher.alignment": [0.2]}, at=0.5, scheduler=client)
            assert res2.records[0]["multi"] == result.records[0]["multi"]
            assert client.status == "running"


def test_dask_missing_is_a_clear_error(base, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(SweepError, match=r'^scheduler: Dask distributed is not installed.*mtsp\[dask\]'):
        sweep(base, {"teacher.alignment": [0.2]}, at=0.5, scheduler="tcp://127.0.0.1:1")


FULL_BATCH = """
name = "tiny full-batch sweep"
[[tasks]]
name = "A"
classes = 2
noise = 0.3
[[tasks]]
name = "B"
classes = 2
[student]
kind = "glm"
init_scale = 0.1
[training]
protocol = "full_batch"
alpha = 2.0
lr = 1.0
times = [0.25, 0.5]
"""


def test_full_batch_sweep_runs_the_dmft_with_early_stopping_and_baselines(monkeypatch):
    """A full_batch point goes through `solve` with the DMFT (the sweep's default engine stands for
    it): the numbers are those of `solve --single` on the point's setup, with the DMFT's sampling
    error and early-stopped values; glm tasks on shared inputs decouple and a task alone runs on
    the same paths, so the benefit is exactly 0; an online-only engine is refused. (Few DMFT
    paths, for speed: the comparison is exact either way.)"""
    from mtsp.numeric.dmft import solve as dmft_solve
    monkeypatch.setitem(dmft_solve.solve_full_batch.__kwdefaults__, "opts", dmft_solve.DmftOptions(
        n_paths=1000, n_response=300, batches=3, scan=10))
    base = setup_from_toml(FULL_BATCH)
    res = sweep(base, {"training.weight_decay": [0.1]}, jobs=1)
    assert res.engine == "dmft" and res.at == 0.5 and len(res.records) == 1
    r = res.records[0]
    ref = solve(point_setup(base, {"training.weight_decay": 0.1}, 0.5), single=True)
    for t in ("A", "B"):
        for run, d in (("multi", ref.tasks[t]), ("single", ref.single[t])):
            got = r[run][t]
            assert got["gen_error"] == d["gen_error"][0] and got["gen_error_se"] == d["gen_error_se"][0]
            assert got["best_gen_error"] == d["best_gen_error"] <= got["gen_error"]
            assert 0 < got["best_gen_error_time"] <= 0.5 and got["gen_error_se"] > 0
        assert r["benefit"][t] == 0.0 and r["best_benefit"][t] == 0.0
    assert res.to_json_dict()["points"][0]["best_benefit"] == r["best_benefit"]
    with pytest.raises(SweepError, match="engine"):
        sweep(base, {"training.weight_decay": [0.1]}, engine="reference", jobs=1)


def test_erm_sweep_runs_the_replica_engine():
    """An erm point goes through `solve` with the replica engine (before, the sweep's default
    engine "ode" was passed on and refused): the numbers are `solve --single`'s; uncoupled glm
    tasks on shared inputs are their own baselines, so the benefit is 0 to rounding."""
    base = setup_from_toml(FULL_BATCH.replace('protocol = "full_batch"', 'protocol = "erm"')
                           .replace("times = [0.25, 0.5]", "ridge = 0.1"))
    res = sweep(base, {"training.ridge": [0.1, 1.0]}, jobs=1)
    assert res.engine == "replica" and res.at is None and len(res.records) == 2
    for r in res.records:
        ref = solve(point_setup(base, {"training.ridge": r["training.ridge"]}), single=True)
        for t in ("A", "B"):
            assert r["multi"][t]["gen_error"] == ref.tasks[t]["gen_error"][0]
            assert r["single"][t]["gen_error"] == ref.single[t]["gen_error"][0]
            assert abs(r["benefit"][t]) < 1e-12

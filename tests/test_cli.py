"""Tests of the command line (mtsp.cli), the progress display, compare() and write_report()."""
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtsp.cli import main
from mtsp.progress import Progress, progress_enabled
from mtsp.validate.compare import compare
from mtsp.validate.report import write_report
from tiny_setups import TINY_TWO_TASKS

ROOT = Path(__file__).resolve().parents[1]
TASK_KEYS = {"gen_error", "label_error", "test_loss", "best_gen_error", "best_gen_error_time",
             "best_test_loss", "best_test_loss_time"}

TINY = TINY_TWO_TASKS


def write(tmp_path, text, name="setup.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# ----------------------------------------------------------------------------------------------
# mtsp solve

def test_solve_json_has_model_md_keys(tmp_path, capsys):
    rc = main(["solve", write(tmp_path, TINY), "--json", "--single"])
    out, err = capsys.readouterr()
    assert rc == 0
    js = json.loads(out)
    assert js["setup"] == "tiny" and js["engine"] == "ode" and js["protocol"] == "online"
    assert js["times"] == [0.5, 1.0]
    for section in ("tasks", "single"):
        assert set(js[section]) == {"A", "B"}
        for d in js[section].values():
            assert TASK_KEYS <= set(d)
            assert len(d["gen_error"]) == 2 and all(0 < g < 0.5 for g in d["gen_error"])
    # MODEL.md's public check: glm, C = 2, noise 0.3, lr 0.5 -> 0.2841 at t = 1
    assert js["tasks"]["A"]["gen_error"][1] == pytest.approx(0.2841, abs=2e-4)
    assert err == ""          # --json on a non-terminal stderr: no progress lines


def test_solve_processes_option(tmp_path, capsys):
    """`--processes 1` and `--processes 2` print the same JSON; other counts are refused (exit 2)."""
    path = write(tmp_path, TINY)
    outs = []
    for n in ("1", "2"):
        assert main(["solve", path, "--json", "--processes", n]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]
    with pytest.raises(SystemExit) as e:
        main(["solve", path, "--json", "--processes", "3"])
    assert e.value.code == 2 and "--processes" in capsys.readouterr().err


def test_solve_table(tmp_path, capsys):
    assert main(["solve", write(tmp_path, TINY), "-q"]) == 0
    out = capsys.readouterr().out
    assert "task A" in out and "gen_error" in out and "0.2841" in out


def test_module_entry_point(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "mtsp", "solve", write(tmp_path, TINY), "--json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tasks"]["B"]["gen_error"]
    bad = write(tmp_path, TINY.replace("noise = 0.3", "noise = 0.3\nbogus = 1"), "bad.toml")
    r = subprocess.run([sys.executable, "-m", "mtsp", "solve", bad, "--json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("mtsp: error: tasks.A.bogus")


# ----------------------------------------------------------------------------------------------
# refusals: exit 2, key in the message, nothing on stdout, nothing run

NON_PSD = """
[[tasks]]
name = "A"
classes = 2
[teacher]
gram = [[1.0, 2.0], [2.0, 1.0]]
[student]
kind = "glm"
[training]
protocol = "online"
lr = 0.5
times = [1]
"""


@pytest.mark.parametrize("text, key", [
    (TINY.replace("noise = 0.3", "noise = 0.3\nbogus = 1"), "tasks.A.bogus"),
    (NON_PSD, "teacher.gram"),
])
@pytest.mark.parametrize("command", [["solve", "--json"], ["solve"], ["simulate", "--json"],
                                     ["validate"]])
def test_bad_setup_exits_2(tmp_path, capsys, text, key, command):
    out_dir = tmp_path / "report"
    argv = [command[0], write(tmp_path, text), *command[1:]]
    if command[0] == "validate":
        argv += ["--out", str(out_dir)]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"mtsp: error: {key}")
    assert err.count("\n") == 1
    assert not out_dir.exists()             # refused before anything ran or was written


FULL_BATCH = TINY.replace('protocol = "online"', 'protocol = "full_batch"\nalpha = 2')
ERM = TINY.replace('protocol = "online"', 'protocol = "erm"\nalpha = 2\nridge = 0.5') \
    .replace("lr = 0.5\ntimes = [0.5, 1]\n", "")


LONG_FULL_BATCH = FULL_BATCH.replace("times = [0.5, 1]", "times = [0.5, 1000]")


@pytest.mark.parametrize("text, command", [(LONG_FULL_BATCH, ["solve", "--json"]),
                                           (LONG_FULL_BATCH, ["validate"])])
def test_finite_data_theory_refused(tmp_path, capsys, text, command):
    """A full_batch setup beyond the DMFT's reach (times needing more than MAX_STEPS grid steps):
    refused before anything runs, pointing to `mtsp simulate`."""
    out_dir = tmp_path / "report"
    argv = [command[0], write(tmp_path, text), *command[1:]]
    if command[0] == "validate":
        argv += ["--out", str(out_dir)]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("mtsp: error: training.times")
    assert "mtsp simulate" in err and err.count("\n") == 1
    assert not out_dir.exists()


@pytest.mark.parametrize("text, extra", [(ERM, ["--trajectory"]), (FULL_BATCH, [])])
def test_check_refuses_protocols_without_an_mp_path(tmp_path, capsys, text, extra):
    """full_batch (dmft) has a theory engine but no mp path, erm (replica) no mp trajectory (its
    fixed point is checked without --trajectory, tests/test_replica.py): `mtsp check` refuses them
    with exit 2."""
    assert main(["check", write(tmp_path, text), *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("mtsp: error: training.protocol: mtsp check")
    assert err.count("\n") == 1


# one full_batch task: the dmft at its default paths costs ~2 s per task and batch (8 batches)
FULL_BATCH_ONE = FULL_BATCH.split("[[tasks]]\nname = \"B\"")[0] + "[teacher]" + FULL_BATCH.split("[teacher]")[1]


def test_solve_full_batch_runs_the_dmft(tmp_path, capsys):
    """full_batch glm setups: `mtsp solve` answers with the dmft engine (MODEL.md schema, with the
    sampling error and the training metrics; one task at the default paths).  Two glm tasks on
    shared inputs decouple, so each single-task baseline equals its multitask run (the same paths;
    checked through the API at 500 paths × 2 batches, which leaves the identity exact)."""
    from mtsp.numeric.dmft.solve import DmftOptions, solve_full_batch
    from mtsp.setup import load_setup
    assert main(["solve", write(tmp_path, FULL_BATCH_ONE), "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["engine"] == "dmft" and js["protocol"] == "full_batch" and js["times"] == [0.5, 1.0]
    assert list(js["tasks"]) == ["A"]
    for d in js["tasks"].values():
        assert TASK_KEYS | {"gen_error_se", "train_loss", "train_error"} <= set(d)
        assert all(0 < g < 0.5 for g in d["gen_error"]) and d["gen_error"][1] < d["gen_error"][0]
        assert all(0 < s < 0.005 for s in d["gen_error_se"])
    res = solve_full_batch(load_setup(write(tmp_path, FULL_BATCH)), single=True,
                           opts=DmftOptions(n_paths=500, n_response=200, batches=2, scan=4))
    for name in ("A", "B"):
        assert res.single[name]["gen_error"] == res.tasks[name]["gen_error"]
    assert main(["solve", write(tmp_path, FULL_BATCH), "--engine", "reference"]) == 2
    assert "solved by dmft, not 'reference'" in capsys.readouterr().err


def test_validate_full_batch_writes_a_report(tmp_path, capsys):
    """`mtsp validate` on one full_batch task (dmft against the seeded full_batch simulation, N = 200,
    2 seeds): measured max |z| 0.53 over its 2 comparisons, so exit 0, and the report is written."""
    pytest.importorskip("torch")
    out_dir = tmp_path / "report"
    rc = main(["validate", write(tmp_path, FULL_BATCH_ONE), "--out", str(out_dir), "--N", "200",
               "--seeds", "2", "--no-single", "-q"])
    assert rc == 0
    assert (out_dir / "gen_error.png").exists()
    assert "report:" in capsys.readouterr().out


@pytest.mark.parametrize("text, times", [(FULL_BATCH, [0.5, 1.0]), (ERM, None)])
def test_simulate_finite_data(tmp_path, capsys, text, times):
    pytest.importorskip("torch")
    assert main(["simulate", write(tmp_path, text), "--json", "--N", "40", "--seeds", "2"]) == 0
    out, _ = capsys.readouterr()
    js = json.loads(out)
    assert js["protocol"] == text.split('protocol = "')[1].split('"')[0]
    assert js["times"] == times and js["N"] == 40 and js["seeds"] == 2
    n = 1 if times is None else len(times)
    for task in js["tasks"].values():
        for key in ("gen_error", "gen_error_se", "label_error", "test_loss", "train_loss",
                    "train_error"):
            assert len(task[key]) == n and all(0 <= v < 5 for v in task[key])
        assert ("best_gen_error" in task) == (times is not None)
    assert main(["simulate", write(tmp_path, text), "--N", "40", "--seeds", "2", "-q"]) == 0
    out, _ = capsys.readouterr()
    assert "gen_error" in out


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "nope.toml")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("mtsp: error: file:")


def test_unavailable_device_exits_2(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out_dir = tmp_path / "r"
    assert main(["validate", write(tmp_path, TINY), "--device", "cuda", "--out", str(out_dir)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("mtsp: error: device:")
    assert not out_dir.exists()


# ----------------------------------------------------------------------------------------------
# progress display

def test_progress_plain_stream():
    s = io.StringIO()
    with Progress("work", stream=s) as p:
        for i in range(11):
            p(i / 10)
    text = s.getvalue()
    assert "\r" not in text
    assert "work: started" in text and "work: 50%" in text and "work: done in" in text


def test_progress_tty_and_disabled():
    s = io.StringIO()
    p = Progress("work", stream=s, tty=True, tick=0)
    p(0.5)
    p.close()
    assert "\r" in s.getvalue() and "100%" in s.getvalue() and s.getvalue().endswith("\n")
    s2 = io.StringIO()
    with Progress("quiet", stream=s2, enabled=False) as q:
        q(0.3)
    assert s2.getvalue() == ""
    assert progress_enabled(json_mode=False, stream=io.StringIO())
    assert not progress_enabled(json_mode=True, stream=io.StringIO())
    assert not progress_enabled(json_mode=False, quiet=True)


# ----------------------------------------------------------------------------------------------
# compare

def synthetic(theory_multi, theory_single, sim_multi, sim_single, se=0.002, times=(1.0, 2.0)):
    def block(vals, with_se):
        d = {"gen_error": list(vals), "label_error": list(vals), "test_loss": [0.5] * len(vals),
             "best_gen_error": min(vals), "best_gen_error_time": times[-1],
             "best_test_loss": 0.5, "best_test_loss_time": times[-1]}
        if with_se:
            d["gen_error_se"] = [se] * len(vals)
        return d
    th = {"setup": "syn", "engine": "ode", "protocol": "online", "times": list(times),
          "tasks": {"A": block(theory_multi, False)}, "single": {"A": block(theory_single, False)}}
    sim = {"setup": "syn", "engine": "simulation", "protocol": "online", "times": list(times),
           "tasks": {"A": block(sim_multi, True)}, "single": {"A": block(sim_single, True)},
           "N": 1000, "seeds": 8}
    return th, sim


def test_compare_agrees():
    th, sim = synthetic([0.30, 0.20], [0.32, 0.25], [0.302, 0.199], [0.318, 0.252])
    c = compare(th, sim)
    assert c.agrees
    gen = [r for r in c.rows if r["quantity"] == "gen_error"]
    ben = [r for r in c.rows if r["quantity"] == "benefit"]
    assert len(gen) == 4 and len(ben) == 2
    assert gen[0]["z"] == pytest.approx((0.30 - 0.302) / 0.002)
    assert ben[1]["theory"] == pytest.approx(0.05) and ben[1]["simulation"] == pytest.approx(0.053)
    assert ben[1]["se"] == pytest.approx(math.sqrt(2) * 0.002)
    assert c.verdict().startswith("Theory and simulation agree (max |z| = ")
    md = c.to_markdown()
    assert "| multitask | A | 1 |" in md and "benefit" in md
    json.dumps(c.to_dict(), allow_nan=False)


def test_compare_disagrees_and_floor():
    # 0.016 off with SE 0.002: |diff| > 4·0.002 + 0.003 = 0.011, and the benefit
    # |Δ| = 0.016 > 4·√2·0.002 + 0.003 = 0.0143
    th, sim = synthetic([0.30, 0.20], [0.30, 0.20], [0.316, 0.20], [0.30, 0.20])
    c = compare(th, sim)
    assert not c.agrees
    bad = c.failures
    assert {(r["quantity"], r["run"], r["time"]) for r in bad} == {
        ("gen_error", "multitask", 1.0), ("benefit", "single − multitask", 1.0)}
    assert "DISAGREE at 2 of" in c.verdict() and "task A at t = 1" in c.verdict()
    assert "**NO**" in c.to_markdown()
    # the floor alone: SE 0, 0.0029 off agrees, 0.0031 off does not
    th, sim = synthetic([0.3, 0.3], [0.3, 0.3], [0.3029, 0.3031], [0.3, 0.3], se=0.0)
    rows = [r for r in compare(th, sim).rows if r["run"] == "multitask"]
    assert [r["agrees"] for r in rows] == [True, False]
    # 0.012 off: the gen_error fails, the benefit (larger SE) passes; a looser criterion passes
    th, sim = synthetic([0.30, 0.20], [0.30, 0.20], [0.312, 0.20], [0.30, 0.20])
    assert [(r["quantity"], r["time"]) for r in compare(th, sim).failures] == [("gen_error", 1.0)]
    assert compare(th, sim, n_se=6.0).agrees


def test_compare_without_single_and_mismatch():
    th, sim = synthetic([0.3, 0.2], [0.3, 0.2], [0.3, 0.2], [0.3, 0.2])
    del sim["single"]
    c = compare(th, sim)
    assert c.agrees and all(r["run"] == "multitask" for r in c.rows)
    sim["times"] = [1.0, 3.0]
    with pytest.raises(ValueError, match="^times:"):
        compare(th, sim)


# ----------------------------------------------------------------------------------------------
# write_report

def test_write_report_synthetic(tmp_path):
    from mtsp.setup import default_setup
    setup = default_setup()
    th, sim = synthetic([0.5, 0.45], [0.49, 0.40], [0.502, 0.449], [0.488, 0.401])
    # the default setup's task names
    for js in (th, sim):
        for sec in ("tasks", "single"):
            js[sec] = {"clean": js[sec]["A"], "noisy": dict(js[sec]["A"])}
    path = write_report(setup, th, sim, tmp_path / "rep")
    assert path == tmp_path / "rep" / "report.md"
    md = path.read_text()
    assert "Theory and simulation agree (max |z| =" in md
    assert "| clean | 3 | 0 |" in md and "benefit" in md
    for png in ("gen_error.png", "benefit.png"):
        data = (tmp_path / "rep" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    res = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert set(res) >= {"setup", "theory", "simulation", "comparison"}
    assert res["comparison"]["agrees"] is True
    assert res["setup"]["name"] == setup.name


def test_write_report_disagreement_without_single(tmp_path):
    th, sim = synthetic([0.30, 0.20], [0.30, 0.20], [0.35, 0.20], [0.30, 0.20])
    del th["single"], sim["single"]
    path = write_report(None, th, sim, tmp_path)
    md = path.read_text()
    assert "DISAGREE at 1 of 2" in md
    assert (tmp_path / "gen_error.png").exists() and not (tmp_path / "benefit.png").exists()


# ----------------------------------------------------------------------------------------------
# end to end, tiny

def test_validate_end_to_end_tiny(tmp_path, capsys):
    """The seeded simulation (seeds 0–3, N = 200) agrees with the theory: measured worst
    |theory − simulation| / (4 SE + 0.003) over its 12 compared values 0.53, so exit 0.  (Exit 1
    on a disagreement: test_cli_paths.py.)"""
    pytest.importorskip("torch")
    out_dir = tmp_path / "rep"
    rc = main(["validate", write(tmp_path, TINY), "--N", "200", "--seeds", "4", "-q",
               "--out", str(out_dir)])
    out, err = capsys.readouterr()
    assert rc == 0, out
    lines = out.strip().splitlines()
    assert lines[0] == f"report: {out_dir / 'report.md'}"
    assert lines[1].startswith("Theory and simulation agree (")
    for f in ("report.md", "results.json", "gen_error.png", "benefit.png"):
        assert (out_dir / f).is_file()
    res = json.loads((out_dir / "results.json").read_text())
    assert res["simulation"]["N"] == 200 and res["simulation"]["seeds"] == 4
    assert res["simulation"]["engine"] == "simulation" and "single" in res["simulation"]


def test_examples_load_and_demo_copy_matches():
    from mtsp.setup import default_setup, load_setup
    demo = load_setup(ROOT / "examples" / "two_related_one_noisy.toml")
    assert demo.to_dict() == default_setup().to_dict()
    un = load_setup(ROOT / "examples" / "unrelated_narrow_trunk.toml")
    assert un.teacher.alignment == 0 and un.student.hidden == 2 and un.classes == (3, 3)
    assert all(t.noise == 0 for t in un.tasks)


def test_validate_erm_writes_a_report_without_curves(tmp_path, capsys):
    """erm has one value per task (at convergence): `mtsp validate` compares the replica engine
    with exact minimisers and writes report.md and results.json, no time plots (seeded: agrees,
    max |z| 1.06 measured at N = 300, 4 seeds on examples/erm_coupled_tasks.toml)."""
    pytest.importorskip("torch")
    out_dir = tmp_path / "report"
    example = Path(__file__).resolve().parents[1] / "examples" / "erm_coupled_tasks.toml"
    assert main(["validate", str(example), "--out", str(out_dir), "--N", "300", "--seeds", "4", "-q"]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == [".mtsp-output", "report.md", "results.json"]  # manifest: mtsp.files
    report = (out_dir / "report.md").read_text()
    assert "engine `replica`" in report and "## Multitask benefit" in report

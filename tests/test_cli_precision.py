"""The command-line paths of the high-precision tools: solve --precision mp / --accuracy high, check."""
import json
import re

from mtsp.cli import main

ONE_TASK = """
name = "one glm task"
[[tasks]]
name = "A"
classes = 2
noise = 0.3
[student]
kind = "glm"
[training]
protocol = "online"
lr = 0.5
times = [0.2]
"""


def _write(tmp_path, text):
    p = tmp_path / "setup.toml"
    p.write_text(text)
    return str(p)


def _solve(tmp_path, capsys, *extra):
    assert main(["solve", _write(tmp_path, ONE_TASK), "--json", "-q", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_mp_solve_agrees_with_double(tmp_path, capsys):
    dbl = _solve(tmp_path, capsys)
    mp = _solve(tmp_path, capsys, "--precision", "mp", "--dps", "20")
    assert mp["engine"] == "mp" and mp["times"] == dbl["times"]
    a, b = dbl["tasks"]["A"]["gen_error"][0], mp["tasks"]["A"]["gen_error"][0]
    # measured 2.3e-13 in this tree (6.5e-12 under an earlier integrator; C = 2 glm: closed
    # forms, the ODE tolerances dominate)
    assert abs(a - b) < 3e-12
    assert mp["tasks"]["A"]["gen_error_mp"][0].startswith(f"{b:.10f}"[:10])


def test_accuracy_high_runs_and_agrees(tmp_path, capsys):
    dbl = _solve(tmp_path, capsys)
    high = _solve(tmp_path, capsys, "--accuracy", "high")
    assert abs(dbl["tasks"]["A"]["gen_error"][0] - high["tasks"]["A"]["gen_error"][0]) < 1e-7


def test_check_prints_relative_differences(tmp_path, capsys):
    assert main(["check", _write(tmp_path, ONE_TASK), "--states", "1", "--dps", "20", "-q"]) == 0
    out = capsys.readouterr().out
    assert "dR" in out and "dQ" in out
    worst = max(float(line.split()[1]) for line in out.splitlines()
                if line.split() and line.split()[0] in ("dQ", "dR"))
    assert worst < 1e-8


def test_check_accuracy_and_no_errors(tmp_path, capsys):
    """check --accuracy names the double tier it checks (in the report) and --no-errors leaves
    the errors out; with errors the glm task's gen_error is there; --mp-nodes reaches the mp side."""
    path = _write(tmp_path, ONE_TASK)
    assert main(["check", path, "--states", "1", "--dps", "20", "-q", "--accuracy", "high", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["accuracy"] == "high" and "gen_error0" in rep["terms"] and rep["terms"]["gen_error0"] < 1e-9
    assert main(["check", path, "--states", "1", "--dps", "20", "-q", "--no-errors"]) == 0
    out = capsys.readouterr().out
    assert "high" not in out and "default accuracy" in out and "gen_error" not in out and "dQ" in out
    assert main(["check", path, "--states", "1", "--dps", "20", "-q", "--no-errors", "--mp-nodes", "6",
                 "--json"]) == 0                                   # a coarse mp side: a larger difference
    rep6 = json.loads(capsys.readouterr().out)
    assert rep6["mp_nodes"] == 6 and rep6["terms"]["dQ"] > 1e3 * rep["terms"]["dQ"]   # measured 1.9e-8 vs 6e-16


def test_accuracy_fast_is_close(tmp_path, capsys):
    """`--accuracy fast` against the default on a four-class glm task (C = 2 would not tell: its
    closed forms make every budget give the same number, measured difference 0.0).  Measured at
    t = 0.2: gen_error 0.6407; fast − default 2.2e-6 (fast − high 1.4e-6, default − high −7.3e-7)."""
    text = ONE_TASK.replace("classes = 2", "classes = 4")
    solve = lambda *extra: main(["solve", _write(tmp_path, text), "--json", "-q", *extra])  # noqa: E731
    assert solve() == 0
    dbl = json.loads(capsys.readouterr().out)
    assert solve("--accuracy", "fast") == 0
    fast = json.loads(capsys.readouterr().out)
    d = abs(dbl["tasks"]["A"]["gen_error"][0] - fast["tasks"]["A"]["gen_error"][0])
    assert 0 < d < 2e-5, d


def test_mp_nodes_option_and_cost_notes(tmp_path, capsys):
    """--mp-nodes reaches the mp back-end (fewer nodes: a different, coarser value) and is refused
    without --precision mp; the mp solve announces the quadrature points of each right-hand side as
    measured (`rhs_points`: the executor's tally), which grow where Q is large (the wide-logit
    pieces of a linear trunk; the first right-hand side also integrates the teacher-only moments,
    cached afterwards: measured 18 points in 4 integrals, then 16 in 2; at t = 0.2 16 points, at
    t = 20 with teacher norm 4 more; the test takes 3 s)."""
    import mpmath

    from mtsp.derive import GENERATED
    from mtsp.numeric.mp_solve import rhs_points, solve_online_mp
    from mtsp.setup import load_setup
    path = _write(tmp_path, ONE_TASK)
    assert main(["solve", path, "--mp-nodes", "8"]) == 2
    assert "--mp-nodes" in capsys.readouterr().err
    setup = load_setup(path)
    notes = []

    class Recorder:
        note = ""

        def __call__(self, fraction, note=None):
            notes.append(note)
    solve_online_mp(setup, dps=15, nodes=8, progress=Recorder(), generated=GENERATED)
    # the first right-hand side also integrates the teacher-only moments (cached afterwards)
    one = re.fullmatch(r"right-hand side 1: .*, (\d+) quadrature points in (\d+) integrals \(largest 1-dim\).*",
                       notes[0])
    later = [re.fullmatch(r"right-hand side 7: .*, (\d+) quadrature points in (\d+) integrals \(largest 1-dim\).*", n)
             for n in notes if n and n.startswith("right-hand side 7:")]
    assert one and later and later[0]
    # a C = 2 task: integrals of at most one dimension, 8 points each (1 for a 0-dim one)
    for m in (one, later[0]):
        pts, rules = int(m.group(1)), int(m.group(2))
        assert rules <= pts <= 8 * rules
    assert int(one.group(1)) > int(later[0].group(1))
    from mtsp.api import solve
    with mpmath.workdps(15):
        early = solve(setup, processes=1)
        first = rhs_points(early.model, early.state(0.2), 8, generated=GENERATED)
        assert first[2] == 1 and first[1] <= first[0] <= 8 * first[1]
        # a late state of a strong teacher: the logits spread wide, the integrals split into their argmax cones
        strong = setup.replace(**{"teacher.norm": 4.0, "training.times": [20.0]})
        late = solve(strong, processes=1)
        assert rhs_points(late.model, late.state(20.0), 8, generated=GENERATED)[0] > first[0]


def test_check_trajectory_prints_certified_decimals(tmp_path, capsys):
    """check --trajectory: the certificate of the double solve (JSON: per task the printed
    gen_error, its bound and decimals); the bound covers the distance from the mp solve's value
    (measured: 2.3e-13 apart, bound 8.0e-12, 11 decimals)."""
    path = _write(tmp_path, ONE_TASK)
    assert main(["check", path, "--trajectory", "--states", "1", "--dps", "20", "-q", "--json"]) == 0
    cert = json.loads(capsys.readouterr().out)
    a = cert["tasks"]["A"]
    mp = _solve(tmp_path, capsys, "--precision", "mp", "--dps", "20")["tasks"]["A"]["gen_error"][0]
    assert abs(a["gen_error"][0] - mp) <= a["bound"][0] < 5e-11 and a["decimals"][0] >= 10
    assert main(["check", path, "--trajectory", "--states", "1", "--dps", "20", "-q"]) == 0
    assert "decimals" in capsys.readouterr().out

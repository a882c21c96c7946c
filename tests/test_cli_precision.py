"""The command-line paths of the high-precision tools: solve --precision mp / --accuracy high, check."""
import json

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
    # measured 6.5e-12 (C = 2 glm: closed forms; the ODE tolerances dominate)
    assert abs(a - b) < 1e-9
    assert mp["tasks"]["A"]["gen_error_mp"][0].startswith(f"{b:.10f}"[:10])


def test_accuracy_high_runs_and_agrees(tmp_path, capsys):
    dbl = _solve(tmp_path, capsys)
    high = _solve(tmp_path, capsys, "--accuracy", "high")
    assert abs(dbl["tasks"]["A"]["gen_error"][0] - high["tasks"]["A"]["gen_error"][0]) < 1e-7


def test_check_prints_relative_differences(tmp_path, capsys):
    assert main(["check", _write(tmp_path, ONE_TASK), "--states", "1", "--dps", "20", "-q"]) == 0
    out = capsys.readouterr().out
    assert "dR" in out and "dQ" in out
    worst = max(float(line.split()[-1]) for line in out.splitlines()
                if line.split() and line.split()[0] in ("dQ", "dR"))
    assert worst < 1e-8


def test_accuracy_fast_is_close(tmp_path, capsys):
    dbl = _solve(tmp_path, capsys)
    fast = _solve(tmp_path, capsys, "--accuracy", "fast")
    assert abs(dbl["tasks"]["A"]["gen_error"][0] - fast["tasks"]["A"]["gen_error"][0]) < 1e-3

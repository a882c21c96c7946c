"""Command-line paths not covered in test_cli.py: `derive`, `simulate`'s happy path, `demo`'s
wiring, `validate`'s exit 1 on a (deliberate) disagreement, and exit 130 on an interrupt."""
import json

import numpy as np
import pytest

import mtsp.cli as cli
from mtsp.cli import main
from mtsp.setup import default_setup, load_setup

from test_cli import TINY, write


def test_derive_writes_the_generated_module_and_the_sheet(tmp_path, capsys):
    """`mtsp derive SETUP --out DIR` prints the paths it wrote: the equation sheet and the very
    module that `solve` generates for this structure."""
    from mtsp.derive.codegen import generate_module
    from mtsp.numeric.model import theory_model
    path = write(tmp_path, TINY)
    out = tmp_path / "der"
    assert main(["derive", path, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "equations.md"), str(out / "online_equations.py")]
    setup = load_setup(path)
    assert (out / "online_equations.py").read_text() == generate_module(theory_model(setup), setup.name)
    sheet = (out / "equations.md").read_text()
    assert sheet.startswith("# Online-SGD order-parameter equations — tiny")


def test_simulate_happy_path_equals_the_api(tmp_path, capsys):
    """`mtsp simulate --json` prints the seeded simulation: the same numbers as the API call with
    the same N and seeds (bitwise), in MODEL.md's schema; the table form names both tasks."""
    pytest.importorskip("torch")
    from mtsp.validate.simulate import simulate
    path = write(tmp_path, TINY)
    assert main(["simulate", path, "--json", "-q", "--N", "100", "--seeds", "3"]) == 0
    js = json.loads(capsys.readouterr().out)
    api = simulate(load_setup(path), N=100, seeds=3).to_json_dict()
    assert js == json.loads(json.dumps(api))
    assert js["engine"] == "simulation" and js["N"] == 100 and js["seeds"] == 3
    assert js["times"] == [0.5, 1.0] and list(js["tasks"]) == ["A", "B"]
    assert main(["simulate", path, "-q", "--N", "100", "--seeds", "3"]) == 0
    table = capsys.readouterr().out
    assert "N = 100, 3 seeds" in table and "A" in table and "B" in table


def test_validate_exit_1_on_a_disagreement(tmp_path, capsys, monkeypatch):
    """A simulation shifted by +0.2 in gen_error (far beyond 4 SE + 0.003) makes `validate` exit 1
    with the verdict naming the disagreement; the report is still written."""
    pytest.importorskip("torch")
    import mtsp.validate.simulate as simmod
    real = simmod.simulate

    def shifted(setup, **kw):
        res = real(setup, **kw)
        for d in res.tasks.values():
            d["gen_error"] = np.asarray(d["gen_error"]) + 0.2
        return res
    monkeypatch.setattr(simmod, "simulate", shifted)
    out = tmp_path / "rep"
    rc = main(["validate", write(tmp_path, TINY), "--N", "100", "--seeds", "2", "--no-single", "-q",
               "--out", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 1
    assert lines[1].startswith("Theory and simulation DISAGREE at 4 of 4 comparisons")
    assert (out / "report.md").is_file()


def test_demo_validates_the_default_setup(tmp_path, capsys, monkeypatch):
    """`mtsp demo --N --seeds --out` validates the built-in setup with its single-task baselines
    and exits by the comparison (a real demo run takes ~20 s at N = 300: not in the suite)."""
    import mtsp.validate as v
    calls = []

    class Outcome:
        def __init__(self, agrees):
            self.agrees, self.report, self.seconds = agrees, tmp_path / "report.md", {}

        def verdict(self):
            return "verdict"

    for agrees, rc in ((True, 0), (False, 1)):
        monkeypatch.setattr(v, "validate", lambda setup, **kw: calls.append((setup, kw)) or Outcome(agrees))
        assert main(["demo", "--N", "50", "--seeds", "3", "--out", str(tmp_path / "d"), "-q"]) == rc
    setup, kw = calls[-1]
    assert setup.to_dict() == default_setup().to_dict()
    assert kw["N"] == 50 and kw["seeds"] == 3 and kw["single"] is True
    assert str(kw["out"]) == str(tmp_path / "d")
    assert capsys.readouterr().out.splitlines()[-2:] == [f"report: {tmp_path / 'report.md'}", "verdict"]


def test_interrupt_exits_130(tmp_path, capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_solve", interrupted)
    assert main(["solve", write(tmp_path, TINY)]) == 130
    assert capsys.readouterr().err.strip() == "mtsp: interrupted"

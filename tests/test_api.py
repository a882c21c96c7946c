"""The top-level Python API (``mtsp.solve``, ``mtsp.simulate``, ``mtsp.derive.derive``,
``mtsp.validate.validate``, ...) on a tiny setup, and that the commands go through it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mtsp
from mtsp.cli import main
from mtsp.errors import ReachError, RequestError
from tiny_setups import TINY_TWO_TASKS

ROOT = Path(__file__).resolve().parents[1]

TINY = TINY_TWO_TASKS


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


def test_import_mtsp_is_cheap():
    """`import mtsp` loads no back-end (numpy, scipy, SymPy, torch)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = ("import sys, mtsp; "
            "print(sorted(m for m in ('numpy', 'scipy', 'sympy', 'torch') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_api_names_are_the_library_functions():
    """`mtsp.solve`, `sweep`, `check`, `certify` are `mtsp.api`'s (derive, then numeric); the rest
    the library's own functions."""
    from mtsp import certify, check, default_setup, load_setup, simulate, solve, sweep
    from mtsp import api
    from mtsp.validate import simulate as sim_mod
    assert (solve, sweep, check, certify) == (api.solve, api.sweep, api.check, api.certify)
    assert simulate is sim_mod.simulate
    assert load_setup is mtsp.setup.load_setup and default_setup is mtsp.setup.default_setup
    assert mtsp.derive.derive.__module__ == "mtsp.derive.derivation"
    assert mtsp.validate.validate.__module__ == "mtsp.validate.validation"
    with pytest.raises(AttributeError):
        mtsp.no_such_name  # noqa: B018
    assert set(mtsp.__all__) == set(mtsp._API) | {"derive", "numeric", "validate", "__version__"}


def test_solve_api_equals_the_command(tiny, capsys):
    """`mtsp.solve` is what `mtsp solve` runs: the same JSON; an Accuracy object and the preset
    name "default" give the same numbers; invalid accuracy requests are refused by key."""
    setup = mtsp.load_setup(tiny)
    res = mtsp.solve(setup, single=True)
    assert main(["solve", str(tiny), "--single", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(res.to_json_dict()))
    assert mtsp.solve(setup, accuracy=mtsp.Accuracy()).tasks == res.tasks
    with pytest.raises(RequestError, match="^accuracy: unknown accuracy 'exact'"):
        mtsp.solve(setup, accuracy="exact")
    with pytest.raises(RequestError, match="^accuracy: give accuracy or acc"):
        mtsp.solve(setup, accuracy="high", acc=mtsp.Accuracy())


def test_derive_api_writes_what_the_command_writes(tiny, tmp_path, capsys):
    setup = mtsp.load_setup(tiny)
    d = mtsp.derive.derive(setup)
    assert d.paths == [] and d.system.classes == (2, 2) and d.system.key[0] == "online"
    api_dir, cli_dir = tmp_path / "api", tmp_path / "cli"
    paths = mtsp.derive.derive(setup, out=api_dir).paths
    assert [Path(p).name for p in paths] == ["equations.md", "online_equations.py"]
    assert main(["derive", str(tiny), "--out", str(cli_dir)]) == 0
    assert capsys.readouterr().out.split() == [str(cli_dir / Path(p).name) for p in paths]
    for p in paths:
        assert (cli_dir / Path(p).name).read_text() == Path(p).read_text()
    # refused before writing: a structure beyond the online engine's reach (derive's own check)
    with pytest.raises(ReachError, match=r"^student\.hidden: "):
        mtsp.derive.derive(setup.replace(**{"student.kind": "shared", "student.hidden": 17}), out=tmp_path / "never")
    assert not (tmp_path / "never").exists()
    # and by the command, a setup no engine solves (the DMFT's grid is limited: numeric's check)
    from mtsp.numeric.sweep import setup_toml
    long = tmp_path / "long.toml"
    long.write_text(setup_toml(setup.replace(**{"training.protocol": "full_batch", "training.alpha": 2,
                                                "training.times": [0.5, 1000.0]})))
    assert main(["derive", str(long), "--out", str(tmp_path / "never")]) == 2
    assert capsys.readouterr().err.startswith("mtsp: error: training.times: ")
    assert not (tmp_path / "never").exists()


def test_validate_api_is_theory_simulation_and_compare(tiny, tmp_path):
    """`mtsp.validate.validate` = `compare(solve, simulate)` with the same arguments (the
    simulation is seeded: the same numbers); without `out` it writes nothing, with it the report."""
    pytest.importorskip("torch")
    from mtsp.jsonable import json_safe
    from mtsp.validate.compare import compare
    setup = mtsp.load_setup(tiny)
    v = mtsp.validate.validate(setup, N=200, seeds=2, single=False)
    ref = compare(json_safe(mtsp.solve(setup).to_json_dict()),
                  json_safe(mtsp.simulate(setup, N=200, seeds=2).to_json_dict()))
    assert v.comparison.rows == ref.rows and v.agrees == ref.agrees and v.report is None
    assert v.simulation.N == 200 and v.notes["seeds"] == 2 and "single" not in v.theory.to_json_dict()
    out = tmp_path / "report"
    w = mtsp.validate.validate(setup, N=200, seeds=2, single=False, out=out)
    assert w.report == out / "report.md" and w.report.exists() and w.comparison.rows == ref.rows
    import torch
    if not torch.cuda.is_available():   # refused before anything runs or is written
        with pytest.raises(RequestError, match="^device: "):
            mtsp.validate.validate(setup, device="cuda", out=tmp_path / "never")
        assert not (tmp_path / "never").exists()

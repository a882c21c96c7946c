"""The linter, run on the whole tree with the rules of pyproject.toml ([tool.ruff.lint]).

ruff is part of the ``test`` extra (``pip install ".[test]"``), so this test always runs; a missing
ruff is a failure of the environment, reported as such, not a skip.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    assert importlib.util.find_spec("ruff") is not None, \
        'ruff is not installed: pip install ".[test]" installs it'
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"ruff check found problems:\n{run.stdout}{run.stderr}"

"""mtsp.derive — symbolic derivation of the order-parameter equations and code generation.

setup → `derive_online` (SymPy system: reduced integrals, closed forms, assembled ODEs)
      → `generate_module` (the printed expressions of the structure, run by `mtsp.numeric.kernel`)
        and `equation_sheet` (Markdown + LaTeX);
      `GENERATED`: the generated modules as numeric's solvers receive them (``generated=``).
`derive(setup, out=None)` does all of it for one setup (``mtsp derive``), see `derivation`.
"""
from __future__ import annotations

import importlib

from .structure import structure_key

_LAZY = {"OnlineSystem": "system", "derive_online": "system", "derive": "derivation",
         "Derivation": "derivation", "GENERATED": "codegen", "GeneratedModules": "codegen"}


def __getattr__(name):  # SymPy loads only when a derivation is asked for
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


__all__ = ["derive", "Derivation", "OnlineSystem", "derive_online", "structure_key", "write_derivation", "GENERATED",
           "GeneratedModules"]


def write_derivation(setup, out_dir: str, engine: str | None = None) -> list[str]:
    """Write `equations.md` (the equation sheet) and `online_equations.py` (the generated
    module) for `setup` into `out_dir`; returns the paths written (``derive(setup, out_dir).paths``)."""
    from .derivation import derive
    return derive(setup, out_dir).paths

"""mtsp.derive — symbolic derivation of the order-parameter equations and code generation.

setup → `derive_online` (SymPy system: reduced integrals, closed forms, assembled ODEs)
      → `generate_module` (standalone NumPy module) and `equation_sheet` (Markdown + LaTeX).
"""
from __future__ import annotations

import os

from .structure import structure_key


def __getattr__(name):  # SymPy loads only when a derivation is asked for
    if name in ("OnlineSystem", "derive_online"):
        from . import system
        return getattr(system, name)
    raise AttributeError(name)

__all__ = ["OnlineSystem", "derive_online", "structure_key", "write_derivation"]


def write_derivation(setup, out_dir: str, engine: str | None = None) -> list[str]:
    """Write `equations.md` (the equation sheet) and `online_equations.py` (the generated
    standalone module) for `setup` into `out_dir`; returns the paths written. full_batch setups
    (or engine "dmft"): `dmft_equations.md` (derive/dmft.py)."""
    if engine == "dmft" or (engine is None and setup.training.protocol == "full_batch"):
        from .dmft import write_dmft_derivation
        return write_dmft_derivation(setup, out_dir)
    from ..numeric.model import theory_model
    from .codegen import generate_module
    from .sheet import equation_sheet
    from .system import derive_online
    if setup.training.protocol != "online":
        raise NotImplementedError(f"training.protocol: only the online equations are derived so far, "
                                  f"not {setup.training.protocol!r}")
    model = theory_model(setup)
    os.makedirs(out_dir, exist_ok=True)
    system = derive_online(model)
    sheet = os.path.join(out_dir, "equations.md")
    with open(sheet, "w") as f:
        f.write(equation_sheet(system, setup.name, model))
    module = os.path.join(out_dir, "online_equations.py")
    with open(module, "w") as f:
        f.write(generate_module(model, setup.name))
    return [sheet, module]

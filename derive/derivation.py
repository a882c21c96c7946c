"""`derive(setup, out=None)`: the derivation of a setup's theory — what ``mtsp derive`` writes.

setup → TheoryModel (`mtsp.model`) → `derive_online` (the SymPy system of its structure) →
the equation sheet (`sheet.equation_sheet`, Markdown + LaTeX) and the generated module
(`codegen.generate_module`), both computed when first asked for and written by `write`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from pathlib import Path

from ..engines import check_structure, choose_engine
from ..errors import ReachError
from ..files import check_out, staged
from ..model import TheoryModel, theory_model
from .codegen import generate_module
from .sheet import equation_sheet
from .system import OnlineSystem, derive_online

__all__ = ["Derivation", "SheetDerivation", "derive", "SHEET_FILE", "MODULE_FILE"]

SHEET_FILE = "equations.md"
MODULE_FILE = "online_equations.py"


def _write_whole(out, files: dict) -> list[str]:
    """Write {name: text} into the folder `out` whole: staged beside it and moved in when complete
    (`mtsp.files.staged`: a rerun replaces what the previous one wrote); returns the paths."""
    with staged(out) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text)
    return [str(Path(out) / name) for name in files]


@dataclass
class Derivation:
    """The derived online equations of one setup: ``system`` (SymPy: integral symbols, closed
    forms, assembled dQ/dR/dV), ``sheet`` (Markdown), ``module_source`` (the generated module)
    and ``paths``, the files `write` wrote."""
    setup_name: str
    model: TheoryModel
    system: OnlineSystem
    paths: list = field(default_factory=list)

    @cached_property
    def sheet(self) -> str:
        return equation_sheet(self.system, self.setup_name, self.model)

    @cached_property
    def module_source(self) -> str:
        return generate_module(self.model, self.setup_name)

    def write(self, out) -> list[str]:
        """Write `SHEET_FILE` and `MODULE_FILE` into the folder `out` (created if missing);
        returns their paths (also kept in ``paths``)."""
        files = {SHEET_FILE: self.sheet, MODULE_FILE: self.module_source}
        self.paths = _write_whole(out, files)
        return self.paths


@dataclass
class SheetDerivation:
    """The derivation of a finite-data engine (replica, dmft): its equation sheet, derived with
    SymPy by that engine's module (``derive.replica``), and ``paths``, the files `write` wrote."""
    setup_name: str
    engine: str
    sheet: str
    paths: list = field(default_factory=list)

    def write(self, out) -> list[str]:
        """Write ``{engine}_equations.md`` into the folder `out` (created if missing)."""
        self.paths = _write_whole(out, {f"{self.engine}_equations.md": self.sheet})
        return self.paths


def _engine_sheet(setup, engine: str) -> str:
    if engine == "replica":
        from .replica import replica_sheet
        return replica_sheet(setup)
    if engine == "dmft":
        from .dmft import dmft_sheet
        return dmft_sheet(setup)
    raise ReachError("engine", f"no derivation of engine {engine!r}")


def derive(setup, out=None, engine: str | None = None):
    """The derivation of `setup`'s theory by `engine` (default: its protocol's,
    `mtsp.engines.choose_engine`): online → `Derivation` (the SymPy system of its structure, the
    equation sheet and the generated module); erm, full_batch → `SheetDerivation` (the replica or
    DMFT equations).
    With `out` the files are written into that folder (``mtsp derive``). Refused before anything
    is derived or written: ReachError for a protocol without a derivation or an online structure
    beyond the engine's reach (`mtsp.engines.check_structure`), RequestError for an engine of
    another protocol or a folder that cannot be written.  Whether an engine can *solve* the setup
    (e.g. the DMFT's refusal of relu trunks) is numeric's to say (`numeric.solve.check_protocol`,
    checked by ``mtsp derive`` before this)."""
    engine = choose_engine(setup, engine)
    if engine in ("ode", "reference"):
        check_structure(setup)   # the derivation grows with the structure: its reach first
    folder = None if out is None else check_out(out)
    if engine not in ("ode", "reference"):
        d = SheetDerivation(setup.name, engine, _engine_sheet(setup, engine))
        if folder is not None:
            d.write(folder)
        return d
    model = theory_model(setup)
    d = Derivation(setup.name, model, derive_online(model))
    if folder is not None:
        d.write(folder)
    return d

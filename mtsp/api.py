"""The Python API that runs the layers in their order: setup → derive → numeric (→ validate).

`numeric` never derives: it runs what `derive` produced, handed to it by its caller.  Each function
here is the numeric function of the same name with the same arguments, given derive's output —
`mtsp.derive.GENERATED`, the generated module of every setup structure the computation meets (the
setup's own, its single-task baselines', a sweep's points'), derived when first needed and cached.
The commands (`mtsp.cli`) call these.
"""
from __future__ import annotations

from .derive.codegen import GENERATED
from .numeric import certify as _certify
from .numeric import check as _check
from .numeric import solve as _solve
from .numeric import sweep as _sweep

__all__ = ["solve", "sweep", "check", "certify", "GENERATED"]


def solve(setup, **options):
    """`numeric.solve.solve(setup, **options)` on derive's generated modules: the N → ∞ prediction
    of `setup` by its protocol's engine (a `SolveResult`; ``single=True`` adds the single-task
    baselines; ``precision="mp"``, ``accuracy``, ``engine``, ``processes``: see there)."""
    return _solve.solve(setup, generated=GENERATED, **options)


def sweep(base_setup, vary: dict, **options):
    """`numeric.sweep.sweep(base_setup, vary, **options)` on derive's generated modules: the
    multitask benefit over a grid of parameter values (a `SweepResult`)."""
    return _sweep.sweep(base_setup, vary, generated=GENERATED, **options)


def check(setup, **options):
    """`numeric.check.check(setup, **options)` on derive's generated modules: the double
    right-hand side against the mp one, term by term (``mtsp check``)."""
    return _check.check(setup, generated=GENERATED, **options)


def certify(setup, **options):
    """`numeric.certify.certify(setup, **options)` on derive's generated modules: a bound on every
    printed gen_error of the double trajectory (``mtsp check --trajectory``)."""
    return _certify.certify(setup, generated=GENERATED, **options)

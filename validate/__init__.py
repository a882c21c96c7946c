"""mtsp.validate — finite-N simulation and its comparison with the theory.

`validate(setup, N=..., seeds=..., out=None)` runs theory, simulation, comparison and report
(``mtsp validate``; module `validation`); `validate_curve(setup, {KEY: values}, ...)` does it
along one key, a learning curve (``mtsp validate --vary``; module `curves`); `simulate.simulate` is
the simulator (torch).
"""
from __future__ import annotations

import importlib

_LAZY = {"validate": "validation", "Validation": "validation", "check_simulator": "validation",
         "validate_curve": "curves", "CurveValidation": "curves"}


def __getattr__(name):  # torch and matplotlib load only when asked for
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


__all__ = ["validate", "Validation", "check_simulator", "validate_curve", "CurveValidation"]

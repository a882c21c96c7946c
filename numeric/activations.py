"""Trunk activations g and their derivatives g′ (MODEL.md: linear, relu, erf(h/√2), tanh).

The formulas are printed from SymPy by `mtsp.derive.pointwise` into `pointwise` (the mp path
uses the same formulas printed for mpmath, `mp_pointwise`)."""
from __future__ import annotations

from mtsp.errors import RequestError

from .pointwise import ACTIVATION_INVERSES, ACTIVATION_PAIRS

__all__ = ["activation", "activation_inverse"]


def activation(name: str):
    """(g(h), g′(h)) evaluator for the named activation."""
    try:
        return ACTIVATION_PAIRS[name]
    except KeyError:
        raise RequestError("student.activation", f"unknown activation {name!r}") from None


def activation_inverse(name: str):
    """g⁻¹ on g's open range (relu: x > 0; erf, tanh: |x| < 1) for the named activation."""
    try:
        return ACTIVATION_INVERSES[name]
    except KeyError:
        raise RequestError("student.activation", f"{name!r} has no inverse (not a nonlinear trunk)") from None

"""Trunk activations g and their derivatives g′ (MODEL.md: linear, relu, erf(h/√2), tanh).

The formulas are printed from SymPy by `mtsp.derive.pointwise` into `pointwise` (the mp path
uses the same formulas printed for mpmath, `mp_pointwise`)."""
from __future__ import annotations

import mpmath
import numpy as np

from mtsp.errors import RequestError

from . import mp_pointwise
from .pointwise import ACTIVATION_INVERSES, ACTIVATION_PAIRS

__all__ = ["activation", "activation_inverse", "g_values", "g_inverse_values"]


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


def g_values(ar, name: str, x):
    """g(x) elementwise in the arithmetic ``ar`` (`cone.DOUBLE`: `pointwise`'s formula on the array;
    `cone.MP`: `mp_pointwise`'s on each mpf)."""
    if ar.name == "double":
        return ACTIVATION_PAIRS[name](x)[0]
    g = mp_pointwise.ACTIVATION_PAIRS[name]
    return np.array([g(v)[0] for v in x.ravel()] or [], dtype=object).reshape(x.shape)


def g_inverse_values(ar, name: str, x):
    """g⁻¹(x) elementwise in ``ar``, +inf outside g's open range (relu: x > 0; tanh, erf: |x| < 1)."""
    if ar.name == "double":
        inside = (x > 0) if name == "relu" else (np.abs(x) < 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(inside, ACTIVATION_INVERSES[name](np.where(inside, x, 0.0)), np.inf)
    inv = mp_pointwise.ACTIVATION_INVERSES[name]
    inside = (lambda v: v > 0) if name == "relu" else (lambda v: abs(v) < 1)
    return np.array([inv(v) if inside(v) else mpmath.inf for v in x.ravel()] or [], dtype=object).reshape(x.shape)

"""Trunk activations g and their derivatives g′ (MODEL.md: linear, relu, erf(h/√2), tanh)."""
from __future__ import annotations

import numpy as np
from scipy.special import erf

__all__ = ["activation", "ACTIVATIONS"]

_SQRT2 = np.sqrt(2.0)
_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)


def _lin(h):
    return h, np.ones_like(h)


def _relu(h):
    return np.maximum(h, 0.0), (h > 0).astype(float)


def _erf(h):
    return erf(h / _SQRT2), _SQRT_2_OVER_PI * np.exp(-0.5 * h * h)


def _tanh(h):
    t = np.tanh(h)
    return t, 1.0 - t * t


ACTIVATIONS = {"linear": _lin, "relu": _relu, "erf": _erf, "tanh": _tanh}


def activation(name: str):
    """(g(h), g′(h)) evaluator for the named activation."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"student.activation: unknown activation {name!r}") from None

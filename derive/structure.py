"""The cache key of a derivation: a setup's structure, without its parameter values (no SymPy)."""


def structure_key(model) -> tuple:
    """What the derivation depends on (numerical parameter values excluded)."""
    return ("online", model.kind, model.K, model.activation, tuple(model.classes), model.inputs,
            model.train_heads)

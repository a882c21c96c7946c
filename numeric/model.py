"""The theory model of a setup lives in `mtsp.model` (shared by `derive` and `numeric`); its names,
as numeric's modules import them."""
from mtsp.model import State, TheoryModel, argmax_cone, cone_stack, theory_model

__all__ = ["TheoryModel", "State", "theory_model", "argmax_cone", "cone_stack"]

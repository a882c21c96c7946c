"""The public kernel API that generated modules import (`derive.codegen`): exactly what they need.

A generated module prints the expressions of one setup structure (closed forms, assembly) and
binds its entry points with `GeneratedSystem`; `Accuracy` and `task_metrics` are re-exported so
that a generated module offers the whole online theory of its structure (``mod.rhs``,
``mod.task_metrics(model, state, mod.Accuracy())``).  Nothing of the kernel is copied into the
generated code: changing the kernel needs no new generation.
"""
from .engine import GeneratedSystem
from .metrics import task_metrics
from .online import Accuracy

__all__ = ["Accuracy", "GeneratedSystem", "task_metrics"]

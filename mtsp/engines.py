"""Which theory engine solves a setup, and the online structure's limits: the checks that both
`derive` and `numeric` make before any work (shared here, so that neither layer imports the other).

- `ENGINES`: protocol → its engines (the first the default); `choose_engine(setup, engine)`.
- `LIMITS`, `check_structure(setup)`: the online engine's structural reach — the symbolic
  derivation and the generated module grow with the structure (K² + K·M + Σ C_t·K order
  parameters, integrals over up to C_t + C_u − 2 dimensions), so a structure beyond the limits is
  refused at once (ReachError naming the key, the limit and what to do instead: ``mtsp simulate``),
  before any SymPy or NumPy work.  The other checks of the online reach (cost, guards) are
  `numeric.reach`'s; those of the other engines their own (`numeric.solve.check_protocol`).
"""
from __future__ import annotations

from mtsp.errors import ReachError, RequestError

__all__ = ["ENGINES", "choose_engine", "LIMITS", "check_structure"]

ENGINES = {"online": ("ode", "reference"), "erm": ("replica",), "full_batch": ("dmft",)}  # the first: default

# Structural limits of the online engine (see benchmarks/results/reach_limits.txt for the
# measured derivation and solve times that set them).
LIMITS = {"classes": 8, "logits": 16, "hidden": 16, "tasks": 6}
_SIMULATE = "'mtsp simulate' runs it at finite N"


def choose_engine(setup, engine: str | None = None) -> str:
    """The theory engine of `setup`: `engine`, or its protocol's default (`ENGINES`).
    ReachError for a protocol without an engine, RequestError for an engine of another protocol."""
    protocol = setup.training.protocol
    if protocol not in ENGINES:
        raise ReachError("training.protocol", f"no theory engine solves the {protocol!r} protocol")
    if engine is None:
        return ENGINES[protocol][0]
    if engine not in ENGINES[protocol]:
        raise RequestError("engine", f"the {protocol!r} protocol is solved by {' | '.join(ENGINES[protocol])}, "
                           f"not {engine!r}")
    return engine


def check_structure(setup) -> None:
    """ReachError unless the setup's structure lies within `LIMITS` (see the module docstring)."""
    tasks = setup.tasks
    for k, t in enumerate(tasks):
        if t.classes > LIMITS["classes"]:
            raise ReachError(f"tasks.{t.name}.classes",
                             f"{t.classes} classes exceed the online engine's reach "
                             f"(at most {LIMITS['classes']} per task: its label integrals have "
                             f"C − 1 dimensions); {_SIMULATE}")
    if len(tasks) > LIMITS["tasks"]:
        raise ReachError("tasks", f"{len(tasks)} tasks exceed the online engine's reach (at most "
                         f"{LIMITS['tasks']}: its pair integrals grow as tasks²); {_SIMULATE}")
    M = sum(t.classes for t in tasks)
    if M > LIMITS["logits"]:
        raise ReachError("tasks", f"{M} classes in all exceed the online engine's reach (at most "
                         f"{LIMITS['logits']} logits over all tasks); {_SIMULATE}")
    st = setup.student
    if st.kind != "glm" and st.hidden > LIMITS["hidden"]:
        raise ReachError("student.hidden", f"{st.hidden} hidden units exceed the online engine's "
                         f"reach (at most {LIMITS['hidden']}: the derivation has K² + K·M order "
                         f"parameters); {_SIMULATE}")

"""The setup: one validated, immutable description of a model run (../shared/MODEL.md, "The setup file").

A setup is read from TOML (``load_setup``, ``setup_from_toml``) or a plain dict (``setup_from_dict``)
into frozen dataclasses. Everything is checked before anything runs; an invalid setup raises
``SetupError(key, reason)`` whose message names the dotted key (``tasks.B.noise``, ``teacher.gram``,
``student.head_init[1]``) and the reason.

Conventions beyond MODEL.md (the Python contract is docs/SETUP_API.md):

* Defaults are resolved on load: ``Task.norm`` (teacher norm), ``Task.rank`` (classes), ``Task.alpha``
  (training alpha, separate inputs with finite data only), ``Training.head_lr`` (lr) and
  ``Student.head_init`` (the documented deterministic default). ``to_dict`` writes a value back only
  where it differs from its default source, so ``replace("teacher.norm", 2)`` moves every task that
  did not set its own norm.
* Keys the student cannot have are refused (``hidden``/``head_init`` for glm); keys of MODEL.md
  that merely do not apply to the chosen protocol or inputs (``alpha`` for online, ``share`` with
  shared inputs, ``ridge`` outside erm, ``times`` for erm, ...) are kept unused with a
  `SetupWarning` naming the key.
* Task names default to ``task1``, ``task2``, ...; they must be unique and contain no ``.``
  (they appear in dotted keys).
* When ``teacher.gram`` is given, the parametric teacher fields are placeholders (norm 1,
  alignment 0, class_map "aligned", seed 0; each task's norm 1 and rank = classes).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import SetupError

__all__ = ["Setup", "SetupError", "Task", "Teacher", "Student", "Training", "load_setup",
           "setup_from_toml", "setup_from_dict", "default_setup", "teacher_gram", "default_heads"]

KINDS = ("glm", "shared")
ACTIVATIONS = ("linear", "relu", "erf", "tanh")
CLASS_MAPS = ("aligned", "random")
PROTOCOLS = ("online", "full_batch", "erm")
INPUTS = ("shared", "separate")
_REQUIRED = object()


class SetupWarning(UserWarning):
    """A setup key that does not apply to the chosen protocol or inputs (kept, unused)."""


# ----------------------------------------------------------------------------------------------
# The dataclasses (docs/SETUP_API.md)

@dataclass(frozen=True)
class Task:
    """One task t: C_t classes, label noise sigma_t, loss weight w_t, signal norm n_t, rank r_t,
    data ratio alpha_t (separate inputs, finite data; else None) and online share (pi_t ∝ share)."""
    name: str
    classes: int
    noise: float = 0.0
    weight: float = 1.0
    norm: float = 1.0
    rank: int = 0
    alpha: float | None = None
    share: float = 1.0


@dataclass(frozen=True)
class Teacher:
    """Parametric teacher (norm, alignment rho, class_map, seed) or an explicit M x M Gram T."""
    norm: float = 1.0
    alignment: float = 0.0
    class_map: str = "aligned"
    seed: int = 0
    gram: tuple[tuple[float, ...], ...] | None = None


@dataclass(frozen=True)
class Student:
    """glm (one linear softmax per task) or shared (trunk of width K, activation, one head per task).
    ``head_init`` is resolved (default included); ``head_init_given`` records whether the user set it."""
    kind: str
    hidden: int | None = None
    activation: str = "linear"
    init_scale: float = 0.0
    head_init: tuple | None = None
    head_init_given: bool = field(default=False, compare=False, repr=False)


@dataclass(frozen=True)
class Training:
    """Protocol (online | full_batch | erm), input design (shared | separate) and its parameters."""
    protocol: str
    inputs: str = "shared"
    lr: float = 1.0
    head_lr: float = 1.0
    weight_decay: float = 0.0
    times: tuple[float, ...] | None = None
    alpha: float | None = None
    ridge: float = 0.0
    coupling: float = 0.0


@dataclass(frozen=True)
class Setup:
    """A validated setup. Build it with ``load_setup``/``setup_from_toml``/``setup_from_dict``."""
    name: str
    tasks: tuple[Task, ...]
    teacher: Teacher
    student: Student
    training: Training

    # -- derived sizes --------------------------------------------------------------------------
    @property
    def T(self) -> int:
        """Number of tasks."""
        return len(self.tasks)

    n_tasks = T

    @property
    def classes(self) -> tuple[int, ...]:
        return tuple(t.classes for t in self.tasks)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start row of task t among the M stacked teacher logits."""
        return tuple(int(x) for x in np.cumsum((0,) + self.classes[:-1]))

    @property
    def M(self) -> int:
        return sum(self.classes)

    # -- arrays ---------------------------------------------------------------------------------
    @cached_property
    def _gram(self) -> np.ndarray:
        return teacher_gram(self.tasks, self.teacher)

    def gram(self) -> np.ndarray:
        """The M x M teacher Gram T = B B^T / N (a float64 copy)."""
        return self._gram.copy()

    def noise(self) -> np.ndarray:
        return np.array([t.noise for t in self.tasks], dtype=float)

    def weights(self) -> np.ndarray:
        return np.array([t.weight for t in self.tasks], dtype=float)

    def shares(self) -> np.ndarray:
        """pi_t, the probability that an online sample with separate inputs belongs to task t."""
        s = np.array([t.share for t in self.tasks], dtype=float)
        return s / s.sum()

    def heads(self) -> list[np.ndarray]:
        """V_t(0), one C_t x K array per task (shared students only)."""
        if self.student.head_init is None:
            raise SetupError("student.head_init", "a glm student has no heads")
        return [np.array(h, dtype=float) for h in self.student.head_init]

    def task_index(self, t: int | str) -> int:
        """Index of task ``t`` given by index or by name."""
        names = [task.name for task in self.tasks]
        if isinstance(t, str):
            if t not in names:
                raise SetupError("tasks", f"no task named {t!r} (tasks: {', '.join(names)})")
            return names.index(t)
        if not _is_int(t) or not -self.T <= t < self.T:
            raise SetupError("tasks", f"no task {t!r}: there are {self.T}")
        return int(t) % self.T

    # -- derived setups -------------------------------------------------------------------------
    def single(self, t: int | str) -> "Setup":
        """Task t alone (MODEL.md "Single-task baseline"): its block of T (exactly: an explicit gram is
        cut to its block, a random class map keeps O_t by shifting the seed to seed + t), its
        head_init, its alpha/share, the same student and training. The coupling, which needs two
        tasks, is dropped (its sum over pairs is empty)."""
        i = self.task_index(t)
        d = self.to_dict()
        d["name"] = f"{self.name} (single {self.tasks[i].name})"
        d["tasks"] = [d["tasks"][i]]
        teacher = d.setdefault("teacher", {})
        if self.teacher.gram is not None:
            o, c = self.offsets[i], self.classes[i]
            teacher["gram"] = self._gram[o:o + c, o:o + c].tolist()
        elif self.teacher.class_map == "random":
            teacher["seed"] = self.teacher.seed + i
        if self.student.head_init is not None:
            d["student"]["head_init"] = [self.heads()[i].tolist()]
        d["training"].pop("coupling", None)
        return setup_from_dict(d)

    def to_dict(self) -> dict:
        """A plain (TOML-compatible) dict that ``setup_from_dict`` turns back into an equal Setup.
        Values equal to their default source are left out (see the module docstring)."""
        tr, te, st = self.training, self.teacher, self.student
        tasks = []
        for task in self.tasks:
            d = {"name": task.name, "classes": task.classes, "noise": task.noise, "weight": task.weight}
            if te.gram is None and task.norm != te.norm:
                d["norm"] = task.norm
            if te.gram is None and task.rank != task.classes:
                d["rank"] = task.rank
            if task.alpha is not None and task.alpha != tr.alpha:
                d["alpha"] = task.alpha
            if task.share != 1.0:
                d["share"] = task.share
            tasks.append(d)
        if te.gram is not None:
            teacher = {"gram": [list(row) for row in te.gram]}
        else:
            teacher = {"norm": te.norm, "alignment": te.alignment, "class_map": te.class_map}
            if te.seed != 0:
                teacher["seed"] = te.seed
        student = {"kind": st.kind, "init_scale": st.init_scale}
        if st.kind == "shared":
            student.update(hidden=st.hidden, activation=st.activation)
            if st.head_init_given:
                student["head_init"] = [[list(row) for row in h] for h in st.head_init]
        training = {"protocol": tr.protocol, "inputs": tr.inputs, "lr": tr.lr}
        if tr.head_lr != tr.lr:
            training["head_lr"] = tr.head_lr
        if tr.protocol != "erm":
            training["weight_decay"] = tr.weight_decay
            training["times"] = list(tr.times)
        if tr.alpha is not None:
            training["alpha"] = tr.alpha
        if tr.protocol == "erm":
            training.update(ridge=tr.ridge, coupling=tr.coupling)
        return {"name": self.name, "tasks": tasks, "teacher": teacher, "student": student,
                "training": training}

    def replace(self, **dotted) -> "Setup":
        """A new validated setup with some keys changed, e.g.
        ``s.replace(**{"teacher.alignment": 0.5, "tasks.A.noise": 1.0, "student.hidden": 3})``.
        Keys: ``name``, ``tasks``, ``<section>.<key>`` and ``tasks.<name or index>.<key>``. The value
        None removes a key (back to its default). Setting ``teacher.gram`` drops the parametric
        teacher keys (norm, alignment, class_map, seed, task norm/rank) and setting one of those
        drops the gram, since both together are refused as ambiguous."""
        d = self.to_dict()
        for key, value in dotted.items():
            parts = key.split(".")
            if parts in (["name"], ["tasks"]):
                table, leaf = d, parts[0]
            elif len(parts) == 2 and parts[0] in ("teacher", "student", "training"):
                table, leaf = d.setdefault(parts[0], {}), parts[1]
            elif len(parts) == 3 and parts[0] == "tasks":
                names = [task["name"] for task in d["tasks"]]
                if parts[1] in names:
                    table = d["tasks"][names.index(parts[1])]
                elif parts[1].isdigit() and int(parts[1]) < len(names):
                    table = d["tasks"][int(parts[1])]
                else:
                    raise SetupError(key, f"no task {parts[1]!r} (tasks: {', '.join(names)})")
                leaf = parts[2]
            else:
                raise SetupError(key, "cannot replace: use name, tasks, teacher.<key>, "
                                      "student.<key>, training.<key> or tasks.<task>.<key>")
            if value is not None and key == "teacher.gram":
                _drop_teacher(d, "parametric")
            elif value is not None and (key in _PARAMETRIC or parts[0] == "tasks" and leaf in ("norm", "rank")):
                _drop_teacher(d, "gram")
            if value is None:
                table.pop(leaf, None)
            else:
                table[leaf] = value.tolist() if isinstance(value, np.ndarray) else value
        return setup_from_dict(d)


_PARAMETRIC = {"teacher.norm", "teacher.alignment", "teacher.class_map", "teacher.seed"}


def _drop_teacher(d: dict, which: str) -> None:
    """Remove one teacher description ("gram" or "parametric") before the other is set."""
    teacher = d.setdefault("teacher", {})
    if which == "gram":
        teacher.pop("gram", None)
        return
    for k in ("norm", "alignment", "class_map", "seed"):
        teacher.pop(k, None)
    for task in d.get("tasks", []):
        if isinstance(task, dict):
            task.pop("norm", None)
            task.pop("rank", None)


# ----------------------------------------------------------------------------------------------
# The teacher Gram and the default heads (MODEL.md "Teacher", docs/SETUP_API.md)

def _eigvalsh(g: np.ndarray) -> np.ndarray:
    """Eigenvalues of the symmetric matrix g with one BLAS thread: OpenBLAS's threads fight over
    shared cores (measured on a 2000 × 2000 Gram, 1000 classes per task: 12–40 s threaded under
    load, 2 s with one thread)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        return np.linalg.eigvalsh(g)


def class_map_matrix(classes: int, rank: int, class_map: str, seed: int) -> np.ndarray:
    """O_t (C_t x r_t, orthonormal columns): "aligned" = the first r_t columns of I_{C_t};
    "random" = the Q factor, signs fixed so that diag R > 0, of default_rng(seed).standard_normal."""
    if class_map == "aligned":
        return np.eye(classes)[:, :rank]
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((classes, rank)))
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return q * signs


def teacher_gram(tasks, teacher: Teacher) -> np.ndarray:
    """T_ts = sqrt(n_t n_s) O_t A_ts O_s^T with A_tt = I_{r_t} and A_ts = rho * eye(r_t, r_s); task t's
    class map uses seed + t (t from 0). An explicit ``teacher.gram`` is returned as is."""
    if teacher.gram is not None:
        return np.array(teacher.gram, dtype=float)
    maps = [class_map_matrix(t.classes, t.rank, teacher.class_map, teacher.seed + i)
            for i, t in enumerate(tasks)]
    offsets = np.cumsum([0] + [t.classes for t in tasks])
    gram = np.zeros((offsets[-1], offsets[-1]))
    for i, (ti, oi) in enumerate(zip(tasks, maps)):
        for j, (tj, oj) in enumerate(zip(tasks, maps)):
            overlap = np.eye(ti.rank, tj.rank) * (1.0 if i == j else teacher.alignment)
            gram[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]] = \
                math.sqrt(ti.norm * tj.norm) * oi @ overlap @ oj.T
    return gram


def default_heads(classes, hidden: int) -> tuple:
    """The documented default V_t(0) = default_rng(1000 + t).standard_normal((C_t, K)) / sqrt(K) * 0.5."""
    return tuple(_as_tuples(np.random.default_rng(1000 + t).standard_normal((c, hidden))
                            / math.sqrt(hidden) * 0.5) for t, c in enumerate(classes))


# ----------------------------------------------------------------------------------------------
# Reading and checking values

def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _as_tuples(a: np.ndarray) -> tuple:
    return tuple(tuple(float(x) for x in row) for row in a)


class _Table:
    """One table of the setup: refuses unknown keys up front, then reads typed values by key."""

    def __init__(self, table, prefix: str, allowed: tuple[str, ...]):
        if not isinstance(table, Mapping):
            raise SetupError(prefix, f"expected a table, got {type(table).__name__}")
        self.table, self.prefix = table, prefix
        for k in table:
            if k not in allowed:
                raise SetupError(self.key(k), f"unknown key (allowed: {', '.join(allowed)})")

    def key(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix else k

    def has(self, k: str) -> bool:
        return k in self.table

    def _get(self, k, default, why=""):
        if k in self.table:
            return self.table[k]
        if default is _REQUIRED:
            raise SetupError(self.key(k), "missing required key" + (f" ({why})" if why else ""))
        return default

    def real(self, k, default=_REQUIRED, *, low=None, strict=False, why="") -> float | None:
        """A finite number (ints accepted, bools not), >= low (or > low when strict)."""
        if k not in self.table:
            return self._get(k, default, why)
        v = self.table[k]
        if not _is_real(v) or not math.isfinite(v):
            raise SetupError(self.key(k), f"expected a finite number, got {v!r}")
        if low is not None and (v <= low if strict else v < low):
            raise SetupError(self.key(k), f"must be {'>' if strict else '>='} {low}, got {v!r}")
        return float(v)

    def integer(self, k, default=_REQUIRED, *, low=None, high=None, why="") -> int | None:
        if k not in self.table:
            return self._get(k, default, why)
        v = self.table[k]
        if not _is_int(v):
            raise SetupError(self.key(k), f"expected an integer, got {v!r}")
        if (low is not None and v < low) or (high is not None and v > high):
            bound = f">= {low}" if high is None else f"in {low}..{high}"
            raise SetupError(self.key(k), f"must be {bound}, got {v}")
        return int(v)

    def choice(self, k, choices, default=_REQUIRED, why="") -> str:
        v = self._get(k, default, why)
        if not isinstance(v, str) or v not in choices:
            raise SetupError(self.key(k), f"must be one of {', '.join(map(repr, choices))}, got {v!r}")
        return v

    def refuse(self, keys, reason: str) -> None:
        """Refuse any of ``keys`` that is present (ambiguous or contradictory with the rest)."""
        for k in keys:
            if k in self.table:
                raise SetupError(self.key(k), reason)

    def ignore(self, keys, reason: str) -> None:
        """Warn about any of ``keys`` that is present but has no effect with this protocol/inputs
        (MODEL.md's keys are all valid; one that does not apply is kept, unused, and named)."""
        for k in keys:
            if k in self.table:
                warnings.warn(f"{self.key(k)}: {reason}; ignored", SetupWarning, stacklevel=4)


def _matrix(value, key: str) -> np.ndarray:
    """A finite 2-D float array from nested lists/tuples (or a numpy array)."""
    rows = value.tolist() if isinstance(value, np.ndarray) else value
    if (not isinstance(rows, (list, tuple)) or not rows
            or not all(isinstance(r, (list, tuple)) and len(r) == len(rows[0]) for r in rows)
            or not all(_is_real(x) for r in rows for x in r)):
        raise SetupError(key, "expected a non-empty array of equal-length rows of numbers")
    a = np.array(rows, dtype=float)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise SetupError(key, "expected a non-empty matrix of finite numbers")
    return a


# ----------------------------------------------------------------------------------------------
# Parsing (MODEL.md "The setup file")

def load_setup(path) -> Setup:
    """Read a TOML setup file; its name defaults to the file's stem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SetupError("file", f"cannot read {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SetupError("file", f"{path} is not valid TOML: {e}") from None
    data.setdefault("name", path.stem)
    return setup_from_dict(data)


def setup_from_toml(text: str) -> Setup:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SetupError("file", f"not valid TOML: {e}") from None
    return setup_from_dict(data)


def default_setup() -> Setup:
    """The embedded demo setup (mtsp/data/default.toml)."""
    from importlib import resources
    return setup_from_toml(resources.files("mtsp").joinpath("data/default.toml").read_text("utf-8"))


def setup_from_dict(d: Mapping) -> Setup:
    """Validate a setup given as a dict (the TOML structure) and resolve its defaults."""
    top = _Table(d, "", ("name", "tasks", "teacher", "student", "training"))
    name = top._get("name", "unnamed")
    if not isinstance(name, str):
        raise SetupError("name", f"expected a string, got {name!r}")
    teacher_table = _Table(d.get("teacher", {}), "teacher",
                           ("norm", "alignment", "class_map", "seed", "gram"))
    teacher_norm = teacher_table.real("norm", 1.0, low=0.0, strict=True)
    has_gram = teacher_table.has("gram")
    tasks, raw = _parse_tasks(top._get("tasks", _REQUIRED, "a non-empty array of [[tasks]]"),
                              teacher_norm, has_gram)
    teacher = _parse_teacher(teacher_table, tasks)
    student = _parse_student(d.get("student", _REQUIRED), tasks)
    training, tasks = _parse_training(d.get("training", _REQUIRED), tasks, raw, student)
    return Setup(name, tasks, teacher, student, training)


def _parse_tasks(value, teacher_norm: float, has_gram: bool):
    """tasks[i]: unique names, classes >= 2, noise >= 0, weight >= 0 (not all 0), norm > 0, rank in
    1..classes. alpha and share are only range-checked here (their use depends on training)."""
    if isinstance(value, Mapping) or not isinstance(value, (list, tuple)) or not value:
        raise SetupError("tasks", "expected a non-empty array of tables ([[tasks]])")
    tasks, raws, names = [], [], set()
    for i, table in enumerate(value):
        if not isinstance(table, Mapping):
            raise SetupError(f"tasks[{i}]", "expected a table")
        name = table.get("name", f"task{i + 1}")
        if not isinstance(name, str) or not name or "." in name:
            raise SetupError(f"tasks[{i}].name", f"expected a non-empty string without '.', got {name!r}")
        if name in names:
            raise SetupError(f"tasks[{i}].name", f"duplicate task name {name!r}")
        names.add(name)
        r = _Table(table, f"tasks.{name}",
                   ("name", "classes", "noise", "weight", "norm", "rank", "alpha", "share"))
        if has_gram:
            r.refuse(("norm", "rank"), "ambiguous together with teacher.gram (the gram fixes the task's "
                                       "block); give one or the other")
        classes = r.integer("classes", low=2)
        tasks.append(Task(
            name=name, classes=classes, noise=r.real("noise", 0.0, low=0.0),
            weight=r.real("weight", 1.0, low=0.0), norm=r.real("norm", teacher_norm, low=0.0, strict=True),
            rank=r.integer("rank", classes, low=1, high=classes),
            alpha=r.real("alpha", None, low=0.0, strict=True), share=r.real("share", 1.0, low=0.0, strict=True)))
        raws.append(r)
    if all(t.weight == 0 for t in tasks):
        raise SetupError("tasks", "all task weights are zero: nothing would be trained")
    return tuple(tasks), raws


def _parse_teacher(r: _Table, tasks) -> Teacher:
    """Parametric teacher: the overlap matrix of feature j among the m tasks that have it is
    (1 - rho) I + rho 11^T, PSD iff -1/(m - 1) <= rho <= 1 (m = T for j = 0). Or an explicit gram:
    M x M, symmetric (rel. tol 1e-10), PSD (min eig >= -1e-10 max(1, |max eig|))."""
    if r.has("gram"):
        r.refuse(("norm", "alignment", "class_map", "seed"),
                 "ambiguous together with teacher.gram (the gram is the whole teacher); give one or the other")
        g = _matrix(r.table["gram"], "teacher.gram")
        m = sum(t.classes for t in tasks)
        if g.shape != (m, m):
            raise SetupError("teacher.gram", f"must be M x M with M = sum of classes = {m}, got "
                                             f"{g.shape[0]} x {g.shape[1]}")
        scale = max(1.0, float(np.abs(g).max()))
        if np.abs(g - g.T).max() > 1e-10 * scale:
            raise SetupError("teacher.gram", "must be symmetric")
        g = (g + g.T) / 2
        eig = _eigvalsh(g)
        if eig[0] < -1e-10 * max(1.0, abs(eig[-1])):
            raise SetupError("teacher.gram", f"must be positive semidefinite (smallest eigenvalue {eig[0]:.3g})")
        return Teacher(gram=_as_tuples(g))
    rho = r.real("alignment", 0.0)
    low = -1.0 / (len(tasks) - 1) if len(tasks) > 1 else -1.0
    if not low <= rho <= 1.0 and len(tasks) == 1:
        raise SetupError("teacher.alignment", f"{rho} is not an overlap of unit features: must lie in [-1, 1]")
    if not low <= rho <= 1.0:
        raise SetupError("teacher.alignment", f"{rho} makes the teacher Gram not positive semidefinite: with "
                         f"m = {len(tasks)} tasks sharing a feature its overlap matrix is (1-rho) I + rho 11^T, "
                         f"so rho must lie in [{low:.6g}, 1]")
    teacher = Teacher(norm=r.real("norm", 1.0, low=0.0, strict=True), alignment=rho,
                      class_map=r.choice("class_map", CLASS_MAPS, "aligned"), seed=r.integer("seed", 0, low=0))
    eig = _eigvalsh(teacher_gram(tasks, teacher))  # backstop for the range above
    if eig[0] < -1e-10 * max(1.0, abs(eig[-1])):
        raise SetupError("teacher.alignment", f"the teacher Gram is not positive semidefinite ({eig[0]:.3g})")
    return teacher


def _parse_student(table, tasks) -> Student:
    """glm: no trunk, no heads, linear. shared: hidden K >= 1, activation, head_init = one C_t x K
    matrix per task (default: ``default_heads``). init_scale sigma_0 >= 0 (default 0)."""
    if table is _REQUIRED:
        raise SetupError("student", "missing required table")
    r = _Table(table, "student", ("kind", "hidden", "activation", "init_scale", "head_init"))
    kind = r.choice("kind", KINDS)
    init_scale = r.real("init_scale", 0.0, low=0.0)
    if kind == "glm":
        r.refuse(("hidden", "head_init"), "a glm student has no trunk and no heads (only shared students do)")
        if r.choice("activation", ACTIVATIONS, "linear") != "linear":
            raise SetupError("student.activation", "a glm student is linear in its input: must be 'linear'")
        return Student("glm", None, "linear", init_scale, None)
    hidden = r.integer("hidden", low=1, why="the trunk width K of a shared student")
    activation = r.choice("activation", ACTIVATIONS, "linear")
    if not r.has("head_init"):
        return Student("shared", hidden, activation, init_scale, default_heads([t.classes for t in tasks], hidden))
    value = r.table["head_init"]
    value = value.tolist() if isinstance(value, np.ndarray) else value
    if not isinstance(value, (list, tuple)) or len(value) != len(tasks):
        raise SetupError("student.head_init", f"expected one C_t x K matrix per task ({len(tasks)} matrices)")
    heads = []
    for i, (h, t) in enumerate(zip(value, tasks)):
        v = _matrix(h, f"student.head_init[{i}]")
        if v.shape != (t.classes, hidden):
            raise SetupError(f"student.head_init[{i}]", f"task {t.name!r} needs a {t.classes} x {hidden} "
                                                        f"matrix (C_t x K), got {v.shape[0]} x {v.shape[1]}")
        heads.append(_as_tuples(v))
    return Student("shared", hidden, activation, init_scale, tuple(heads), head_init_given=True)


def _parse_training(table, tasks, raw, student: Student):
    """online/full_batch need lr > 0 and strictly increasing positive times; erm needs a glm student
    and takes no times or weight decay; finite data (full_batch, erm) needs alpha (shared inputs) or an
    alpha for every task (separate inputs); ridge and coupling belong to erm; coupling > 0 needs >= 2
    tasks with equal classes. Returns the training and the tasks with their alpha resolved."""
    if table is _REQUIRED:
        raise SetupError("training", "missing required table")
    r = _Table(table, "training", ("protocol", "inputs", "lr", "head_lr", "weight_decay", "times",
                                   "alpha", "ridge", "coupling"))
    protocol = r.choice("protocol", PROTOCOLS)
    if protocol == "erm" and student.kind != "glm":
        raise SetupError("training.protocol", "erm needs a glm student (a shared student's risk is not convex)")
    inputs = r.choice("inputs", INPUTS, "shared")
    timed = protocol != "erm"
    lr = r.real("lr", _REQUIRED if timed else 1.0, low=0.0, strict=True)
    head_lr = r.real("head_lr", lr, low=0.0, strict=True)
    times = None
    if timed:
        weight_decay = r.real("weight_decay", 0.0, low=0.0)
        r.ignore(("ridge", "coupling"), f"only erm has ridge and coupling (use weight_decay with {protocol})")
        times = r._get("times", _REQUIRED, f"the times at which {protocol} is evaluated")
        times = times.tolist() if isinstance(times, np.ndarray) else times
        if (not isinstance(times, (list, tuple)) or not times
                or not all(_is_real(x) and math.isfinite(x) for x in times)):
            raise SetupError("training.times", "expected a non-empty array of finite numbers")
        if times[0] <= 0 or any(b <= a for a, b in zip(times, times[1:])):
            raise SetupError("training.times", "must be positive and strictly increasing")
        times = tuple(float(x) for x in times)
    else:
        r.ignore(("times",), "erm has no time: it predicts at the minimum of the regularized risk")
        r.ignore(("weight_decay",), "erm has no weight decay: use ridge")
        weight_decay = 0.0
    if protocol == "online":
        r.ignore(("alpha",), "online learning draws a fresh sample every step: no finite alpha")
    alpha = r.real("alpha", None, low=0.0, strict=True)
    finite_separate = protocol != "online" and inputs == "separate"
    for task, t in zip(raw, tasks):
        if not finite_separate:
            t_why = "only separate inputs with finite data (full_batch, erm) have per-task alpha"
            task.ignore(("alpha",), t_why + ("; use training.alpha" if protocol != "online" else ""))
        if not (protocol == "online" and inputs == "separate"):
            task.ignore(("share",), "share only applies to separate inputs online (finite data uses alpha)")
    if protocol != "online" and inputs == "shared" and alpha is None:
        raise SetupError("training.alpha", f"missing required key ({protocol} trains on alpha N samples)")
    if finite_separate:
        tasks = tuple(dataclasses.replace(t, alpha=t.alpha if t.alpha is not None else alpha) for t in tasks)
        for t in tasks:
            if t.alpha is None:
                raise SetupError(f"tasks.{t.name}.alpha", "missing: separate inputs need every task's alpha "
                                                          "(its own or training.alpha)")
    ridge = coupling = 0.0
    if not timed:
        ridge, coupling = r.real("ridge", 0.0, low=0.0), r.real("coupling", 0.0, low=0.0)
        if coupling > 0 and (len(tasks) < 2 or len(set(t.classes for t in tasks)) != 1):
            raise SetupError("training.coupling", "coupling > 0 pairs class c of every task: it needs at "
                                                  "least two tasks with equal classes")
    return Training(protocol, inputs, lr, head_lr, weight_decay, times, alpha, ridge, coupling), tasks

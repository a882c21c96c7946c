"""The theory's view of a setup, shared by `derive` and `numeric` (both read it; neither makes it):
student structure, teacher Gram, order parameters, fields; for erm, the replica engine's reduced
problem (`erm_problem`: task channels, coupled prior Λ, joint teacher covariance G).

A `glm` student is treated as a shared student with a frozen identity head: its "trunk" is the
stack of all logits (K = M, g = identity) and V_t selects task t's block.  So one set of
equations serves both kinds (MODEL.md: "for glm, h is the stack of all z_t").

Fields of one sample, in this order: h ∈ R^K, λ ∈ R^M, ν = λ + σ ξ ∈ R^M, jointly Gaussian with

    Cov = [[Q, R, R], [Rᵀ, T, T], [Rᵀ, T, T + diag(σ²)]].
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtsp.errors import ReachError

__all__ = ["TheoryModel", "State", "theory_model", "argmax_cone", "cone_stack", "label_label_tasks", "reduced_basis", "teacher_factor",
           "TaskChannel", "all_pairs_laplacian", "erm_problem", "MAX_CLASSES"]


@dataclass(frozen=True)
class TheoryModel:
    """Everything the equations need, as plain arrays (built from a Setup by `theory_model`)."""
    kind: str                      # "glm" | "shared"
    K: int                         # trunk width (glm: M)
    activation: str                # linear | relu | erf | tanh
    classes: tuple[int, ...]
    offsets: tuple[int, ...]
    gram: np.ndarray               # T, M × M
    noise: np.ndarray              # σ_t per task
    weights: np.ndarray            # w_t
    shares: np.ndarray             # π_t (separate inputs)
    inputs: str                    # shared | separate
    lr: float
    head_lr: float
    weight_decay: float
    init_scale: float
    heads0: tuple[np.ndarray, ...]  # V_t(0)
    train_heads: bool
    names: tuple[str, ...] = field(default=())

    @property
    def M(self) -> int:
        return int(sum(self.classes))

    @property
    def n_tasks(self) -> int:
        return len(self.classes)

    @property
    def linear(self) -> bool:
        return self.activation == "linear"

    def sigma_vec(self) -> np.ndarray:
        """σ expanded to the M logits."""
        return np.concatenate([np.full(c, s) for c, s in zip(self.classes, self.noise)])

    def task_slice(self, t: int) -> slice:
        return slice(self.offsets[t], self.offsets[t] + self.classes[t])

    # --- state packing -------------------------------------------------------------------
    def initial_state(self) -> "State":
        K, M = self.K, self.M
        return State(self.init_scale ** 2 * np.eye(K), np.zeros((K, M)),
                     tuple(np.array(v, dtype=float) for v in self.heads0))

    def pack(self, s: "State") -> np.ndarray:
        iu = np.triu_indices(self.K)
        parts = [s.Q[iu], s.R.ravel()]
        if self.train_heads:
            parts += [v.ravel() for v in s.V]
        return np.concatenate(parts)

    def unpack(self, y) -> "State":
        """The state of a packed vector in its own number type (floats, or mpf: a list or an object
        array; frozen heads stay `heads0`)."""
        K, M = self.K, self.M
        y = np.asarray(y)
        iu = np.triu_indices(K)
        n = len(iu[0])
        Q = np.zeros((K, K), dtype=y.dtype)
        Q[iu] = Q.T[iu] = y[:n]
        R = y[n:n + K * M].reshape(K, M)
        pos = n + K * M
        if self.train_heads:
            V = []
            for c in self.classes:
                V.append(y[pos:pos + c * K].reshape(c, K))
                pos += c * K
            V = tuple(V)
        else:
            V = self.heads0
        return State(Q, R, V)

    def field_cov(self, s: "State", lift=np.asarray) -> np.ndarray:
        """Covariance of (h, λ, ν) — see the module docstring — in the state's number type (``lift``:
        floats to it, e.g. object arrays of mpf: then σ² is formed in that arithmetic)."""
        T = lift(self.gram)
        S = T + np.diag(lift(self.sigma_vec()) ** 2)
        return np.block([[s.Q, s.R, s.R], [s.R.T, T, T], [s.R.T, T, S]])

    # --- rows selecting linear forms of the fields ---------------------------------------
    @property
    def n_fields(self) -> int:
        return self.K + 2 * self.M

    def rows_h(self) -> np.ndarray:
        E = np.zeros((self.K, self.n_fields))
        E[:, :self.K] = np.eye(self.K)
        return E

    def rows_lambda(self, t: int | None = None) -> np.ndarray:
        E = np.zeros((self.M, self.n_fields))
        E[:, self.K:self.K + self.M] = np.eye(self.M)
        return E if t is None else E[self.task_slice(t)]

    def rows_nu(self, t: int) -> np.ndarray:
        E = np.zeros((self.M, self.n_fields))
        E[:, self.K + self.M:] = np.eye(self.M)
        return E[self.task_slice(t)]

    def rows_logits(self, s: "State", t: int) -> np.ndarray:
        """z_t = V_t h as rows on the fields (linear trunks only)."""
        return s.V[t] @ self.rows_h()


@dataclass(frozen=True)
class State:
    """Order parameters: Q = W Wᵀ/N (K×K), R = W Bᵀ/N (K×M), heads V_t (C_t×K)."""
    Q: np.ndarray
    R: np.ndarray
    V: tuple[np.ndarray, ...]

    def map(self, f) -> "State":
        """The state with ``f`` applied to Q, R and every V_t (e.g. a change of number type)."""
        return State(f(self.Q), f(self.R), tuple(f(v) for v in self.V))


def argmax_cone(values_rows: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The event {argmax = c} for rows v of a class block, as (rows, nonstrict):
    v_c − v_j > 0 for j < c and v_c − v_j ≥ 0 for j > c — ties go to the first index, as numpy's
    and torch's argmax do.  Ties matter only where two logits are identical (a teacher of rank
    r < C with aligned classes, a student at σ₀ = 0), where the kernel drops a non-strict zero row
    and gives a strict zero row probability zero."""
    C = values_rows.shape[0]
    rows = np.array([values_rows[c] - values_rows[j] for j in range(C) if j != c])
    return rows, np.array([j > c for j in range(C) if j != c])


def cone_stack(*cones):
    """Intersection of cones given as (rows, nonstrict) pairs or plain (strict) row arrays."""
    rows, masks = [], []
    for cone in cones:
        if cone is None:
            continue
        r, m = cone if isinstance(cone, tuple) else (cone, np.zeros(len(cone), bool))
        rows.append(r)
        masks.append(m)
    return np.vstack(rows), np.concatenate(masks)


def label_label_tasks(classes, t: int, u: int):
    """(a, b) of the label–label term of tasks t, u: a the task whose labels are closed forms (fewer
    classes; t on a tie), b the task whose label cones are integrated (the derivation's integrands
    and the mp path's integration agree on it)."""
    return (u, t) if classes[u] < classes[t] else (t, u)


def theory_model(setup) -> TheoryModel:
    """Build the TheoryModel of a (validated) mtsp Setup."""
    kind = setup.student.kind
    classes = tuple(int(t.classes) for t in setup.tasks)
    offsets = tuple(int(o) for o in np.concatenate([[0], np.cumsum(classes)[:-1]]))
    M = int(sum(classes))
    tr = setup.training
    if kind == "glm":
        K = M
        heads = []
        for t, c in enumerate(classes):
            V = np.zeros((c, M))
            V[:, offsets[t]:offsets[t] + c] = np.eye(c)
            heads.append(V)
        activation, train_heads = "linear", False
    else:
        K = int(setup.student.hidden)
        heads = [np.asarray(v, dtype=float) for v in setup.heads()]
        activation, train_heads = setup.student.activation, True
    return TheoryModel(
        kind=kind, K=K, activation=activation, classes=classes, offsets=offsets,
        gram=np.asarray(setup.gram(), dtype=float), noise=np.asarray(setup.noise(), dtype=float),
        weights=np.asarray(setup.weights(), dtype=float), shares=np.asarray(setup.shares(), dtype=float),
        inputs=tr.inputs, lr=float(tr.lr), head_lr=float(tr.head_lr),
        weight_decay=float(tr.weight_decay), init_scale=float(setup.student.init_scale),
        heads0=tuple(heads), train_heads=train_heads, names=tuple(t.name for t in setup.tasks))


# ---- erm: the reduced problem of the replica engine (its sheet in derive.replica prints it) ----

def reduced_basis(C: int) -> np.ndarray:
    """E ((C−1)×C): orthonormal rows orthogonal to the all-ones vector (Helmert rows)."""
    E = np.zeros((C - 1, C))
    for k in range(1, C):
        E[k - 1, :k] = 1.0
        E[k - 1, k] = -k
        E[k - 1] /= np.sqrt(k * (k + 1))
    return E


def teacher_factor(T_reduced: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """L (d×r) with L Lᵀ = T_reduced, r its numerical rank (columns: eigenvectors·√eigenvalue)."""
    vals, vecs = np.linalg.eigh(0.5 * (T_reduced + T_reduced.T))
    keep = vals > tol * max(vals[-1], 1e-300)
    return vecs[:, keep] * np.sqrt(vals[keep])


@dataclass(frozen=True)
class TaskChannel:
    """One task's loss channel: classes C, reduced teacher factor L (d×r), noise σ, α, weight w."""
    C: int
    L: np.ndarray
    sigma: float
    alpha: float
    weight: float = 1.0

    @property
    def d(self) -> int:
        return self.C - 1

    @property
    def r(self) -> int:
        return self.L.shape[1]


MAX_CLASSES = 10   # C ≥ 5: the QMC channel (`replica_qmc`, a Sobol' set of dimension 2C − 3)


def all_pairs_laplacian(T: int) -> np.ndarray:
    """L_T = T I − 1 1ᵀ: (μ/2) Σ_{t<s} ‖W_t − W_s‖² = (μ/2) tr(W ᵀ(L_T ⊗ I) W)."""
    return T * np.eye(T) - np.ones((T, T))


def erm_problem(setup):
    """(channels, Λ, G) of an erm setup with separate inputs (or one task)."""
    model = theory_model(setup)
    tr = setup.training
    T = model.n_tasks
    for task in setup.tasks:
        if task.classes > MAX_CLASSES:
            raise ReachError(f"tasks.{task.name}.classes", f"the replica engine integrates "
                                      f"C ≤ {MAX_CLASSES} classes (got {task.classes}): the loss channel is "
                                      f"an integral over 2C − 3 dimensions and the errors are "
                                      f"2(C − 1)-dim cones")
    Es = [reduced_basis(c) for c in model.classes]
    Ls = [teacher_factor(E @ model.gram[model.task_slice(t), model.task_slice(t)] @ E.T)
          for t, E in enumerate(Es)]
    for name, w in zip(model.names, model.weights):
        if w == 0 and tr.coupling == 0:
            raise ReachError(f"tasks.{name}.weight", "a task of weight 0 without coupling is not trained: its "
                                                      "minimiser is W_t = 0, every logit equal, and argmax a tie "
                                                      "that the errors do not define; give it weight > 0 or "
                                                      "training.coupling > 0, or leave the task out")
    alphas = [float(task.alpha) if (tr.inputs == "separate" and task.alpha is not None)
              else float(tr.alpha) for task in setup.tasks]
    channels = [TaskChannel(int(c), L, float(s), a, float(w))
                for c, L, s, a, w in zip(model.classes, Ls, model.noise, alphas, model.weights)]
    pinv = [np.linalg.pinv(L) for L in Ls]
    rows = []
    for t in range(T):
        row = []
        for s in range(T):
            Tts = model.gram[model.task_slice(t), model.task_slice(s)]
            row.append(pinv[t] @ Es[t] @ Tts @ Es[s].T @ pinv[s].T)
        rows.append(row)
    G = np.block(rows) if sum(L.shape[1] for L in Ls) else np.zeros((0, 0))
    Lam = float(tr.ridge) * np.eye(T) + float(tr.coupling) * all_pairs_laplacian(T)
    return model, channels, Lam, G

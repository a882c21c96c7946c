"""Is the joint label of coupled tasks on shared inputs a product over the tasks given the student
fields?  Given ω the tasks' teacher coordinates are N(A ω, V⁰), V⁰ = G − Mᵀ Q⁻¹ M; P(y | ω)
factorises only where V⁰'s cross-task blocks vanish.  Prints their largest correlation at the
fixed points of two coupled tasks with unrelated teachers (alignment 0; noise 0.3, α = 2, λ = 0.1).

    PYTHONPATH=. python benchmarks/replica_joint_residual_correlation.py
"""
from __future__ import annotations

import numpy as np

from mtsp.numeric.erm import erm_problem
from mtsp.numeric.replica import ReplicaAccuracy, solve_fixed_point
from mtsp.setup import setup_from_dict


def cross_task_correlation(G: np.ndarray, fp, r0: int, stop: int | None = None) -> float:
    """The largest |correlation| between the first task's r0 teacher coordinates and those in
    [r0, stop) given ω: of V⁰ = G − Mᵀ Q⁻¹ M at the fixed point ``fp``."""
    V0 = G - fp.M.T @ np.linalg.solve(fp.Q, fp.M)
    corr = V0 / np.sqrt(np.outer(np.diag(V0), np.diag(V0)))
    return float(np.abs(corr[:r0, r0:stop]).max())


def main():
    for C, mu in [(2, 1.0), (2, 0.5), (3, 1.0)]:
        s = setup_from_dict({"name": "j", "tasks": [{"name": n, "classes": C, "noise": 0.3} for n in "AB"],
                             "teacher": {"alignment": 0.0}, "student": {"kind": "glm"},
                             "training": {"protocol": "erm", "ridge": 0.1, "coupling": mu,
                                          "inputs": "shared", "alpha": 2.0}})
        _, ch, Lam, G = erm_problem(s)
        fp = solve_fixed_point(ch, Lam, G, ReplicaAccuracy(), None, shared=True)
        print(f"2x C{C} unrelated, μ = {mu}: largest |correlation| of the tasks' teacher coordinates "
              f"given ω {cross_task_correlation(G, fp, ch[0].r):.4f}")


if __name__ == "__main__":
    main()

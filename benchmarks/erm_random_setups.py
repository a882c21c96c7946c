"""Replica engine (protocol `erm`) against finite-N ERM simulations on random setups nobody tuned.

Each setup is drawn from a seed over MODEL.md's erm space: 1–3 tasks with C_t 2–5 classes, shared or
separate inputs (separate: per-task α_t), coupling μ 0 or 0.1–3 (μ > 0 needs equal C_t), ridge λ
0.01–1, α 0.5–5, noisy or clean labels, rank-deficient teachers, norm, alignment and class map.
Coupled tasks on shared inputs keep Π C_t ≤ 36 joint labels.  `--space wide` (seeds 6 on) also
varies the keys the default space holds fixed (see `random_erm_setup_wide`): task weights, C_t up to
10, up to 4 tasks, negative and exact (±1) alignment, an explicit teacher `gram` (random, possibly
singular), `teacher.norm` as the tasks' default, clean labels of low-rank teachers, `init_scale`,
ridge 0.001–3, α 0.3–8, coupling 0.03–10; `--space default` draws exactly what seeds 1–5 logged.
For each setup: the replica prediction
(`numeric.erm.solve_erm`) and `mtsp.simulate` (the exact minimiser, N = 1000, `--seeds` seeds), then
per (task, metric) theory, sim ± SE, z = (theory − sim)/SE and a flag where |diff| > 4 SE + 0.003.

    PYTHONPATH=. python benchmarks/erm_random_setups.py [--n 8] [--seed 1] [--N 1000] [--seeds 16]
        [--only k,k] [--sim-seed 0] [--space default|wide]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from mtsp.errors import ReachError
from mtsp.numeric.erm import solve_erm
from mtsp.validate.simulate import simulate

from mtsp.setup import setup_from_dict

METRICS = ("gen_error", "label_error", "test_loss", "train_loss", "train_error")
MAX_SHARED_JOINT_LABELS = 36


def log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_erm_setup(rng, k):
    """One random valid erm setup (see the module docstring for the ranges)."""
    T = int(rng.choice([1, 2, 2, 3]))
    inputs = "separate" if T > 1 and rng.random() < 0.5 else "shared"
    coupled = T > 1 and rng.random() < 0.6
    if coupled:        # μ > 0 needs equal C_t
        cmax = 5 if inputs == "separate" else min(5, int(np.floor(MAX_SHARED_JOINT_LABELS ** (1 / T) + 1e-9)))
        Cs = [int(rng.integers(2, cmax + 1))] * T
    else:
        Cs = [int(rng.integers(2, 6)) for _ in range(T)]
    tasks = []
    for t, C in enumerate(Cs):
        task = {"name": f"T{t}", "classes": C,
                "noise": 0.0 if rng.random() < 0.35 else float(rng.uniform(0.05, 1.5)),
                "norm": log_uniform(rng, 0.5, 3.0),
                "rank": C if rng.random() < 0.6 else int(rng.integers(1, C + 1))}
        if task["noise"] == 0.0 and task["rank"] < C - 1:
            task["noise"] = 0.1       # clean labels of a rank < C − 1 teacher are not supported
        if inputs == "separate":
            task["alpha"] = log_uniform(rng, 0.5, 5.0)
        tasks.append(task)
    training = {"protocol": "erm", "inputs": inputs, "ridge": log_uniform(rng, 0.01, 1.0)}
    if inputs == "shared":
        training["alpha"] = log_uniform(rng, 0.5, 5.0)
    if coupled:
        training["coupling"] = log_uniform(rng, 0.1, 3.0)
    teacher = {"alignment": float(rng.uniform(0, 1)),
               "class_map": "random" if rng.random() < 0.5 else "aligned", "seed": int(k)}
    return setup_from_dict({"name": f"erm random {k}", "tasks": tasks, "teacher": teacher,
                            "student": {"kind": "glm"}, "training": training})


def random_erm_setup_wide(rng, k):
    """One random valid erm setup over every erm key of MODEL.md (the module docstring's wide space).

    Task weights w_t: 1 (half the tasks) or log-uniform 0.2–5, and 0 for a coupled task now and then
    (uncoupled weight 0 is refused by design). Classes 2–10 (6–10 for a quarter of the uncoupled or
    separate tasks); coupled tasks on shared inputs keep Π C_t ≤ 36. Up to 4 tasks. Noise 0 for a
    third of the tasks whatever their rank. Teacher: an explicit random gram (A Aᵀ/k, A M×k Gaussian,
    k from 1 to M, so often singular) for 15 %, else per-task norms or `teacher.norm`, alignment
    exactly 1 (15 %) or uniform on the PSD range [−1/(m − 1), 1]."""
    T = int(rng.choice([1, 2, 2, 3, 3, 4]))
    inputs = "separate" if T > 1 and rng.random() < 0.5 else "shared"
    coupled = T > 1 and rng.random() < 0.6
    if coupled:
        cmax = 10 if inputs == "separate" else min(10, int(np.floor(MAX_SHARED_JOINT_LABELS ** (1 / T) + 1e-9)))
        Cs = [int(rng.integers(2, cmax + 1))] * T
    else:
        Cs = [int(rng.integers(6, 11)) if rng.random() < 0.25 else int(rng.integers(2, 6)) for _ in range(T)]
    use_gram = rng.random() < 0.15
    teacher_norm = rng.random() < 0.3
    tasks = []
    for t, C in enumerate(Cs):
        task = {"name": f"T{t}", "classes": C,
                "noise": 0.0 if rng.random() < 0.35 else float(rng.uniform(0.05, 1.5))}
        u = rng.random()
        task["weight"] = (0.0 if coupled and u < 0.08 else 1.0 if u < 0.5 else log_uniform(rng, 0.2, 5.0))
        if not use_gram:
            if not teacher_norm:
                task["norm"] = log_uniform(rng, 0.3, 4.0)
            task["rank"] = C if rng.random() < 0.6 else int(rng.integers(1, C + 1))
        if inputs == "separate" and rng.random() < 0.85:
            task["alpha"] = log_uniform(rng, 0.3, 8.0)
        tasks.append(task)
    if all(t["weight"] == 0 for t in tasks):
        tasks[0]["weight"] = 1.0
    training = {"protocol": "erm", "inputs": inputs, "ridge": log_uniform(rng, 0.001, 3.0)}
    if inputs == "shared" or any("alpha" not in t for t in tasks):
        training["alpha"] = log_uniform(rng, 0.3, 8.0)
    if coupled:
        training["coupling"] = log_uniform(rng, 0.03, 10.0)
    if use_gram:
        M = sum(Cs)
        A = rng.standard_normal((M, int(rng.integers(1, M + 1))))
        G = A @ A.T
        G *= log_uniform(rng, 0.5, 3.0) / np.mean(np.diag(G))
        teacher = {"gram": ((G + G.T) / 2).tolist()}
    else:
        lo = -1.0 / (T - 1) if T > 1 else -1.0
        teacher = {"alignment": 1.0 if rng.random() < 0.15 else float(rng.uniform(lo, 1.0)),
                   "class_map": "random" if rng.random() < 0.5 else "aligned", "seed": int(k)}
        if teacher_norm:
            teacher["norm"] = log_uniform(rng, 0.3, 4.0)
    student = {"kind": "glm"}
    if rng.random() < 0.5:
        student["init_scale"] = float(rng.uniform(0.0, 1.0))
    return setup_from_dict({"name": f"erm wide random {k}", "tasks": tasks, "teacher": teacher,
                            "student": student, "training": training})


def describe(s):
    tr, tc = s.training, s.teacher
    if tc.gram is not None:
        teacher = "gram(rank " + str(int(np.linalg.matrix_rank(np.array(tc.gram), tol=1e-9))) + ")"
    else:
        teacher = f"align={tc.alignment:.2f} map={tc.class_map}"
    extra = "" if s.student.init_scale == 0 else f" init={s.student.init_scale:.2g}"
    return (f"T={len(s.tasks)} {tr.inputs} ridge={tr.ridge:.3g} mu={tr.coupling:.3g} {teacher}{extra} " + " ".join(
                f"[C={t.classes} a={t.alpha if t.alpha is not None else tr.alpha:.2g} "
                f"s={t.noise:.2g}" + ("" if tc.gram is not None else f" n={t.norm:.2g} r={t.rank}")
                + ("" if t.weight == 1 else f" w={t.weight:.2g}") + "]" for t in s.tasks))


def compare(th, sim):
    """Rows (task, metric, theory, mean, se, z, flagged) for every task and metric."""
    rows = []
    for name, d in sim.tasks.items():
        for m in METRICS:
            theory = th["tasks"][name][m][0]
            mean, se = float(np.asarray(d[m])[0]), float(np.asarray(d[m + "_se"])[0])
            diff = theory - mean
            z = diff / se if se > 0 else np.nan    # every seed gave the same value (e.g. 0)
            rows.append((name, m, theory, mean, se, z,
                         abs(diff) > 4 * se + 0.003))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--sim-seed", type=int, default=0, help="simulate's seed (independent datasets)")
    ap.add_argument("--only", default="")
    ap.add_argument("--space", choices=("default", "wide"), default="default",
                    help="default: the space of seeds 1–5; wide: every erm key of MODEL.md")
    a = ap.parse_args(argv)
    only = {int(k) for k in a.only.split(",") if k}
    rng = np.random.default_rng(a.seed)
    draw = random_erm_setup_wide if a.space == "wide" else random_erm_setup
    print(f"# replica (erm) vs mtsp.simulate, {a.space} space, setup seed {a.seed}, N = {a.N}, {a.seeds} seeds, "
          f"sim seed {a.sim_seed}; flag: |theory − sim| > 4 SE + 0.003")
    n_rows = n_flag = fails = refused = 0
    zmax = 0.0
    t_all = time.perf_counter()
    for k in range(a.n):
        s = draw(rng, k)
        if only and k not in only:
            continue
        print(f"[{k}] {describe(s)}")
        t0 = time.perf_counter()
        try:
            th = solve_erm(s)
        except ReachError as e:      # refused up front, naming the key: outside the engine's reach
            refused += 1
            print(f"    theory REFUSED {time.perf_counter() - t0:.1f} s ReachError {e}")
            continue
        except Exception as e:  # noqa: BLE001 — report every failure
            fails += 1
            print(f"    theory FAIL {time.perf_counter() - t0:.1f} s {type(e).__name__}: {e}")
            continue
        t_th = time.perf_counter() - t0
        t0 = time.perf_counter()
        sim = simulate(s, N=a.N, seeds=a.seeds, seed=a.sim_seed)
        t_sim = time.perf_counter() - t0
        print(f"    theory {t_th:.1f} s (iterations {th['stats']['iterations']}, residual "
              f"{max(th['stats']['residual']):.1e}); simulation {t_sim:.1f} s")
        for name, m, theory, mean, se, z, flag in compare(th, sim):
            n_rows += 1
            n_flag += flag
            zmax = zmax if np.isnan(z) else max(zmax, abs(z))
            zs = "   n/a" if np.isnan(z) else f"{z:+6.1f}"
            print(f"    {name} {m:11s} theory {theory:.4f}  sim {mean:.4f} ± {se:.4f}  "
                  f"z {zs}  {'FLAG' if flag else 'ok'}")
        sys.stdout.flush()
    print(f"# {n_rows - n_flag}/{n_rows} rows within, max |z| {zmax:.1f} (rows with SE > 0), {fails} theory failure(s), {refused} refused, "
          f"total {time.perf_counter() - t_all:.0f} s")
    return n_flag + fails


if __name__ == "__main__":
    sys.exit(main())

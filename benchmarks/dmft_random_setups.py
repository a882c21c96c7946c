"""DMFT (full_batch) against finite-N simulations on randomly drawn setups nobody tuned for.

Draws valid full_batch setups from a seed across the DMFT's reach (numeric/dmft/solve.py
`check_supported`): glm students with C = 2, 3, 4 and one to three tasks; shared linear / erf / tanh
trunks (K = 1..3, default or drawn heads, head_lr from 0.01 — nearly fixed heads — to 2) with one
to three tasks; shared or separate inputs with unequal α_t; α in [0.5, 5]; weight decay κ = 0 or
> 0; clean and noisy labels; rank-deficient teachers, norms, alignment (negative included), aligned
or random class maps, or an explicit Gram; task weights (0 included); lr 0.5–2; times up to 30.
relu trunks are not drawn there (another line of work); `--space wide` (`draw_wide`, seeds 5 on)
draws them and the ranges the default space never varies (seeds 1–4 keep the default space and
draw the same setups as in their logs).

For each setup: `solve_dmft` at its default accuracy (DmftOptions(): 8 × 4000 paths, 1000 for the
response, dt 0.2/max(1, η)) and `simulate` (gradient flow, RK4, N = 1000, `--seeds` seeds batched,
float32 unless --float64). One row per (task, time, metric) for gen_error, label_error, test_loss,
train_loss, train_error, and per task the early-stopped best_gen_error / best_test_loss (their SE
taken at the requested time nearest the simulation's best time, as benchmarks/dmft_trunks_nonlinear.py).
z = (DMFT − simulation)/SE with SE = √(SE_dmft² + SE_sim²) (nan where SE < 1e-6: exact on both
sides, e.g. an untrained task of weight 0); a row is flagged when
|DMFT − simulation| > 4 SE + 0.003 (issue 17's criterion).

    PYTHONPATH=$PWD nice -n 10 python benchmarks/dmft_random_setups.py --seed 1 --n 6 \\
        [--space wide] [--N 1000] [--seeds 8] [--only 0,3] [--dmft-cache DIR] [--sim-parts 2] [--dmft-dt 0.1] [--paths 4000] [--response 1000]
        [--batches 8] [--sim-dt 0.1]

--dmft-cache DIR keeps each setup's DMFT result (and with --sim-parts P, each of the P simulation
parts of --seeds/P seeds on data seeds sim_seed, sim_seed + 1, ..., pooled by `pooled`), so a setup
whose DMFT and simulation do not fit one command runs as a --no-sim command and then a second one
(which resumes after a cut-short part).

--only reruns chosen setups of the same draw (the draw of setup k does not depend on --only), with
other DMFT or simulation settings for the diagnosis (halved steps, doubled paths).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
import traceback

import numpy as np
import torch
from mtsp.errors import ReachError
from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft
from mtsp.validate.simulate import simulate

from mtsp.setup import SetupError, setup_from_dict

METRICS = ("gen_error", "label_error", "test_loss", "train_loss", "train_error")
FLOOR = 0.003
EXACT = 1e-6


def _pick(rng, values):
    return values[int(rng.integers(len(values)))]


def _times(rng) -> list[float]:
    t_end = _pick(rng, [3.0, 10.0, 30.0])
    return {3.0: [0.5, 1.0, 3.0], 10.0: [1.0, 3.0, 10.0], 30.0: [1.0, 3.0, 10.0, 30.0]}[t_end]


def _gram(rng, classes) -> list[list[float]]:
    """A random positive semidefinite M × M Gram, rank-deficient half of the time."""
    M = sum(classes)
    r = M if rng.random() < 0.5 else int(rng.integers(max(1, M - 2), M + 1))
    B = rng.standard_normal((M, r)) / math.sqrt(r) * math.sqrt(_pick(rng, [0.7, 1.5, 3.0]))
    G = B @ B.T
    return [[float(x) for x in row] for row in 0.5 * (G + G.T)]


def _teacher(rng, tasks: list, alignments: list, negative: float, norms: list) -> dict:
    """The teacher table of a draw (one task kept trained if every weight came out 0): an explicit
    Gram 12 % of the time (the tasks' rank and norm dropped), else an alignment from ``alignments``
    or ``negative`` × the smallest valid one, −1/(T − 1), a class map and, 30 % of the time, a norm
    from ``norms``."""
    if all(t.get("weight", 1.0) == 0.0 for t in tasks):
        tasks[0]["weight"] = 1.0
    if rng.random() < 0.12:
        for t in tasks:
            t.pop("rank", None)
            t.pop("norm", None)
        return {"gram": _gram(rng, [t["classes"] for t in tasks])}
    lo = -1.0 / (len(tasks) - 1) if len(tasks) > 1 else -1.0
    teacher = {"alignment": float(_pick(rng, [*alignments, round(negative * lo, 3)])),
               "class_map": str(_pick(rng, ["aligned", "random"])),
               "seed": int(rng.integers(0, 100))}
    if rng.random() < 0.3:
        teacher["norm"] = float(_pick(rng, norms))
    return teacher


def draw(rng, k: int) -> dict:
    """One random full_batch setup (module docstring)."""
    kind = "glm" if rng.random() < 0.4 else "shared"
    n_tasks = int(_pick(rng, [1, 1, 2, 2, 3]))
    inputs = "separate" if n_tasks > 1 and rng.random() < 0.45 else "shared"
    if n_tasks == 1 and rng.random() < 0.1:
        inputs = "separate"
    tasks = []
    for t in range(n_tasks):
        C = int(_pick(rng, [2, 3, 4]))
        task = {"name": "ABC"[t], "classes": C,
                "noise": 0.0 if rng.random() < 0.3 else float(_pick(rng, [0.3, 0.5, 1.0, 1.5]))}
        if rng.random() < 0.3:
            task["rank"] = int(rng.integers(1, C))
        if rng.random() < 0.3:
            task["norm"] = float(_pick(rng, [0.5, 2.0, 4.0]))
        if rng.random() < 0.25:
            task["weight"] = float(_pick(rng, [0.0, 0.5, 2.0]))
        if inputs == "separate":
            task["alpha"] = float(np.exp(rng.uniform(np.log(0.5), np.log(5.0))))
        tasks.append(task)
    teacher = _teacher(rng, tasks, [0.0, 0.5, 0.9, 1.0], 0.6, [0.5, 2.0])
    lr = float(_pick(rng, [0.5, 1.0, 1.0, 2.0]))
    training = {"protocol": "full_batch", "inputs": inputs, "lr": lr, "times": _times(rng)}
    if inputs == "shared":
        training["alpha"] = float(np.exp(rng.uniform(np.log(0.5), np.log(5.0))))
    if rng.random() < 0.5:
        training["weight_decay"] = float(_pick(rng, [0.01, 0.05, 0.1, 0.3]))
    if kind == "glm":
        student = {"kind": "glm", "init_scale": float(_pick(rng, [0.0, 0.1, 0.3, 0.6]))}
    else:
        K = int(_pick(rng, [1, 2, 2, 3]))
        student = {"kind": "shared", "hidden": K,
                   "activation": str(_pick(rng, ["linear", "erf", "tanh"])),
                   "init_scale": float(_pick(rng, [0.1, 0.3, 0.5]))}
        if rng.random() < 0.5:
            scale = float(_pick(rng, [0.3, 0.7, 1.2]))
            student["head_init"] = [(rng.standard_normal((t["classes"], K)) * scale).round(3).tolist()
                                    for t in tasks]
        if rng.random() < 0.4:
            training["head_lr"] = float(_pick(rng, [0.01, 0.3, 2.0]))
    return {"name": f"random {k}", "tasks": tasks, "teacher": teacher, "student": student,
            "training": training}


def draw_wide(rng, k: int) -> dict:
    """One random full_batch setup over the keys and ranges `draw` never varies (``--space wide``):
    relu trunks (half of the shared students) and K up to 4; C up to 6 and up to four tasks; noise
    0.1 and 2–3; weights 0.25 and 4; norms 0.25 and 8; α from 0.2 to 12; lr 0.25–4 with head_lr
    0.1–5; κ up to 1; σ₀ 0 (glm) to 1.5, and 0.05 for trunks; drawn heads of scale 0.1–2.5 or all
    zero; times as early as 0.2 and as late as 100 (a grid beyond the DMFT's MAX_STEPS is refused
    with a ReachError, reported). Explicit Grams, ranks, alignments and class maps as in `draw`.
    (`coupling` belongs to erm, `share` to online inputs: neither applies to full_batch.)"""
    kind = "glm" if rng.random() < 0.35 else "shared"
    n_tasks = int(_pick(rng, [1, 1, 2, 2, 3, 4]))
    inputs = "separate" if n_tasks > 1 and rng.random() < 0.45 else "shared"
    tasks = []
    for t in range(n_tasks):
        C = int(_pick(rng, [2, 2, 3, 4, 5, 6]))
        task = {"name": "ABCD"[t], "classes": C,
                "noise": 0.0 if rng.random() < 0.25 else float(_pick(rng, [0.1, 0.5, 1.0, 2.0, 3.0]))}
        if rng.random() < 0.3:
            task["rank"] = int(rng.integers(1, C))
        if rng.random() < 0.35:
            task["norm"] = float(_pick(rng, [0.25, 0.5, 2.0, 4.0, 8.0]))
        if rng.random() < 0.35:
            task["weight"] = float(_pick(rng, [0.0, 0.25, 0.5, 2.0, 4.0]))
        if inputs == "separate":
            task["alpha"] = float(np.exp(rng.uniform(np.log(0.2), np.log(12.0))))
        tasks.append(task)
    teacher = _teacher(rng, tasks, [0.0, 0.3, 0.9, 1.0], 0.9, [0.25, 3.0, 6.0])
    lr = float(_pick(rng, [0.25, 0.5, 1.0, 2.0, 3.0, 4.0]))
    t_end = float(_pick(rng, [1.0, 3.0, 10.0, 30.0, 60.0, 100.0]))
    times = sorted({t_end, *[float(t) for t in (0.2, 1.0, 3.0, 10.0, 30.0) if t < t_end][-3:]})
    training = {"protocol": "full_batch", "inputs": inputs, "lr": lr, "times": times}
    if inputs == "shared":
        training["alpha"] = float(np.exp(rng.uniform(np.log(0.2), np.log(12.0))))
    if rng.random() < 0.5:
        training["weight_decay"] = float(_pick(rng, [0.01, 0.1, 0.3, 1.0]))
    if kind == "glm":
        student = {"kind": "glm", "init_scale": float(_pick(rng, [0.0, 0.2, 1.0, 1.5]))}
    else:
        K = int(_pick(rng, [1, 2, 3, 4]))
        student = {"kind": "shared", "hidden": K,
                   "activation": str(_pick(rng, ["relu", "relu", "relu", "linear", "erf", "tanh"])),
                   "init_scale": float(_pick(rng, [0.05, 0.2, 1.0, 1.5]))}
        if rng.random() < 0.5:
            scale = float(_pick(rng, [0.0, 0.1, 0.7, 2.5]))
            student["head_init"] = [(rng.standard_normal((t["classes"], K)) * scale).round(3).tolist()
                                    for t in tasks]
        if rng.random() < 0.5:
            training["head_lr"] = float(_pick(rng, [0.1, 0.5, 3.0, 5.0]))
    return {"name": f"wide {k}", "tasks": tasks, "teacher": teacher, "student": student,
            "training": training}


SPACES = {"default": draw, "wide": draw_wide}


def draws(seed: int, n: int, space: str = "default") -> list[dict]:
    """The first n valid setups of the seed's stream in `space` (SPACES; invalid draws are
    skipped, reported)."""
    rng = np.random.default_rng(seed)
    out, tries = [], 0
    while len(out) < n:
        d = SPACES[space](rng, len(out))
        tries += 1
        try:
            setup_from_dict(d)
        except SetupError as e:
            print(f"# draw {tries} invalid, skipped: {e}")
            continue
        out.append(d)
    return out


def describe(s) -> str:
    st, tr = s.student, s.training
    stu = ("glm" if st.kind == "glm" else f"shared K={st.hidden} {st.activation}"
           f" heads={'drawn' if st.head_init_given else 'default'}") + f" σ0={st.init_scale:g}"
    te = s.teacher
    teacher = ("gram" if te.gram is not None else
               f"ρ={te.alignment:g} {te.class_map} n={te.norm:g}")
    tasks = " ".join(f"[{t.name} C={t.classes} σ={t.noise:g} w={t.weight:g}"
                     + (f" r={t.rank}" if te.gram is None and t.rank != t.classes else "")
                     + (f" n={t.norm:g}" if te.gram is None and t.norm != te.norm else "")
                     + (f" α={t.alpha:.3g}" if tr.inputs == "separate" else "") + "]"
                     for t in s.tasks)
    train = (f"{tr.inputs} " + (f"α={tr.alpha:.3g} " if tr.inputs == "shared" else "")
             + f"lr={tr.lr:g} head_lr={tr.head_lr:g} κ={tr.weight_decay:g} t={list(tr.times)}")
    return f"{stu} | {teacher} | {tasks} | {train}"


def rows(s, th: dict, sim: dict) -> list[tuple]:
    """(task, time, metric, dmft, se_dmft, sim, se_sim, z, ok) for every compared quantity."""
    out = []
    times = [float(t) for t in s.training.times]
    for task in s.tasks:
        A, B = th["tasks"][task.name], sim["tasks"][task.name]
        for key in METRICS:
            for i, t in enumerate(times):
                a, sa = A[key][i], A.get(key + "_se", [0.0] * len(times))[i]
                b, sb = B[key][i], B.get(key + "_se", [0.0] * len(times))[i]
                out.append(_row(task.name, f"{t:g}", key, a, sa, b, sb))
        for best, key in (("best_gen_error", "gen_error"), ("best_test_loss", "test_loss")):
            i = int(np.argmin([abs(t - B[best + "_time"]) for t in times]))
            sa = A.get(best + "_se", 0.0)
            sb = B[key + "_se"][i]
            out.append(_row(task.name, f"{A[best + '_time']:.2f}|{B[best + '_time']:.2f}", best,
                            A[best], sa, B[best], sb))
    return out


def _row(task, t, key, a, sa, b, sb):
    se = math.hypot(sa, sb)
    diff = a - b
    # z is nan where both sides are exact (SE < EXACT: e.g. a task of weight 0, whose weights only
    # decay; the grids' decay factors differ by ~1e-5): the criterion still applies
    z = diff / se if se >= EXACT else math.nan
    ok = bool(np.isfinite(a) and np.isfinite(b) and abs(diff) <= 4 * se + FLOOR)
    return (task, t, key, a, sa, b, sb, z, ok)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--space", choices=tuple(SPACES), default="default",
                    help="which keys the draw varies: default (seeds 1-4) or wide (`draw_wide`)")
    ap.add_argument("--only", default="", help="comma-separated setup indices of the draw")
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--sim-dt", type=float, default=None,
                    help="RK4 step of the simulation (default 0.2/max(1, lr, head_lr))")
    ap.add_argument("--float64", action="store_true", help="simulate in float64 (default float32)")
    ap.add_argument("--dmft-dt", type=float, default=None, help="DMFT late step (default 0.2/max(1, lr))")
    ap.add_argument("--paths", type=int, default=None)
    ap.add_argument("--response", type=int, default=None)
    ap.add_argument("--batches", type=int, default=None)
    ap.add_argument("--no-sim", action="store_true", help="DMFT only (prints its values)")
    ap.add_argument("--sim-only", action="store_true",
                    help="with --dmft-cache: the simulation parts only (kept in the cache), no DMFT and no "
                         "comparison, so that a setup's simulation and DMFT can run in separate commands "
                         "in either order")
    ap.add_argument("--times", default="", help="diagnosis: comma-separated times instead of the drawn ones")
    ap.add_argument("--task", default="", help="diagnosis: keep only this task (setup.single; glm tasks "
                                                 "decouple, so its numbers are those of the multitask run)")
    ap.add_argument("--sim-seed", type=int, default=0, help="seed of the simulation's data")
    ap.add_argument("--json", default=None, help="write every result to this JSON file")
    ap.add_argument("--sim-parts", type=int, default=1,
                    help="run the --seeds simulations as this many parts (data seeds sim_seed, "
                         "sim_seed + 1, ...), pooled (`pooled`); with --dmft-cache each part is kept "
                         "there, so a command cut short resumes")
    ap.add_argument("--dmft-cache", default=None,
                    help="folder of per-setup DMFT results: a setup's result is read from it when "
                         "there, else solved and written (splits a setup's DMFT and simulation "
                         "into two commands: first with --no-sim)")
    a = ap.parse_args(argv)
    if a.sim_only and a.dmft_cache is None:
        ap.error("--sim-only needs --dmft-cache (where the simulation parts are kept)")
    base = DmftOptions()
    opts = DmftOptions(dt=a.dmft_dt, n_paths=a.paths or base.n_paths,
                       n_response=a.response or base.n_response, batches=a.batches or base.batches)
    dtype = torch.float64 if a.float64 else torch.float32
    todo = draws(a.seed, a.n, a.space)
    idx = [int(i) for i in a.only.split(",")] if a.only else list(range(len(todo)))
    print(f"# dmft_random_setups seed {a.seed} ({a.space} space): {len(todo)} setups drawn, running {idx}")
    print(f"# DMFT: {opts.batches} batches x {opts.n_paths} paths ({opts.n_response} response), "
          f"dt {'0.2/max(1, lr)' if a.dmft_dt is None else a.dmft_dt}; simulation: N = {a.N}, "
          f"{a.seeds} seeds, RK4 step {'0.2/max(1, lr, head_lr)' if a.sim_dt is None else a.sim_dt}, "
          f"{dtype}; criterion |Δ| ≤ 4 SE + {FLOOR}", flush=True)
    total, bad, worst, dumped = 0, 0, 0.0, []
    failures = []
    for k in idx:
        d = todo[k]
        s = setup_from_dict(d)
        if a.times:
            s = s.replace(**{"training.times": [float(x) for x in a.times.split(",")]})
        if a.task:
            s = s.single(a.task)
        print(f"\n## setup {k}: {describe(s)}")
        print(f"#   {json.dumps(d)}", flush=True)
        t0 = time.perf_counter()
        cache = _cache_path(a, k)
        if a.sim_only:
            _simulate_parts(a, k, s, dtype, t0)
            continue
        try:
            if cache is not None and os.path.exists(cache):
                with open(cache) as f:
                    th, stats = json.load(f)
                print(f"   DMFT read from {cache}")
            else:
                res = solve_dmft(s, opts)
                th, stats = res.to_json_dict(), res.stats
                if cache is not None:
                    with open(cache, "w") as f:
                        json.dump([th, stats], f, default=_jsonable)
        except ReachError as e:
            print(f"   DMFT refused: {e}", flush=True)
            dumped.append({"k": k, "setup": d, "refused": str(e)})
            continue
        except Exception as e:  # noqa: BLE001 — a crash is a finding: report it and go on
            print(f"   DMFT CRASH {type(e).__name__}: {e}\n{traceback.format_exc()}", flush=True)
            failures.append((k, "dmft crash"))
            dumped.append({"k": k, "setup": d, "crash": repr(e)})
            continue
        t1 = time.perf_counter()
        print(f"   DMFT {t1 - t0:.1f} s ({stats['steps']} steps, {stats['batches']} batches"
              + (f", symmetry {stats['symmetry']} asym {stats['asymmetry']:.3g}"
                 if stats.get("symmetry") else "") + ")", flush=True)
        if a.no_sim:
            for name, v in th["tasks"].items():
                for key in METRICS:
                    print(f"   {name}: {key} {np.round(v[key], 4)} ± {np.round(v[key + '_se'], 4)}")
            dumped.append({"k": k, "setup": d, "dmft": th})
            continue
        try:
            sim, sim_dt = _simulate_parts(a, k, s, dtype, t1)
        except Exception as e:  # noqa: BLE001
            print(f"   SIMULATION CRASH {type(e).__name__}: {e}\n{traceback.format_exc()}", flush=True)
            failures.append((k, "simulation crash"))
            dumped.append({"k": k, "setup": d, "dmft": th, "sim_crash": repr(e)})
            continue
        t2 = time.perf_counter()
        print(f"   simulation {t2 - t1:.1f} s (N = {a.N}, {a.seeds} seeds"
              + (f" in {a.sim_parts} parts, data seeds {a.sim_seed}..{a.sim_seed + a.sim_parts - 1}"
                 if a.sim_parts > 1 else "") + f", step {sim_dt:g})")
        print("   task  time   metric           dmft ± se          sim ± se           z      ")
        rs = rows(s, th, sim)
        for (task, t, key, va, sa, vb, sb, z, ok) in rs:
            print(f"   {task:4s} {t:>11s} {key:15s} {va:8.4f} ± {sa:.4f}  {vb:8.4f} ± {sb:.4f}  "
                  f"{z:+7.2f}  {'ok' if ok else 'OUT'}")
        n_ok = sum(r[-1] for r in rs)
        mz = max((abs(r[7]) for r in rs if np.isfinite(r[7])), default=0.0)
        mz_gen = max((abs(r[7]) for r in rs if r[2] == "gen_error" and np.isfinite(r[7])), default=0.0)
        total += len(rs)
        bad += len(rs) - n_ok
        worst = max(worst, mz)
        if n_ok < len(rs):
            failures.append((k, f"{len(rs) - n_ok} rows out"))
        print(f"   setup {k}: {n_ok}/{len(rs)} rows within bounds, max |z| {mz:.2f} "
              f"(gen_error {mz_gen:.2f}); DMFT {t1 - t0:.1f} s, simulation {t2 - t1:.1f} s", flush=True)
        dumped.append({"k": k, "setup": d, "dmft": th, "sim": sim, "dmft_s": t1 - t0, "sim_s": t2 - t1})
    print(f"\n# seed {a.seed}: {total - bad}/{total} rows within bounds, max |z| {worst:.2f}; "
          f"setups with findings: {failures or 'none'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dumped, f, default=_jsonable)
    return 0


def _simulate_parts(a, k: int, s, dtype, t0: float):
    """Setup k's simulation (`--sim-parts` parts of --seeds/parts seeds on data seeds sim_seed,
    sim_seed + 1, ..., each read from or written to the --dmft-cache), pooled; and its RK4 step."""
    sim_dt = a.sim_dt if a.sim_dt is not None else 0.2 / max(1.0, s.training.lr, s.training.head_lr)
    parts = []
    for i in range(a.sim_parts):     # part i: seeds // sim_parts seeds of data seed sim_seed + i
        path = _cache_path(a, k, f"sim{a.sim_seed + i}_N{a.N}_S{a.seeds // a.sim_parts}"
                                 f"_dt{sim_dt:g}_{'f64' if a.float64 else 'f32'}")
        if path is not None and os.path.exists(path):
            with open(path) as f:
                parts.append(json.load(f))
            continue
        parts.append(simulate(s, N=a.N, seeds=a.seeds // a.sim_parts, dtype=dtype, dt=sim_dt,
                              seed=a.sim_seed + i).to_json_dict())
        if path is not None:
            with open(path, "w") as f:
                json.dump(parts[-1], f, default=_jsonable)
        print(f"   simulation part {i + 1}/{a.sim_parts} {time.perf_counter() - t0:.1f} s", flush=True)
    return pooled(parts, a.seeds // a.sim_parts), sim_dt


def _jsonable(o):
    return o.tolist() if hasattr(o, "tolist") else str(o)


def pooled(parts: list[dict], seeds: int) -> dict:
    """One simulation result from `parts` of `seeds` seeds each (independent data): the mean of
    their means and the standard error of the pooled seeds (the parts' seed variances and the
    spread of their means). best_* is the mean of the parts' minima (each part's minimum over its
    own seed-mean curve, a slightly lower estimate than the minimum of the pooled curve) at the
    parts' mean time."""
    if len(parts) == 1:
        return parts[0]
    S = seeds * len(parts)
    out = {"tasks": {}}
    for name in parts[0]["tasks"]:
        P = [p["tasks"][name] for p in parts]
        d = {}
        for key in METRICS:
            m = np.array([p[key] for p in P], float)                     # (part, time)
            se = np.array([p[key + "_se"] for p in P], float)
            mean = m.mean(0)
            var = ((seeds - 1) * (se ** 2 * seeds).sum(0) + seeds * ((m - mean) ** 2).sum(0)) / (S - 1)
            d[key], d[key + "_se"] = mean, np.sqrt(var / S)
        for best in ("best_gen_error", "best_test_loss"):
            d[best] = float(np.mean([p[best] for p in P]))
            d[best + "_time"] = float(np.mean([p[best + "_time"] for p in P]))
        out["tasks"][name] = d
    return out


def _cache_path(a, k: int, what: str = "dmft") -> str | None:
    """The --dmft-cache file of setup k's `what` under these settings (None without --dmft-cache)."""
    if a.dmft_cache is None:
        return None
    os.makedirs(a.dmft_cache, exist_ok=True)
    key = (f"{a.space}_seed{a.seed}_k{k}_task{a.task or 'all'}_times{a.times or 'drawn'}_{what}_dt{a.dmft_dt}"
           f"_p{a.paths}_r{a.response}_b{a.batches}")
    return os.path.join(a.dmft_cache, key.replace(",", "-") + ".json")


if __name__ == "__main__":
    raise SystemExit(main())

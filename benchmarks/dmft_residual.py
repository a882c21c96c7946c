"""The DMFT's residual against the simulations on seed 4, setup 2, task A of
benchmarks/dmft_random_setups.py (glm C = 4, separate inputs, α 1.11, noise 0.5, norm 2,
σ₀ 0.6, lr 0.5, κ 0; docs/DMFT.md §5): whose is it, the theory's or the simulation's?

Subcommands (each appends one JSON line per run to `--out`, and prints a summary):

  sim   the simulation (`validate.full_batch`'s RK4 step and training metrics, exact test metrics
        from the order parameters, as `simulate`) at input dimension `--N`, `--seeds` seeds of
        data seed `--seed`; per-seed values (so that runs pool): gen_error, label_error,
        test_loss, train_loss, train_error at `--times`;
  dmft  per batch (`--batches` from `--first-batch`, `--paths` each), the DMFT's values at the
        late step dt and at 2·dt on the same normals (`solve.task_trajectory`), every metric;
  fit   pools the sim lines per N, fits f = a + b/N per (metric, time) by weighted least squares
        and compares a with the DMFT lines (mean over batches of f(dt) + [f(dt) − f(2dt)], the
        step correction of `solve._step_corrected` applied to every batch and every metric); then
        the checks behind it: the Richardson values from (2dt, dt) and (dt, dt/2) on the same
        batches, the default normals' first 8 batches (what `solve_dmft` reports) against the
        rest, the correlation of the batches' errors across metrics and times, and a one-way
        ANOVA of the simulation's runs (do seeds of one run share anything?).

    PYTHONPATH=$PWD nice -n 10 python benchmarks/dmft_residual.py sim --N 2000 --seeds 8 \\
        --seed 11 --out /tmp/res.jsonl
    PYTHONPATH=$PWD nice -n 10 python benchmarks/dmft_residual.py dmft --paths 4000 --batches 4 \\
        --out /tmp/res.jsonl
    PYTHONPATH=$PWD python benchmarks/dmft_residual.py fit /tmp/res.jsonl
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from mtsp.numeric.dmft.solve import DmftOptions, default_dt, task_trajectory, time_grid
from mtsp.numeric.metrics import task_metrics
from mtsp.numeric.model import State, theory_model
from mtsp.numeric.workers import one_torch_thread
from mtsp.validate.finite_data import build_problem, exact_metrics, order_parameters, train_metrics
from mtsp.validate.full_batch import _step

from mtsp.setup import setup_from_dict

# benchmarks/dmft_random_setups.py --seed 4, setup 2 (its printed JSON), task A kept (--task A)
SEED4_SETUP2 = {"name": "random 2",
                "tasks": [{"name": "A", "classes": 4, "noise": 0.5, "norm": 2.0,
                           "alpha": 1.1143297446807554},
                          {"name": "B", "classes": 2, "noise": 1.5, "alpha": 1.2415965998758487}],
                "teacher": {"alignment": 0.0, "class_map": "random", "seed": 73},
                "student": {"kind": "glm", "init_scale": 0.6},
                "training": {"protocol": "full_batch", "inputs": "separate", "lr": 0.5,
                             "times": [1.0, 3.0, 10.0, 30.0]}}
METRICS = ("gen_error", "label_error", "test_loss", "train_loss", "train_error")


def the_setup(times):
    s = setup_from_dict(SEED4_SETUP2).single("A")
    return s.replace(**{"training.times": [float(t) for t in times]})


def run_sim(s, N: int, seeds: int, seed: int, dt: float, dtype) -> dict:
    """Per-seed metrics {metric: [time][seed]} of gradient flow (RK4, equal steps ≤ dt between
    the requested times, as validate/full_batch.run_full_batch)."""
    times = [float(t) for t in s.training.times]
    out = {k: [] for k in METRICS}
    with torch.no_grad(), one_torch_thread(torch.device("cpu")):
        m, data, _ = build_problem(s, N, seeds, "cpu", dtype, seed)
        theory = theory_model(s)
        W, t_now = m.W, 0.0
        for t_next in times:
            k = max(1, int(math.ceil((t_next - t_now) / dt - 1e-9)))
            for _ in range(k):
                W, _ = _step(m, data, W, None, (t_next - t_now) / k, "rk4")
            t_now = t_next
            trl, tre = train_metrics(m, data, W)
            Q, R = order_parameters(m, W)
            ge, le, tl = exact_metrics(theory, m, Q, R)
            for key, v in (("gen_error", ge), ("label_error", le), ("test_loss", tl),
                           ("train_loss", trl.cpu().numpy()), ("train_error", tre.cpu().numpy())):
                out[key].append(np.asarray(v)[:, 0].tolist())
    return out


def run_dmft_batches(s, paths: int, batches: int, first: int, dt: float, response: int,
                     sources: int | None = None, coarse: bool = True) -> dict:
    """Per batch {metric: {"fine": [batch][time], "coarse": [batch][time]}}: the DMFT on the grid
    of late step dt and of 2·dt (coarse False: dt only), same normals (batch b's of `solve_dmft`);
    sources: the source paths of the noise (`DmftOptions.n_sources`, default paths/2)."""
    times = [float(t) for t in s.training.times]
    lr = float(s.training.lr)
    model = theory_model(s)
    opts = DmftOptions(n_paths=paths, n_response=min(response, paths), n_sources=sources)
    out = {k: {"fine": [], "coarse": []} for k in METRICS}
    for b in range(first, first + batches):
        for grid, h in (("fine", dt), ("coarse", 2 * dt))[:2 if coarse else 1]:
            steps, req = time_grid(times, h, lr)
            Q, M, trl, tre = task_trajectory(s, 0, steps, opts, b)
            mets = [task_metrics(model, State(Q[k], M[k], model.heads0))[0] for k in req]
            row = {"gen_error": [x.gen_error for x in mets],
                   "label_error": [x.label_error for x in mets],
                   "test_loss": [x.test_loss for x in mets],
                   "train_loss": trl[req].tolist(), "train_error": tre[req].tolist()}
            for key in METRICS:
                out[key][grid].append(row[key])
        print(f"  batch {b}: train_loss {np.round(out['train_loss']['fine'][-1], 4)} "
              f"(2dt {np.round(out['train_loss']['coarse'][-1], 4) if coarse else '-'}), gen_error "
              f"{np.round(out['gen_error']['fine'][-1], 4)}", flush=True)
    return out


def _mse(x):
    x = np.asarray(x, float)
    return x.mean(0), x.std(0, ddof=1) / math.sqrt(x.shape[0])


def pooled_sim(lines) -> dict:
    """{N: {metric: (seeds, times) array}} from every sim line."""
    out = {}
    for ln in lines:
        d = out.setdefault(ln["N"], {k: [] for k in METRICS})
        for k in METRICS:
            d[k].append(np.asarray(ln["values"][k], float).T)
    return {N: {k: np.concatenate(v) for k, v in d.items()} for N, d in sorted(out.items())}


def fit_inverse_n(Ns, means, ses):
    """Weighted least squares f(N) = a + b/N: (a, se_a, b, se_b, χ²/dof)."""
    X = np.stack([np.ones(len(Ns)), 1.0 / np.asarray(Ns, float)], 1)
    w = 1.0 / np.asarray(ses, float) ** 2
    A = X.T @ (X * w[:, None])
    cov = np.linalg.inv(A)
    coef = cov @ (X.T @ (w * np.asarray(means, float)))
    r = np.asarray(means) - X @ coef
    dof = max(len(Ns) - 2, 1)
    return coef[0], math.sqrt(cov[0, 0]), coef[1], math.sqrt(cov[1, 1]), float(np.sum(w * r ** 2) / dof)


def dmft_summary(lines, paths, sources, dt):
    """{metric: (plain mean, se, corrected mean, se, correction mean, se, batches)} per time over
    the dmft lines of this (paths, sources, dt); the step correction f(dt) − f(2dt) is the mean
    over every line at this dt that has the coarse solve (any paths: it hardly varies, see the
    printed SE), as `solve._step_corrected` does with its first batches."""
    sel = [ln for ln in lines if (ln["paths"], ln.get("sources", ln["paths"] // 2), ln["dt"])
           == (paths, sources, dt)]
    with_coarse = [ln for ln in lines if ln["dt"] == dt and ln.get("coarse", True)]
    out = {}
    for k in METRICS:
        fine = np.concatenate([np.asarray(ln["values"][k]["fine"]) for ln in sel])
        corr = np.concatenate([np.asarray(ln["values"][k]["fine"]) - np.asarray(ln["values"][k]["coarse"])
                               for ln in with_coarse])
        m0, s0 = _mse(fine)
        mc, sc = _mse(corr)
        out[k] = (m0, s0, m0 + mc, np.hypot(s0, sc), mc, sc, len(fine))
    return out


def do_fit(files):
    lines = [json.loads(x) for f in files for x in open(f) if x.strip()]
    sims = [ln for ln in lines if ln["kind"] == "sim"]
    dm = [ln for ln in lines if ln["kind"] == "dmft"]
    times = sims[0]["times"] if sims else dm[0]["times"]
    pool = pooled_sim(sims)
    Ns = list(pool)
    for N in Ns:
        print(f"# sim N = {N}: {pool[N]['train_loss'].shape[0]} seeds")
    settings = sorted({(ln["paths"], ln.get("sources", ln["paths"] // 2), ln["dt"]) for ln in dm})
    dsum = {st: dmft_summary(dm, *st) for st in settings}
    for st in settings:
        print(f"# dmft {dsum[st]['gen_error'][6]} batches x {st[0]} paths ({st[1]} sources), dt {st[2]}")
    for k in METRICS:
        print(f"\n## {k}")
        for i, t in enumerate(times):
            cols = []
            for N in Ns:
                m, se = _mse(pool[N][k][:, i])
                cols.append((m, se))
                print(f"   t={t:<5g} sim N={N:<5d} {m:.5f} ± {se:.5f}")
            if len(Ns) >= 2:
                a, sa, b, sb, chi = fit_inverse_n(Ns, [c[0] for c in cols], [c[1] for c in cols])
                print(f"   t={t:<5g} fit a + b/N: a = {a:.5f} ± {sa:.5f}, b = {b:+.3f} ± {sb:.3f}"
                      f" (χ²/dof {chi:.2f})")
            else:
                a = sa = None
            for st in settings:
                m0, s0, m1, s1, mc, sc, nb = (x if np.ndim(x) == 0 else x[i] for x in dsum[st][k])
                line = (f"   t={t:<5g} dmft {st[0]}p/{st[1]}s dt {st[2]}: plain {m0:.5f} ± {s0:.5f}, corrected "
                        f"{m1:.5f} ± {s1:.5f} (correction {mc:+.5f} ± {sc:.5f})")
                if a is not None:
                    line += f"; corrected − a = {m1 - a:+.5f} (z {(m1 - a) / math.hypot(s1, sa):+.2f})"
                print(line)
    checks(sims, dm)


def checks(sims, dm):
    """The module docstring's checks after the fit (printed)."""
    from scipy import stats
    fine = {(ln["dt"], ln["first_batch"]): ln for ln in dm if ln.get("coarse", True)
            and ln["paths"] == 4000 and ln.get("sources", 2000) == 2000}
    halves = sorted({dt for dt, _ in fine if (2 * dt, _) in fine})
    for dt in halves:
        a = next(ln for (d, _), ln in fine.items() if d == 2 * dt)
        b = next(ln for (d, _), ln in fine.items() if d == dt and ln["first_batch"] == a["first_batch"])
        nb = min(len(a["values"]["train_loss"]["fine"]), len(b["values"]["train_loss"]["fine"]))
        print(f"\n## the step: late step {4 * dt:g}, {2 * dt:g}, {dt:g} on batches "
              f"{a['first_batch']}..{a['first_batch'] + nb - 1} (4000 paths), paired: mean ± SE over batches")
        for k in METRICS:
            f4 = np.asarray(a["values"][k]["coarse"])[:nb]
            f2 = np.asarray(a["values"][k]["fine"])[:nb]
            f1 = np.asarray(b["values"][k]["fine"])[:nb]
            for name, x in ((f"f({2 * dt:g}) − f({4 * dt:g})", f2 - f4), (f"f({dt:g}) − f({2 * dt:g})", f1 - f2),
                            ("R(dt/2) − R(dt)", (2 * f1 - f2) - (2 * f2 - f4))):
                m, se = _mse(x)
                print(f"   {k:12s} {name:16s} " + "  ".join(f"{u:+.5f} ± {v:.5f}" for u, v in zip(m, se)))
    base = [ln for ln in dm if ln["paths"] == 4000 and ln.get("sources", 2000) == 2000 and ln["dt"] == 0.2]
    if base:
        vals = {k: np.concatenate([np.asarray(ln["values"][k]["fine"]) for ln in
                                   sorted(base, key=lambda x: x["first_batch"])]) for k in METRICS}
        corr = {k: np.concatenate([np.asarray(ln["values"][k]["fine"]) - np.asarray(ln["values"][k]["coarse"])
                                   for ln in base]).mean(0) for k in METRICS}
        print("\n## the default normals (batches 0–7, what solve_dmft reports at its defaults) against "
              f"batches 8–{len(vals['train_loss']) - 1}, corrected")
        for k in METRICS:
            m0, s0 = _mse(vals[k][:8])
            m1, s1 = _mse(vals[k][8:])
            print(f"   {k:12s} 0–7: " + "  ".join(f"{u:.5f} ± {v:.5f}" for u, v in zip(m0 + corr[k], s0))
                  + "   rest: " + "  ".join(f"{u:.5f} ± {v:.5f}" for u, v in zip(m1 + corr[k], s1)))
        keys = ("gen_error", "test_loss", "train_loss", "train_error")
        X = np.concatenate([vals[k] for k in keys], 1)
        with np.errstate(invalid="ignore", divide="ignore"):     # a metric exactly 0 (train_error late)
            C = np.corrcoef(X.T)
        nt = vals["gen_error"].shape[1]
        names = [f"{k[:5]}{k.split('_')[1][:1]}@{i}" for k in keys for i in range(nt)]
        print(f"\n## correlation of the DMFT batches' values across metrics and times ({len(X)} batches; @i: time index)")
        print("   " + " ".join(f"{n:>9s}" for n in names))
        for n, r in zip(names, C):
            print(f"   {n:>9s} " + " ".join(f"{x:9.2f}" for x in r[:len(names)]))
    print("\n## one-way ANOVA of the simulation runs (F = between-run / within-run variance; runs of "
          "equal seeds)")
    by = {}
    for ln in sims:
        by.setdefault((ln["N"], ln["seeds"]), []).append(ln)
    for (N, S), lns in sorted(by.items()):
        if len(lns) < 3:
            continue
        for k in ("train_loss", "train_error", "gen_error", "test_loss"):
            A = np.stack([np.asarray(ln["values"][k], float) for ln in lns])   # runs, times, seeds
            msw = A.var(2, ddof=1).mean(0)
            msb = S * A.mean(2).var(0, ddof=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                F = msb / msw
            p = stats.f.sf(F, len(lns) - 1, len(lns) * (S - 1))
            print(f"   N={N} {len(lns)} runs x {S} seeds {k:12s} F " + " ".join(f"{f:5.2f}" for f in F)
                  + "   p " + " ".join(f"{q:.3f}" for q in p))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("sim")
    p.add_argument("--N", type=int, required=True)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--seed", type=int, required=True, help="data seed (distinct per run: runs pool)")
    p.add_argument("--dt", type=float, default=0.2, help="RK4 step (dmft_random_setups' default 0.2)")
    p.add_argument("--float64", action="store_true")
    p.add_argument("--times", default="1,3,10")
    p.add_argument("--out", required=True)
    p = sub.add_parser("dmft")
    p.add_argument("--paths", type=int, default=4000)
    p.add_argument("--response", type=int, default=1000)
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--first-batch", type=int, default=0)
    p.add_argument("--dt", type=float, default=None, help="late step (default 0.2/max(1, lr))")
    p.add_argument("--sources", type=int, default=None, help="source paths (default paths/2)")
    p.add_argument("--fine-only", action="store_true", help="no solve at 2 dt")
    p.add_argument("--times", default="1,3,10")
    p.add_argument("--out", required=True)
    p = sub.add_parser("fit")
    p.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "fit":
        do_fit(a.files)
        return 0
    times = [float(x) for x in a.times.split(",")]
    s = the_setup(times)
    t0 = time.perf_counter()
    if a.cmd == "sim":
        dtype = torch.float64 if a.float64 else torch.float32
        vals = run_sim(s, a.N, a.seeds, a.seed, a.dt, dtype)
        rec = {"kind": "sim", "N": a.N, "seeds": a.seeds, "seed": a.seed, "dt": a.dt,
               "dtype": str(dtype), "times": times, "values": vals}
        for k in ("train_loss", "train_error", "gen_error"):
            m, se = _mse(np.asarray(vals[k]).T)
            print(f"  sim N={a.N} seed {a.seed} x{a.seeds}: {k} {np.round(m, 4)} ± {np.round(se, 4)}")
    else:
        dt = a.dt if a.dt is not None else default_dt(float(s.training.lr))
        vals = run_dmft_batches(s, a.paths, a.batches, a.first_batch, dt, a.response, a.sources,
                                not a.fine_only)
        rec = {"kind": "dmft", "paths": a.paths, "response": a.response, "dt": dt,
               "sources": a.sources if a.sources else a.paths // 2, "coarse": not a.fine_only,
               "first_batch": a.first_batch, "batches": a.batches, "times": times, "values": vals}
    rec["wall_s"] = time.perf_counter() - t0
    print(f"  {a.cmd}: {rec['wall_s']:.1f} s", flush=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

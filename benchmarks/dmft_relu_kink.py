"""Study of relu's kink in the DMFT of full-batch training (docs/DMFT.md §7), on the two related
tasks of `dmft_trunks_nonlinear.py` (`relu_related`):

    prox   finite-N gradient descent (explicit Euler, uniform step h) in which each sample's relu
           force is the kink taken implicitly with c = γ h η/α (`_relu_force`) — the algorithm
           whose N → ∞ limit the engine's former default solved — at several h, against the
           RK4 gradient flow of `mtsp.validate.simulate` (same seeds);
           (--force attracting: the force of kink "crossing"; jump: plain explicit Euler);
    dmft   the engine on the same uniform grid (--kink: its response, "stein" (relu's default) or
           "difference"; or "difference-attracting": the finite-difference response of the
           "attracting" force; the engine's earlier kink treatments, "implicit", "crossing",
           "flips", "jumps", whose rows the results file keeps, are gone: docs/DMFT.md §7);
    baseline  one single-task baseline on the default grid against the stored simulation.
    --single A: prox and dmft on task A's single-task baseline.

    PYTHONPATH=$PWD python benchmarks/dmft_relu_kink.py prox --h 0.2,0.1,0.05 --gamma 1 --seeds 4
    PYTHONPATH=$PWD python benchmarks/dmft_relu_kink.py dmft --h 0.2 --kink stein --times 1,3,10,30
    PYTHONPATH=$PWD python benchmarks/dmft_relu_kink.py baseline --case sep_relu_related --task A --kink stein --paths 8000 --batches 4 --dt 0.2
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from dmft_trunks_nonlinear import CASES
from mtsp.setup import setup_from_dict


def _setup(case, times, task=None):
    """The case's setup at `times`; with `task` (a name) that task's single-task baseline."""
    d = dict(CASES[case])
    d["training"] = dict(d["training"], times=times)
    s = setup_from_dict(d)
    return s if task is None else s.single([t.name for t in s.tasks].index(task))


def _relu_force(h, b, c, force):
    """relu's per-sample force with the kink over c: "both" the kink taken implicitly,
    sgn(b) min(relu(h)/c, |b|) (the engine's former default), "attracting" that ramp only where
    b > 0 and the plain jump where b < 0 (its former kink "crossing"), "jump" g′(h) b."""
    xp = torch if isinstance(h, torch.Tensor) else np
    pos = (h > 0) * 1.0
    if force == "jump":
        return pos * b
    if force == "both":
        return xp.sign(b) * xp.minimum(xp.clip(h, 0, None) / c, xp.abs(b))
    return xp.where((h > 0) & (h < c * b), h / c, pos * b)


def prox(case, hs, times, gamma, N, seeds, task=None, force="both"):
    from mtsp.validate import simulate as simmod
    s = _setup(case, times, task)
    tr = s.training
    alpha = (sum(float(t.alpha) for t in s.tasks) if tr.inputs == "separate" else float(tr.alpha))
    c = {"c": None}

    def backward(self, h, wm, wy, V=None):        # the trunk branch of _Model.backward, relu force
        V = self.V if V is None else V
        a = self.g(h)
        z = torch.matmul(V.unsqueeze(1), a[:, :, None, :, None]).squeeze(-1) + self.neg_mask
        E = wm.unsqueeze(-1) * torch.softmax(z, -1) - wy
        b = torch.matmul(E.unsqueeze(-2), V.unsqueeze(1)).sum(dim=(-3, -2))
        if c["c"] is None:
            return self.gp(h) * b, E, a
        return _relu_force(h, b, c["c"], force), E, a
    original = simmod._Model.backward
    simmod._Model.backward = backward
    try:
        runs = [("rk4", None, 0.2)] + [("euler", gamma * h * float(tr.lr) / alpha, h) for h in hs]
        for method, cc, h in runs:
            c["c"] = cc
            r = simmod.simulate(s, N=N, seeds=seeds, dtype=torch.float32, dt=h, method=method)
            r = r.to_json_dict()["tasks"]
            label = "gradient flow (RK4, step 0.2)" if cc is None else f"{force}-Euler h {h:g}, γ {gamma:g}"
            print(f"sim N {N} {seeds} seeds  {label:32s} " + "  ".join(
                f"{k}: " + " ".join(f"{g:.4f}±{e:.4f}" for g, e in zip(v["gen_error"], v["gen_error_se"]))
                for k, v in r.items()), flush=True)
    finally:
        simmod._Model.backward = original


def dmft(case, hs, times, gamma, kink, paths, response, batches, task=None, width=0.01):
    """The engine on a uniform grid; kink "difference-attracting": the finite-difference response
    (`response.FiniteDifferenceResponse`) of the force of kink "crossing" (`_relu_force`
    "attracting"), i.e. the exact response of the discrete dynamics that "crossing" linearises."""
    from mtsp.numeric.dmft.engine import run_dmft
    from mtsp.numeric.dmft.solve import trunk_loss
    from mtsp.numeric.metrics import task_metrics
    from mtsp.numeric.model import State, theory_model
    from mtsp.numeric.online import Accuracy
    from mtsp.numeric.dmft.trunk import Trunk
    s = _setup(case, times, task)
    loss, alpha = trunk_loss(s)
    gram = np.asarray(s.gram(), float)
    Tp = np.linalg.pinv(gram, hermitian=True)
    model = theory_model(s)
    for h in hs:
        K = int(round(max(times) / h))
        out = []
        use, kk = loss, kink
        if kink == "difference-attracting":
            c = gamma * h * float(s.training.lr) / alpha

            class Attracting(Trunk):
                def grad(self, hh, data, state):
                    a = self.act(hh)[0]
                    b = sum(e @ Vt for (e, _), Vt in zip(self._errors(a, data, state), state))
                    return _relu_force(hh, b, c, "attracting")

                def grad_hess(self, hh, data, state, **kw):    # the paths' own force: the same
                    return self.grad(hh, data, state), super().grad_hess(hh, data, state)[1]
            use, kk = Attracting(loss.classes, loss.noise, loss.weights, loss.heads0, loss.head_lr,
                                 "relu", loss.share.tolist() if loss.separate else None), "difference"
        for b in range(batches):
            tr = run_dmft(use, gram, lr=float(s.training.lr), weight_decay=float(s.training.weight_decay),
                          alpha=alpha, init_scale=float(s.student.init_scale), steps=np.full(K, h),
                          n_paths=paths, n_response=response, rng=np.random.default_rng([9, b]),
                          response=kk, fd_step=width)
            row = []
            for t in times:
                k = int(round(t / h))
                Q = tr.M[k] @ Tp @ tr.M[k].T + tr.Cperp[k]
                row.append([m.gen_error for m in task_metrics(model, State(Q, tr.M[k], tr.states[k]),
                                                              Accuracy(), label=False)])
            out.append(row)
        out = np.array(out)                                   # batch, time, task
        mean, se = out.mean(0), out.std(0, ddof=1) / np.sqrt(batches)
        print(f"dmft {kink} γ {gamma:g} h {h:g} w {width:g} ({batches} x {paths} paths, {response} response)  " + "  ".join(
            f"{t.name}: " + " ".join(f"{g:.4f}±{e:.4f}" for g, e in zip(mean[:, j], se[:, j]))
            for j, t in enumerate(s.tasks)), flush=True)


def baseline(case, task, kink, gamma, paths, response, batches, dt, width=0.02):
    """One single-task baseline of `case` (the cheapest run that showed the late runaway) against
    the stored simulation's single-task run: gen_error at its times and best_gen_error (± SE)."""
    import json
    import os
    import time
    from mtsp.numeric.dmft.solve import DmftOptions, solve_dmft
    d = dict(CASES[case])
    s = setup_from_dict(d)
    k = [t.name for t in s.tasks].index(task)
    here = os.path.dirname(os.path.abspath(__file__))
    sims = [f for f in os.listdir(os.path.join(here, "results"))
            if f.startswith(f"sim_full_batch_{case}_N1000_S")]
    sim = json.load(open(os.path.join(here, "results", sims[0])))["single"][task]
    t0 = time.perf_counter()
    r = solve_dmft(s.single(k), DmftOptions(dt=dt, n_paths=paths, n_response=response,
                                            batches=batches, response=kink, fd_step=width))
    r = r.tasks[task]
    print(f"dmft {case} single {task} {kink} γ {gamma:g} step {width:g} dt {dt} ({batches} x {paths}, {response} response, "
          f"{time.perf_counter() - t0:.0f} s)  " + " ".join(f"{g:.4f}" for g in r["gen_error"])
          + "  (± " + " ".join(f"{e:.4f}" for e in r["gen_error_se"]) + f")  best {r['best_gen_error']:.4f} ± "
          f"{r['best_gen_error_se']:.4f} at {r['best_gen_error_time']:.1f}", flush=True)
    print(f"sim  {sims[0]} single {task}  " + " ".join(f"{g:.4f}" for g in sim["gen_error"])
          + "  (± " + " ".join(f"{e:.4f}" for e in sim["gen_error_se"]) + f")  best {sim['best_gen_error']:.4f}",
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=("prox", "dmft", "baseline"))
    ap.add_argument("--task", default="A", help="baseline: the task whose single-task run is solved")
    ap.add_argument("--single", default=None, help="prox, dmft: solve this task's single-task baseline")
    ap.add_argument("--force", default="both", choices=("both", "attracting", "jump"))
    ap.add_argument("--dt", type=float, default=0.2)
    ap.add_argument("--case", default="relu_related")
    ap.add_argument("--h", default="0.2")
    ap.add_argument("--times", default="1,3,10")
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--kink", default="stein", help="the engine's response (engine.RESPONSES)")
    ap.add_argument("--paths", type=int, default=8000)
    ap.add_argument("--response", type=int, default=4000)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--width", type=float, default=0.01,
                    help="fd_step: the finite-difference step of --kink difference")
    a = ap.parse_args()
    hs = [float(x) for x in a.h.split(",")]
    times = [float(x) for x in a.times.split(",")]
    if a.stage == "baseline":
        baseline(a.case, a.task, a.kink, a.gamma, a.paths, a.response, a.batches, a.dt, a.width)
    elif a.stage == "prox":
        prox(a.case, hs, times, a.gamma, a.N, a.seeds, a.single, a.force)
    else:
        dmft(a.case, hs, times, a.gamma, a.kink, a.paths, a.response, a.batches, a.single, a.width)


if __name__ == "__main__":
    main()

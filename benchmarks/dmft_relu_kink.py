"""Study of relu's kink in the DMFT of full-batch training (docs/DMFT.md §7), on the two related
tasks of `dmft_trunks_nonlinear.py` (`relu_related`):

    prox   finite-N gradient descent (explicit Euler, uniform step h) in which each sample's relu
           force is the engine's implicit kink `trunk._implicit_kink` with c = γ h η/α — the
           algorithm whose N → ∞ limit the engine's default solves — at several h, against the
           RK4 gradient flow of `mtsp.validate.simulate` (same seeds);
    dmft   the engine on the same uniform grid (kink "implicit" with γ, or "difference").

    PYTHONPATH=$PWD python benchmarks/dmft_relu_kink.py prox --h 0.2,0.1,0.05 --gamma 1 --seeds 4
    PYTHONPATH=$PWD python benchmarks/dmft_relu_kink.py dmft --h 0.2 --gamma 1 --kink implicit
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from dmft_trunks_nonlinear import CASES
from mtsp.setup import setup_from_dict


def _setup(case, times):
    d = dict(CASES[case])
    d["training"] = dict(d["training"], times=times)
    return setup_from_dict(d)


def prox(case, hs, times, gamma, N, seeds):
    from mtsp.validate import simulate as simmod
    s = _setup(case, times)
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
        return torch.sign(b) * torch.minimum(torch.clamp(h, min=0) / c["c"], b.abs()), E, a
    original = simmod._Model.backward
    simmod._Model.backward = backward
    try:
        runs = [("rk4", None, 0.2)] + [("euler", gamma * h * float(tr.lr) / alpha, h) for h in hs]
        for method, cc, h in runs:
            c["c"] = cc
            r = simmod.simulate(s, N=N, seeds=seeds, dtype=torch.float32, dt=h, method=method)
            r = r.to_json_dict()["tasks"]
            label = "gradient flow (RK4, step 0.2)" if cc is None else f"prox-Euler h {h:g}, γ {gamma:g}"
            print(f"sim N {N} {seeds} seeds  {label:32s} " + "  ".join(
                f"{k}: " + " ".join(f"{g:.4f}±{e:.4f}" for g, e in zip(v["gen_error"], v["gen_error_se"]))
                for k, v in r.items()), flush=True)
    finally:
        simmod._Model.backward = original


def dmft(case, hs, times, gamma, kink, paths, response, batches):
    from mtsp.numeric.dmft.engine import run_dmft
    from mtsp.numeric.dmft.solve import trunk_loss
    from mtsp.numeric.metrics import task_metrics
    from mtsp.numeric.model import State, theory_model
    from mtsp.numeric.online import Accuracy
    s = _setup(case, times)
    loss, alpha = trunk_loss(s)
    gram = np.asarray(s.gram(), float)
    Tp = np.linalg.pinv(gram, hermitian=True)
    model = theory_model(s)
    for h in hs:
        K = int(round(max(times) / h))
        out = []
        for b in range(batches):
            tr = run_dmft(loss, gram, lr=float(s.training.lr), weight_decay=float(s.training.weight_decay),
                          alpha=alpha, init_scale=float(s.student.init_scale), steps=np.full(K, h),
                          n_paths=paths, n_response=response, rng=np.random.default_rng([9, b]),
                          kink=kink, kink_relax=gamma, kink_step=0.01)
            row = []
            for t in times:
                k = int(round(t / h))
                Q = tr.M[k] @ Tp @ tr.M[k].T + tr.Cperp[k]
                row.append([m.gen_error for m in task_metrics(model, State(Q, tr.M[k], tr.states[k]),
                                                              Accuracy(), label=False)])
            out.append(row)
        out = np.array(out)                                   # batch, time, task
        mean, se = out.mean(0), out.std(0, ddof=1) / np.sqrt(batches)
        print(f"dmft {kink} γ {gamma:g} h {h:g} ({batches} x {paths} paths, {response} response)  " + "  ".join(
            f"{t.name}: " + " ".join(f"{g:.4f}±{e:.4f}" for g, e in zip(mean[:, j], se[:, j]))
            for j, t in enumerate(s.tasks)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=("prox", "dmft"))
    ap.add_argument("--case", default="relu_related")
    ap.add_argument("--h", default="0.2")
    ap.add_argument("--times", default="1,3,10")
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--kink", default="implicit")
    ap.add_argument("--paths", type=int, default=8000)
    ap.add_argument("--response", type=int, default=4000)
    ap.add_argument("--batches", type=int, default=2)
    a = ap.parse_args()
    hs = [float(x) for x in a.h.split(",")]
    times = [float(x) for x in a.times.split(",")]
    if a.stage == "prox":
        prox(a.case, hs, times, a.gamma, a.N, a.seeds)
    else:
        dmft(a.case, hs, times, a.gamma, a.kink, a.paths, a.response, a.batches)


if __name__ == "__main__":
    main()

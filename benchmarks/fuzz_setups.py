"""Fuzz the command line with random valid setups: each ends solved or refused with its reason.

Draws `--count` random setups across the setup space (1–3 tasks of 2–4 classes, noise, weights,
glm or shared students of 1–4 hidden units with every activation, shared or separate inputs,
learning rates, weight decay, initial scales; small times) and, one in `--reach-every`, a setup
pushed past one of the online engine's reach limits (classes, hidden units, learning rate, time
span).  Each is run through ``mtsp.cli.main(["solve", FILE, "--json", ...])`` in this process
with a time limit, and classified:

* solved  — exit 0 and a JSON object whose every number is finite (no NaN, no null);
* refused — exit 2 or 3 with one line ``mtsp: error: <key>: <reason>`` (no traceback);
* timeout — still running at the limit;
* bug     — anything else: an exception escaping `main`, a non-finite or missing number, an
  error without its key.

    python benchmarks/fuzz_setups.py --count 300 --seed 1 > benchmarks/results/fuzz_setups_seed1.txt

tests/test_fuzz.py runs a small sample (`quick=True`: linear trunks and glm students).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import signal
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

ACTIVATIONS = ("linear", "relu", "erf", "tanh")
# setups past one reach limit each: (what, the key the refusal must name, change)
BEYOND = (("classes", "classes", lambda d: d["tasks"][0].update(classes=9)),
          ("hidden", "student.hidden", lambda d: d["student"].update(kind="shared", hidden=17,
                                                                      activation="linear")),
          ("lr", "training.lr", lambda d: d["training"].update(lr=1e6)),
          ("times", "training.times", lambda d: d["training"].update(times=[1e6])))


def random_setup(rng: np.random.Generator, index: int, quick: bool = False) -> dict:
    """A random valid setup as a TOML-ready dict (``quick``: linear trunks and glm students,
    at most two tasks of at most three classes, K ≤ 3, times ≤ 0.5)."""
    n_tasks = int(rng.integers(1, 3 if quick else 4))
    tasks = []
    for t in range(n_tasks):
        task = {"name": f"t{t}", "classes": int(rng.integers(2, 4 if quick else 5)),
                "noise": float(np.round(rng.choice([0.0, rng.uniform(0, 2)]), 3))}
        if rng.random() < 0.3:
            task["weight"] = float(np.round(rng.uniform(0.2, 2), 3))
        if rng.random() < 0.3:
            task["norm"] = float(np.round(rng.uniform(0.3, 4), 3))
        tasks.append(task)
    teacher = {"norm": float(np.round(rng.uniform(0.5, 3), 3)),
               "class_map": str(rng.choice(["aligned", "random"]))}
    if n_tasks > 1:
        teacher["alignment"] = float(np.round(rng.uniform(0, 0.95), 3))
    if rng.random() < 0.3:
        student = {"kind": "glm"}
    else:
        student = {"kind": "shared", "hidden": int(rng.integers(1, 4 if quick else 5)),
                   "activation": "linear" if quick else str(rng.choice(ACTIVATIONS)),
                   "init_scale": float(np.round(rng.uniform(0.05, 1), 3))}
    t_last = float(np.round(rng.uniform(0.1, 0.5 if quick else 1.5), 3))
    times = sorted({float(np.round(t_last * f, 4)) for f in rng.choice([0.25, 0.5, 1.0],
                                                                       size=int(rng.integers(1, 4)))} | {t_last})
    training = {"protocol": "online", "inputs": str(rng.choice(["shared", "separate"])),
                "lr": float(np.round(rng.uniform(0.05, 3), 3)), "times": times}
    if student["kind"] == "shared":
        training["head_lr"] = float(np.round(rng.uniform(0.05, 3), 3))
    if rng.random() < 0.3:
        training["weight_decay"] = float(np.round(rng.uniform(0, 0.5), 3))
    return {"name": f"fuzz {index}", "tasks": tasks, "teacher": teacher, "student": student,
            "training": training}


def to_toml(d: dict) -> str:
    def val(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)
    lines = [f"name = {val(d['name'])}"]
    for t in d["tasks"]:
        lines += ["", "[[tasks]]"] + [f"{k} = {val(v)}" for k, v in t.items()]
    for sec in ("teacher", "student", "training"):
        lines += ["", f"[{sec}]"] + [f"{k} = {val(v)}" for k, v in d[sec].items()]
    return "\n".join(lines) + "\n"


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    else:
        yield obj


def run_one(d: dict, limit: float, folder: str) -> dict:
    """Run ``mtsp solve`` on setup `d` in this process; the outcome (see the module docstring)."""
    from mtsp.cli import main
    path = os.path.join(folder, "setup.toml")
    with open(path, "w") as f:
        f.write(to_toml(d))
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    t0 = time.perf_counter()
    rc, exc = None, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["solve", path, "--json", "-q", "--processes", "1"])
    except _Timeout:
        exc = "timeout"
    except BaseException as e:  # noqa: BLE001  (a bug: what the fuzz looks for)
        exc = f"{type(e).__name__}: {e}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - t0
    if rc in (130, 143):   # the fuzz itself was interrupted or terminated: stop it
        raise KeyboardInterrupt
    text, errs = out.getvalue(), err.getvalue()
    res = {"seconds": round(seconds, 2), "rc": rc}
    if exc == "timeout":
        return dict(res, outcome="timeout", reason=f"still running after {limit:g} s")
    if exc is not None:
        return dict(res, outcome="bug", reason=exc)
    if "Traceback" in errs:
        return dict(res, outcome="bug", reason="traceback on stderr")
    if rc == 0:
        low = text.lower()
        if "nan" in low or "infinity" in low:
            return dict(res, outcome="bug", reason="NaN or infinity printed")
        try:
            js = json.loads(text)
        except ValueError as e:
            return dict(res, outcome="bug", reason=f"output is not JSON ({e})")
        vals = [v for name, task in js["tasks"].items() for v in _numbers(task)]
        if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in vals):
            return dict(res, outcome="bug", reason="a null or non-finite number in the JSON")
        return dict(res, outcome="solved", reason="")
    lines = [x for x in errs.splitlines() if x.startswith("mtsp: error: ")]
    if rc in (2, 3) and len(lines) == 1 and ": " in lines[0][len("mtsp: error: "):]:
        return dict(res, outcome="refused", reason=lines[0][len("mtsp: error: "):])
    return dict(res, outcome="bug", reason=f"exit {rc}: {errs.strip()[-300:]}")


def fuzz(count: int, seed: int = 1, limit: float = 60.0, quick: bool = False,
         reach_every: int = 10, log=None, budget: float = math.inf) -> list[dict]:
    """Draw and run `count` setups (every `reach_every`-th pushed past a reach limit, checked to
    be refused naming its key); returns one record per setup.  No new setup starts after
    `budget` seconds."""
    rng = np.random.default_rng(seed)
    records = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mtsp-fuzz-") as folder:
        for i in range(count):
            if time.perf_counter() - start > budget:
                break
            d = random_setup(rng, i, quick)
            beyond = None
            if reach_every and i % reach_every == reach_every - 1:
                what, key, change = BEYOND[(i // reach_every) % len(BEYOND)]
                change(d)
                beyond = (what, key)
            r = run_one(d, limit, folder)
            r.update(index=i, setup=d, beyond=beyond and beyond[0])
            if beyond is not None and not (r["outcome"] == "refused" and beyond[1] in r["reason"].split(":")[0]):
                r["outcome"], r["reason"] = "bug", f"beyond the {beyond[0]} limit but {r['outcome']}: {r['reason']}"
            records.append(r)
            if log is not None:
                st = d["student"]
                desc = (f"{len(d['tasks'])} task(s) C={[t['classes'] for t in d['tasks']]} "
                        f"{st['kind']}{'' if st['kind'] == 'glm' else ' K=%d %s' % (st['hidden'], st['activation'])} "
                        f"{d['training']['inputs']} lr={d['training']['lr']} t={d['training']['times'][-1]}")
                print(f"{i:4d} {r['outcome']:8s} {r['seconds']:7.2f} s  {desc}"
                      + (f"  [{r['reason']}]" if r["reason"] else ""), file=log, flush=True)
    return records


def summary(records: list[dict]) -> str:
    counts = {}
    for r in records:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    secs = [r["seconds"] for r in records]
    return (f"{len(records)} setups: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            + f"; seconds per setup: median {np.median(secs):.2f}, max {max(secs):.2f}, "
              f"total {sum(secs):.0f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=float, default=60.0, help="seconds per setup")
    ap.add_argument("--quick", action="store_true", help="linear trunks and glm students only")
    ap.add_argument("--reach-every", type=int, default=10)
    ap.add_argument("--budget", type=float, default=math.inf,
                    help="seconds after which no new setup starts (the summary is printed)")
    a = ap.parse_args()
    print(f"# benchmarks/fuzz_setups.py --count {a.count} --seed {a.seed} --limit {a.limit:g}"
          f"{' --quick' if a.quick else ''} --reach-every {a.reach_every} --budget {a.budget:g}", flush=True)
    recs = fuzz(a.count, a.seed, a.limit, a.quick, a.reach_every, log=sys.stdout, budget=a.budget)
    print("# " + summary(recs))
    return 0 if all(r["outcome"] in ("solved", "refused") for r in recs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The trajectory certificate (`numeric.certify`) on a setup file, against a reference solve.

Prints the certificate (`mtsp check SETUP --trajectory`), its time (wall and CPU, this process and
its forked children) and, per task and reported time, the actual distance of the default double
gen_error from a reference: ``--reference high`` (the double path at `accuracy="high"`: rtol 1e-10
and larger quadrature budgets) or ``--reference mp`` (`solve --precision mp`, small cases only),
with the ratio bound / actual (≥ 1 where the certificate holds).
Run: PYTHONPATH=. python benchmarks/certify.py SETUP [--states 3] [--reference high|mp|none]
"""
import argparse
import os
import time

from mtsp.api import certify
from mtsp.numeric.certify import format_certificate
from mtsp.api import solve   # derive, then numeric
from mtsp.setup import setup_from_toml


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("setup")
    ap.add_argument("--states", type=int, default=3)
    ap.add_argument("--dps", type=int, default=20)
    ap.add_argument("--mp-nodes", type=int, default=None)
    ap.add_argument("--reference", choices=["high", "mp", "none"], default="high")
    a = ap.parse_args()
    with open(a.setup) as fh:
        su = setup_from_toml(fh.read())
    print(f"# {a.setup}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    w0, c0 = time.perf_counter(), os.times()
    cert = certify(su, states=a.states, dps=a.dps, nodes=a.mp_nodes)
    w1, c1 = time.perf_counter(), os.times()
    cpu = (c1.user + c1.system + c1.children_user + c1.children_system
           - c0.user - c0.system - c0.children_user - c0.children_system)
    print(format_certificate(cert))
    print(f"certify: wall {w1 - w0:.1f} s, CPU {cpu:.1f} s (with forked children); "
          f"load average after {os.getloadavg()[0]:.1f}", flush=True)
    if a.reference == "none":
        return
    t0 = time.perf_counter()
    ref = solve(su, accuracy="high") if a.reference == "high" else solve(su, precision="mp", dps=a.dps)
    print(f"reference ({a.reference}): {time.perf_counter() - t0:.1f} s")
    print(f"{'task':<6} {'t':>6} {'|default - reference|':>22} {'bound':>9} {'bound/actual':>13}")
    for name, e in cert["tasks"].items():
        for k, t in enumerate(cert["times"]):
            act = abs(e["gen_error"][k] - ref.tasks[name]["gen_error"][k])
            print(f"{name:<6} {t:>6g} {act:22.2e} {e['bound'][k]:9.2e} {e['bound'][k] / max(act, 1e-300):13.1f}")


if __name__ == "__main__":
    main()

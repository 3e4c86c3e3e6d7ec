#!/usr/bin/env python3
"""Outside reference for the output gate's noise calibration.

For a grid of costs and sensitivities, asks `strongroom budget scale` for the noise it would add,
then asks OpenDP (the `opendp` package) what privacy loss that noise gives for the same
sensitivity. The two must agree: rho for the discrete Gaussian (zCDP), epsilon for the discrete
Laplace (pure DP). Exits non-zero on any disagreement.

Usage: python3 tests/reference/opendp_check.py [path/to/strongroom]
"""
import json
import math
import subprocess
import sys

import opendp.prelude as dp

dp.enable_features("contrib")

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/debug/strongroom"
CASES = [
    # (mechanism, cost, l0, linf, quantities)
    ("gaussian", "0.5", 1, 1, 1),
    ("gaussian", "0.25", 10, 300000, 7),
    ("gaussian", "0.01", 4, 30, 2),
    ("gaussian", "2", 16, 1, 3),
    ("gaussian", "0.000001", 1, 1000, 1),
    ("laplace", "1", 1, 1, 1),
    ("laplace", "0.1", 10, 30, 7),
    ("laplace", "3.5", 4, 250000, 2),
]


def ours(mech, cost, l0, linf, q):
    out = subprocess.run(
        [BIN, "budget", "scale", "--mechanism", mech, "--cost", cost, "--l0", str(l0),
         "--linf", str(linf), "--quantities", str(q)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


failures = 0
print(f"{'mechanism':10} {'cost':>9} {'L0':>4} {'Linf':>8} {'Q':>3} {'scale':>14} {'ours/q':>12} {'OpenDP':>12}")
for mech, cost, l0, linf, q in CASES:
    got = ours(mech, cost, l0, linf, q)
    if mech == "gaussian":
        scale = got["sigma"]
        measurement = dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale)
        reference = measurement.map(d_in=float(got["l2_sensitivity"]))
        claimed = got["rho_per_quantity"]
    else:
        scale = got["scale"]
        measurement = dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale)
        reference = measurement.map(d_in=float(got["l1_sensitivity"]))
        claimed = got["epsilon_per_quantity"]
    # OpenDP rounds the sensitivity up to its float grid and accounts conservatively, so it may
    # report a loss a few millionths larger; a calibration error would be off by whole factors.
    ok = math.isclose(reference, claimed, rel_tol=1e-5)
    failures += 0 if ok else 1
    print(f"{mech:10} {cost:>9} {l0:>4} {linf:>8} {q:>3} {scale:>14.6g} {claimed:>12.6g} {reference:>12.6g} {'ok' if ok else 'DISAGREE'}")

if failures:
    print(f"{failures} case(s) disagree with OpenDP")
    sys.exit(1)
print(f"{len(CASES)} passed, 0 failed")

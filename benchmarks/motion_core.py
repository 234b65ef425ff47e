"""Motion-core figures on every real clip: rotation-solver accuracy and speed, feature round trip.

    .venv/bin/python benchmarks/motion_core.py [--data ../shared/data] [--repeats 5]

Prints, per source kind: clips, frames, the rotation solver's FK error against the imported joint
positions (mean / max per-joint millimetres, mean / max bone-direction degrees), the HumanML3D
features -> positions -> features round-trip error, then the solver's throughput in frames per
second on one process (median of several runs). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from irmogen.canonical import canonicalize
from irmogen.data.sources import find_takes
from irmogen.features import features_to_positions, positions_to_features
from irmogen.io import read_source
from irmogen.rotations import fk_errors, solve


def measure(take) -> dict:
    pos = canonicalize(read_source(take.path, asf=take.asf).positions)
    e = fk_errors(pos, *solve(pos))
    f = positions_to_features(pos)
    f2 = positions_to_features(features_to_positions(f, complete=True))
    e["features_rt"] = float(np.abs(f2 - f).max())
    e["frames"] = len(pos)
    e["positions"] = pos
    return e


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(here.parent / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    d = Path(a.data)
    takes = find_takes(cmu=d / "cmu", hdm05=d / "hdm05", deepmimic=d / "deepmimic")
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for take in takes:
        kind = take.source if take.source != "cmu" else f"cmu/{take.path.parent.name}"
        by_kind[kind].append(measure(take))

    print(f"{'source':<14}{'clips':>6}{'frames':>8}{'mean mm':>9}{'max mm':>9}{'mean deg':>10}{'max deg':>9}{'feat rt':>10}")
    everything = []
    for kind, rows in sorted(by_kind.items()):
        everything += rows
        print(f"{kind:<14}{len(rows):>6}{sum(r['frames'] for r in rows):>8}"
              f"{1000 * np.mean([r['mean_joint_m'] for r in rows]):>9.3f}"
              f"{1000 * max(r['max_joint_m'] for r in rows):>9.2f}"
              f"{np.mean([r['mean_bone_deg'] for r in rows]):>10.4f}"
              f"{max(r['max_bone_deg'] for r in rows):>9.3f}"
              f"{max(r['features_rt'] for r in rows):>10.1e}")
    worst = max(everything, key=lambda r: r["mean_joint_m"])
    print(f"worst clip mean joint error {1000 * worst['mean_joint_m']:.3f} mm; "
          f"worst features round trip {max(r['features_rt'] for r in everything):.2e}")

    pos = np.concatenate([r["positions"] for r in everything])
    while len(pos) < 20000:
        pos = np.concatenate([pos, pos])
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        solve(pos)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"rotation solver: {len(pos)} frames in {med:.3f} s (median of {a.repeats}) = {len(pos) / med:,.0f} frames/s")


if __name__ == "__main__":
    main()

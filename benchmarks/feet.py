"""Foot cleanup figures: skate, sliding, ground penetration and joint change, before and after
`irmogen.feet.clean_feet`, on motions the shipped default model generates and on real mocap; and
the cleanup's speed on a 10 s clip.

    .venv/bin/python benchmarks/feet.py [--data ../shared/data] [--dataset DIR] [--cache DIR]
                                        [--samples 3] [--repeats 21]

Generated motions come from the default model through the project's generate task: a dozen
ordinary prompts, each greedy and with `--samples` sampled seeds (a minute or two on one CPU core;
`--cache DIR` keeps them for the next run). Real motions are the CMU walking trials plus the other
real clips (jumps, uneven terrain, DeepMimic) of the data folder and, with `--dataset`, every clip
of a dataset `irmogen data prepare` wrote (its joint positions, rotations solved by
`irmogen.rotations.clip_from_positions`). Every figure is `irmogen.feet.foot_metrics` (the tests
use the same function): a planted foot is one whose ankle and toe are both within 3 cm of their
lowest height on two consecutive frames; skate is the median horizontal speed of planted feet
over all of a set's planted frames; penetration is how far a standing foot's ankle or toe goes
below the floor (`irmogen.feet.floor_heights`). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from irmogen.clip import Clip
from irmogen.feet import clean_feet, foot_metrics, joint_change
from irmogen.io import load_motion

PROMPTS = (
    "a person walks forward", "a person walks in a circle", "a person jogs forward",
    "a person runs forward and stops", "a person walks forward, then turns around and walks back",
    "a person jumps forward", "a person hops on both feet", "a person walks slowly",
    "a person kicks with the right leg", "a person does a squat", "a person dances",
    "a person sneaks forward",
)


def generated(cache: Path | None, samples: int) -> list[Clip]:
    """Per prompt the greedy motion (seed 0) and `samples` sampled ones (seeds 1..samples)."""
    from irmogen.llm.loaders import load_model, resolve_model_spec
    from irmogen.reasoning import tasks

    names = [f"{i:02d}_{seed}.npz" for i in range(len(PROMPTS)) for seed in range(samples + 1)]
    if cache and all((cache / n).is_file() for n in names):
        return [Clip.load(cache / n) for n in names]
    torch.set_num_threads(1)
    model = load_model(resolve_model_spec(None), device="cpu")
    clips = []
    for name in names:
        i, seed = (int(x) for x in name[:-4].split("_"))
        t0 = time.perf_counter()
        opts = {"greedy": False, "seed": seed} if seed else {}
        done = [ev for ev in tasks.generate(model, PROMPTS[i], **opts) if ev.kind == "done"][-1]
        clips.append(done.final_clip)
        print(f"  generated {PROMPTS[i]!r} (seed {seed}): {done.final_clip.num_frames} frames in "
              f"{time.perf_counter() - t0:.1f} s")
        if cache:
            done.final_clip.save(cache / name)
    return clips


def real(data: Path) -> tuple[list[Clip], list[Clip]]:
    """(CMU walking trials of bvh_cc, other real clips: CMU jumps and uneven-terrain walks, DeepMimic)."""
    walks, others = [], []
    with open(data / "cmu" / "cmu_descriptions.csv", newline="", encoding="utf-8") as f:
        labels = {(int(r[0]), int(r[1])): r[2].lower() for r in csv.reader(f) if r[0].isdigit()}
    for path in sorted((data / "cmu" / "bvh_cc").glob("*.bvh.gz")):
        subject, trial = (int(x) for x in path.name.split(".")[0].split("_"))
        label = labels.get((subject, trial), "")
        if label in ("walk", "slow walk"):
            walks.append(load_motion(path))
        elif "jump" in label or "uneven terrain" in label:
            others.append(load_motion(path))
    for path in sorted((data / "deepmimic").glob("humanoid3d_*.txt")):
        others.append(load_motion(path))
    return walks, others


def dataset_clips(folder: Path) -> list[Clip]:
    """Every clip of a prepared dataset (all.txt): its joint positions as a clip at 20 fps."""
    from irmogen.rotations import clip_from_positions

    ids = (folder / "all.txt").read_text(encoding="utf-8").split()
    return [clip_from_positions(np.load(folder / "new_joints" / f"{i}.npy"), 20.0) for i in ids]


def pooled(clips: list[Clip]) -> dict:
    ms = [foot_metrics(c.positions, c.fps) for c in clips]
    speeds = np.concatenate([m["speeds"] for m in ms])
    depths = [m["penetration_m"] for m in ms]
    return {"skate": float(np.median(speeds)), "sliding": float(np.mean(speeds > 0.05)),
            "pen_max": max(depths), "pen_med": float(np.median(depths)), "pen_over_2cm": sum(d > 0.02 for d in depths)}


def report(name: str, clips: list[Clip]) -> dict:
    cleaned = [clean_feet(c)[0] for c in clips]
    b, a = pooled(clips), pooled(cleaned)
    ch = [joint_change(c.positions, d.positions) for c, d in zip(clips, cleaned)]
    print(f"{name} ({len(clips)} clips, {sum(c.num_frames for c in clips)} frames)")
    print(f"  skate (median planted-foot speed)  {b['skate'] * 100:6.1f} -> {a['skate'] * 100:6.1f} cm/s")
    print(f"  planted frames sliding > 5 cm/s    {b['sliding'] * 100:6.1f} -> {a['sliding'] * 100:6.1f} %")
    print(f"  penetration, worst clip            {b['pen_max'] * 100:6.1f} -> {a['pen_max'] * 100:6.1f} cm"
          f"   (median clip {b['pen_med'] * 100:.1f} -> {a['pen_med'] * 100:.1f} cm; clips deeper than 2 cm "
          f"{b['pen_over_2cm']} -> {a['pen_over_2cm']})")
    print(f"  joints moved: mean {np.mean([c['mean_m'] for c in ch]) * 100:.2f} cm, worst joint "
          f"{max(c['max_m'] for c in ch) * 100:.1f} cm, worst joint outside the legs "
          f"{max(c['other_max_m'] for c in ch) * 100:.1f} cm (the root's height: lowered where a leg cannot "
          f"reach, raised where the body sank into the floor)")
    return {"before": b, "after": a}


def speed(clip: Clip, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clean_feet(clip)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=here.parent / "shared" / "data")
    ap.add_argument("--dataset", type=Path, help="a dataset `irmogen data prepare` wrote: its clips too")
    ap.add_argument("--cache", type=Path, help="folder to keep the generated clips in between runs")
    ap.add_argument("--samples", type=int, default=3, help="sampled motions per prompt besides the greedy one")
    ap.add_argument("--repeats", type=int, default=21)
    a = ap.parse_args()
    if a.cache:
        a.cache.mkdir(parents=True, exist_ok=True)
    walks, others = real(a.data)
    gen = generated(a.cache, a.samples)
    w = report("real CMU walking", walks)
    report("other real clips (CMU jumps and uneven terrain, DeepMimic)", others)
    if a.dataset:
        report(f"every clip of the dataset {a.dataset.name} (CMU, HDM05, DeepMimic, with mirrors)",
               dataset_clips(a.dataset))
    g = report("generated by the default model", gen)
    walking = w["before"]["skate"]
    print(f"generated skate after cleanup / real walking skate: {g['after']['skate'] / walking:.2f} "
          f"(before cleanup {g['before']['skate'] / walking:.2f})")
    long_walk = max(walks + others, key=lambda c: c.num_frames)
    ten = long_walk.with_(positions=long_walk.positions[:200], rotations=long_walk.rotations[:200],
                          root_translation=long_walk.root_translation[:200])
    print(f"speed: {speed(ten, a.repeats) * 1000:.1f} ms to clean a {ten.num_frames}-frame ({ten.seconds:.1f} s) "
          f"real walk; median {statistics.median(speed(c, 5) for c in gen) * 1000:.1f} ms per generated clip "
          f"(median of {a.repeats} runs, one process)")


if __name__ == "__main__":
    main()

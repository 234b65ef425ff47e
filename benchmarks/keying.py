"""Keying speed: our bulk F-curve path vs per-frame keyframe_insert, 300 frames on a 60+ bone rig.

The per-frame path is what other text-to-motion add-ons do: update the view layer, set every bone's
rotation and keyframe_insert it, frame after frame. Prints absolute times and the ratio
(target: at least 20x). Run: .venv/bin/python benchmarks/keying.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "addon"))

import bpy  # noqa: E402
import irmogen_extension as ext  # noqa: E402

FRAMES, EXTRA_BONES = 300, 44   # 22 SMPL bones + 44 = 66 bones


def quats(rng, frames: int, bones: int) -> np.ndarray:
    q = rng.normal(size=(frames, bones, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def main() -> None:
    addon = ext.install()
    ext.reset_scene()
    rig = ext.smpl_armature("Bench", extra_bones=EXTRA_BONES)
    names = [b.name for b in rig.pose.bones]
    for b in rig.pose.bones:
        b.rotation_mode = "QUATERNION"
    q = quats(np.random.default_rng(0), FRAMES, len(names))
    frames = np.arange(1, FRAMES + 1, dtype=np.float64)

    t0 = time.perf_counter()
    action = addon.keying.new_action("bulk")
    addon.keying.key_pose(action, rig, frames, {n: q[:, k] for k, n in enumerate(names)},
                          {"pelvis": np.zeros((FRAMES, 3))})
    addon.keying.assign_action(rig, action)
    ours = time.perf_counter() - t0

    rig.animation_data.action = None
    layer = bpy.context.view_layer
    t0 = time.perf_counter()
    for f in range(FRAMES):
        layer.update()
        for k, b in enumerate(rig.pose.bones):
            b.rotation_quaternion = q[f, k]
            b.keyframe_insert("rotation_quaternion", frame=f + 1)
        rig.pose.bones["pelvis"].keyframe_insert("location", frame=f + 1)
    theirs = time.perf_counter() - t0

    print(f"keying {FRAMES} frames x {len(names)} bones ({bpy.app.version_string})")
    print(f"  bulk (keying.key_pose):          {ours * 1000:9.1f} ms")
    print(f"  per-frame keyframe_insert:       {theirs * 1000:9.1f} ms")
    print(f"  speed-up:                        {theirs / ours:9.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()

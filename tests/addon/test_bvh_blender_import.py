"""Our BVH writer read by Blender's own importer lands every joint where our reader puts it."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from irmogen.io import load_motion, read_source, save_bvh  # noqa: E402
from irmogen.skeleton import JOINT_NAMES  # noqa: E402


@pytest.mark.blender
@pytest.mark.realdata
def test_blender_import_matches_our_reader(data_dir, tmp_path, capsys):
    clip = load_motion(data_dir / "cmu/bvh_cc/002_01.bvh.gz")
    path = save_bvh(clip, tmp_path / "walk.bvh")
    ours = read_source(path, fps=None).positions                     # (T, 22, 3) Y up, metres

    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.import_anim.bvh(
        filepath=str(path), target="ARMATURE", global_scale=1.0, frame_start=1,
        use_fps_scale=False, update_scene_fps=True, update_scene_duration=True, use_cyclic=False,
        rotate_mode="NATIVE", axis_forward="-Z", axis_up="Y")
    assert result == {"FINISHED"}
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    assert sorted(b.name for b in arm.pose.bones) == sorted(JOINT_NAMES)
    scene = bpy.context.scene
    theirs = np.zeros_like(ours)
    for t in range(len(ours)):
        scene.frame_set(t + 1)
        world = arm.matrix_world
        for j, name in enumerate(JOINT_NAMES):
            x, y, z = world @ arm.pose.bones[name].head
            theirs[t, j] = (x, z, -y)                                 # Blender Z up -> our Y up
    err = float(np.abs(theirs - ours).max())
    with capsys.disabled():
        print(f"\nBlender importer vs our reader: {len(ours)} frames, max disagreement {err * 1000:.4f} mm")
    assert err < 1e-3

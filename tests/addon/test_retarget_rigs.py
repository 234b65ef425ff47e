"""Retargeting a real clip onto rigs built in bpy: every mapped bone points where the source bone does.

Rigs: SMPL proportions (T-pose), Mixamo names with other proportions, random rolls and an FBX-like
object transform, a Rigify rig generated from the human metarig (FK controls), and a UE5-named
A-pose rig. The pose is applied per frame through Blender's own evaluation; bone directions are
read from the evaluated pose and compared with the clip's positions turned into Blender axes.
Rigify runs in a child process (this file run as a script): after rigify_generate the bpy 4.5
module hangs at interpreter exit (its delayed-close thread), which would hang the test run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from rigs import (MIXAMO_OBJECT_MATRIX, REPO, addon_module, build_armature, build_rigify,  # noqa: E402
                  mixamo_layout, smpl_layout, ue5_layout)
from test_retarget_math import source_directions  # noqa: E402

retarget = addon_module("retarget")
rigmap = addon_module("rigmap")
armature = addon_module("armature")
pytestmark = [pytest.mark.blender, pytest.mark.realdata]
FRAMES = 60  # 3 s of the clip keep the file fast


@pytest.fixture(scope="module")
def clip(data_dir):
    from irmogen.io import load_motion

    c = load_motion(data_dir / "cmu/bvh_cc/002_01.bvh.gz")          # a walk, 20 fps
    n = min(FRAMES, c.num_frames)
    return {"fps": c.fps, "offsets": c.offsets, "rotations": c.rotations[:n],
            "root_translation": c.root_translation[:n], "positions": c.positions[:n]}


@pytest.fixture(scope="module")
def maps():
    return rigmap.load_maps(REPO / "rigs")


def fresh_scene(fps: int = 20):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = fps
    bpy.context.scene.render.fps_base = 1.0


def make_rig(kind: str):
    if kind == "smpl":
        return build_armature("SMPL", smpl_layout())
    if kind == "mixamo":
        return build_armature("Mixamo", mixamo_layout(), MIXAMO_OBJECT_MATRIX)
    return build_armature("UE5", ue5_layout())


def retarget_onto(obj, clip, maps, **options):
    found = rigmap.detect([b.name for b in obj.data.bones], maps)
    armature.prepare_rig(obj, found.properties)
    rest = armature.rig_rest_from_object(obj)
    opts = retarget.RetargetOptions(scene_fps=bpy.context.scene.render.fps, **options)
    return found, rest, retarget.retarget_clip(rest, clip, found.mapping, opts)


def world_bone_axes(obj, names) -> np.ndarray:
    """(len(names), 3) unit world direction (head -> tail) of each evaluated pose bone."""
    world = np.array(obj.matrix_world)
    out = []
    for n in names:
        pb = obj.pose.bones[n]
        d = world[:3, :3] @ (np.array(pb.tail) - np.array(pb.head))
        out.append(d / np.linalg.norm(d))
    return np.array(out)


def direction_errors_in_blender(obj, tracks, clip, mapping) -> np.ndarray:
    src = source_directions(clip, tracks.yaw)
    joints = list(mapping)
    idx = [retarget.INDEX[j] for j in joints]
    errs = []
    for k in range(tracks.num_frames):
        armature.apply_tracks_to_pose(obj, tracks, k)
        got = world_bone_axes(obj, [mapping[j] for j in joints])
        cos = np.clip(np.sum(got * src[k, idx], -1), -1.0, 1.0)
        errs.append(np.degrees(np.arccos(cos)))
    return np.array(errs)


@pytest.mark.parametrize("kind, expect_map", [("smpl", "smpl"), ("mixamo", "mixamo"),
                                              ("ue5_apose", "ue5_mannequin")])
def test_mapped_bones_follow_source_directions(kind, expect_map, clip, maps, capsys):
    fresh_scene()
    obj = make_rig(kind)
    found, rest, tracks = retarget_onto(obj, clip, maps)
    assert found.name == expect_map, found.report
    err = direction_errors_in_blender(obj, tracks, clip, found.mapping)
    worst = found.mapping[list(found.mapping)[int(np.argmax(err.max(axis=0)))]]
    with capsys.disabled():
        print(f"\n{kind}: {found.report}\n  {tracks.num_frames} frames x {err.shape[1]} bones: "
              f"direction error mean {err.mean():.4f} deg, max {err.max():.4f} deg (worst {worst}); "
              f"scale {tracks.scale:.3f}")
    assert err.mean() < 2.0 and err.max() < 5.0


def rigify_errors(clip) -> dict:
    """Generate Rigify, retarget onto its FK controls, measure the controls and the DEF bones."""
    fresh_scene()
    obj = build_rigify()
    maps = rigmap.load_maps(REPO / "rigs")
    found, rest, tracks = retarget_onto(obj, clip, maps)
    err = direction_errors_in_blender(obj, tracks, clip, found.mapping)
    # With the map's switches set (FK arms and legs), the DEF bones move with the keyed controls;
    # DEF-spine and the neck/head segments span other joints than SMPL's, so they are left out.
    deform = {j: names[0] for j, names in maps["rigify_deform"].joints.items() if j not in ("pelvis", "neck", "head")}
    err_def = direction_errors_in_blender(obj, tracks, clip, deform)
    return {"map": found.name, "report": found.report, "frames": tracks.num_frames, "bones": err.shape[1],
            "mean": float(err.mean()), "max": float(err.max()), "def_mean": float(err_def.mean()),
            "def_max": float(err_def.max()), "warnings": armature.relevant_warnings(rest, found.mapping.values()),
            "switches": sorted(found.properties)}


@pytest.fixture(scope="module")
def rigify_result(clip, tmp_path_factory):
    path = tmp_path_factory.mktemp("rigify") / "clip.npz"
    np.savez(path, **clip)
    run = subprocess.run([sys.executable, __file__, str(path)], capture_output=True, text=True,
                         timeout=900, stdin=subprocess.DEVNULL)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"rigify child failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.slow
def test_rigify_fk_controls_follow_source_directions(rigify_result, capsys):
    r = rigify_result
    with capsys.disabled():
        print(f"\nrigify: {r['report']}\n  {r['frames']} frames x {r['bones']} FK controls: direction error "
              f"mean {r['mean']:.4f} deg, max {r['max']:.4f} deg; DEF bones mean {r['def_mean']:.4f}, "
              f"max {r['def_max']:.4f} deg; switches set on {r['switches']}; "
              f"{len(r['warnings'])} partial constraints assumed rigid")
    assert r["map"] == "rigify"
    assert r["mean"] < 2.0 and r["max"] < 5.0


@pytest.mark.slow
def test_rigify_deform_bones_follow_the_fk_controls(rigify_result):
    assert rigify_result["def_mean"] < 2.0 and rigify_result["def_max"] < 5.0


def test_root_modes_in_blender(clip, maps):
    fresh_scene()
    obj = build_armature("UE5", ue5_layout())
    world = np.array(obj.matrix_world)

    def hips_path(tracks, bone="pelvis"):
        out = []
        for k in range(tracks.num_frames):
            armature.apply_tracks_to_pose(obj, tracks, k)
            out.append((world @ np.append(np.array(obj.pose.bones[bone].head), 1.0))[:3])
        return np.array(out)

    _, _, on_hips = retarget_onto(obj, clip, maps)
    _, _, in_place = retarget_onto(obj, clip, maps, root_motion="in_place")
    _, _, on_root = retarget_onto(obj, clip, maps, root_motion="root_bone", root_bone="root")
    walk, still, rooted = hips_path(on_hips), hips_path(in_place), hips_path(on_root)
    assert np.linalg.norm(walk[-1, :2] - walk[0, :2]) > 0.5          # the walk travels
    assert np.abs(still[:, :2] - still[0, :2]).max() < 1e-5          # in place: no horizontal travel
    assert np.allclose(still[:, 2], walk[:, 2], atol=1e-5)           # ... but the same height
    assert np.allclose(rooted, walk, atol=1e-4)                      # root mode: hips end up the same
    root_path = hips_path(on_root, "root")
    assert np.allclose(root_path[:, :2] - root_path[0, :2], walk[:, :2] - walk[0, :2], atol=1e-4)
    assert np.abs(root_path[:, 2]).max() < 1e-6


def test_scene_fps_and_untouched_bones(clip, maps):
    fresh_scene(fps=30)
    obj = build_armature("Mixamo", mixamo_layout(), MIXAMO_OBJECT_MATRIX)
    rest_basis = {pb.name: np.array(pb.matrix_basis) for pb in obj.pose.bones}
    found, _, tracks = retarget_onto(obj, clip, maps)
    seconds = len(clip["rotations"]) / clip["fps"]
    assert tracks.num_frames == round(seconds * 30)
    unmapped = [n for n in rest_basis if n not in found.mapping.values()]
    assert sorted(unmapped) == ["mixamorig:HeadTop_End", "mixamorig:LeftHandIndex1", "mixamorig:LeftToe_End"]
    assert not set(unmapped) & (set(tracks.rotations) | set(tracks.locations))
    armature.apply_tracks_to_pose(obj, tracks, tracks.num_frames // 2)
    for n in unmapped:
        assert np.allclose(np.array(obj.pose.bones[n].matrix_basis), rest_basis[n])
        pb = obj.pose.bones[n]                                         # still rigid on its parent
        rel = np.linalg.inv(np.array(pb.parent.matrix)) @ np.array(pb.matrix)
        rest_rel = np.linalg.inv(np.array(pb.parent.bone.matrix_local)) @ np.array(pb.bone.matrix_local)
        assert np.allclose(rel, rest_rel, atol=1e-4)  # float32 pose matrices (0.1 mm)


@pytest.mark.parametrize("order", ["XYZ", "YXZ", "ZYX"])
def test_euler_conversion_matches_mathutils(order):
    from mathutils import Euler, Quaternion

    rng = np.random.default_rng(5)
    q = rng.normal(size=(30, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    ours = retarget.quat_to_euler(q, order)
    for k in range(30):
        theirs = Quaternion(q[k]).to_euler(order)
        assert np.allclose(np.array(theirs.to_matrix()), retarget.quat_to_matrix(q[k]), atol=1e-6)
        assert np.allclose(np.array(Euler(ours[k], order).to_matrix()), retarget.quat_to_matrix(q[k]), atol=1e-6)


if __name__ == "__main__":
    # Child process of rigify_result: measure, print one JSON line, leave without bpy's exit hang.
    with np.load(sys.argv[1]) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["fps"] = float(arrays["fps"])
    print("RESULT " + json.dumps(rigify_errors(arrays)), flush=True)
    os._exit(0)

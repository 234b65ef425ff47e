"""The bone-map editor in the installed add-on: auto-detection, hand-made maps, saved rig maps.

Armatures whose names no rig map knows: a mocap skeleton imported with Blender's own BVH importer
(joints named LeftShoulder/LeftElbow/..., from a real CMU walk), the mannequin with its bones
renamed bone_000... in shuffled order, and a Mixamo-proportioned rig with meaningless names under
an FBX-like object transform. After Auto-detect (and, separately, with the mapping picked by hand
in the editor's fields) a real clip is retargeted and every mapped bone's direction, read from
Blender's evaluated pose, is compared with the clip's.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402
from rigs import MIXAMO, MIXAMO_OBJECT_MATRIX, build_armature, mixamo_layout  # noqa: E402
from test_retarget_rigs import direction_errors_in_blender  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.realdata]
FRAMES = 60
# A BVH naming convention no shipped map knows (its LeftShoulder is the upper arm, not Mixamo's collar).
BVH_NAMES = dict(zip(
    ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
     "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
     "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist"),
    ("Hips", "LeftHip", "RightHip", "Abdomen", "LeftKnee", "RightKnee", "Chest", "LeftAnkle", "RightAnkle",
     "UpperChest", "LeftToe", "RightToe", "Neck", "LeftCollar", "RightCollar", "Head", "LeftShoulder",
     "RightShoulder", "LeftElbow", "RightElbow", "LeftWrist", "RightWrist")))


@pytest.fixture(scope="module")
def clip(data_dir):
    from irmogen.io import load_motion

    c = load_motion(data_dir / "cmu/bvh_cc/002_01.bvh.gz")          # a walk, 20 fps
    return {"fps": c.fps, "offsets": c.offsets, "rotations": c.rotations[:FRAMES],
            "root_translation": c.root_translation[:FRAMES], "positions": c.positions[:FRAMES], "_clip": c}


@pytest.fixture()
def addon():
    mod = ext.install()
    ext.reset_scene()
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 20, 1.0
    return mod


def bonemap():
    return importlib.import_module(ext.PACKAGE + ".bonemap")


def renamed_bvh(clip, tmp_path) -> Path:
    """The clip written as BVH (the backend's exporter) with joint names no rig map knows."""
    from irmogen.io import save_bvh

    path = save_bvh(clip["_clip"], tmp_path / "walk.bvh")
    text = re.sub(r"\b(ROOT|JOINT) (\w+)", lambda m: f"{m[1]} {BVH_NAMES[m[2]]}", path.read_text())
    path.write_text(text)
    return path


def mocap_skeleton(clip, tmp_path):
    """The renamed BVH opened by Blender's BVH importer (defaults): an armature of mocap names."""
    path = renamed_bvh(clip, tmp_path)
    assert bpy.ops.import_anim.bvh(filepath=str(path)) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    obj.animation_data_clear()                                       # keep its rest, drop its own keys
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    return obj, {j: BVH_NAMES[j] for j in BVH_NAMES}


def renamed_mannequin(seed: int = 3):
    """The add-on's mannequin with every bone renamed bone_000... in a shuffled order."""
    bpy.ops.irmogen.add_mannequin()
    obj = bpy.context.view_layer.objects.active
    bones = list(obj.data.bones)
    order = np.random.default_rng(seed).permutation(len(bones))
    truth = {}
    for n, k in enumerate(order):
        truth[bones[k].name] = f"bone_{n:03d}"
    for old, new in truth.items():
        obj.data.bones[old].name = new
    return obj, truth


def renamed_mixamo():
    bones = mixamo_layout(prefix="")
    rename = {b.name: f"b{k:02d}_{'x' * (k % 3)}" for k, b in enumerate(bones)}
    for b in bones:
        b.name, b.parent = rename[b.name], rename.get(b.parent) if b.parent else None
    obj = build_armature("Anon", bones, MIXAMO_OBJECT_MATRIX)
    return obj, {j: rename[m] for j, m in MIXAMO.items()}


def retarget_errors(addon, obj, clip, mapping_result):
    """Retarget through the add-on's own modules; (frames, mapped) direction errors in degrees."""
    armature = importlib.import_module(ext.PACKAGE + ".armature")
    retarget = importlib.import_module(ext.PACKAGE + ".retarget")
    armature.prepare_rig(obj, mapping_result.properties)
    rest = armature.rig_rest_from_object(obj)
    tracks = retarget.retarget_clip(rest, clip, mapping_result.mapping, retarget.RetargetOptions(scene_fps=20.0))
    return direction_errors_in_blender(obj, tracks, clip, mapping_result.mapping)


def rig(kind, clip, tmp_path):
    if kind == "bvh_mocap":
        return mocap_skeleton(clip, tmp_path)
    if kind == "mannequin_renamed":
        obj, rename = renamed_mannequin()
        return obj, {j: rename[j] for j in rename}
    return renamed_mixamo()


KINDS = ["bvh_mocap", "mannequin_renamed", "mixamo_anonymous"]


@pytest.mark.parametrize("kind", KINDS)
def test_auto_detect_then_retarget_follows_the_source(addon, kind, clip, tmp_path, capsys):
    obj, truth = rig(kind, clip, tmp_path)
    bm = bonemap()
    assert bm.check_rig(obj) is None
    with pytest.raises(Exception):                                   # no map knows these names
        bm.rigmap.detect([b.name for b in obj.data.bones], bm.rig_maps())
    assert bpy.ops.irmogen.detect_bones() == {"FINISHED"}
    found = bm.mapping_for(obj, bm.rig_maps())                        # what Generate / Apply use
    assert found.mapping == {j: b for j, b in truth.items()}, found.report
    err = retarget_errors(addon, obj, clip, found)
    with capsys.disabled():
        print(f"\n{kind} (auto-detect): {found.report}\n  {err.shape[0]} frames x {err.shape[1]} bones: "
              f"limb direction error mean {err.mean():.4f} deg, max {err.max():.4f} deg")
    assert err.mean() < 2.0 and err.max() < 5.0


@pytest.mark.parametrize("kind", ["bvh_mocap", "mannequin_renamed"])
def test_hand_made_mapping_retargets_and_wins_over_detection(addon, kind, clip, tmp_path, capsys):
    obj, truth = rig(kind, clip, tmp_path)
    bm = bonemap()
    group = getattr(obj.data, bm.PROPERTY)
    for joint, bone in truth.items():                                # what the editor's pickers set
        setattr(group, joint, bone)
    found = bm.mapping_for(obj, bm.rig_maps())
    assert found.mapping == truth and "by hand" in found.report
    err = retarget_errors(addon, obj, clip, found)
    with capsys.disabled():
        print(f"\n{kind} (by hand): {err.shape[0]} frames x {err.shape[1]} bones: "
              f"limb direction error mean {err.mean():.4f} deg, max {err.max():.4f} deg")
    assert err.mean() < 2.0 and err.max() < 5.0
    # The stored mapping is used as it is, even where detection would choose otherwise.
    group.left_wrist, group.right_wrist = truth["right_wrist"], truth["left_wrist"]
    assert bm.mapping_for(obj, bm.rig_maps()).mapping["left_wrist"] == truth["right_wrist"]
    # A stored bone that was renamed away is reported by name before anything runs.
    obj.data.bones[truth["left_knee"]].name = "gone"
    assert "left_knee" in bm.check_rig(obj) and "does not have" in bm.check_rig(obj)


@pytest.mark.parametrize("kind", ["bvh_mocap", "mannequin_renamed"])
def test_apply_keys_the_mapping_edited_in_the_editor(addon, kind, clip, tmp_path, capsys):
    """Apply, as an animator runs it, retargets with the editor's mapping: after Auto-detect the left
    wrist's field is cleared by hand, so that bone stays unkeyed while every other mapped bone, played
    back by Blender from the take's keys, points where the source bone does."""
    from test_retarget_math import source_directions
    from test_retarget_rigs import world_bone_axes

    obj, truth = rig(kind, clip, tmp_path)
    bm = bonemap()
    assert bpy.ops.irmogen.detect_bones() == {"FINISHED"}
    getattr(obj.data, bm.PROPERTY).left_wrist = ""                  # the animator's edit
    path = addon.clipfile.save_npz({k: clip[k] for k in ("fps", "offsets", "rotations", "root_translation",
                                                         "positions")}, tmp_path / "walk.npz")
    scene = bpy.context.scene
    scene.frame_set(1)
    assert bpy.ops.irmogen.apply_clip(filepath=str(path)) == {"FINISHED"}, scene.irmogen.error_message
    assert "by hand" not in scene.irmogen.rig_report and "21/22" in scene.irmogen.rig_report
    mapped = {j: b for j, b in truth.items() if j != "left_wrist"}
    heads = {j: np.array(obj.matrix_world) @ np.array([*obj.data.bones[truth[j]].head_local, 1.0])
             for j in ("left_hip", "right_hip")}
    left = heads["left_hip"] - heads["right_hip"]
    src = source_directions(clip, float(np.arctan2(left[1], left[0])))   # the rig's facing
    index = [bm.rigmap.JOINT_NAMES.index(j) for j in mapped]
    errs, wrist, frames = [], [], len(clip["positions"])
    for k in range(frames):
        scene.frame_set(1 + k)
        got = world_bone_axes(obj, list(mapped.values()))
        errs.append(np.degrees(np.arccos(np.clip(np.sum(got * src[k, index], -1), -1.0, 1.0))))
        wrist.append(np.array(obj.pose.bones[truth["left_wrist"]].matrix_basis))
    err = np.array(errs)
    with capsys.disabled():
        print(f"\n{kind} (Apply with an edited map): {scene.irmogen.rig_report}\n  {err.shape[0]} frames x "
              f"{err.shape[1]} bones, from the keys: limb direction error mean {err.mean():.4f} deg, "
              f"max {err.max():.4f} deg")
    assert err.mean() < 2.0 and err.max() < 5.0
    np.testing.assert_allclose(wrist, np.broadcast_to(np.eye(4), (frames, 4, 4)), atol=1e-6)


def test_apply_a_bvh_file_whose_joint_names_no_map_knows(addon, clip, tmp_path):
    """Apply Clip on a BVH file with LeftShoulder/LeftElbow-style names (no rig map fits them): its
    joints are found by the skeleton's shape, and the motion read from it is the source's, every
    joint of every frame within 1 mm (a joint given the wrong role would be centimetres off)."""
    path = renamed_bvh(clip, tmp_path)
    bpy.ops.irmogen.add_mannequin()
    obj = bpy.context.view_layer.objects.active
    assert bpy.ops.irmogen.apply_clip(filepath=str(path)) == {"FINISHED"}, bpy.context.scene.irmogen.error_message
    read = addon.jobs.take_clip(addon.takes.current_take(obj))
    assert read["positions"].shape == clip["positions"].shape
    np.testing.assert_allclose(read["positions"], clip["positions"], atol=1e-3)


def test_mapping_is_saved_with_the_blend(addon, tmp_path):
    obj, truth = renamed_mannequin()
    assert bpy.ops.irmogen.detect_bones() == {"FINISHED"}
    name, path = obj.name, tmp_path / "mapped.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    ext.reset_scene()
    assert name not in bpy.data.objects
    bpy.ops.wm.open_mainfile(filepath=str(path))
    obj = bpy.data.objects[name]
    assert bonemap().stored(obj) == {j: truth[j] for j in truth}
    assert getattr(obj.data, bonemap().PROPERTY).source == "shape"


def test_save_rig_map_to_the_user_folder(addon):
    obj, truth = renamed_mannequin(seed=9)
    bm = bonemap()
    assert bpy.ops.irmogen.detect_bones() == {"FINISHED"}
    assert bpy.ops.irmogen.save_rig_map(name="renamed_mannequin", description="test rig") == {"FINISHED"}
    saved = bm.user_rigs_dir() / "renamed_mannequin.toml"
    assert saved.is_file()
    installed = Path(importlib.import_module(ext.PACKAGE).__file__).resolve().parent
    assert not saved.resolve().is_relative_to(installed)              # kept when the extension is reinstalled
    # Another armature with these names is now recognised by the saved map, by names alone.
    bpy.ops.irmogen.clear_bone_map()
    found = bm.mapping_for(obj, bm.rig_maps())
    assert found.name == "renamed_mannequin" and found.mapping == truth
    bpy.context.scene.irmogen.rig_map = "renamed_mannequin"          # the Bone Map menu offers it
    bpy.context.scene.irmogen.rig_map = "AUTO"
    saved.unlink()
    bm.forget_maps()


def test_check_rig_refuses_bad_armatures_in_one_line(addon):
    bm = bonemap()
    data = bpy.data.armatures.new("One")
    one = bpy.data.objects.new("One", data)
    bpy.context.scene.collection.objects.link(one)
    bpy.context.view_layer.objects.active = one
    bpy.ops.object.mode_set(mode="EDIT")
    b = data.edit_bones.new("Bone")
    b.head, b.tail = (0, 0, 0), (0, 0, 1)
    bpy.ops.object.mode_set(mode="OBJECT")
    problem = bm.check_rig(one)
    assert problem and "\n" not in problem and "1 bone" in problem and "'One'" in problem
    with pytest.raises(RuntimeError, match="1 bone"):                # the operator reports the same line
        bpy.ops.irmogen.detect_bones()
    assert not bm.stored(one)                                        # nothing half-written
    from test_rigdetect import quadruped
    four = build_armature("Four", quadruped())
    problem = bm.check_rig(four)
    assert problem and "4 legs" in problem and "'Four'" in problem
    assert "not an armature" in bm.check_rig(None)

"""Every operator, headless, from the installed zip against the REAL backend process (tiny model).

Generate makes takes (NLA strip with explicit settings, custom properties, transcript rounds);
use_round and refine make child takes; cancel stops a job; apply_clip retargets a real CMU clip
(.npz and BVH); FBX round-trips with equal keys at integer frames; BVH opens in Blender's importer;
setup_backend without online access reports the command to run.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]


@pytest.fixture(scope="module")
def generated(addon):
    """One generation shared by the tests that build on it."""
    rig = ext.smpl_armature("Hero")
    scene = bpy.context.scene
    scene.frame_set(10)
    s = scene.irmogen
    s.prompt, s.max_rounds, s.seconds, s.variations = "a person walks forward", 2, 2.0, 1
    assert bpy.ops.irmogen.generate() == {"FINISHED"}, s.error_message
    return rig, addon.takes.current_take(rig)


def test_generate_makes_a_take_on_the_timeline(addon, generated):
    rig, take = generated
    takes = addon.takes
    info = takes.read_info(take)
    assert info.kind == "generate" and info.prompt == "a person walks forward" and info.rounds >= 1
    transcript = json.loads(info.transcript)
    assert transcript["analysis"] and any(r.get("clip") for r in transcript["rounds"])
    strip = takes.take_strip(rig, take)
    assert (strip.frame_start, strip.blend_type, strip.extrapolation) == (10.0, "COMBINE", "NOTHING")
    s = bpy.context.scene.irmogen
    assert not s.running and s.transcript_take == take.name and len(s.rounds) >= 1 and s.analysis
    assert not s.error_message
    # the keys move the mapped bones
    fc_count = sum(1 for _ in addon.keying.ChannelWriter(take, rig).channels())
    assert fc_count >= 4 * 20


def test_use_round_makes_that_round_the_active_motion(addon, generated):
    rig, take = generated
    first = json.loads(addon.takes.read_info(take).transcript)["rounds"][0]["round"]
    assert bpy.ops.irmogen.use_round(take=take.name, round=first) == {"FINISHED"}
    new = addon.takes.current_take(rig)
    info = addon.takes.read_info(new)
    assert new != take and info.kind == "round" and info.round_used == first and info.parent == take.name
    with pytest.raises(RuntimeError, match="no motion for round 99"):  # reported as an error
        bpy.ops.irmogen.use_round(take=take.name, round=99)
    assert "round 99" in bpy.context.scene.irmogen.error_message


def test_refine_makes_a_child_take(addon, generated):
    rig, take = generated
    scene = bpy.context.scene
    scene.irmogen.take_index = bpy.data.actions.find(take.name)
    scene.irmogen.instruction = "raise the arms higher"
    n = len(addon.takes.takes_of(rig))
    assert bpy.ops.irmogen.refine() == {"FINISHED"}, scene.irmogen.error_message
    new = addon.takes.current_take(rig)
    info = addon.takes.read_info(new)
    assert len(addon.takes.takes_of(rig)) == n + 1
    assert info.kind == "refine" and info.parent == take.name and info.extra["instruction"] == "raise the arms higher"


def test_cancel(addon, generated):
    assert bpy.ops.irmogen.cancel() == {"CANCELLED"}  # nothing running
    s = addon.properties.read(bpy.context.scene)
    s.max_rounds = 5
    jobs = addon.jobs.start_generate(bpy.context, s)
    assert bpy.ops.irmogen.cancel() == {"FINISHED"}
    addon.jobs.wait(jobs, timeout=300)
    assert jobs[0].status in {"cancelled", "done"}  # the tiny model may beat the cancel
    made, errors = addon.jobs.finish(jobs)
    assert not errors and bpy.context.scene.irmogen.running is False


def test_missing_backend_shows_the_fix_in_the_panel(addon, generated, monkeypatch):
    prefs = bpy.context.preferences.addons[ext.PACKAGE].preferences
    monkeypatch.setenv("IRMOGEN_BACKEND_PYTHON", "/nonexistent/python")
    monkeypatch.setattr(prefs, "python_path", "")
    with pytest.raises(RuntimeError, match="no Python with the IRMoGen backend"):
        bpy.ops.irmogen.generate()
    s = bpy.context.scene.irmogen
    assert "no Python" in s.error_message and s.error_fix == "irmogen.setup_backend" and s.error_hint


def _keys(rig, frames):
    out = []
    for f in frames:
        bpy.context.scene.frame_set(f)
        out.append([np.array(pb.matrix) for pb in sorted(rig.pose.bones, key=lambda b: b.name)])
    return np.array(out)


def test_export_fbx_round_trip(addon, generated, tmp_path):
    rig, _ = generated
    bpy.context.view_layer.objects.active = rig
    take = addon.takes.current_take(rig)
    start, end = (int(v) for v in addon.keying.frame_range(take))
    frames = list(range(start, end + 1, 3))
    ours = _keys(rig, frames)
    path = tmp_path / "take.fbx"
    assert bpy.ops.irmogen.export_fbx(filepath=str(path)) == {"FINISHED"}
    rig.name = "Hero_original"
    before = set(bpy.data.objects)
    bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0, ignore_leaf_bones=False,
                             automatic_bone_orientation=False)
    back = next(o for o in set(bpy.data.objects) - before if o.type == "ARMATURE")
    theirs = _keys(back, frames)
    np.testing.assert_allclose(theirs[..., :3, 3], ours[..., :3, 3], atol=1e-3)   # bone heads, metres
    np.testing.assert_allclose(theirs[..., :3, :3], ours[..., :3, :3], atol=2e-3)  # orientations


def _heads(rig, frames, names):
    """World positions (F, J, 3) of the named bones' heads at scene frames."""
    out = []
    for f in frames:
        bpy.context.scene.frame_set(f)
        out.append([np.array(rig.matrix_world @ rig.pose.bones[n].head) for n in names])
    return np.array(out)


def test_export_bvh_opens_upright_in_blenders_importer(addon, generated, tmp_path):
    """Issue 14 defect 4: Blender's BVH importer at its defaults puts every joint where it was."""
    rig, _ = generated
    bpy.context.view_layer.objects.active = rig
    path = tmp_path / "take.bvh"
    assert bpy.ops.irmogen.export_bvh(filepath=str(path)) == {"FINISHED"}
    start, end = addon.exporting.take_range(rig)
    names = [b.name for b in rig.data.bones]
    frames = list(range(start, end + 1, 4))
    ours = _heads(rig, frames, names)
    scene = bpy.context.scene
    before = set(bpy.data.objects)
    assert bpy.ops.import_anim.bvh(filepath=str(path)) == {"FINISHED"}      # every option at its default
    back = next(o for o in set(bpy.data.objects) - before if o.type == "ARMATURE")
    assert {b.name for b in back.data.bones} == set(names)
    theirs = []
    for f in frames:                                   # the importer keys from frame 1
        scene.frame_set(f - start + 1)
        theirs.append([np.array(back.matrix_world @ back.pose.bones[n].head) for n in names])
    err = float(np.abs(np.array(theirs) - ours).max())
    assert err < 1e-3, f"joints off by up to {err:.3f} m"


def test_setup_backend_without_online_access_reports_the_command(addon):
    assert not bpy.app.online_access  # the bpy module starts offline
    with pytest.raises(RuntimeError, match="online access is off"):
        bpy.ops.irmogen.setup_backend()
    s = bpy.context.scene.irmogen
    assert "online access" in s.error_message
    assert "-m venv" in s.error_hint and "pip install" in s.error_hint and "backend" in s.error_hint


@pytest.fixture(scope="module")
def cmu_clip(data_dir, tmp_path_factory):
    from irmogen.io import load_motion, save_bvh

    clip = load_motion(data_dir / "cmu/bvh_cc/002_01.bvh.gz")
    folder = tmp_path_factory.mktemp("clips")
    return clip, clip.save(folder / "walk.npz"), save_bvh(clip, folder / "walk.bvh")


@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["npz", "bvh"])
def test_apply_clip(addon, cmu_clip, kind):
    clip, npz, bvh = cmu_clip
    ext.reset_scene()
    rig = ext.smpl_armature("Walker")
    path = npz if kind == "npz" else bvh
    assert bpy.ops.irmogen.apply_clip(filepath=str(path)) == {"FINISHED"}, bpy.context.scene.irmogen.error_message
    take = addon.takes.current_take(rig)
    info = addon.takes.read_info(take)
    assert info.kind == "clip" and addon.takes.take_strip(rig, take) is not None
    start, end = addon.keying.frame_range(take)
    fps = bpy.context.scene.render.fps
    assert abs((end - start + 1) - clip.num_frames * fps / clip.fps) <= 2  # resampled to the scene fps
    s = bpy.context.scene.irmogen                                            # the panel's rig box
    assert s.rig_armature == "Walker" and s.rig_report.startswith("smpl: 22/22 SMPL joints mapped")


def test_apply_clip_rejects_other_files(addon, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    ext.smpl_armature("Other")
    with pytest.raises(RuntimeError, match="not a clip .npz or a .bvh"):
        bpy.ops.irmogen.apply_clip(filepath=str(bad))
    assert "notes.txt" in bpy.context.scene.irmogen.error_message


def _swing_clip(addon, folder, frames: int = 30):
    """A synthetic clip: every joint swings about its own axis, the root walks 1 m along +Z."""
    from irmogen.skeleton import REST_OFFSETS, rest_positions

    t = np.linspace(0.0, 1.0, frames)[:, None]
    axes = np.random.default_rng(5).normal(size=(22, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    half = 0.6 * np.sin(2 * np.pi * t) / 2                                   # (T, 1) half angles
    rotations = np.concatenate([np.cos(half)[..., None].repeat(22, 1),
                                np.sin(half)[..., None] * axes], axis=-1)    # (T, 22, 4) wxyz
    root = np.zeros((frames, 3))
    root[:, 1], root[:, 2] = -rest_positions()[:, 1].min(), t[:, 0]
    clip = {"fps": 20.0, "offsets": np.array(REST_OFFSETS), "rotations": rotations, "root_translation": root,
            "positions": np.zeros((frames, 22, 3)), "text": "swing"}
    return addon.clipfile.save_npz(clip, folder / "swing.npz")


def test_euler_rig_gets_euler_keys_and_the_same_pose(addon, tmp_path):
    ext.reset_scene()
    path = _swing_clip(addon, tmp_path)
    quat, euler = ext.smpl_armature("QuatRig"), ext.smpl_armature("EulerRig")
    for pb in euler.pose.bones:
        pb.rotation_mode = "YXZ"
    for rig in (quat, euler):
        bpy.context.view_layer.objects.active = rig
        assert bpy.ops.irmogen.apply_clip(filepath=str(path)) == {"FINISHED"}
    paths = {p for p, _ in addon.keying.ChannelWriter(addon.takes.current_take(euler), euler).channels()}
    assert 'pose.bones["left_knee"].rotation_euler' in paths and not any("quaternion" in p for p in paths)
    for f in (2, 11, 25):
        bpy.context.scene.frame_set(f)
        for name in ("pelvis", "left_knee", "right_elbow", "head"):
            np.testing.assert_allclose(np.array(euler.pose.bones[name].matrix),
                                       np.array(quat.pose.bones[name].matrix), atol=1e-4)


def test_bone_map_override_and_root_bone_errors_reach_the_panel(addon, tmp_path):
    ext.reset_scene()
    path = _swing_clip(addon, tmp_path)
    ext.smpl_armature("Plain")
    s = bpy.context.scene.irmogen
    s.rig_map = "mixamo"       # the menu lists the shipped maps (else TypeError); this one fits nothing here
    with pytest.raises(RuntimeError, match="not recognised"):
        bpy.ops.irmogen.apply_clip(filepath=str(path))
    assert "'Plain'" in s.error_message and "mixamo" in s.error_message and s.error_hint
    s.rig_map, s.root_mode = "AUTO", "ROOT_BONE"           # the SMPL skeleton has no root bone
    with pytest.raises(RuntimeError, match="no root bone"):
        bpy.ops.irmogen.apply_clip(filepath=str(path))
    assert "'smpl'" in s.error_message and "in place" in s.error_hint
    s.root_mode = "IN_PLACE"
    assert bpy.ops.irmogen.apply_clip(filepath=str(path)) == {"FINISHED"}
    assert s.rig_report.startswith("smpl:") and s.rig_armature == "Plain"

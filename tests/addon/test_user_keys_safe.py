"""Defects 1 and 2 of issue 14: the animator's own keys survive a take (saved and reopened) and
play wherever the take is absent; the take's NLA blend type and extrapolation are honoured."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402

pytestmark = pytest.mark.blender

KNEE = "left_knee"


@pytest.fixture(scope="module")
def addon():
    return ext.install()


def _quat(angle, axis=(1.0, 0.0, 0.0)):
    return np.array([np.cos(angle / 2), *(np.sin(angle / 2) * np.asarray(axis))])


def _user_keys(rig, angle=0.5):
    """The animator keys the knee at frames 1 and 60 (their own action, Blender's keying)."""
    pb = rig.pose.bones[KNEE]
    for frame in (1, 60):
        pb.rotation_quaternion = _quat(angle)
        pb.keyframe_insert("rotation_quaternion", frame=frame)
    return rig.animation_data.action


def _take(addon, rig, start, blend="COMBINE", angle=0.3, axis=(0.0, 0.0, 1.0)):
    q = np.tile(_quat(angle, axis), (12, 1))
    tracks = addon.takes.PoseTracks(frames=np.arange(12), rotations={KNEE: q}, locations={})
    return addon.takes.create_take(rig, tracks, addon.takes.TakeInfo(prompt="kick"), start_frame=start,
                                   blend_type=blend, extrapolation="NOTHING")


def _knee_at(rig, frame):
    bpy.context.scene.frame_set(frame)
    return np.array(rig.pose.bones[KNEE].rotation_quaternion)


def _same_rotation(a, b):
    return abs(abs(float(np.dot(a, b))) - 1.0) < 1e-5


def test_user_keys_survive_a_take_across_save_and_reopen(addon, tmp_path):
    ext.reset_scene()
    rig = ext.smpl_armature("Hero")
    mine = _user_keys(rig).name
    _take(addon, rig, start=100)
    path = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    ext.install()
    mine = bpy.data.actions.get(mine)
    assert mine is not None and mine.users >= 1 and not mine.use_fake_user  # saved because it is used
    rig = bpy.data.objects["Hero"]
    tracks = [t for t in rig.animation_data.nla_tracks if any(s.action == mine for s in t.strips)]
    assert len(tracks) == 1 and not tracks[0].mute
    assert _same_rotation(_knee_at(rig, 30), _quat(0.5))               # and it still plays


def test_take_plays_only_where_it_is_and_combines(addon):
    ext.reset_scene()
    rig = ext.smpl_armature("Hero")
    user_track = rig.animation_data_create().nla_tracks.new()        # animation already on the NLA
    _user_keys(rig)
    user_track.strips.new("mine", 1, rig.animation_data.action)
    rig.animation_data.action = None
    _take(addon, rig, start=100, blend="COMBINE")
    for frame in (20, 40, 60):                                        # before the take: the animator's pose
        assert _same_rotation(_knee_at(rig, frame), _quat(0.5)), frame
    combined = _quat(0.5)                                            # Combine: user rotation, then the take's
    w1, v1 = combined[0], combined[1:]
    w2, v2 = _quat(0.3, (0, 0, 1))[0], _quat(0.3, (0, 0, 1))[1:]
    product = np.array([w1 * w2 - v1 @ v2, *(w1 * v2 + w2 * v1 + np.cross(v1, v2))])
    assert _same_rotation(_knee_at(rig, 105), product)


def test_replace_blend_shows_the_take_alone(addon):
    ext.reset_scene()
    rig = ext.smpl_armature("Hero")
    _user_keys(rig)
    _take(addon, rig, start=100, blend="REPLACE")
    assert rig.animation_data.action is None                           # the user's action went to the NLA
    assert _same_rotation(_knee_at(rig, 105), _quat(0.3, (0, 0, 1)))
    assert _same_rotation(_knee_at(rig, 30), _quat(0.5))

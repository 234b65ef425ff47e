"""Takes: every result is a NEW action with its story in custom properties, on the NLA explicitly."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def addon():
    return ext.install()


@pytest.fixture()
def rig(addon):
    ext.reset_scene()
    return ext.smpl_armature("Hero")


def tracks(addon, frames=12, angle=0.3):
    q = np.tile([np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0], (frames, 1))
    return addon.takes.PoseTracks(frames=np.arange(frames), rotations={"left_knee": q, "spine1": q},
                                  locations={"pelvis": np.zeros((frames, 3))})


def test_a_take_never_overwrites_the_users_animation(addon, rig):
    takes = addon.takes
    rig.pose.bones["head"].keyframe_insert("location", frame=3)
    mine = rig.animation_data.action
    n_before = len(bpy.data.actions)
    bpy.context.scene.frame_set(20)
    info = takes.TakeInfo(prompt="a person kneels", model="tiny", seed=3, rounds=2, transcript='{"rounds": []}')
    take = takes.create_take(rig, tracks(addon), info, start_frame=20, blend_type="COMBINE", extrapolation="NOTHING")
    assert len(bpy.data.actions) == n_before + 1 and take != mine
    assert mine.name in bpy.data.actions and mine.frame_range[0] == 3.0  # the user's action is intact
    assert rig.animation_data.action is None and takes.current_take(rig) == take   # the take is on the NLA only
    assert takes.keying.frame_range(take) == (20.0, 31.0)  # keyed from the playhead
    assert rig.pose.bones["left_knee"].rotation_mode == "QUATERNION"


def test_take_metadata_round_trips(addon, rig):
    takes = addon.takes
    info = takes.TakeInfo(prompt="jump twice", kind="refine", model="tiny", seed=7, rounds=3, round_used=2,
                          transcript='{"analysis": "two jumps"}', parent="IRM jump", extra={"instruction": "higher"})
    take = takes.create_take(rig, tracks(addon), info, start_frame=1)
    back = takes.read_info(take)
    assert back.prompt == "jump twice" and back.kind == "refine" and back.seed == 7 and back.rounds == 3
    assert back.round_used == 2 and back.parent == "IRM jump" and back.extra == {"instruction": "higher"}
    assert back.armature == "Hero" and len(back.date) == 16
    for key in ("prompt", "model", "seed", "transcript", "parent", "rounds", "date"):
        assert takes.PREFIX + key in take  # visible as custom properties on the action


def test_nla_strip_explicit_settings_and_newest_take_plays(addon, rig):
    takes = addon.takes
    user_track = rig.animation_data_create().nla_tracks.new()
    user_track.name = "my layer"
    first = takes.create_take(rig, tracks(addon), takes.TakeInfo(prompt="one"), start_frame=5,
                              blend_type="REPLACE", extrapolation="HOLD_FORWARD")
    second = takes.create_take(rig, tracks(addon, angle=0.9), takes.TakeInfo(prompt="two"), start_frame=5)
    s1, s2 = takes.take_strip(rig, first), takes.take_strip(rig, second)
    assert (s1.blend_type, s1.extrapolation, s1.frame_start) == ("REPLACE", "HOLD_FORWARD", 5.0)
    assert (s2.blend_type, s2.extrapolation) == ("COMBINE", "NOTHING")  # not Blender's Replace/Hold
    tracks_by_name = {t.name: t for t in rig.animation_data.nla_tracks}
    assert tracks_by_name[takes.TRACK_PREFIX + first.name].mute
    assert not tracks_by_name[takes.TRACK_PREFIX + second.name].mute and not user_track.mute
    assert [a.name for a in takes.takes_of(rig)] == [first.name, second.name]
    assert first.name == "IRM 1 generated: one" and second.name == "IRM 2 generated: two"  # unique, readable

    takes.activate(rig, first)
    assert takes.current_take(rig) == first
    assert not tracks_by_name[takes.TRACK_PREFIX + first.name].mute
    assert tracks_by_name[takes.TRACK_PREFIX + second.name].mute


def test_unknown_bone_is_an_error_not_a_partial_take(addon, rig):
    takes = addon.takes
    n = len(bpy.data.actions)
    bad = takes.PoseTracks(frames=np.arange(3), rotations={"tail_07": np.tile([1.0, 0, 0, 0], (3, 1))}, locations={})
    with pytest.raises(ValueError, match="tail_07"):
        takes.create_take(rig, bad, takes.TakeInfo(prompt="x"), start_frame=1)
    assert len(bpy.data.actions) == n

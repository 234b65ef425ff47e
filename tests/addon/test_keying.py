"""Fast keying through the one module that knows Blender's action API (4.2 flat vs 4.4+ slotted)."""
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
    return ext.smpl_armature("Keyed", extra_bones=4)


def random_quats(rng, frames: int) -> np.ndarray:
    q = rng.normal(size=(frames, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    return q


def test_keys_read_back_and_drive_the_pose(addon, rig):
    keying = addon.keying
    rng = np.random.default_rng(0)
    frames = np.arange(1, 31, dtype=np.float64)
    rotations = {b.name: random_quats(rng, len(frames)) for b in rig.pose.bones}
    for b in rig.pose.bones:
        b.rotation_mode = "QUATERNION"
    root = rng.normal(size=(len(frames), 3))
    action = keying.new_action("take")
    keying.key_pose(action, rig, frames, rotations, {"pelvis": root})
    keying.assign_action(rig, action)

    writer = keying.ChannelWriter(action, rig)
    assert len(writer.channels()) == 4 * len(rig.pose.bones) + 3
    keys = writer.read('pose.bones["left_elbow"].rotation_quaternion', 2)
    np.testing.assert_allclose(keys[:, 0], frames)
    np.testing.assert_allclose(keys[:, 1], rotations["left_elbow"][:, 2], atol=1e-6)
    assert keying.frame_range(action) == (1.0, 30.0)

    scene = bpy.context.scene
    for f in (1, 17, 30):
        scene.frame_set(f)
        got = np.array(rig.pose.bones["right_knee"].rotation_quaternion)
        np.testing.assert_allclose(got, rotations["right_knee"][f - 1], atol=1e-5)
        np.testing.assert_allclose(np.array(rig.pose.bones["pelvis"].location), root[f - 1], atol=1e-5)


def test_linear_interpolation_and_bone_groups(addon, rig):
    keying = addon.keying
    action = keying.new_action("lin")
    frames = np.array([0.0, 10.0])
    keying.key_pose(action, rig, frames, {"head": np.array([[1.0, 0, 0, 0], [0.0, 1, 0, 0]])})
    keying.assign_action(rig, action)
    rig.pose.bones["head"].rotation_mode = "QUATERNION"
    bpy.context.scene.frame_set(5)
    # Linear interpolation of the raw channels: halfway between the two keys.
    np.testing.assert_allclose(np.array(rig.pose.bones["head"].rotation_quaternion), [0.5, 0.5, 0, 0], atol=1e-6)
    bags = [action] if not keying.SLOTTED else [action.layers[0].strips[0].channelbag(action.slots[0])]
    assert [g.name for g in bags[0].groups] == ["head"]


def test_rewriting_a_channel_replaces_its_keys(addon, rig):
    keying = addon.keying
    action = keying.new_action("twice")
    keying.key_pose(action, rig, np.arange(50.0), {"neck": np.tile([1.0, 0, 0, 0], (50, 1))})
    keying.key_pose(action, rig, np.arange(5.0), {"neck": np.tile([0.0, 0, 1, 0], (5, 1))})
    keys = keying.ChannelWriter(action, rig).read('pose.bones["neck"].rotation_quaternion', 2)
    assert keys.shape == (5, 2) and np.all(keys[:, 1] == 1.0)


def test_slot_binding_and_nla_strip_settings(addon, rig):
    keying = addon.keying
    action = keying.new_action("slotted")
    keying.key_pose(action, rig, np.arange(10.0), {"pelvis": np.tile([1.0, 0, 0, 0], (10, 1))})
    keying.assign_action(rig, action)
    if keying.SLOTTED:  # 4.4+: the object is bound to the action's one slot
        assert len(action.slots) == 1 and rig.animation_data.action_slot == action.slots[0]
    strip = keying.push_nla_strip(rig, action, "IRMoGen test", 7, "COMBINE", "NOTHING")
    assert (strip.blend_type, strip.extrapolation, strip.frame_start) == ("COMBINE", "NOTHING", 7.0)
    if keying.SLOTTED:
        assert strip.action_slot == action.slots[0]


@pytest.mark.parametrize("mode", ["XYZ", "ZXY", "YZX", "AXIS_ANGLE"])
def test_euler_and_axis_angle_bones_are_keyed_in_their_own_mode(addon, rig, mode):
    """Rigs whose controls are Euler (or axis-angle) get those channels, and the same pose."""
    from mathutils import Quaternion

    keying = addon.keying
    rng = np.random.default_rng(3)
    frames = np.arange(1, 21, dtype=np.float64)
    quats = random_quats(rng, len(frames))
    pb = rig.pose.bones["left_elbow"]
    pb.rotation_mode = mode
    action = keying.new_action(f"mode {mode}")
    keying.key_pose(action, rig, frames, {"left_elbow": quats, "right_elbow": quats})
    keying.assign_action(rig, action)
    prop = "rotation_axis_angle" if mode == "AXIS_ANGLE" else "rotation_euler"
    assert sorted(keying.ChannelWriter(action, rig).channels()) == sorted(
        [(f'pose.bones["left_elbow"].{prop}', i) for i in range(4 if mode == "AXIS_ANGLE" else 3)]
        + [('pose.bones["right_elbow"].rotation_quaternion', i) for i in range(4)])
    for f in (1, 8, 20):
        bpy.context.scene.frame_set(f)
        want = np.array(Quaternion(quats[f - 1]).to_matrix())
        np.testing.assert_allclose(np.array(pb.matrix_basis)[:3, :3], want, atol=1e-5)

"""Clean Up Feet in Blender, headless, from the installed zip against the REAL backend process.

An imported BVH of a real CMU walk, made to slide, becomes a new "cleaned" take whose feet, read
back from the posed armature, slide far less; the imported take and the animator's own keys stay
as they were. The "Clean Up Feet" checkbox reaches the generate request: the same greedy
generation with it on is the backend's cleanup of the generation with it off.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402
from irmogen.clip import Clip  # noqa: E402
from irmogen.feet import clean_feet, foot_metrics  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]

FEET = ("left_ankle", "right_ankle", "left_foot", "right_foot")


@pytest.fixture(scope="module")
def sliding_bvh(data_dir, tmp_path_factory):
    """A real CMU walk whose body travels 1.3 times as far as its steps: planted feet skate."""
    from irmogen.io import load_motion, save_bvh
    from irmogen.rotations import forward_kinematics

    walk = load_motion(data_dir / "cmu/bvh_cc/002_01.bvh.gz")
    r = walk.root_translation.copy()
    r[:, [0, 2]] = r[0, [0, 2]] + 1.3 * (r[:, [0, 2]] - r[0, [0, 2]])
    slid = walk.with_(root_translation=r, positions=forward_kinematics(walk.offsets, walk.rotations, r))
    return save_bvh(slid, tmp_path_factory.mktemp("clips") / "sliding_walk.bvh")


def _packed(addon, take, name="final") -> Clip:
    c = addon.clipfile.load_npz(io.BytesIO(addon.takes.packed_clip(take, name)))
    return Clip(c["fps"], c["offsets"], c["rotations"], c["root_translation"], c["positions"])


def _feet_on_rig(rig, take, addon) -> np.ndarray:
    """(F, 22, 3) Y-up positions with the armature's foot bone heads (metres) at every frame of the
    take; the other joints stay zero (the metric reads ankles, toes, knees)."""
    start, end = (int(v) for v in addon.keying.frame_range(take))
    names = {"left_knee": 4, "right_knee": 5, "left_ankle": 7, "right_ankle": 8, "left_foot": 10, "right_foot": 11}
    out = np.zeros((end - start + 1, 22, 3))
    for i, f in enumerate(range(start, end + 1)):
        bpy.context.scene.frame_set(f)
        for name, j in names.items():
            x, y, z = rig.matrix_world @ rig.pose.bones[name].head
            out[i, j] = (x, z, -y)          # Blender Z up -> Y up
    return out


@pytest.mark.realdata
def test_clean_feet_makes_a_cleaned_take_of_an_imported_bvh(addon, sliding_bvh):
    ext.reset_scene()
    rig = ext.smpl_armature("Walker")
    rig.pose.bones["head"].keyframe_insert("rotation_quaternion", frame=1)   # the animator's own keys
    mine = rig.animation_data.action.name
    s = bpy.context.scene.irmogen
    assert bpy.ops.irmogen.apply_clip(filepath=str(sliding_bvh)) == {"FINISHED"}, s.error_message
    imported = addon.takes.current_take(rig)
    packed_before, frame_range = addon.takes.packed_clip(imported, "final"), tuple(imported.frame_range)
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    before = _feet_on_rig(rig, imported, addon)
    bpy.context.scene.irmogen.take_index = bpy.data.actions.find(imported.name)

    assert bpy.ops.irmogen.clean_feet() == {"FINISHED"}, bpy.context.scene.irmogen.error_message
    cleaned = addon.takes.current_take(rig)
    info = addon.takes.read_info(cleaned)
    assert cleaned != imported and info.kind == "cleaned" and info.parent == imported.name
    assert addon.takes.take_strip(rig, cleaned).frame_start == addon.takes.take_strip(rig, imported).frame_start
    # The imported take is untouched: its motion, keys' frame range and place on the NLA.
    assert addon.takes.packed_clip(imported, "final") == packed_before
    assert tuple(imported.frame_range) == frame_range
    assert addon.takes.take_strip(rig, imported) is not None
    # ... and so are the animator's own keys: their action still plays under the takes.
    ours = bpy.data.actions.get(mine)
    assert ours is not None and not addon.takes.is_take(ours)
    assert any(st.action == ours for t in rig.animation_data.nla_tracks for st in t.strips) \
        or rig.animation_data.action == ours
    # The new take holds exactly the backend's cleanup of the imported clip ...
    source = _packed(addon, imported)
    want, _ = clean_feet(source)
    np.testing.assert_allclose(_packed(addon, cleaned).positions, want.positions, atol=1e-4)
    # ... and on the armature its planted feet slide far less. (Not as little as in the clip: the
    # mannequin's hips are wider and its feet relatively longer than the CMU performer's, and
    # retargeting copies rotations, so a locked foot pivots on a longer lever on the rig.)
    m0, m1 = foot_metrics(before, fps), foot_metrics(_feet_on_rig(rig, cleaned, addon), fps)
    print(m0["skate_m_s"], m1["skate_m_s"], m0["penetration_m"], m1["penetration_m"])
    assert m0["skate_m_s"] > 0.2 and m1["skate_m_s"] < 0.35 * m0["skate_m_s"]
    assert m1["penetration_m"] <= 0.02


def test_clean_feet_needs_a_take(addon):
    ext.reset_scene()
    ext.smpl_armature("Empty")
    with pytest.raises(RuntimeError, match="no take to clean up"):
        bpy.ops.irmogen.clean_feet()
    assert "no take" in bpy.context.scene.irmogen.error_message


def test_the_checkbox_switches_the_cleanup_of_generated_motion(addon):
    """Greedy generation twice from the same prompt by the shipped model (the tiny test model's
    motion never stands on its feet): with "Clean Up Feet" on (the default) the take holds the
    backend's cleanup of the motion it holds with the box off."""
    from irmogen.llm.loaders import resolve_model_spec

    addon.bridge.BRIDGE.stop()
    ext.configure_backend(Path(resolve_model_spec(None)))
    ext.reset_scene()
    rig = ext.smpl_armature("Hero")
    s = bpy.context.scene.irmogen
    assert s.cleanup_feet is True
    s.prompt, s.max_rounds, s.seconds, s.variations, s.seed = "a person walks forward", 1, 4.0, 1, 0
    made = {}
    for on in (False, True):
        s.cleanup_feet = on
        assert bpy.ops.irmogen.generate() == {"FINISHED"}, s.error_message
        made[on] = _packed(addon, addon.takes.current_take(rig))
    want, report = clean_feet(made[False])
    assert report.change["max_m"] > 1e-4, "the cleanup changes this motion (else the test proves nothing)"
    np.testing.assert_allclose(made[True].positions, want.positions, atol=1e-4)

"""Issue 14: takes you can pick (defect 3) and clips that travel inside the .blend, headless, from
the installed zip against the real backend process (tiny model)."""
from __future__ import annotations

import shutil

import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_takes(addon):
    """A generated take (frame 1) and the take of its first round (frame 1): the round is newest."""
    rig = ext.smpl_armature("Hero")
    s = bpy.context.scene.irmogen
    s.prompt, s.max_rounds, s.seconds = "a person jumps", 2, 2.0
    bpy.context.scene.frame_set(1)
    assert bpy.ops.irmogen.generate() == {"FINISHED"}, s.error_message
    first = addon.takes.current_take(rig)
    bpy.context.scene.frame_set(200)
    assert bpy.ops.irmogen.use_round(take=first.name, round=1) == {"FINISHED"}, s.error_message
    return rig, first, addon.takes.current_take(rig)


def _unmuted_takes(addon, rig):
    return [t.strips[0].action for t in rig.animation_data.nla_tracks
            if t.name.startswith(addon.takes.TRACK_PREFIX) and not t.mute]


def test_picking_a_take_plays_and_exports_it(addon, two_takes, tmp_path):
    rig, first, second = two_takes
    s = bpy.context.scene.irmogen
    assert s.take_index == bpy.data.actions.find(second.name)          # a new take is the picked one
    s.take_index = bpy.data.actions.find(first.name)                   # was NameError: _show_selected_take
    assert addon.takes.current_take(rig) == first and _unmuted_takes(addon, rig) == [first]
    assert s.transcript_take == first.name and len(s.rounds) >= 1
    bpy.context.view_layer.objects.active = rig
    assert bpy.ops.irmogen.export_bvh(filepath=str(tmp_path / "picked.bvh")) == {"FINISHED"}
    strip = addon.takes.take_strip(rig, first)
    frames = int((tmp_path / "picked.bvh").read_text().split("Frames:")[1].split()[0])
    assert frames == round(strip.frame_end - strip.frame_start) + 1 and strip.frame_start == 1.0
    s.take_index = bpy.data.actions.find(second.name)
    assert _unmuted_takes(addon, rig) == [second]


def test_takes_have_unique_readable_names_and_kinds(addon, two_takes):
    rig, first, second = two_takes
    assert first.name.startswith("IRM ") and "generated: a person jumps" in first.name
    assert "round: a person jumps" in second.name and first.name != second.name
    assert [addon.takes.kind_label(k) for k in ("generate", "refine", "round", "clip", "extend")] == \
        ["generated", "refined", "round", "applied", "extended"]


def test_clips_travel_inside_the_blend(addon, two_takes, tmp_path):
    """Save, move the .blend to another folder, delete the add-on's clip folder, reopen: Use Round
    and Refine still work from what the takes packed."""
    rig, first, _ = two_takes
    first_name = first.name
    saved = tmp_path / "a" / "shot.blend"
    saved.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(saved))
    moved = tmp_path / "b" / "shot.blend"
    moved.parent.mkdir()
    shutil.move(saved, moved)
    clips = addon.preferences.user_dir() / "clips"
    shutil.rmtree(clips, ignore_errors=True)
    bpy.ops.wm.open_mainfile(filepath=str(moved))
    ext.install()
    rig = bpy.data.objects["Hero"]
    bpy.context.view_layer.objects.active = rig
    take = bpy.data.actions[first_name]
    s = bpy.context.scene.irmogen
    assert bpy.ops.irmogen.use_round(take=take.name, round=1) == {"FINISHED"}, s.error_message
    s.take_index = bpy.data.actions.find(first_name)
    s.instruction = "jump higher"
    assert bpy.ops.irmogen.refine() == {"FINISHED"}, s.error_message
    new = addon.takes.current_take(rig)
    assert addon.takes.read_info(new).parent == first_name and not clips.exists()

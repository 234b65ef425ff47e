"""Sequences, Extend and range Refine in Blender, headless, from the installed zip against the REAL
backend process running the shipped default model.

A two-part prompt makes one take whose rounds are grouped by part; Duration up to 60 s holds to
the frame; Extend continues the selected take as a new "extended" take whose first frames are the
take's own, the take itself untouched; Refine of the preview range (or typed frames) and one body
part changes nothing outside them, in the packed clip and in the keys.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402
from irmogen.llm.loaders import resolve_model_spec  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]
ARRAYS = ("rotations", "root_translation", "positions")


@pytest.fixture(scope="module")
def addon():
    mod = ext.install()
    ext.configure_backend(resolve_model_spec(None))
    ext.reset_scene()
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 24, 1.0
    yield mod
    mod.bridge.BRIDGE.stop()


@pytest.fixture(scope="module")
def walk(addon):
    """A 4 s single-motion take at frame 1 on an SMPL rig."""
    rig = ext.smpl_armature("Walker")
    scene = bpy.context.scene
    scene.frame_set(1)
    s = scene.irmogen
    s.prompt, s.max_rounds, s.seconds, s.variations, s.seed = "a person walks forward", 1, 4.0, 1, 0
    assert bpy.ops.irmogen.generate() == {"FINISHED"}, s.error_message
    return rig, addon.takes.current_take(rig)


def clip_of(addon, take) -> dict:
    return addon.clipfile.load_npz(io.BytesIO(addon.takes.packed_clip(take, "final")))


def keys(addon, rig, take) -> dict:
    writer = addon.keying.ChannelWriter(take, rig)
    return {ch: writer.read(*ch) for ch in writer.channels()}


def pick(take):
    bpy.context.scene.irmogen.take_index = bpy.data.actions.find(take.name)


def test_a_two_part_prompt_is_one_take_with_rounds_per_part(addon, walk):
    rig, _ = walk
    s = bpy.context.scene.irmogen
    s.prompt, s.seconds, s.max_rounds = "a person walks forward, then jumps", 6.0, 2
    assert bpy.ops.irmogen.generate() == {"FINISHED"}, s.error_message
    take = addon.takes.current_take(rig)
    clip = clip_of(addon, take)
    assert len(clip["positions"]) == 120                     # 6 s at the model's 20 fps, to the frame
    start, end = addon.keying.frame_range(take)
    assert end - start + 1 == 144                            # 6 s at the scene's 24 fps
    rounds = json.loads(addon.takes.read_info(take).transcript)["rounds"]
    assert {r["part"] for r in rounds} == {0, 1} and len({r["round"] for r in rounds}) == len(rounds)
    shown = [(r.part, r.caption) for r in s.rounds]
    assert (0, "a person walks forward") in shown and (1, "a person jumps") in shown
    assert [r.part for r in s.rounds] == sorted(r.part for r in s.rounds)   # grouped by part, in order
    assert "Part 1 (a person walks forward)" in s.analysis and "Part 2 (a person jumps)" in s.analysis
    headings = addon.panels.round_headings(s.rounds)       # what the Reasoning panel draws
    assert [h for h, _ in headings if h] == ["Part 1: a person walks forward", "Part 2: a person jumps"]
    assert headings[0][1] == "Round 1" and headings[[r.part for r in s.rounds].index(1)][1] == "Round 1"
    second = next(r for r in s.rounds if r.part == 1)         # a part's round can be used as a take
    assert bpy.ops.irmogen.use_round(take=take.name, round=second.index) == {"FINISHED"}


def test_duration_up_to_60_seconds_holds_to_the_frame(addon, walk):
    rig, _ = walk
    s = bpy.context.scene.irmogen
    s.prompt, s.seconds, s.max_rounds = "a person walks forward", 15.0, 1
    assert bpy.ops.irmogen.generate() == {"FINISHED"}, s.error_message
    assert len(clip_of(addon, addon.takes.current_take(rig))["positions"]) == 300
    s.seconds = 75.0                                          # the field stops at 60 s
    assert s.seconds == 60.0


def test_extend_adds_a_new_take_that_starts_with_the_old_one(addon, walk):
    rig, take = walk
    before_keys, before_clip = keys(addon, rig, take), clip_of(addon, take)
    n = len(before_clip["positions"])
    pick(take)
    s = bpy.context.scene.irmogen
    s.extend_text, s.extend_seconds, s.max_rounds = "then waves with the right hand", 3.0, 2
    assert bpy.ops.irmogen.extend() == {"FINISHED"}, s.error_message
    new = addon.takes.current_take(rig)
    info = addon.takes.read_info(new)
    assert new != take and info.kind == "extend" and info.parent == take.name
    assert addon.takes.kind_label(info.kind) == "extended"
    out = clip_of(addon, new)
    assert len(out["positions"]) == n + 60
    for name in ARRAYS:   # the take's frames are the new take's first frames, value for value
        assert np.array_equal(out[name][:n].astype(np.float32), before_clip[name].astype(np.float32)), name
    # The new motion starts from the take's last frame: no joint moves more there than within the take.
    step = np.linalg.norm(np.diff(out["positions"], axis=0), axis=-1).max(axis=1)
    assert step[n - 1] <= step[:n - 1].max()
    # The old take is untouched, and plays the same as the new take's start.
    assert addon.takes.take_strip(rig, new).frame_start == addon.takes.take_strip(rig, take).frame_start
    after_keys = keys(addon, rig, take)
    assert after_keys.keys() == before_keys.keys()
    assert all(np.array_equal(after_keys[ch], before_keys[ch]) for ch in before_keys)
    assert np.array_equal(clip_of(addon, take)["positions"], before_clip["positions"])


def test_refine_of_the_preview_range_and_the_arms_leaves_the_rest_exactly(addon, walk):
    rig, take = walk
    scene = bpy.context.scene
    old_clip, old_keys = clip_of(addon, take), keys(addon, rig, take)
    pick(take)
    s = scene.irmogen
    scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, 25, 72
    s.refine_range, s.body_part, s.instruction = "PREVIEW", "arms", "raise the arms higher"
    assert bpy.ops.irmogen.refine() == {"FINISHED"}, s.error_message
    new = addon.takes.current_take(rig)
    info = addon.takes.read_info(new)
    assert info.kind == "refine" and info.extra["frames"] == [20, 60] and info.extra["part"] == "arms"
    out = clip_of(addon, new)           # scene frames 25-72 at 24 fps, take from frame 1 = clip frames 20-59
    outside = np.r_[0:20, 60:len(old_clip["positions"])]
    for name in ARRAYS:
        assert np.array_equal(out[name][outside], old_clip[name][outside]), name
    arms = [13, 14, 16, 17, 18, 19, 20, 21]
    others = [j for j in range(22) if j not in arms]
    assert np.array_equal(out["rotations"][:, others], old_clip["rotations"][:, others])
    assert np.array_equal(out["root_translation"], old_clip["root_translation"])
    legs = [0, 1, 2, 4, 5, 7, 8, 10, 11]          # carried by no arm joint: their positions stay too
    assert np.array_equal(out["positions"][:, legs], old_clip["positions"][:, legs])
    assert not np.array_equal(out["rotations"][20:60, arms], old_clip["rotations"][20:60, arms])
    # In the keys: the legs' channels are identical everywhere, the arms' outside the range.
    new_keys = keys(addon, rig, new)
    for (path, index), old in old_keys.items():
        bone = path.split('"')[1]
        if bone in ("left_hip", "right_knee", "left_ankle", "pelvis"):
            assert np.array_equal(new_keys[(path, index)], old), (path, index)
        if bone in ("left_elbow", "right_wrist"):
            mask = (old[:, 0] < 24) | (old[:, 0] > 73)
            assert np.array_equal(new_keys[(path, index)][mask], old[mask]), (path, index)
    scene.use_preview_range = False


def test_the_panel_offers_exactly_the_backends_body_parts(addon):
    assert tuple(k for k, *_ in addon.timeline.BODY_PARTS) == addon.protocol.BODY_PARTS


def test_range_mistakes_are_reported_before_anything_is_sent(addon, walk):
    _, take = walk
    pick(take)
    s = bpy.context.scene.irmogen
    bpy.context.scene.use_preview_range = False
    s.refine_range, s.body_part = "PREVIEW", "whole"
    with pytest.raises(RuntimeError, match="the scene has no preview range"):
        bpy.ops.irmogen.refine()
    s.refine_range, s.range_first, s.range_last = "FRAMES", 500, 520
    with pytest.raises(RuntimeError, match="frames 500-520 cover 0 frame"):
        bpy.ops.irmogen.refine()
    assert "Pick a range inside the take" in s.error_hint and not s.running
    s.refine_range = "TAKE"
    s.extend_text = "   "
    with pytest.raises(RuntimeError, match="say what happens next"):
        bpy.ops.irmogen.extend()

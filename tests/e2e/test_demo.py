"""The demo's Blender part on a real walk: every file it promises exists and opens.

`demo_blender.py` runs as its own process (as `python build.py demo` runs it) with a real CMU walk
as the clip; then this process checks what a user would: the .blend reopens with the take on the
NLA and the mannequin walking forward, the FBX re-imports with the same poses, the BVH opens in
Blender's importer, the contact sheet has the promised size and shows a moving figure, and the
transcript JSON parses and says where the motion came from.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

pytestmark = [pytest.mark.blender, pytest.mark.slow, pytest.mark.realdata]

REPO = Path(__file__).resolve().parents[2]
TEXT = "a person walks forward"
FRAMES, (TILE_W, TILE_H), COLUMNS = 8, (160, 120), 4


@pytest.fixture(scope="module")
def demo(data_dir, tmp_path_factory):
    """Run the demo's Blender part once; -> (out folder, its printed output, the source clip)."""
    from irmogen.io import load_motion

    sys.path.insert(0, str(REPO))
    try:
        import build
    finally:
        sys.path.remove(str(REPO))
    work = tmp_path_factory.mktemp("demo")
    clip = load_motion(data_dir / "cmu" / "bvh_cc" / "002_01.bvh.gz")
    npz = clip.save(work / "walk.npz")
    zip_path = build.build_zip(Path(sys.executable), build.stage_extension(work / "stage"), work / "dist")
    out = work / "out"
    cmd = [sys.executable, str(REPO / "tests" / "e2e" / "demo_blender.py"), "--zip", str(zip_path),
           "--out", str(out), "--text", TEXT, "--clip", str(npz), "--source-label", "CMU 002_01: walk",
           "--frames", str(FRAMES), "--tile", f"{TILE_W}x{TILE_H}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    yield out, proc.stdout, clip
    bpy.ops.wm.read_homefile(use_empty=True)


def _fcurves(action):
    """Every F-curve of an action, on both action APIs (4.2 flat, 4.4+ slotted layers)."""
    if hasattr(action, "layers") and len(action.layers):
        return [fc for layer in action.layers for strip in layer.strips
                for bag in strip.channelbags for fc in bag.fcurves]
    return list(action.fcurves)


def _take(rig):
    """The take that plays: the action of the unmuted IRMoGen track (takes are never the active
    action, so the animator's own action stays theirs)."""
    return next(s.action for t in rig.animation_data.nla_tracks if t.name.startswith("IRMoGen ") and not t.mute
                for s in t.strips if s.action is not None and s.action.get("irmogen_kind"))


def _bone_heads(rig, frames) -> np.ndarray:
    """(F, B, 3) world bone heads, bones sorted by name."""
    out = []
    mw = np.array(rig.matrix_world)
    for f in frames:
        bpy.context.scene.frame_set(f)
        heads = np.array([pb.head for pb in sorted(rig.pose.bones, key=lambda b: b.name)])
        out.append(heads @ mw[:3, :3].T + mw[:3, 3])
    return np.array(out)


def test_transcript_says_where_the_motion_came_from(demo):
    out, printed, _ = demo
    t = json.loads((out / "transcript.json").read_text(encoding="utf-8"))
    assert t["text"] == TEXT and t["source"]["kind"] == "motion capture" and t["rounds"] == []
    assert t["rig_map"] == "smpl" and t["take"] and t["armature"] == "Mannequin"
    assert all(Path(p).is_file() for p in t["outputs"].values())
    assert "No model ran" in printed and "002_01" in printed and t["take"] in printed


def test_blend_reopens_with_the_take_on_the_nla(demo):
    out, _, clip = demo
    bpy.ops.wm.open_mainfile(filepath=str(out / "demo.blend"))
    rig = bpy.data.objects["Mannequin"]
    take = _take(rig)
    assert take.get("irmogen_kind") == "clip"
    strips = [s for t in rig.animation_data.nla_tracks for s in t.strips if s.action == take]
    assert len(strips) == 1 and strips[0].blend_type == "COMBINE"
    body = next(c for c in rig.children if c.type == "MESH")
    assert any(m.type == "ARMATURE" and m.object == rig for m in body.modifiers)
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    start, end = (int(round(v)) for v in take.frame_range)
    assert abs((end - start + 1) - clip.num_frames * fps / clip.fps) <= 2     # the whole clip, at scene fps
    pelvis = _bone_heads(rig, [start, end])[:, sorted(b.name for b in rig.pose.bones).index("pelvis")]
    travel = pelvis[1] - pelvis[0]
    source = clip.root_translation[-1] - clip.root_translation[0]            # Y up, facing +Z
    assert np.linalg.norm(travel[:2]) > 0.5 * np.linalg.norm(source[[0, 2]])
    assert travel[1] < -0.5 * abs(travel[0])                                 # forward is -Y in Blender


def test_fbx_reimports_with_the_same_poses(demo):
    out, _, _ = demo
    bpy.ops.wm.open_mainfile(filepath=str(out / "demo.blend"))
    rig = bpy.data.objects["Mannequin"]
    start, end = (int(round(v)) for v in _take(rig).frame_range)
    frames = list(range(start, end + 1, max(1, (end - start) // 10)))
    ours = _bone_heads(rig, frames)
    before = set(bpy.data.objects)
    assert bpy.ops.import_scene.fbx(filepath=str(out / "demo.fbx"), anim_offset=0, ignore_leaf_bones=False,
                                    automatic_bone_orientation=False) == {"FINISHED"}
    new = set(bpy.data.objects) - before
    back = next(o for o in new if o.type == "ARMATURE")
    assert any(o.type == "MESH" and o.vertex_groups for o in new)             # the skinned body came too
    keyed = [fc for fc in _fcurves(back.animation_data.action) if len(fc.keyframe_points) > 1]
    assert len(keyed) >= 22 * 3
    np.testing.assert_allclose(_bone_heads(back, frames), ours, atol=2e-3)    # metres


def test_bvh_opens_in_blenders_importer(demo):
    out, _, _ = demo
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.import_anim.bvh(filepath=str(out / "demo.bvh")) == {"FINISHED"}
    rig = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert len(rig.data.bones) == 22 and "pelvis" in rig.data.bones
    assert rig.animation_data.action.frame_range[1] - rig.animation_data.action.frame_range[0] > 10


def test_contact_sheet_shows_a_moving_figure(demo):
    out, _, _ = demo
    image = bpy.data.images.load(str(out / "contact_sheet.png"))
    w, h = image.size
    gap, rows = 4, -(-FRAMES // COLUMNS)
    assert (w, h) == (COLUMNS * TILE_W + (COLUMNS + 1) * gap, rows * TILE_H + (rows + 1) * gap)
    px = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(px)
    px = px.reshape(h, w, 4)[::-1, :, :3]
    tiles = [px[gap + r * (TILE_H + gap):][:TILE_H, gap + c * (TILE_W + gap):][:, :TILE_W]
             for r in range(rows) for c in range(COLUMNS)]
    assert px.std() > 0.05 and all(t.std() > 0.02 for t in tiles)           # not blank
    assert np.abs(tiles[0] - tiles[-1]).mean() > 0.005                       # the figure moves

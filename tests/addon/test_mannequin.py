"""The built-in mannequin and the contact sheet, from the installed zip in the bpy module.

The mannequin: SMPL-named bones in the contract's T-pose turned Z up facing -Y, soles on the floor,
a body rigidly skinned bone by bone. The contact sheet: every pose of the motion inside the camera's
view, the tiles in a grid of the promised size, the scene left as it was.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]


@pytest.fixture()
def addon():
    mod = ext.install()
    ext.reset_scene()
    importlib.import_module(ext.PACKAGE + ".contact_sheet")  # not imported by the add-on itself
    return mod


def _evaluated_vertices(obj) -> np.ndarray:
    bpy.context.view_layer.update()
    ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = ev.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return co.reshape(-1, 3) @ np.array(obj.matrix_world)[:3, :3].T + np.array(obj.matrix_world)[:3, 3]


def test_proportions_are_the_backends_rest_skeleton(addon):
    from irmogen.skeleton import REST_OFFSETS

    np.testing.assert_allclose(addon.mannequin.rest_offsets(), REST_OFFSETS, atol=1e-12)


def test_add_mannequin_makes_a_t_pose_humanoid_facing_minus_y(addon):
    bpy.context.scene.cursor.location = (1.0, 2.0, 0.0)
    assert bpy.ops.irmogen.add_mannequin() == {"FINISHED"}
    rig = bpy.context.view_layer.objects.active
    names, parents = addon.protocol.JOINT_NAMES, addon.protocol.PARENTS
    assert rig.type == "ARMATURE" and {b.name: b.parent.name if b.parent else None for b in rig.data.bones} \
        == {n: names[p] if p >= 0 else None for n, p in zip(names, parents)}
    head = {b.name: np.array(b.head_local) for b in rig.data.bones}
    assert head["left_wrist"][0] > 0.6 and head["right_wrist"][0] < -0.6          # arms out, left = +X
    assert abs(head["left_wrist"][2] - head["left_shoulder"][2]) < 0.05          # T-pose: arms level
    assert head["left_foot"][1] < head["left_ankle"][1] - 0.1                     # toes point to -Y
    body = next(c for c in rig.children if c.type == "MESH")
    co = _evaluated_vertices(body)
    assert abs(co[:, 2].min()) < 0.005 and 1.6 < co[:, 2].max() < 1.9            # soles on the floor, metres
    np.testing.assert_allclose(co[:, :2].mean(0), (1.0, 2.0), atol=0.05)          # at the 3D cursor
    assert any(m.type == "ARMATURE" and m.object == rig for m in body.modifiers)
    maps = addon.rigmap.load_maps(Path(addon.__file__).parent / "rigs")
    found = addon.rigmap.detect([b.name for b in rig.data.bones], maps)
    assert found.name == "smpl" and len(found.mapping) == 22


def test_each_vertex_follows_exactly_one_bone(addon):
    bpy.ops.irmogen.add_mannequin()
    rig = bpy.context.view_layer.objects.active
    body = next(c for c in rig.children if c.type == "MESH")
    groups = [[(body.vertex_groups[g.group].name, g.weight) for g in v.groups] for v in body.data.vertices]
    assert all(len(g) == 1 and g[0][1] == 1.0 for g in groups)
    owner = np.array([g[0][0] for g in groups])
    assert set(owner) == {b.name for b in rig.data.bones}                         # every bone has a body part
    before = _evaluated_vertices(body)
    pose = rig.pose.bones["left_elbow"]
    pose.rotation_mode = "XYZ"
    pose.rotation_euler = (0.0, 0.0, 1.2)
    moved = np.linalg.norm(_evaluated_vertices(body) - before, axis=1) > 1e-5
    assert set(owner[moved]) == {"left_elbow", "left_wrist"}                      # the forearm and hand only


def _keyed_walk(rig, frames: int = 40):
    """Keys by hand: the rig walks 2 m toward -Y and swings its arms."""
    for f in range(1, frames + 1):
        rig.location = (0.0, -2.0 * f / frames, 0.0)
        rig.keyframe_insert("location", frame=f)
        for name, sign in (("left_shoulder", 1), ("right_shoulder", -1)):
            pb = rig.pose.bones[name]
            pb.rotation_mode = "XYZ"
            pb.rotation_euler = (sign * 0.8 * np.sin(f / 4), 0.0, 0.0)
            pb.keyframe_insert("rotation_euler", frame=f)


def test_camera_frames_every_pose(addon):
    sheet = addon.contact_sheet
    bpy.ops.irmogen.add_mannequin()
    rig = bpy.context.view_layer.objects.active
    _keyed_walk(rig)
    points = sheet.motion_points(bpy.context.scene, rig, 1, 40)
    direction = sheet.view_direction(points)
    assert abs(direction[1]) < 0.7  # looks across the walk (along Y), not down its length
    location, rotation = sheet.frame_camera(points, direction, aspect=4 / 3)
    basis = np.array(rotation.to_matrix())
    local = (points.reshape(-1, 3) - location) @ basis          # camera looks down its -Z
    depth = -local[:, 2]
    tan_x = sheet.SENSOR_MM / 2 / sheet.LENS_MM
    assert depth.min() > 0
    assert np.all(np.abs(local[:, 0]) / depth < tan_x) and np.all(np.abs(local[:, 1]) / depth < tan_x * 3 / 4)


def test_contact_sheet_png(addon, tmp_path):
    bpy.ops.irmogen.add_mannequin()
    rig = bpy.context.view_layer.objects.active
    _keyed_walk(rig)
    scene = bpy.context.scene
    scene.frame_set(7)
    objects_before, engine_before = set(bpy.data.objects), scene.render.engine
    sheet = addon.contact_sheet.render_contact_sheet(scene, rig, tmp_path / "sheet.png", (1, 40), count=6,
                                                     columns=3, tile_size=(96, 80), note="a test walk")
    gap = addon.contact_sheet.GAP
    assert sheet.frames == [1, 9, 17, 24, 32, 40]
    assert sheet.size == (3 * 96 + 4 * gap, 2 * 80 + 3 * gap)
    image = bpy.data.images.load(str(sheet.path))
    px = np.empty(image.size[0] * image.size[1] * 4, np.float32)
    image.pixels.foreach_get(px)
    assert tuple(image.size) == sheet.size
    px = px.reshape(image.size[1], image.size[0], 4)[::-1, :, :3]
    tiles = [px[gap + r * (80 + gap):gap + r * (80 + gap) + 80, gap + c * (96 + gap):gap + c * (96 + gap) + 96]
             for r in range(2) for c in range(3)]
    assert all(t.std() > 0.02 for t in tiles)                     # something is drawn in every tile
    assert np.abs(tiles[0] - tiles[-1]).mean() > 0.005            # and it moves
    assert set(bpy.data.objects) == objects_before and scene.camera is None
    assert scene.render.engine == engine_before and scene.frame_current == 7

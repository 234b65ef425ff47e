"""FBX and BVH export of the armature's current take, through Blender's own exporters.

The current take is the one picked in the takes list (the one that plays). FBX bakes what the
scene plays over the scene frame range, so the range is set to the take's for the export (and
restored after). Blender's BVH exporter writes Z-up armature space, so the file is then turned Y
up in world space: it opens upright in Blender's importer at its defaults and in other tools.
FBX settings follow what imports cleanly elsewhere and round-trips
in Blender: no leaf bones, no NLA/all-actions baking, no key simplification. Imports bpy, numpy
and the add-on's clipfile, keying and takes.
"""
from __future__ import annotations

from contextlib import contextmanager

import bpy

import numpy as np

from . import clipfile, keying, takes


class ExportError(Exception):
    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


def take_range(obj) -> tuple[int, int]:
    """The scene frames of the take that plays (else of the active action)."""
    take = takes.current_take(obj)
    strip = takes.take_strip(obj, take) if take is not None else None
    if strip is not None:
        return int(round(strip.frame_start)), int(round(strip.frame_end))
    action = keying.active_action(obj)
    if action is None:
        raise ExportError(f"'{obj.name}' has no animation to export", "Generate or apply a take first")
    start, end = keying.frame_range(action)
    return int(round(start)), int(round(end))


@contextmanager
def _scene_range(scene, start: int, end: int):
    old = scene.frame_start, scene.frame_end, scene.frame_current
    scene.frame_start, scene.frame_end = start, end
    try:
        yield
    finally:
        scene.frame_start, scene.frame_end = old[0], old[1]
        scene.frame_set(old[2])


@contextmanager
def _only_selected(context, objects):
    """Select exactly `objects` (the first one active) for the exporter, then restore."""
    view_layer = context.view_layer
    before = [o for o in view_layer.objects if o.select_get()]
    active = view_layer.objects.active
    for o in before:
        o.select_set(False)
    for o in objects:
        o.select_set(True)
    view_layer.objects.active = objects[0]
    try:
        yield
    finally:
        for o in objects:
            o.select_set(False)
        for o in before:
            o.select_set(True)
        view_layer.objects.active = active


def export_fbx(context, obj, filepath: str) -> tuple[int, int]:
    """The armature (and meshes skinned to it) with the current take baked; -> frame range."""
    start, end = take_range(obj)
    meshes = [c for c in obj.children if c.type == "MESH"]
    types = {"ARMATURE", "MESH"} if meshes else {"ARMATURE"}
    with _scene_range(context.scene, start, end), _only_selected(context, [obj, *meshes]):
        result = bpy.ops.export_scene.fbx(
            filepath=filepath, use_selection=True, object_types=types, add_leaf_bones=False,
            bake_anim=True, bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False,
            bake_anim_use_all_actions=False, bake_anim_force_startend_keying=True,
            bake_anim_simplify_factor=0.0, bake_anim_step=1.0)
    if result != {"FINISHED"}:
        raise ExportError(f"FBX export to {filepath} failed")
    return start, end


def export_bvh(context, obj, filepath: str) -> tuple[int, int]:
    """The armature's current take as BVH (Blender's io_anim_bvh); -> frame range."""
    start, end = take_range(obj)
    with _only_selected(context, [obj]):
        result = bpy.ops.export_anim.bvh(filepath=filepath, frame_start=start, frame_end=end,
                                         global_scale=1.0, rotate_mode="NATIVE", root_transform_only=False)
    if result != {"FINISHED"}:
        raise ExportError(f"BVH export to {filepath} failed")
    world = np.eye(4)
    world[:3] = clipfile.Z_UP_TO_Y_UP @ np.array(obj.matrix_world)[:3]
    with open(filepath, encoding="utf-8") as f:
        text = f.read()
    with open(filepath, "w", encoding="utf-8", newline="\n") as f:
        f.write(clipfile.reorient_bvh(text, world))
    return start, end

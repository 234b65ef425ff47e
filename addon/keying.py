"""Fast F-curve writing: the ONE module that knows Blender's two action APIs.

Blender 4.2/4.3 keep F-curves directly on the action (`action.fcurves`). Blender 4.4+ (and 5.x,
which removed `action.fcurves`) use slotted actions: an action has slots, layers, keyframe strips,
and per-slot channelbags that hold the F-curves; an object uses an action through
`animation_data.action_slot`. Everything else in the add-on calls the functions here.

Keys are written in bulk (`keyframe_points.add(n)` + `foreach_set("co", ...)`), never with
per-frame `keyframe_insert`. Imports bpy, numpy and the add-on's pure `retarget` (Euler angles).
"""
from __future__ import annotations

import bpy
import numpy as np

from .retarget import quat_to_euler

# 4.4+: slotted actions. RNA properties are not Python class attributes, so ask the RNA definition
# (hasattr(bpy.types.Action, "slots") is False even where slots exist).
SLOTTED = "slots" in bpy.types.Action.bl_rna.properties


def _interp_value(name: str) -> int:
    items = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items
    return items[name].value


def _slot_for(action, obj):
    """The action's slot for this object (4.4+), created on first use."""
    for slot in action.slots:
        if slot.target_id_type in {"OBJECT", "UNSPECIFIED"}:
            return slot
    return action.slots.new(id_type="OBJECT", name=obj.name)


def _channelbag(action, obj):
    """4.4+: the channelbag that holds this object's F-curves in the action (made if missing)."""
    slot = _slot_for(action, obj)
    try:
        from bpy_extras.anim_utils import action_ensure_channelbag_for_slot  # 5.0+
    except ImportError:
        action_ensure_channelbag_for_slot = None
    if action_ensure_channelbag_for_slot is not None:
        return action_ensure_channelbag_for_slot(action, slot)
    layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
    strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
    return strip.channelbag(slot, ensure=True)


class ChannelWriter:
    """Creates F-curves of one action for one object and fills them with keys in bulk."""

    def __init__(self, action, obj):
        self.action = action
        if SLOTTED:
            bag = _channelbag(action, obj)
            self._fcurves, self._groups = bag.fcurves, bag.groups
        else:
            self._fcurves, self._groups = action.fcurves, action.groups

    def _group(self, name: str):
        return self._groups.get(name) or self._groups.new(name)

    def write(self, data_path: str, frames: np.ndarray, values: np.ndarray, group: str = "",
              interpolation: str = "LINEAR") -> None:
        """Key `values` (F, C) at `frames` (F,) on channels data_path[0..C-1], replacing old keys."""
        frames = np.asarray(frames, np.float32)
        values = np.asarray(values, np.float32).reshape(len(frames), -1)
        interp = np.full(len(frames), _interp_value(interpolation), np.int32)
        for index in range(values.shape[1]):
            fc = self._fcurves.find(data_path, index=index)
            if fc is None:
                fc = self._fcurves.new(data_path, index=index)
                if group:
                    fc.group = self._group(group)
            else:
                fc.keyframe_points.clear()
            points = fc.keyframe_points
            points.add(len(frames))
            co = np.empty((len(frames), 2), np.float32)
            co[:, 0], co[:, 1] = frames, values[:, index]
            points.foreach_set("co", co.ravel())
            points.foreach_set("interpolation", interp)
            fc.update()

    def read(self, data_path: str, index: int) -> np.ndarray | None:
        """The keys of one channel as (n, 2) frame/value rows, or None when the channel is absent."""
        fc = self._fcurves.find(data_path, index=index)
        if fc is None:
            return None
        co = np.empty(len(fc.keyframe_points) * 2, np.float32)
        fc.keyframe_points.foreach_get("co", co)
        return co.reshape(-1, 2)

    def channels(self) -> list[tuple[str, int]]:
        return [(fc.data_path, fc.array_index) for fc in self._fcurves]


def rotation_channel(quats: np.ndarray, mode: str) -> tuple[str, np.ndarray]:
    """(F, 4) wxyz quaternions -> (pose-bone property, (F, C) values) for a bone's rotation_mode:
    the quaternions themselves, Euler angles (radians, unwrapped) or (angle, x, y, z) axis-angle."""
    if mode == "QUATERNION":
        return "rotation_quaternion", quats
    if mode == "AXIS_ANGLE":
        q = np.asarray(quats, np.float64)
        norm = np.linalg.norm(q[:, 1:], axis=1)
        angle = 2.0 * np.arctan2(norm, q[:, 0])             # [0, 2 pi); sign-continuous input keeps it smooth
        axis = np.where(norm[:, None] > 1e-9, q[:, 1:] / np.maximum(norm, 1e-12)[:, None], [0.0, 1.0, 0.0])
        return "rotation_axis_angle", np.concatenate([angle[:, None], axis], axis=1)
    return "rotation_euler", quat_to_euler(quats, mode)


def key_pose(action, obj, frames: np.ndarray, rotations: dict, locations: dict | None = None) -> None:
    """Key pose bones in bulk: rotations {bone: (F, 4) wxyz}, locations {bone: (F, 3)} (bone space).

    Each bone's rotation is keyed in its own rotation_mode (quaternion, Euler of any order,
    axis-angle), so rigs whose controls use Euler keep working. Quaternions should come
    sign-continuous over time (they are written, or converted, as given).
    """
    writer = ChannelWriter(action, obj)
    for bone, quats in rotations.items():
        prop, values = rotation_channel(quats, obj.pose.bones[bone].rotation_mode)
        writer.write(f'pose.bones["{_escape(bone)}"].{prop}', frames, values, group=bone)
    for bone, loc in (locations or {}).items():
        writer.write(f'pose.bones["{_escape(bone)}"].location', frames, loc, group=bone)


def _escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def new_action(name: str):
    return bpy.data.actions.new(name)


def assign_action(obj, action) -> None:
    """Make `action` the object's active action (and, on 4.4+, bind the object's slot); None clears it."""
    ad = obj.animation_data or obj.animation_data_create()
    ad.action = action
    if SLOTTED and action is not None:
        ad.action_slot = _slot_for(action, obj)


def active_slot(obj):
    """4.4+: the slot the object's active action plays through (None on 4.2/4.3)."""
    ad = obj.animation_data
    return ad.action_slot if SLOTTED and ad is not None else None


def active_action(obj):
    ad = obj.animation_data
    return ad.action if ad else None


def push_nla_strip(obj, action, track_name: str, start: int, blend_type: str, extrapolation: str, slot=None):
    """Put `action` on a new NLA track (on top) at frame `start` with explicit blend type and
    extrapolation; on 4.4+ the strip plays `slot` (default: the action's slot for objects)."""
    ad = obj.animation_data or obj.animation_data_create()
    track = ad.nla_tracks.new()
    track.name = track_name
    strip = track.strips.new(action.name, int(start), action)
    if SLOTTED and (slot is not None or strip.action_slot is None):
        strip.action_slot = slot or _slot_for(action, obj)
    strip.blend_type = blend_type
    strip.extrapolation = extrapolation
    return strip


def frame_range(action) -> tuple[float, float]:
    start, end = action.frame_range
    return float(start), float(end)

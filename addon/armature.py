"""The Blender side of retargeting: an armature object's rest as plain numpy, and poses applied.

`rig_rest_from_object` reads bone rests (armature space), parents and the object matrix into a
`retarget.RigRest`. A bone whose pose is fully copied from another bone (a Copy Transforms
constraint at influence 1, as Rigify's ORG bones copy their controls) gets that bone as its
effective parent, since it moves with it; constraints that only partly follow something else are
reported as warnings. `prepare_rig` sets a rig map's custom properties (Rigify's FK switches).
`apply_tracks_to_pose` sets one frame of `BoneTracks` on the pose channels, for previews and tests;
writing keyframes is keying.py's job. Imports bpy and numpy; no torch, no backend.
"""
from __future__ import annotations

import bpy
import numpy as np

from .retarget import BoneTracks, RetargetError, RigRest, quat_to_euler

FOLLOW_CONSTRAINTS = {"COPY_TRANSFORMS"}
# Constraints that change nothing on a rig at rest scale (Rigify's limb parents copy the root's scale).
HARMLESS_CONSTRAINTS = {"COPY_SCALE", "STRETCH_TO", "LIMIT_SCALE", "MAINTAIN_VOLUME"}


def prepare_rig(obj, properties: dict[str, dict]) -> list[str]:
    """Set custom properties named by a rig map (bone -> {property: value}); returns what changed."""
    changed = []
    for bone, values in properties.items():
        pb = obj.pose.bones.get(bone)
        if pb is None:
            continue
        for key, value in values.items():
            if key in pb.keys() and pb[key] != value:
                pb[key] = type(pb[key])(value)
                changed.append(f'{bone}["{key}"] = {value}')
    if changed:
        bpy.context.view_layer.update()                       # let drivers see the new switches
    return changed


def _effective_parent(pb, evaluated, names: dict[str, int], warnings: dict[str, str]) -> int:
    """Index of the bone this pose bone moves with: its parent, or a Copy Transforms target."""
    parent = names[pb.parent.name] if pb.parent else -1
    for con, econ in zip(pb.constraints, evaluated.constraints):
        influence = 0.0 if con.mute or not con.enabled else float(econ.influence)
        if influence <= 1e-6 or con.type in HARMLESS_CONSTRAINTS:
            continue
        target = getattr(con, "subtarget", "")
        same_rig = getattr(con, "target", None) is pb.id_data
        if con.type in FOLLOW_CONSTRAINTS and influence >= 1 - 1e-6 and same_rig and target in names:
            parent = names[target]
        else:
            warnings[pb.name] = (f"bone {pb.name!r}: constraint {con.name!r} ({con.type}, influence "
                                 f"{influence:.2f}) is not modelled; assumed to follow its parent")
    return parent


def rig_rest_from_object(obj) -> RigRest:
    """The rest of an armature object as arrays (see retarget.RigRest)."""
    if obj is None or obj.type != "ARMATURE":
        raise RetargetError(f"{getattr(obj, 'name', None)!r} is not an armature", "select an armature")
    bones = obj.data.bones
    names = [b.name for b in bones]
    index = {n: i for i, n in enumerate(names)}
    rest = np.array([np.array(b.matrix_local) for b in bones], np.float64).reshape(-1, 4, 4)
    tails = np.array([tuple(b.tail_local) for b in bones], np.float64).reshape(-1, 3)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    warnings: dict[str, str] = {}
    parents = np.array([_effective_parent(obj.pose.bones[n], evaluated.pose.bones[n], index, warnings)
                        for n in names], dtype=int)
    return RigRest(names=names, parents=parents, rest=rest, tails=tails,
                   object_matrix=np.array(obj.matrix_world, np.float64), warnings=warnings)


def relevant_warnings(rig: RigRest, bones) -> list[str]:
    """The warnings about the given bones and their effective ancestors."""
    keep, index = set(), rig.index()
    for name in bones:
        b = index.get(name, -1)
        while b >= 0 and rig.names[b] not in keep:
            keep.add(rig.names[b])
            b = int(rig.parents[b])
    return [w for bone, w in rig.warnings.items() if bone in keep]


def apply_tracks_to_pose(obj, tracks: BoneTracks, frame_index: int, update: bool = True) -> None:
    """Set frame `frame_index` of `tracks` on the pose channels (any rotation mode); no keys."""
    for name, quats in tracks.rotations.items():
        pb = obj.pose.bones[name]
        q = quats[frame_index]
        if pb.rotation_mode == "QUATERNION":
            pb.rotation_quaternion = q
        elif pb.rotation_mode == "AXIS_ANGLE":
            angle = 2.0 * np.arctan2(np.linalg.norm(q[1:]), q[0])
            axis = q[1:] / max(np.linalg.norm(q[1:]), 1e-12) if angle > 1e-9 else np.array([0.0, 1.0, 0.0])
            pb.rotation_axis_angle = (angle, *axis)
        else:
            pb.rotation_euler = quat_to_euler(q[None], pb.rotation_mode)[0]
    for name, locs in tracks.locations.items():
        obj.pose.bones[name].location = locs[frame_index]
    if update:
        bpy.context.view_layer.update()


def reset_pose(obj) -> None:
    """Every pose channel back to rest (basis identity)."""
    for pb in obj.pose.bones:
        pb.location = (0.0, 0.0, 0.0)
        pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        pb.rotation_euler = (0.0, 0.0, 0.0)
        pb.rotation_axis_angle = (0.0, 0.0, 1.0, 0.0)
        pb.scale = (1.0, 1.0, 1.0)
    bpy.context.view_layer.update()

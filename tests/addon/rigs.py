"""Test rigs for retargeting: bone layouts as plain data, and builders that make them in bpy.

Layouts (lists of `Bone`, world space, Z up, metres, facing -Y): an SMPL-proportioned T-pose, a
Mixamo-named rig with other proportions, random bone rolls and an FBX-like object transform
(Y-up armature data in centimetres, object rotated 90 degrees about X, scale 0.01), and a
UE5-named A-pose rig (arms 45 degrees down, knees bent, five spine bones, root and twist bones).
`rest_from_layout` turns a layout into a RigRest without Blender; `build_armature` makes it in bpy;
`build_rigify` generates a Rigify rig from the human metarig. bpy is imported only inside builders.
"""
from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irmogen.skeleton import INDEX, JOINT_NAMES, PARENTS, REST_OFFSETS

REPO = Path(__file__).resolve().parents[2]


def addon_module(name: str):
    """Import addon/<name>.py without running addon/__init__.py (which registers the whole UI)."""
    if "_irmogen_addon" not in sys.modules:
        pkg = types.ModuleType("_irmogen_addon")
        pkg.__path__ = [str(REPO / "addon")]
        sys.modules["_irmogen_addon"] = pkg
    return importlib.import_module(f"_irmogen_addon.{name}")


Y_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
PRIMARY = {0: 3, 9: 12}

MIXAMO = dict(zip(JOINT_NAMES, (
    "Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1", "LeftFoot", "RightFoot",
    "Spine2", "LeftToeBase", "RightToeBase", "Neck", "LeftShoulder", "RightShoulder", "Head", "LeftArm",
    "RightArm", "LeftForeArm", "RightForeArm", "LeftHand", "RightHand")))
UE5 = dict(zip(JOINT_NAMES, (
    "pelvis", "thigh_l", "thigh_r", "spine_02", "calf_l", "calf_r", "spine_04", "foot_l", "foot_r",
    "spine_05", "ball_l", "ball_r", "neck_01", "clavicle_l", "clavicle_r", "head", "upperarm_l",
    "upperarm_r", "lowerarm_l", "lowerarm_r", "hand_l", "hand_r")))


@dataclass
class Bone:
    name: str
    parent: str | None
    head: np.ndarray      # (3,) world
    tail: np.ndarray      # (3,) world
    roll: float = 0.0     # radians


def _about(axis: np.ndarray, angle: float) -> np.ndarray:
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def joint_positions(scale: dict | None = None, arms_down_deg: float = 0.0, knee_deg: float = 0.0) -> np.ndarray:
    """(22, 3) SMPL joints in Blender axes (Z up, facing -Y, feet at z = 0), with per-joint offset
    scales, arms lowered by `arms_down_deg` (A-pose) and knees bent forward by `knee_deg`."""
    off = np.array(REST_OFFSETS, np.float64)
    for j, s in (scale or {}).items():
        off[INDEX[j]] *= s
    pos = np.zeros((22, 3))
    for j in range(1, 22):
        pos[j] = pos[PARENTS[j]] + off[j]

    def turn(joints, pivot, rot):
        for j in joints:
            pos[j] = pivot + rot @ (pos[j] - pivot)

    for side, sign in (("left", -1.0), ("right", 1.0)):
        arm = [INDEX[f"{side}_{n}"] for n in ("elbow", "wrist")]
        turn(arm, pos[INDEX[f"{side}_shoulder"]].copy(), _about(np.array([0, 0, 1.0]), sign * np.radians(arms_down_deg)))
        leg = [INDEX[f"{side}_{n}"] for n in ("knee", "ankle", "foot")]
        turn(leg, pos[INDEX[f"{side}_hip"]].copy(), _about(np.array([1.0, 0, 0]), -np.radians(knee_deg)))
        turn(leg[1:], pos[leg[0]].copy(), _about(np.array([1.0, 0, 0]), 2 * np.radians(knee_deg)))
        turn(leg[2:], pos[leg[1]].copy(), _about(np.array([1.0, 0, 0]), -np.radians(knee_deg)))
    pos = pos @ Y_TO_Z_UP.T
    pos[:, 2] -= pos[:, 2].min() - 0.03          # joints sit a little above the soles
    return pos


def _smpl_bones(pos: np.ndarray, names: dict, rolls: np.ndarray) -> list[Bone]:
    bones = []
    for j, name in enumerate(JOINT_NAMES):
        child = PRIMARY.get(j, next((c for c, p in enumerate(PARENTS) if p == j), None))
        tail = pos[child] if child is not None else pos[j] + 0.5 * (pos[j] - pos[PARENTS[j]])
        if j in (10, 11):                         # toes point forward along the floor
            tail = pos[j] + np.array([0.0, -0.08, 0.0])
        parent = names[JOINT_NAMES[PARENTS[j]]] if PARENTS[j] >= 0 else None
        bones.append(Bone(names[name], parent, pos[j], tail, float(rolls[j])))
    return bones


def smpl_layout() -> list[Bone]:
    return _smpl_bones(joint_positions(), {n: n for n in JOINT_NAMES}, np.zeros(22))


def mixamo_layout(prefix: str = "mixamorig:") -> list[Bone]:
    pos = joint_positions(scale={"left_knee": 1.12, "right_knee": 1.12, "left_ankle": 1.1, "right_ankle": 1.1,
                                 "spine2": 1.2, "spine3": 1.3, "neck": 0.9, "left_elbow": 0.92,
                                 "right_elbow": 0.92, "left_wrist": 0.85, "right_wrist": 0.85})
    rolls = np.random.default_rng(7).uniform(-np.pi, np.pi, 22)
    names = {n: prefix + m for n, m in MIXAMO.items()}
    bones = _smpl_bones(pos, names, rolls)
    extra = (("HeadTop_End", "Head", (0, 0, 0.18)), ("LeftHandIndex1", "LeftHand", (0.05, 0, 0)),
             ("LeftToe_End", "LeftToeBase", (0, -0.05, 0)))
    by_name = {b.name: b for b in bones}
    for name, parent, d in extra:
        head = by_name[prefix + parent].tail
        bones.append(Bone(prefix + name, prefix + parent, head, head + np.array(d, float), 0.3))
    return bones


MIXAMO_OBJECT_MATRIX = np.array([[0.01, 0, 0, 0], [0, 0, -0.01, 0], [0, 0.01, 0, 0], [0, 0, 0, 1.0]])


def ue5_layout() -> list[Bone]:
    """A-pose (arms 45 degrees down), knees bent 8 degrees, five spine bones, root and twist bones."""
    pos = joint_positions(scale={"spine2": 1.1, "left_knee": 1.05, "right_knee": 1.05},
                          arms_down_deg=45.0, knee_deg=8.0)
    rolls = np.random.default_rng(11).uniform(-np.pi, np.pi, 22)
    bones = _smpl_bones(pos, UE5, rolls)
    by = {b.name: b for b in bones}
    p0, p3, p6 = pos[0], pos[3], pos[6]
    # Five spine bones: spine_01 and spine_03 split SMPL's first two segments (left at rest).
    by["spine_02"].head, by["spine_02"].tail = p3, 0.5 * (p3 + p6)
    by["spine_04"].parent = "spine_03"
    by["spine_02"].parent = "spine_01"
    bones += [Bone("spine_01", "pelvis", 0.5 * (p0 + p3), p3, 0.2), Bone("spine_03", "spine_02", 0.5 * (p3 + p6), p6, -0.4)]
    by["pelvis"].tail = 0.5 * (p0 + p3)
    by["pelvis"].parent = "root"
    bones.append(Bone("root", None, np.zeros(3), np.array([0.0, 0.0, 0.25]), 0.0))
    for side in ("l", "r"):
        arm = by[f"upperarm_{side}"]
        bones.append(Bone(f"upperarm_twist_01_{side}", arm.name, 0.5 * (arm.head + arm.tail), arm.tail, 1.0))
        bones.append(Bone(f"ik_foot_{side}", "root", by[f"foot_{side}"].head, by[f"foot_{side}"].head + [0, 0.1, 0], 0.0))
    return bones


def _frame(head, tail, roll) -> np.ndarray:
    """A (4, 4) bone matrix with +Y along the bone (head at origin) turned by `roll` about it."""
    y = (tail - head) / np.linalg.norm(tail - head)
    ref = np.array([0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(y, ref)
    x /= np.linalg.norm(x)
    z = np.cross(x, y)
    m = np.eye(4)
    m[:3, :3] = _about(y, roll) @ np.stack([x, y, z], axis=1)
    m[:3, 3] = head
    return m


def rest_from_layout(bones: list[Bone], object_matrix: np.ndarray | None = None):
    """A RigRest without Blender (armature space = inverse(object_matrix) applied to the layout)."""
    RigRest = addon_module("retarget").RigRest
    obj = np.eye(4) if object_matrix is None else np.asarray(object_matrix, float)
    inv = np.linalg.inv(obj)
    names = [b.name for b in bones]
    world = np.array([_frame(np.asarray(b.head, float), np.asarray(b.tail, float), b.roll) for b in bones])
    rest = inv @ world
    scale = np.cbrt(np.linalg.det(obj[:3, :3]))
    rest[:, :3, :3] *= scale                                # keep the rotation part orthonormal
    tails = np.array([inv[:3, :3] @ b.tail + inv[:3, 3] for b in bones])
    parents = np.array([names.index(b.parent) if b.parent else -1 for b in bones])
    return RigRest(names=names, parents=parents, rest=rest, tails=tails, object_matrix=obj)


# ---- bpy builders --------------------------------------------------------------------------
def build_armature(name: str, bones: list[Bone], object_matrix: np.ndarray | None = None):
    import bpy
    from mathutils import Matrix

    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    obj.matrix_world = Matrix(np.eye(4) if object_matrix is None else object_matrix)
    bpy.context.view_layer.objects.active = obj
    inv = np.linalg.inv(np.eye(4) if object_matrix is None else object_matrix)
    bpy.ops.object.mode_set(mode="EDIT")
    for b in bones:
        eb = data.edit_bones.new(b.name)
        eb.head = inv[:3, :3] @ b.head + inv[:3, 3]
        eb.tail = inv[:3, :3] @ b.tail + inv[:3, 3]
        eb.roll = b.roll
    for b in bones:
        if b.parent:
            data.edit_bones[b.name].parent = data.edit_bones[b.parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    bpy.context.view_layer.update()
    return obj


def build_rigify():
    """A Rigify rig generated from the human metarig (about 7 s in the bpy module)."""
    import addon_utils
    import bpy

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    metarig = bpy.context.object
    bpy.ops.pose.rigify_generate()
    rig = bpy.context.object
    metarig.hide_set(True)
    return rig

"""A simple skinned humanoid built by code: a preview dummy for motions, and the demo's character.

An armature whose 22 bones carry the SMPL joint names (so `rigmap` detects it as the SMPL rig) in
a T-pose, and one mesh of capsules, each rigidly skinned (weight 1) to one bone like a wooden
artist's mannequin. The body is the SMPL neutral joint layout of the motion contract: Y up,
facing +Z, converted to Blender's Z up facing -Y by (x, y, z) -> (x, -z, y); the character's left
stays +X. Left limbs are blue, right limbs orange, so mirrored motion is easy to spot.
No third-party assets. Imports bpy, numpy and the add-on's `protocol` only.
"""
from __future__ import annotations

import bpy
import numpy as np

from . import protocol

JOINTS, PARENTS = protocol.JOINT_NAMES, protocol.PARENTS
INDEX = {name: j for j, name in enumerate(JOINTS)}

# T-pose rest offsets of the left and centre joints (metres, joint minus parent, Y up, facing +Z,
# left = +X): the SMPL neutral layout, the same numbers as the backend's `skeleton.REST_OFFSETS`
# (a test checks they agree; the add-on cannot import the backend). Right joints mirror x.
_LEFT_AND_CENTRE = {
    "left_hip": (0.069, -0.091, -0.006), "spine1": (0.0, 0.109, -0.027),
    "left_knee": (0.036, -0.379, -0.007), "spine2": (0.0, 0.135, 0.001),
    "left_ankle": (-0.015, -0.398, -0.043), "spine3": (0.0, 0.053, 0.025),
    "left_foot": (0.026, -0.052, 0.121), "neck": (0.0, 0.214, -0.043),
    "left_collar": (0.080, 0.120, -0.036), "head": (0.0, 0.065, 0.051),
    "left_shoulder": (0.094, 0.032, -0.009), "left_elbow": (0.257, 0.0, 0.0),
    "left_wrist": (0.252, 0.0, 0.0),
}
FOOT_RADIUS = 0.035  # metres; the lowest joint sits this high so the soles touch z = 0

# Body parts: (bone it is skinned to, start, end, radius in metres). Start and end are joint names
# or (joint, extension) pairs: a point that far (metres) past the joint along the limb's last
# direction (leaves: hands, toes, top of the head).
PARTS = (
    ("pelvis", "left_hip", "right_hip", 0.105),
    ("pelvis", "pelvis", "spine1", 0.11),
    ("spine1", "spine1", "spine2", 0.115),
    ("spine2", "spine2", "spine3", 0.12),
    ("spine3", "spine3", "neck", 0.125),
    ("spine3", "left_collar", "right_collar", 0.085),
    ("neck", "neck", "head", 0.05),
    ("head", "head", ("head", 0.13), 0.095),
    ("left_collar", "left_collar", "left_shoulder", 0.055),
    ("right_collar", "right_collar", "right_shoulder", 0.055),
    ("left_shoulder", "left_shoulder", "left_elbow", 0.05),
    ("right_shoulder", "right_shoulder", "right_elbow", 0.05),
    ("left_elbow", "left_elbow", "left_wrist", 0.04),
    ("right_elbow", "right_elbow", "right_wrist", 0.04),
    ("left_wrist", "left_wrist", ("left_wrist", 0.1), 0.035),
    ("right_wrist", "right_wrist", ("right_wrist", 0.1), 0.035),
    ("left_hip", "left_hip", "left_knee", 0.07),
    ("right_hip", "right_hip", "right_knee", 0.07),
    ("left_knee", "left_knee", "left_ankle", 0.052),
    ("right_knee", "right_knee", "right_ankle", 0.052),
    ("left_ankle", "left_ankle", "left_ankle", 0.045),   # a sphere: the heel
    ("right_ankle", "right_ankle", "right_ankle", 0.045),
    ("left_ankle", "left_ankle", "left_foot", FOOT_RADIUS),
    ("right_ankle", "right_ankle", "right_foot", FOOT_RADIUS),
    ("left_foot", "left_foot", ("left_foot", 0.06), FOOT_RADIUS),
    ("right_foot", "right_foot", ("right_foot", 0.06), FOOT_RADIUS),
)
COLOURS = {"centre": (0.62, 0.62, 0.60, 1.0), "left": (0.25, 0.45, 0.80, 1.0),
           "right": (0.90, 0.50, 0.20, 1.0)}


def rest_offsets() -> np.ndarray:
    """(22, 3) T-pose offsets, metres, Y up, facing +Z."""
    off = np.zeros((len(JOINTS), 3))
    for name, v in _LEFT_AND_CENTRE.items():
        off[INDEX[name]] = v
        if name.startswith("left_"):
            off[INDEX["right_" + name[5:]]] = (-v[0], v[1], v[2])
    return off


def rest_joints(offsets: np.ndarray | None = None) -> np.ndarray:
    """(22, 3) joint positions in Blender space (Z up, facing -Y, metres), soles at z = 0."""
    off = rest_offsets() if offsets is None else np.asarray(offsets, np.float64)
    pos = np.zeros_like(off)
    for j in range(1, len(JOINTS)):
        pos[j] = pos[PARENTS[j]] + off[j]
    pos = pos[:, [0, 2, 1]] * [1.0, -1.0, 1.0]  # Y up, +Z front -> Z up, -Y front
    pos[:, 2] += FOOT_RADIUS - pos[:, 2].min()
    return pos


def _point(pos: np.ndarray, spec) -> np.ndarray:
    """A joint position, or a point `extension` metres past a leaf joint along its parent bone."""
    if isinstance(spec, str):
        return pos[INDEX[spec]]
    name, extension = spec
    j = INDEX[name]
    if name == "head":
        direction = np.array([0.0, 0.0, 1.0])
    else:
        direction = pos[j] - pos[PARENTS[j]]
        if name.endswith("_foot"):
            direction[2] = 0.0  # toes point forward along the floor
        direction /= np.linalg.norm(direction)
    return pos[j] + extension * direction


def bone_tails(pos: np.ndarray) -> np.ndarray:
    """(22, 3) bone tails: the only child (pelvis: spine1, spine3: the neck); leaves (head, wrists,
    toes) continue their parent's segment, as the clip's joints do, so retargeting needs no
    calibration on this rig."""
    tails = np.empty_like(pos)
    leaf_length = {"head": 0.13, "left_wrist": 0.1, "right_wrist": 0.1, "left_foot": 0.06, "right_foot": 0.06}
    child = {"pelvis": "spine1", "spine3": "neck"}
    for j, name in enumerate(JOINTS):
        if name in leaf_length:
            segment = pos[j] - pos[PARENTS[j]]
            tails[j] = pos[j] + leaf_length[name] * segment / np.linalg.norm(segment)
        else:
            tails[j] = pos[INDEX[child[name]]] if name in child else pos[PARENTS.index(j)]  # first child
    return tails


def capsule(a: np.ndarray, b: np.ndarray, radius: float, around: int = 12,
            rings: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A closed capsule from a to b -> (vertices (V, 3), quads (Q, 4), triangles (T, 3)).

    Latitude rings of two hemispheres (the lower one centred on a, the upper on b) plus two poles.
    A zero-length segment gives a sphere.
    """
    axis = b - a
    length = float(np.linalg.norm(axis))
    w = axis / length if length > 1e-9 else np.array([0.0, 0.0, 1.0])
    helper = np.array([1.0, 0.0, 0.0]) if abs(w[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(w, helper)
    u /= np.linalg.norm(u)
    v = np.cross(w, u)
    lat = np.concatenate([np.linspace(-np.pi / 2, 0, rings + 1)[1:], np.linspace(0, np.pi / 2, rings + 1)[:-1]])
    height = np.where(np.arange(len(lat)) < rings, 0.0, length) + radius * np.sin(lat)   # (R,)
    ring_r = radius * np.cos(lat)
    theta = np.linspace(0, 2 * np.pi, around, endpoint=False)
    ring = (ring_r[:, None, None] * (np.cos(theta)[None, :, None] * u + np.sin(theta)[None, :, None] * v)
            + height[:, None, None] * w)                                                  # (R, A, 3)
    verts = np.concatenate([[-radius * w], ring.reshape(-1, 3), [(length + radius) * w]]) + a
    n_ring = len(lat)
    idx = 1 + np.arange(n_ring * around).reshape(n_ring, around)
    nxt = np.roll(idx, -1, axis=1)
    quads = np.stack([idx[:-1], nxt[:-1], nxt[1:], idx[1:]], axis=-1).reshape(-1, 4)
    top = len(verts) - 1
    tris = np.concatenate([np.stack([np.zeros(around, int), nxt[0], idx[0]], -1),
                           np.stack([idx[-1], nxt[-1], np.full(around, top)], -1)])
    return verts, quads, tris


def _side(bone: str) -> str:
    return "left" if bone.startswith("left_") else "right" if bone.startswith("right_") else "centre"


def _material(side: str):
    name = f"IRMoGen Mannequin {side}"
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.diffuse_color = COLOURS[side]  # what Workbench and the viewport's solid mode show
    return mat


def build_armature(name: str, pos: np.ndarray, collection):
    """The armature object with one bone per joint (heads on the joints), in a T-pose."""
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    collection.objects.link(obj)
    view_layer = bpy.context.view_layer
    previous = view_layer.objects.active
    view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    tails, bones = bone_tails(pos), []
    for j, joint in enumerate(JOINTS):
        bone = arm.edit_bones.new(joint)
        bone.head, bone.tail = pos[j], tails[j]
        if PARENTS[j] >= 0:
            bone.parent = bones[PARENTS[j]]
            bone.use_connect = False
        bones.append(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = previous
    arm.display_type = "STICK"
    return obj


def build_body(name: str, pos: np.ndarray, collection):
    """The capsule mesh: one vertex group per bone (weight 1), three materials by side."""
    verts, faces, groups, sides = [], [], {}, []
    for bone, start, end, radius in PARTS:
        v, quads, tris = capsule(_point(pos, start), _point(pos, end), radius)
        base = sum(len(x) for x in verts)
        groups.setdefault(bone, []).extend(range(base, base + len(v)))
        faces += [tuple(f) for f in (quads + base).tolist()] + [tuple(f) for f in (tris + base).tolist()]
        sides += [_side(bone)] * (len(quads) + len(tris))
        verts.append(v)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(np.concatenate(verts).tolist(), [], faces)
    order = list(COLOURS)
    for side in order:
        mesh.materials.append(_material(side))
    mesh.polygons.foreach_set("material_index", [order.index(s) for s in sides])
    mesh.polygons.foreach_set("use_smooth", [True] * len(sides))
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    for bone, indices in groups.items():
        obj.vertex_groups.new(name=bone).add(indices, 1.0, "REPLACE")
    return obj


def build_mannequin(name: str = "Mannequin", location=(0.0, 0.0, 0.0), collection=None):
    """Armature + skinned capsule body at `location` (the point between the soles); -> armature."""
    collection = collection or bpy.context.scene.collection
    pos = rest_joints()
    rig = build_armature(name, pos, collection)
    body = build_body(f"{rig.name} Body", pos, collection)
    body.parent = rig
    modifier = body.modifiers.new("Armature", "ARMATURE")
    modifier.object = rig
    rig.location = location
    return rig

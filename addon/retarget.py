"""Retargeting: an SMPL-22 clip onto any humanoid armature's bones, as pose-channel tracks.

Pure numpy (no bpy, no mathutils, nothing from the backend), so it runs and is tested without
Blender; `armature.py` turns a Blender armature into a `RigRest` and applies the result.

Method (reference/blender.md, "Retargeting"): rest-delta transfer of world orientations. The clip's
rest is a T-pose whose joints all have the identity world orientation, so a target bone mapped to
SMPL joint j gets the world orientation  P_b = S_j * K_b * B_b , with S_j the source joint's posed
world rotation, B_b the bone's rest world rotation and K_b a per-bone calibration: the shortest
rotation taking the bone's rest direction onto the source rest direction of joint j. With a T-pose
target K_b is the identity and the transfer is roll independent; with an A-pose (or Rigify's rest)
K_b makes every bone's world direction follow the source bone's direction. Local channels follow
Blender's rule  posed = parent_posed * (parent_rest^-1 * rest) * basis . Quaternions are (w, x, y, z).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# SMPL-22 as in the clip contract (reference/motion.md); the add-on cannot import the backend.
JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
INDEX = {n: i for i, n in enumerate(JOINT_NAMES)}
# The child whose segment is "the bone" of a joint with several children (pelvis, spine3); leaves
# (feet, head, wrists) have none and continue their parent's segment.
PRIMARY_CHILD = {j: next(c for c, p in enumerate(PARENTS) if p == j) for j in set(PARENTS) if j >= 0}
PRIMARY_CHILD.update({0: INDEX["spine1"], 9: INDEX["neck"]})
# Y up (clip) -> Z up (Blender): +90 degrees about X, (x, y, z) -> (x, -z, y).
Y_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
ROOT_MODES = ("hips", "root_bone", "in_place")
_EPS = 1e-9


class RetargetError(Exception):
    """The add-on's retargeting error: a one-line message plus a hint saying what to do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class RigRest:
    """A target armature's rest, as plain arrays (built by armature.rig_rest_from_object)."""
    names: list[str]              # bone names
    parents: np.ndarray           # (N,) int, effective parent index, -1 for none
    rest: np.ndarray              # (N, 4, 4) Bone.matrix_local: rest in armature space (bone axis = +Y)
    tails: np.ndarray             # (N, 3) rest tail positions, armature space
    object_matrix: np.ndarray = field(default_factory=lambda: np.eye(4))  # (4, 4) matrix_world
    warnings: dict[str, str] = field(default_factory=dict)  # bone -> what the model ignores there

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}


@dataclass
class RetargetOptions:
    scene_fps: float = 24.0
    frame_start: int = 1
    root_motion: str = "hips"         # "hips", "root_bone" (horizontal motion on root_bone), "in_place"
    root_bone: str | None = None      # the game-engine root bone, for root_motion == "root_bone"
    scale_to_rig: bool = True         # scale the root translation by the ratio of hip heights
    calibrate: bool = True            # per-bone calibration for rests that are not a T-pose
    match_facing: bool = True         # turn the motion to the rig's facing (from its hip line)


@dataclass
class BoneTracks:
    frames: np.ndarray                                  # (F,) scene frame numbers
    rotations: dict[str, np.ndarray]                    # bone -> (F, 4) rotation_quaternion, wxyz
    locations: dict[str, np.ndarray]                    # bone -> (F, 3) location channel
    fps: float = 24.0
    scale: float = 1.0                                  # target / source hip height
    yaw: float = 0.0                                    # radians the motion was turned about up

    @property
    def num_frames(self) -> int:
        return int(len(self.frames))


# ---- rotation primitives (wxyz quaternions, 3x3 matrices acting on column vectors) ----------------
def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1).reshape(w.shape + (3, 3))


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation -> (..., 4) unit quaternion with w >= 0 (Shepperd's method)."""
    m = np.asarray(m, np.float64)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = np.stack([
        np.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - tr, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 + 2 * m[..., 1, 1] - tr, m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 + 2 * m[..., 2, 2] - tr], -1),
    ], -2)                                                    # (..., 4 candidates, 4)
    pick = np.argmax(np.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1), axis=-1)
    q = np.take_along_axis(cands, pick[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) shortest-arc rotation taking direction a onto direction b."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), _EPS)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), _EPS)
    w = 1.0 + np.sum(a * b, axis=-1, keepdims=True)
    xyz = np.cross(a, b)
    opposite = w[..., 0] < 1e-9                               # any perpendicular axis will do
    if np.any(opposite):
        alt = np.cross(a[opposite], [1.0, 0.0, 0.0])
        weak = np.linalg.norm(alt, axis=-1) < 1e-6
        alt[weak] = np.cross(a[opposite][weak], [0.0, 1.0, 0.0])
        xyz[opposite], w[opposite] = alt, 0.0
    return quat_to_matrix(np.concatenate([w, xyz], axis=-1))


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of (..., 4) quaternions by t (broadcast on the leading axes)."""
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    theta = np.arccos(np.clip(np.abs(dot), -1.0, 1.0))
    sin = np.sin(theta)
    near = sin < 1e-6
    t = np.asarray(t, np.float64)[..., None]
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / np.where(near, 1.0, sin))
    wb = np.where(near, t, np.sin(t * theta) / np.where(near, 1.0, sin))
    q = wa * a + wb * b
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 (time) so neighbouring quaternions lie in the same hemisphere."""
    q = np.array(q, np.float64)
    flips = np.sum(q[1:] * q[:-1], axis=-1) < 0
    sign = np.concatenate([np.ones((1,) + flips.shape[1:]), np.cumprod(np.where(flips, -1.0, 1.0), axis=0)])
    return q * sign[..., None]


def quat_to_euler(q: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """(F, 4) wxyz -> (F, 3) Blender Euler angles (radians, channels x, y, z) for `order`,
    unwrapped over time. Blender's 'XYZ' means R = Rz @ Ry @ Rx (X applied first)."""
    m = quat_to_matrix(q)
    i, j, k = ("XYZ".index(c) for c in order)
    sign = 1.0 if (j - i) % 3 == 1 else -1.0                # even permutation of XYZ
    beta = np.arcsin(np.clip(-sign * m[..., k, i], -1.0, 1.0))
    alpha = np.arctan2(sign * m[..., k, j], m[..., k, k])
    gamma = np.arctan2(sign * m[..., j, i], m[..., i, i])
    out = np.zeros(m.shape[:-2] + (3,))
    out[..., i], out[..., j], out[..., k] = alpha, beta, gamma
    return np.unwrap(out, axis=0) if out.ndim == 2 else out


# ---- the source: SMPL clip -> world rotations and root at the scene frame rate ------------------
def resample(rotations: np.ndarray, root: np.ndarray, src_fps: float, dst_fps: float):
    """Local rotations (T, 22, 4) and root (T, 3) at src_fps -> round(T * dst / src) frames (slerp)."""
    t = rotations.shape[0]
    n = max(1, int(round(t * dst_fps / src_fps)))
    s = np.minimum(np.arange(n) * (src_fps / dst_fps), t - 1)  # source frame of each output frame
    i0 = np.floor(s).astype(int)
    i1 = np.minimum(i0 + 1, t - 1)
    w = s - i0
    rot = slerp(rotations[i0], rotations[i1], w[:, None])
    return rot, root[i0] * (1 - w[:, None]) + root[i1] * w[:, None]


def world_rotations(local: np.ndarray) -> np.ndarray:
    """(F, 22, 3, 3) local rotations -> world rotations by the SMPL hierarchy."""
    world = np.empty_like(local)
    for j, p in enumerate(PARENTS):
        world[:, j] = local[:, j] if p < 0 else world[:, p] @ local[:, j]
    return world


def rest_positions(offsets: np.ndarray) -> np.ndarray:
    pos = np.zeros((len(JOINT_NAMES), 3))
    for j, p in enumerate(PARENTS):
        if p >= 0:
            pos[j] = pos[p] + offsets[j]
    return pos


def source_rest_directions(offsets: np.ndarray) -> np.ndarray:
    """(22, 3) unit rest direction of each joint's bone, Y up: to its primary child, else (leaves)
    the parent's segment continued."""
    d = np.array([offsets[PRIMARY_CHILD[j]] if j in PRIMARY_CHILD else offsets[j] for j in range(len(JOINT_NAMES))])
    return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), _EPS)


def _clip_field(clip, name: str) -> np.ndarray:
    value = clip[name] if isinstance(clip, dict) or hasattr(clip, "files") else getattr(clip, name)
    return np.asarray(value, np.float64)


def read_clip(clip) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(offsets (22,3), rotations (T,22,4), root (T,3), fps) from a dict, an npz or a Clip-like."""
    try:
        offsets, rotations = _clip_field(clip, "offsets"), _clip_field(clip, "rotations")
        root, fps = _clip_field(clip, "root_translation"), float(_clip_field(clip, "fps"))
    except (KeyError, AttributeError) as e:
        raise RetargetError(f"clip: missing field {e}", "pass a clip .npz or its arrays") from None
    t = rotations.shape[0] if rotations.ndim == 3 else -1
    for name, arr, shape in (("offsets", offsets, (22, 3)), ("rotations", rotations, (t, 22, 4)),
                             ("root_translation", root, (t, 3))):
        if arr.shape != shape or t < 1 or not np.all(np.isfinite(arr)):
            raise RetargetError(f"clip: field '{name}' has shape {arr.shape} (expected {shape}, finite)")
    if not fps > 0:
        raise RetargetError(f"clip: field 'fps' is {fps!r}, expected a positive number")
    return offsets, rotations, root, fps


# ---- the transfer ------------------------------------------------------------------------------
def _about_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _topological(parents: np.ndarray, wanted: set[int]) -> list[int]:
    """`wanted` plus all their ancestors, parents before children; RetargetError on a cycle."""
    depth: dict[int, int] = {}
    for i in wanted:
        chain, b = [], i
        while b >= 0 and b not in depth:
            if b in chain:
                raise RetargetError(f"armature: bone hierarchy has a cycle through bone #{b}")
            chain.append(b)
            b = int(parents[b])
        base = depth[b] if b >= 0 else -1
        for k, c in enumerate(reversed(chain)):
            depth[c] = base + 1 + k
    return sorted(depth, key=lambda b: depth[b])


def _check_mapping(rig: RigRest, mapping: dict[str, str], options: RetargetOptions) -> dict[int, int]:
    """SMPL joint index -> bone index; errors name the joint or bone at fault."""
    index = rig.index()
    unknown = [j for j in mapping if j not in INDEX]
    absent = [b for b in mapping.values() if b not in index]
    if unknown or absent:
        raise RetargetError(f"mapping: unknown SMPL joint(s) {unknown or 'none'}, bone(s) not in the armature "
                            f"{absent or 'none'}", "re-detect the rig or fix the map")
    if "pelvis" not in mapping:
        raise RetargetError("mapping: no bone for 'pelvis' (the hips)", "the hips bone carries the root motion")
    if len(set(mapping.values())) != len(mapping):
        raise RetargetError("mapping: one bone is mapped to two SMPL joints")
    if options.root_motion not in ROOT_MODES:
        raise RetargetError(f"options: root_motion '{options.root_motion}' is not one of {ROOT_MODES}")
    if not options.scene_fps > 0:
        raise RetargetError(f"options: scene_fps {options.scene_fps!r} must be positive")
    if options.root_motion == "root_bone":
        root = options.root_bone
        if root not in index:
            raise RetargetError(f"options: root bone {root!r} is not in the armature",
                                "pick the root bone or use root motion on the hips / in place")
        hips, b = index[mapping["pelvis"]], index[root]
        while b >= 0:                                          # the root must not move with the hips
            if b == hips:
                raise RetargetError(f"options: root bone {root!r} is the hips bone or below it")
            b = int(rig.parents[b])
        if root in mapping.values():
            raise RetargetError(f"options: root bone {root!r} is also mapped to an SMPL joint")
    return {INDEX[j]: index[b] for j, b in mapping.items()}


def retarget_clip(rig: RigRest, clip, mapping: dict[str, str], options: RetargetOptions | None = None) -> BoneTracks:
    """An SMPL-22 clip -> per-bone pose channels of `rig` at the scene frame rate.

    `clip`: a dict / npz / Clip-like with offsets, rotations, root_translation, fps (DESIGN.md).
    `mapping`: SMPL joint name -> bone name (rigmap.detect(...).mapping). Bones not in the mapping
    get no track, except the root bone in root_motion == "root_bone".
    """
    options = options or RetargetOptions()
    joint_to_bone = _check_mapping(rig, mapping, options)
    offsets, rotations, root, fps = read_clip(clip)
    local_q, root = resample(rotations, root, fps, options.scene_fps)
    src_world = world_rotations(quat_to_matrix(local_q))      # (F, 22, 3, 3), Y up

    # The rig in world space (Z up, metres); the object's uniform scale is divided out.
    obj = np.asarray(rig.object_matrix, np.float64)
    obj_scale = float(np.cbrt(abs(np.linalg.det(obj[:3, :3])))) or 1.0
    obj_rot = obj[:3, :3] / obj_scale
    rest_rot = rig.rest[:, :3, :3]
    world_rot = obj_rot @ rest_rot                             # (N, 3, 3) bone rest world rotation
    heads = rig.rest[:, :3, 3] @ obj[:3, :3].T + obj[:3, 3]    # (N, 3) world
    tails = np.asarray(rig.tails, np.float64) @ obj[:3, :3].T + obj[:3, 3]

    # Facing: the clip faces +Z (Y up) = -Y in Blender, its left on +X; turn it to the rig's left.
    yaw = 0.0
    lh, rh = mapping.get("left_hip"), mapping.get("right_hip")
    if options.match_facing and lh and rh:
        left = heads[rig.index()[lh]] - heads[rig.index()[rh]]
        if np.hypot(left[0], left[1]) > 1e-6:
            yaw = float(np.arctan2(left[1], left[0]))
    to_world = _about_z(yaw) @ Y_TO_Z_UP                       # clip axes -> Blender world
    src_world = to_world @ src_world @ to_world.T
    src_dirs = source_rest_directions(offsets) @ to_world.T    # (22, 3) world

    desired: dict[int, np.ndarray] = {}                        # bone -> (F, 3, 3) world rotation
    for j, b in joint_to_bone.items():
        calib = rotation_between(world_rot[b][:, 1], src_dirs[j]) if options.calibrate else np.eye(3)
        desired[b] = src_world[:, j] @ (calib @ world_rot[b])

    # Root motion: hips over the rig's floor, the clip's root scaled by the ratio of hip heights.
    hips = joint_to_bone[0]
    mapped = list(joint_to_bone.values())
    floor = float(min(heads[mapped, 2].min(), tails[mapped, 2].min()))
    src_rest = rest_positions(offsets)
    src_height = src_rest[0, 1] - src_rest[:, 1].min()
    rig_height = heads[hips, 2] - floor
    scale = rig_height / src_height if options.scale_to_rig and src_height > 1e-6 and rig_height > 1e-6 else 1.0
    r = scale * (root @ to_world.T)                            # (F, 3) world, relative to the floor
    if options.root_motion == "in_place":
        r[:, :2] = r[:1, :2]
    positions = {hips: np.stack([heads[hips, 0] + r[:, 0], heads[hips, 1] + r[:, 1], floor + r[:, 2]], -1)}
    if options.root_motion == "root_bone":
        rb = rig.index()[options.root_bone]
        positions[rb] = heads[rb] + np.concatenate([r[:, :2] - r[:1, :2], np.zeros((len(r), 1))], -1)
        desired[rb] = np.broadcast_to(world_rot[rb], (len(r), 3, 3))

    rotations_out, locations_out = _to_local(rig, desired, positions, obj, obj_rot)
    frames = options.frame_start + np.arange(len(r))
    return BoneTracks(frames=frames, rotations=rotations_out, locations=locations_out,
                      fps=float(options.scene_fps), scale=float(scale), yaw=yaw)


def _to_local(rig: RigRest, desired: dict, positions: dict, obj: np.ndarray, obj_rot: np.ndarray):
    """World rotations / head positions of tracked bones -> their basis channels, walking the
    hierarchy: posed = parent_posed * (parent_rest^-1 * rest) * basis; untracked bones keep basis 1."""
    inv_obj = np.linalg.inv(obj)
    rest = np.asarray(rig.rest, np.float64)
    frames = next(iter(desired.values())).shape[0]
    posed_r: dict[int, np.ndarray] = {}                        # armature-space posed rotation (F, 3, 3)
    posed_t: dict[int, np.ndarray] = {}                        # armature-space posed head (F, 3)
    rotations, locations = {}, {}
    for i in _topological(rig.parents, set(desired)):
        p = int(rig.parents[i])
        if p < 0:
            base_r = np.broadcast_to(rest[i, :3, :3], (frames, 3, 3))
            base_t = np.broadcast_to(rest[i, :3, 3], (frames, 3))
        else:
            rel = np.linalg.solve(rest[p], rest[i])            # parent_rest^-1 * rest
            base_r = posed_r[p] @ rel[:3, :3]
            base_t = posed_r[p] @ rel[:3, 3] + posed_t[p]
        posed_r[i], posed_t[i] = base_r, base_t
        if i not in desired:
            continue
        target = obj_rot.T @ desired[i]                        # world -> armature space
        basis = np.swapaxes(base_r, -1, -2) @ target
        rotations[rig.names[i]] = continuous(matrix_to_quat(basis))
        posed_r[i] = target
        if i in positions:
            head = positions[i] @ inv_obj[:3, :3].T + inv_obj[:3, 3]
            locations[rig.names[i]] = np.einsum("fji,fj->fi", base_r, head - base_t)
            posed_t[i] = head
    return rotations, locations

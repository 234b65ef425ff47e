"""Joint positions -> local joint rotations + root translation, and forward kinematics back.

Every published text-to-motion model outputs joint POSITIONS; animators need ROTATIONS. The solver
gives each body segment a world orientation from two directions measured on the clip:
  * the primary direction is the bone to the segment's child (so FK lands on that child exactly);
  * the secondary direction fixes the twist about that bone: the hip line for the pelvis, a blend
    of the hip and shoulder lines up the spine, the collar line for the chest, and the hinge axis of
    the limb's own plane for thighs/shins and upper arms/forearms (falling back to the hip line or
    the chest's up axis when the knee or elbow is nearly straight, and to the previous frame when
    the two directions are parallel).
The rest pose is the T-pose of `skeleton.REST_OFFSETS` with bone lengths taken from the clip. At
the pelvis and chest, whose three children move rigidly with them, the children's rest offsets are
the clip's own measured layout, so FK reproduces all three. World orientation = current frame *
rest frame^T; local = parent world^-1 * world; quaternions are made sign-continuous over time.
Everything is vectorised over frames. Pure numpy; never imports bpy.
"""
from __future__ import annotations

import numpy as np

from . import skeleton as sk
from .quaternions import frame_from_two_directions, qcontinuous, qfrom_matrix, qidentity, qmul, qrot

LEAVES = (10, 11, 15, 20, 21)          # no child: their local rotation is the identity
RIGID_PARENTS = (0, 9)                 # pelvis and chest: three children each
BEND_FULL_DEG, BEND_NONE_DEG = 20.0, 5.0  # hinge axis trusted fully above, not at all below


def forward_kinematics(offsets: np.ndarray, rotations: np.ndarray, root_translation: np.ndarray) -> np.ndarray:
    """(22,3) offsets, (T,22,4) local wxyz, (T,3) root -> (T,22,3) world positions."""
    rotations = np.asarray(rotations, dtype=np.float64)
    t = rotations.shape[0]
    world_q = np.empty_like(rotations)
    pos = np.empty((t, sk.NUM_JOINTS, 3))
    world_q[:, 0] = rotations[:, 0]
    pos[:, 0] = root_translation
    for j in range(1, sk.NUM_JOINTS):
        p = sk.PARENTS[j]
        world_q[:, j] = qmul(world_q[:, p], rotations[:, j])
        pos[:, j] = pos[:, p] + qrot(world_q[:, p], np.broadcast_to(offsets[j], (t, 3)))
    return pos


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _hinge(upper: np.ndarray, lower: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Axis of a knee/elbow from its two segments, blended to `fallback` as the limb straightens."""
    u, l = _unit(upper), _unit(lower)
    bend = np.degrees(np.arccos(np.clip(np.sum(u * l, -1), -1.0, 1.0)))
    w = np.clip((bend - BEND_NONE_DEG) / (BEND_FULL_DEG - BEND_NONE_DEG), 0.0, 1.0)[..., None]
    return w * _unit(np.cross(u, l)) + (1.0 - w) * _unit(fallback)


def _fill_degenerate(primary: np.ndarray, secondary: np.ndarray, rest_secondary: np.ndarray) -> np.ndarray:
    """Where the secondary direction is (nearly) parallel to the primary, reuse the last good frame."""
    perp = np.linalg.norm(np.cross(_unit(primary), secondary), axis=-1)
    ok = perp > 1e-3 * np.maximum(np.linalg.norm(secondary, axis=-1), 1e-12)
    if ok.all():
        return secondary
    if not ok.any():
        return np.broadcast_to(rest_secondary, secondary.shape).copy()
    idx = np.where(ok, np.arange(len(ok)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = np.argmax(ok)  # before the first good frame: the first good frame
    return secondary[idx]


def _segment_directions(p: np.ndarray):
    """(T,22,3) positions -> per-joint primary and secondary directions, each (T,22,3)."""
    T = p.shape[0]
    prim = np.zeros((T, sk.NUM_JOINTS, 3))
    sec = np.zeros((T, sk.NUM_JOINTS, 3))
    hip_line = p[:, 1] - p[:, 2]
    shoulder_line = p[:, 16] - p[:, 17]
    chest_up = p[:, 12] - p[:, 9]
    hips, shoulders = _unit(hip_line), _unit(shoulder_line)

    def put(j, child, secondary):
        prim[:, j], sec[:, j] = p[:, child] - p[:, j], secondary

    # The pelvis and chest are framed by lines across the body; their children follow rigidly.
    prim[:, 0], sec[:, 0] = hip_line, p[:, 3] - p[:, 0]
    put(9, 12, p[:, 13] - p[:, 14])
    put(3, 6, 2 * hips + shoulders)
    put(6, 9, hips + 2 * shoulders)
    put(12, 15, shoulder_line)
    for hip, knee, ankle, toe in ((1, 4, 7, 10), (2, 5, 8, 11)):
        axis = _hinge(p[:, knee] - p[:, hip], p[:, ankle] - p[:, knee], hip_line)
        put(hip, knee, axis)
        put(knee, ankle, axis)
        put(ankle, toe, axis)
    for sign, (collar, shoulder, elbow, wrist) in ((-1.0, (13, 16, 18, 20)), (1.0, (14, 17, 19, 21))):
        # Arms in the T-pose bend forward about -Y (left) / +Y (right): the fallback matches that.
        axis = _hinge(p[:, elbow] - p[:, shoulder], p[:, wrist] - p[:, elbow], sign * chest_up)
        put(collar, shoulder, chest_up)
        put(shoulder, elbow, axis)
        put(elbow, wrist, axis)
    return prim, sec


# The rest frames come from the same construction applied to the T-pose, so a T-pose solves to
# identity rotations by construction.
_REST_PRIM, _REST_SEC = (d[0] for d in _segment_directions(sk.rest_positions()[None]))


def solve(positions: np.ndarray):
    """(T,22,3) world positions -> (offsets (22,3), rotations (T,22,4) wxyz, root_translation (T,3))."""
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (sk.NUM_JOINTS, 3) or len(p) == 0:
        raise ValueError(f"positions must have shape (T, 22, 3), got {p.shape}")
    prim, sec = _segment_directions(p)
    for j in range(sk.NUM_JOINTS):
        if j not in LEAVES:
            sec[:, j] = _fill_degenerate(prim[:, j], sec[:, j], _REST_SEC[j])
    cur = frame_from_two_directions(prim, sec)              # (T,22,3,3)
    rest = frame_from_two_directions(_REST_PRIM, _REST_SEC)  # (22,3,3)

    offsets = _clip_offsets(p, cur, rest)
    world = cur @ np.swapaxes(rest, -1, -2)[None]          # rest frame -> current frame
    for leaf in LEAVES:
        world[:, leaf] = world[:, sk.PARENTS[leaf]]
    parents = np.array([max(q, 0) for q in sk.PARENTS])
    local = np.swapaxes(world[:, parents], -1, -2) @ world
    local[:, 0] = world[:, 0]
    rotations = qcontinuous(qfrom_matrix(local), axis=0)
    rotations[:, LEAVES] = qidentity((len(p), len(LEAVES)))
    return offsets, rotations, p[:, 0].copy()


def _clip_offsets(p: np.ndarray, cur: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Rest offsets: T-pose directions with the clip's median bone lengths, except below the
    pelvis and chest, where each child's offset is its mean position in the parent's own frame."""
    lengths = np.median(sk.bone_lengths(p), axis=0)
    offsets = np.zeros((sk.NUM_JOINTS, 3))
    for j in range(1, sk.NUM_JOINTS):
        offsets[j] = _unit(sk.REST_OFFSETS[j]) * lengths[j]
    for parent in RIGID_PARENTS:
        for c in sk.children(parent):
            local = np.einsum("tij,ti->tj", cur[:, parent], p[:, c] - p[:, parent])  # F^T v
            offsets[c] = rest[parent] @ local.mean(axis=0)
    return offsets


def fk_errors(positions: np.ndarray, offsets, rotations, root_translation) -> dict:
    """How well a solution reproduces positions: mean/max joint error (m), bone-direction error (deg)."""
    fk = forward_kinematics(offsets, rotations, root_translation)
    err = np.linalg.norm(fk - positions, axis=-1)
    par = list(max(q, 0) for q in sk.PARENTS)
    a = _unit((fk - fk[:, par])[:, 1:])
    b = _unit((positions - positions[:, par])[:, 1:])
    ang = np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1.0, 1.0)))
    return {"mean_joint_m": float(err.mean()), "max_joint_m": float(err.max()),
            "mean_bone_deg": float(ang.mean()), "max_bone_deg": float(ang.max())}


def clip_from_positions(positions: np.ndarray, fps: float, text: str = ""):
    """Solve rotations and build a Clip whose positions are exactly FK of the solution."""
    from .clip import Clip  # clip imports nothing from here; keep the dependency one way at import time

    offsets, rotations, root = solve(positions)
    return Clip(fps=float(fps), offsets=offsets, rotations=rotations, root_translation=root,
                positions=forward_kinematics(offsets, rotations, root), text=text)

"""HumanML3D's 263-d frame features, from joint positions and back (reference/motion.md).

Every published HumanML3D model (VQ-VAEs, evaluators, MotionLLMs) reads and writes these vectors, so
extraction follows HumanML3D's `process_file` fact by fact:
  * the motion is canonicalised (irmogen.canonical: floor, root at x = z = 0, facing +Z);
  * the per-frame heading comes from the IK forward direction, Gaussian-smoothed over time (sigma 20
    frames, mode 'nearest', on the unnormalised horizontal vectors) and turned into the quaternion
    that maps it onto +Z. HumanML3D's IK unpacks its face joints as (l_hip, r_hip, ...) = (2, 1, ...),
    so its across line is (left_hip - right_hip) + (right_shoulder - left_shoulder), i.e. shoulders
    minus hips, unlike the canonicalisation's sum. The author kept it (HumanML3D issues #107, #119)
    and every published feature file carries it; so do we. The frame-0 heading is NOT forced to
    the identity (that line is disabled in HumanML3D), so recovery, which starts at heading 0,
    returns the canonical motion turned about Y by that frame-0 heading; HumanML3D's `new_joints`
    are exactly such recoveries, and canonicalising the recovery gives the canonical input back;
  * `[0]` is arcsin of the Y component of heading[t+1] * heading[t]^-1: HALF the per-frame turn,
    which is what recovery's (cos theta, 0, sin theta, 0) accumulates;
  * the 6-D rotations come from HumanML3D's naive IK on its raw-offset skeleton (arms hanging down):
    per kinematic chain R starts at the heading quaternion, R_loc = R^-1 * qbetween(raw_offset[child],
    bone), R = R * R_loc (even the arm chains start at the heading, not at the chest);
  * foot contact: squared per-frame displacement of a foot joint below 0.002 m^2.

Deviations, on purpose:
  1. The heading quaternions are made sign-continuous over time before the angular velocity is taken.
     HumanML3D keeps w >= 0, so each time the heading passes 180 degrees the quaternion flips sign and
     `[0]` of that frame gets the wrong sign (the recovered heading then jumps). Elsewhere the values
     are identical.
  2. No rescaling to HumanML3D's reference body (`uniform_skeleton`): bone lengths are kept as given.
     Whoever builds a dataset for a published checkpoint retargets to that body first.

Shapes: positions (T, 22, 3) metres, Y up; features (T - 1, 263). Inputs may be float32 or float64;
the result has the same float type. Pure numpy and scipy; never imports torch or bpy.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .canonical import canonicalize, check_positions, horizontal_forward
from .errors import IrmogenError
from .quaternions import matrix_to_cont6d, qabout_y, qbetween, qconj, qcontinuous, qmul, qrot, qto_matrix
from .skeleton import CHAINS, FOOT_JOINTS_LEFT, FOOT_JOINTS_RIGHT, NUM_JOINTS

FEATURE_DIM = 263
ROOT_ROT_VEL = slice(0, 1)    # radians per frame about +Y, half the turn (see above)
ROOT_LIN_VEL = slice(1, 3)    # root (x, z) velocity, metres per frame, heading frame
ROOT_Y = slice(3, 4)          # root height, metres
RIC = slice(4, 67)            # joints 1..21: (x, z) relative to the root, y absolute, heading frame
ROT6D = slice(67, 193)        # joints 1..21: first two columns of the naive-IK local rotation
VEL = slice(193, 259)         # joints 0..21: velocity, metres per frame, heading frame
CONTACTS = slice(259, 263)    # left ankle, left toe, right ankle, right toe: 1 = in contact

CONTACT_THRESHOLD = 0.002     # squared displacement per frame, m^2 (HumanML3D's feet_thre)
HEADING_SIGMA = 20.0          # frames, temporal smoothing of the forward direction
CONTACT_JOINTS = FOOT_JOINTS_LEFT + FOOT_JOINTS_RIGHT

# HumanML3D's t2m_raw_offsets: the rest direction of each joint's bone in its naive IK.
RAW_OFFSETS = np.array([
    [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
    [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1],
    [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
], dtype=np.float64)
IK_ACROSS = ((1, 2), (17, 16))  # (left_hip - right_hip) + (right_shoulder - left_shoulder), as HumanML3D
_XZ = np.array([1.0, 0.0, 1.0])


def heading_quaternions(positions: np.ndarray) -> np.ndarray:
    """(T, 22, 3) canonical positions -> (T, 4) sign-continuous rotations about Y taking the
    smoothed IK forward direction onto +Z (HumanML3D's r_rot)."""
    (a0, a1), (b0, b1) = IK_ACROSS
    across = (positions[:, a0] - positions[:, a1]) + (positions[:, b0] - positions[:, b1])
    fwd = gaussian_filter1d(horizontal_forward(across), HEADING_SIGMA, axis=0, mode="nearest")
    flat = np.linalg.norm(fwd, axis=-1) < 1e-9  # no horizontal facing at all: keep +Z
    fwd[flat] = (0.0, 0.0, 1.0)
    return qcontinuous(qbetween(fwd, np.array([0.0, 0.0, 1.0])))


def naive_ik(positions: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """HumanML3D's IK: (T, 22, 3), (T, 4) -> (T, 22, 4) local rotations on the raw-offset skeleton."""
    t = len(positions)
    local = np.zeros((t, NUM_JOINTS, 4))
    local[:, 0] = heading
    for chain in CHAINS:
        world = heading
        for parent, child in zip(chain[:-1], chain[1:]):
            rest = np.broadcast_to(RAW_OFFSETS[child], (t, 3))
            bone = qbetween(rest, positions[:, child] - positions[:, parent])
            local[:, child] = qmul(qconj(world), bone)
            world = qmul(world, local[:, child])
    return local


def foot_contacts(positions: np.ndarray, threshold: float = CONTACT_THRESHOLD) -> np.ndarray:
    """(T, 22, 3) -> (T - 1, 4) in {0, 1}: left ankle, left toe, right ankle, right toe."""
    feet = positions[:, list(CONTACT_JOINTS)]
    return (np.sum((feet[1:] - feet[:-1]) ** 2, axis=-1) < threshold).astype(np.float64)


def positions_to_features(positions: np.ndarray) -> np.ndarray:
    """(T, 22, 3) joint positions, any placement -> (T - 1, 263) HumanML3D features."""
    out_dtype = _float_dtype(positions)
    p = canonicalize(check_positions(positions, min_frames=2))
    heading = heading_quaternions(p)                         # (T, 4)
    rot6d = matrix_to_cont6d(qto_matrix(naive_ik(p, heading)[:, 1:]))
    root = p[:, 0]
    ric = qrot(heading[:, None], p - root[:, None] * _XZ)[:, 1:]
    turn = qmul(heading[1:], qconj(heading[:-1]))           # heading[t+1] * heading[t]^-1
    f = np.empty((len(p) - 1, FEATURE_DIM))
    f[:, ROOT_ROT_VEL] = np.arcsin(np.clip(turn[:, 2:3], -1.0, 1.0))
    f[:, ROOT_LIN_VEL] = qrot(heading[1:], root[1:] - root[:-1])[:, [0, 2]]
    f[:, ROOT_Y] = root[:-1, 1:2]
    f[:, RIC] = ric[:-1].reshape(-1, 63)
    f[:, ROT6D] = rot6d[:-1].reshape(-1, 126)
    f[:, VEL] = qrot(heading[:-1, None], p[1:] - p[:-1]).reshape(-1, 66)
    f[:, CONTACTS] = foot_contacts(p)
    return f.astype(out_dtype)


def features_to_positions(features: np.ndarray, complete: bool = True) -> np.ndarray:
    """(..., N, 263) -> (..., N + 1, 22, 3) if `complete`, else (..., N, 22, 3) joint positions.

    The first N frames are the standard recovery every published decoder uses (HumanML3D's
    recover_from_ric). `complete` appends the frame after the last one from the velocity channels,
    so that T positions -> T - 1 features -> T positions round-trips.
    """
    f = np.asarray(features)
    out_dtype = _float_dtype(f)
    if f.ndim < 2 or f.shape[-1] != FEATURE_DIM or f.shape[-2] < 1:
        raise IrmogenError(f"features: shape {f.shape}, expected (..., frames >= 1, {FEATURE_DIM})")
    f = f.astype(np.float64)
    lead, n = f.shape[:-2], f.shape[-2]
    # theta_t = sum of the half-turns before t; (cos theta, 0, sin theta, 0) turns by 2 theta.
    theta = np.concatenate([np.zeros(lead + (1,)), np.cumsum(f[..., ROOT_ROT_VEL.start], axis=-1)], axis=-1)
    inv_heading = qabout_y(-2.0 * theta)                     # (..., N + 1, 4)
    step = np.zeros(lead + (n, 3))
    step[..., [0, 2]] = f[..., ROOT_LIN_VEL]
    root = np.cumsum(qrot(inv_heading[..., 1:, :], step), axis=-2)
    root = np.concatenate([np.zeros(lead + (1, 3)), root], axis=-2)    # (..., N + 1, 3)
    root[..., :n, 1] = f[..., ROOT_Y.start]
    joints = qrot(inv_heading[..., :n, None, :], f[..., RIC].reshape(lead + (n, 21, 3)))
    joints += root[..., :n, None, :] * _XZ
    pos = np.concatenate([root[..., :n, None, :], joints], axis=-2)   # (..., N, 22, 3)
    if complete:
        vel = qrot(inv_heading[..., n - 1:n, None, :], f[..., n - 1:, VEL].reshape(lead + (1, 22, 3)))
        pos = np.concatenate([pos, pos[..., n - 1:, :, :] + vel], axis=-3)
    return pos.astype(out_dtype)


def _float_dtype(a) -> np.dtype:
    return np.dtype(np.float32) if np.asarray(a).dtype == np.float32 else np.dtype(np.float64)

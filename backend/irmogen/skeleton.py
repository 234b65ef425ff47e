"""The SMPL 22-joint skeleton of HumanML3D ("t2m"): names, parents, chains and a T-pose rest.

Conventions used everywhere in the backend: Y up, metres, the character faces +Z in its canonical
frame, so its LEFT side is +X. Pure numpy; imports nothing from the rest of the package.
"""
from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
NUM_JOINTS = 22
INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

# Kinematic chains as HumanML3D lists them (root first).
CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),       # right leg
    (0, 1, 4, 7, 10),       # left leg
    (0, 3, 6, 9, 12, 15),   # spine and head
    (9, 14, 17, 19, 21),    # right arm
    (9, 13, 16, 18, 20),    # left arm
)
FOOT_JOINTS_LEFT = (7, 10)   # ankle, toe: contact channels [259:261] of the features
FOOT_JOINTS_RIGHT = (8, 11)  # contact channels [261:263]
HIP_LINE = (2, 1)            # right_hip -> left_hip points to the character's left (+X)
SHOULDER_LINE = (17, 16)     # right_shoulder -> left_shoulder

# Left/right swap: MIRROR_INDEX[i] is the joint that i becomes under mirroring.
MIRROR_INDEX: tuple[int, ...] = tuple(
    INDEX[n.replace("left_", "#").replace("right_", "left_").replace("#", "right_")]
    for n in JOINT_NAMES
)

# T-pose rest offsets (metres, each joint relative to its parent), after the SMPL neutral body's
# joint layout: legs straight down, arms straight out to the sides, palms down. Left and right are
# exact mirror images so that mirroring a clip maps the rest skeleton onto itself.
_LEFT_AND_CENTRE = {
    "left_hip": (0.069, -0.091, -0.006),
    "spine1": (0.0, 0.109, -0.027),
    "left_knee": (0.036, -0.379, -0.007),
    "spine2": (0.0, 0.135, 0.001),
    "left_ankle": (-0.015, -0.398, -0.043),
    "spine3": (0.0, 0.053, 0.025),
    "left_foot": (0.026, -0.052, 0.121),
    "neck": (0.0, 0.214, -0.043),
    "left_collar": (0.080, 0.120, -0.036),
    "head": (0.0, 0.065, 0.051),
    "left_shoulder": (0.094, 0.032, -0.009),
    "left_elbow": (0.257, 0.0, 0.0),
    "left_wrist": (0.252, 0.0, 0.0),
}


def _rest_offsets() -> np.ndarray:
    off = np.zeros((NUM_JOINTS, 3), dtype=np.float64)
    for name, v in _LEFT_AND_CENTRE.items():
        off[INDEX[name]] = v
        if name.startswith("left_"):
            off[INDEX["right_" + name[5:]]] = (-v[0], v[1], v[2])
    return off


REST_OFFSETS: np.ndarray = _rest_offsets()
REST_OFFSETS.setflags(write=False)


def rest_positions(offsets: np.ndarray = REST_OFFSETS) -> np.ndarray:
    """(22, 3) world positions of a rest skeleton with the root at the origin."""
    pos = np.zeros((NUM_JOINTS, 3), dtype=np.float64)
    for j in range(1, NUM_JOINTS):
        pos[j] = pos[PARENTS[j]] + offsets[j]
    return pos


def bone_lengths(positions: np.ndarray) -> np.ndarray:
    """(..., 22) distance of every joint to its parent (0 for the root)."""
    p = np.asarray(positions)
    par = np.array([max(q, 0) for q in PARENTS])
    return np.linalg.norm(p - p[..., par, :], axis=-1)


def children(j: int) -> tuple[int, ...]:
    return tuple(i for i, p in enumerate(PARENTS) if p == j)


def check_joint_names(names) -> None:
    """Raise ValueError naming what differs when `names` is not the SMPL-22 list in order."""
    names = [str(n) for n in names]
    if names == list(JOINT_NAMES):
        return
    missing = [n for n in JOINT_NAMES if n not in names]
    extra = [n for n in names if n not in JOINT_NAMES]
    if missing or extra:
        raise ValueError(f"joint_names: missing {missing or 'none'}, unexpected {extra or 'none'}")
    raise ValueError("joint_names: the SMPL-22 names are present but not in the standard order")

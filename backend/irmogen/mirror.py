"""Left/right mirroring of joint positions, clips and HumanML3D feature vectors.

The mirror is the reflection x -> -x (the character's left is +X, so this swaps its sides) together
with the swap of every left joint with its right twin (skeleton.MIRROR_INDEX). The three forms
agree: mirror_features(positions_to_features(p)) == positions_to_features(mirror_positions(p)).
Text (swapping "left" and "right" in captions) is the captions module's job, not this one's.
Pure numpy; never imports bpy.
"""
from __future__ import annotations

import numpy as np

from . import features as F
from .errors import IrmogenError
from .skeleton import MIRROR_INDEX, NUM_JOINTS

_SWAP = np.array(MIRROR_INDEX)
_FLIP_X = np.array([-1.0, 1.0, 1.0])
# Reflecting a rotation R across the YZ plane gives M R M (M = diag(-1, 1, 1)): as a quaternion
# (w, x, y, z) -> (w, x, -y, -z); its first two matrix columns become (a, -b, -c) and (-d, e, f).
_FLIP_QUAT = np.array([1.0, 1.0, -1.0, -1.0])
_FLIP_6D = np.array([1.0, -1.0, -1.0, -1.0, 1.0, 1.0])


def mirror_positions(positions: np.ndarray) -> np.ndarray:
    """(..., 22, 3) -> (..., 22, 3) mirrored positions."""
    p = np.asarray(positions)
    return p[..., _SWAP, :] * _FLIP_X.astype(p.dtype)


def mirror_rotations(rotations: np.ndarray) -> np.ndarray:
    """(..., 22, 4) local rotations wxyz -> the mirrored body's local rotations."""
    q = np.asarray(rotations)
    return q[..., _SWAP, :] * _FLIP_QUAT.astype(q.dtype)


def mirror_clip(clip):
    """Clip -> mirrored Clip: rotations reflected and swapped, offsets mirrored, positions by FK.

    Stored features are mirrored too; text is left as it is (see the module docstring).
    """
    from .rotations import forward_kinematics  # rotations imports heavier solver code; load on use

    offsets = mirror_positions(clip.offsets)
    rotations = mirror_rotations(clip.rotations)
    root = np.asarray(clip.root_translation) * _FLIP_X
    return clip.with_(
        offsets=offsets,
        rotations=rotations,
        root_translation=root,
        positions=forward_kinematics(offsets, rotations, root),
        features=None if clip.features is None else mirror_features(clip.features),
    )


def mirror_features(features: np.ndarray) -> np.ndarray:
    """(..., 263) HumanML3D features -> the features of the mirrored motion.

    The mirrored motion's heading turns the other way, so the heading-frame quantities are simply
    reflected: turn rate negated, x components negated, joints swapped, left and right contacts swapped.
    """
    f = np.array(features, copy=True)
    if f.shape[-1] != F.FEATURE_DIM:
        raise IrmogenError(f"features: last dimension {f.shape[-1]}, expected {F.FEATURE_DIM}")
    lead = f.shape[:-1]
    f[..., F.ROOT_ROT_VEL] *= -1.0
    f[..., F.ROOT_LIN_VEL.start] *= -1.0
    ric = f[..., F.RIC].reshape(lead + (NUM_JOINTS - 1, 3))
    f[..., F.RIC] = _swap_non_root(ric * _FLIP_X).reshape(lead + (-1,))
    rot = f[..., F.ROT6D].reshape(lead + (NUM_JOINTS - 1, 6))
    f[..., F.ROT6D] = _swap_non_root(rot * _FLIP_6D).reshape(lead + (-1,))
    vel = f[..., F.VEL].reshape(lead + (NUM_JOINTS, 3))
    f[..., F.VEL] = (vel[..., _SWAP, :] * _FLIP_X).reshape(lead + (-1,))
    c = F.CONTACTS.start
    f[..., c:c + 4] = f[..., [c + 2, c + 3, c, c + 1]]
    return f


def _swap_non_root(per_joint: np.ndarray) -> np.ndarray:
    """(..., 21, k) values of joints 1..21 -> the same with left and right joints swapped."""
    return per_joint[..., _SWAP[1:] - 1, :]

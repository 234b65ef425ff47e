"""Canonical placement of a motion, as HumanML3D does it, and the body's facing direction over time.

A canonical motion has its lowest joint over all frames on the floor (y = 0), its root starting at
x = z = 0, and faces +Z in its first frame. Facing is the horizontal direction perpendicular to the
body's across line (right hip -> left hip plus right shoulder -> left shoulder), i.e.
cross(up, across); with the character's left on +X that is +Z for the rest T-pose.

Shapes: positions (T, 22, 3) in metres, Y up. Functions return new arrays and never modify their
input. Pure numpy and scipy; never imports bpy.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .errors import IrmogenError
from .quaternions import qabout_y, qrot
from .skeleton import HIP_LINE, NUM_JOINTS, SHOULDER_LINE

UP = np.array([0.0, 1.0, 0.0])
_EPS = 1e-9


def check_positions(positions, where: str = "positions", min_frames: int = 1) -> np.ndarray:
    """Return `positions` as a float64 (T, 22, 3) array, or raise IrmogenError naming what is wrong."""
    p = np.asarray(positions)
    if p.ndim != 3 or p.shape[1:] != (NUM_JOINTS, 3):
        raise IrmogenError(f"{where}: shape {p.shape}, expected (frames, {NUM_JOINTS}, 3)")
    if p.shape[0] < min_frames:
        raise IrmogenError(f"{where}: {p.shape[0]} frame(s), at least {min_frames} needed")
    if not np.all(np.isfinite(p)):
        raise IrmogenError(f"{where}: contains NaN or infinite values")
    return p.astype(np.float64)


def horizontal_forward(across: np.ndarray) -> np.ndarray:
    """(..., 3) across lines -> cross(up, across / |across|): horizontal, NOT normalised.

    The length shrinks as the across line tilts towards vertical; HumanML3D smooths these
    unnormalised vectors, so the weighting matters for bit-compatibility.
    """
    a = across / np.maximum(np.linalg.norm(across, axis=-1, keepdims=True), _EPS)
    return np.cross(UP, a)


def facing_directions(positions: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """(T, 22, 3) -> (T, 3) unit horizontal facing per frame, optionally Gaussian-smoothed over time.

    `sigma` is in frames (smoothing is applied to the unnormalised vectors, mode 'nearest'). Frames
    whose across line is vertical (no defined facing) get +Z.
    """
    p = np.asarray(positions, dtype=np.float64)
    across = (p[:, HIP_LINE[0]] - p[:, HIP_LINE[1]]) + (p[:, SHOULDER_LINE[0]] - p[:, SHOULDER_LINE[1]])
    fwd = horizontal_forward(across)
    if sigma > 0 and len(fwd) > 1:
        fwd = gaussian_filter1d(fwd, sigma, axis=0, mode="nearest")
    return _unit_or_z(fwd)


def _unit_or_z(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(n > _EPS, v / np.maximum(n, _EPS), np.array([0.0, 0.0, 1.0]))


def heading_angles(positions: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """(T, 22, 3) -> (T,) facing angle about +Y in radians, 0 = facing +Z, +pi/2 = facing +X.

    Unwrapped over time, so a body turning twice around ends near 4 pi. A rotation by
    `-heading_angles(p)[t]` about Y (quaternions.qabout_y) turns frame t's facing onto +Z.
    """
    f = facing_directions(positions, sigma)
    return np.unwrap(np.arctan2(f[:, 0], f[:, 2]))


def canonicalize(positions: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> (T, 22, 3): on the floor, root starting at x = z = 0, facing +Z in frame 0.

    The HumanML3D procedure minus its rescaling to a reference body (bone lengths are kept).
    """
    p = check_positions(positions)
    p[..., 1] -= p[..., 1].min()
    p -= p[0, 0] * np.array([1.0, 0.0, 1.0])
    angle = heading_angles(p[:1])[0]
    return qrot(qabout_y(-angle), p)

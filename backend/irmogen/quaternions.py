"""Quaternion and rotation-matrix primitives, vectorised over any leading shape. Pure numpy.

Quaternions are (..., 4) in (w, x, y, z) order, Hamilton product, rotating column vectors:
qrot(q, v) = q * (0, v) * q^-1. Matrices are (..., 3, 3) acting on column vectors. This is the one
place in the backend that does rotation math; everything else calls it.
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-12


def qnormalize(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)


def qidentity(shape=()) -> np.ndarray:
    q = np.zeros(tuple(shape) + (4,))
    q[..., 0] = 1.0
    return q


def qconj(q: np.ndarray) -> np.ndarray:
    return np.asarray(q) * np.array([1.0, -1.0, -1.0, -1.0])


def qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def qfrom_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), _EPS)
    half = 0.5 * np.asarray(angle, dtype=np.float64)[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def qabout_y(angle: np.ndarray) -> np.ndarray:
    """Rotation by `angle` radians about +Y (the heading rotation)."""
    half = 0.5 * np.asarray(angle, dtype=np.float64)
    z = np.zeros_like(half)
    return np.stack([np.cos(half), z, np.sin(half), z], axis=-1)


def qbetween(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The shortest-arc rotation taking direction a onto direction b (both (..., 3))."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), _EPS)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), _EPS)
    w = 1.0 + np.sum(a * b, axis=-1, keepdims=True)
    xyz = np.cross(a, b)
    # Opposite directions: any axis perpendicular to a will do.
    opposite = w[..., 0] < 1e-9
    if np.any(opposite):
        alt = np.cross(a[opposite], np.array([1.0, 0.0, 0.0]))
        weak = np.linalg.norm(alt, axis=-1) < 1e-6
        alt[weak] = np.cross(a[opposite][weak], np.array([0.0, 1.0, 0.0]))
        xyz[opposite] = alt
        w[opposite] = 0.0
    return qnormalize(np.concatenate([w, xyz], axis=-1))


def qto_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.moveaxis(qnormalize(q), -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1).reshape(w.shape + (3, 3))


def qfrom_matrix(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions with w >= 0 (Shepperd's method)."""
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate forms; each is well conditioned when its own diagonal term is largest.
    t = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    k = np.argmax(t, axis=-1)
    s = np.sqrt(np.maximum(np.take_along_axis(t, k[..., None], -1)[..., 0], _EPS)) * 2.0
    q = np.empty(m.shape[:-2] + (4,))
    c = [k == i for i in range(4)]
    q[c[0]] = np.stack([s / 4, (m[..., 2, 1] - m[..., 1, 2]) / s, (m[..., 0, 2] - m[..., 2, 0]) / s,
                        (m[..., 1, 0] - m[..., 0, 1]) / s], -1)[c[0]]
    q[c[1]] = np.stack([(m[..., 2, 1] - m[..., 1, 2]) / s, s / 4, (m[..., 0, 1] + m[..., 1, 0]) / s,
                        (m[..., 0, 2] + m[..., 2, 0]) / s], -1)[c[1]]
    q[c[2]] = np.stack([(m[..., 0, 2] - m[..., 2, 0]) / s, (m[..., 0, 1] + m[..., 1, 0]) / s, s / 4,
                        (m[..., 1, 2] + m[..., 2, 1]) / s], -1)[c[2]]
    q[c[3]] = np.stack([(m[..., 1, 0] - m[..., 0, 1]) / s, (m[..., 0, 2] + m[..., 2, 0]) / s,
                        (m[..., 1, 2] + m[..., 2, 1]) / s, s / 4], -1)[c[3]]
    q = qnormalize(q)
    return np.where(q[..., :1] < 0, -q, q)


def qfrom_euler(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles in the order the channels are listed (BVH/ASF style), in degrees.

    `order` is a string like "ZXY"; angles_deg (..., 3) lists the angles in that same order. The
    result is R = R_order[0] * R_order[1] * R_order[2].
    """
    angles = np.radians(np.asarray(angles_deg, dtype=np.float64))
    axes = {"X": (1.0, 0.0, 0.0), "Y": (0.0, 1.0, 0.0), "Z": (0.0, 0.0, 1.0)}
    q = qidentity(angles.shape[:-1])
    for i, ax in enumerate(order.upper()):
        q = qmul(q, qfrom_axis_angle(np.array(axes[ax]), angles[..., i]))
    return q


def qto_euler(q: np.ndarray, order: str) -> np.ndarray:
    """Inverse of qfrom_euler for Tait-Bryan orders (all three axes different), in degrees."""
    m = qto_matrix(q)
    i, j, k = ("XYZ".index(a) for a in order.upper())
    # Sign of the permutation decides the signs in the decomposition.
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    b = np.arcsin(np.clip(sign * m[..., i, k], -1.0, 1.0))
    a = np.arctan2(-sign * m[..., j, k], m[..., k, k])
    c = np.arctan2(-sign * m[..., i, j], m[..., i, i])
    return np.degrees(np.stack([a, b, c], axis=-1))


def qcontinuous(q: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along `axis` (time) so that consecutive quaternions have a positive dot product."""
    q = np.moveaxis(np.array(q, dtype=np.float64), axis, 0)
    if len(q) > 1:
        dots = np.sum(q[1:] * q[:-1], axis=-1)
        flips = np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)
        q[1:] *= flips[..., None]
    return np.moveaxis(q, 0, axis)


def qslerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation from a to b by t (broadcast over leading shapes)."""
    a = qnormalize(a)
    b = qnormalize(b)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    near = sin < 1e-6
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / np.where(near, 1.0, sin))
    wb = np.where(near, t, np.sin(t * theta) / np.where(near, 1.0, sin))
    return qnormalize(wa * a + wb * b)


def matrix_to_cont6d(m: np.ndarray) -> np.ndarray:
    """The continuous 6-D form of HumanML3D: the first two COLUMNS of the matrix, (..., 6)."""
    m = np.asarray(m, dtype=np.float64)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def cont6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    d6 = np.asarray(d6, dtype=np.float64)
    a = d6[..., 0:3] / np.maximum(np.linalg.norm(d6[..., 0:3], axis=-1, keepdims=True), _EPS)
    b = d6[..., 3:6] - np.sum(a * d6[..., 3:6], axis=-1, keepdims=True) * a
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), _EPS)
    c = np.cross(a, b)
    return np.stack([a, b, c], axis=-1)


def frame_from_two_directions(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal frame whose columns are primary, secondary made orthogonal, their cross.

    The rotation taking rest frame F0 onto current frame F1 is F1 @ F0^T.
    """
    a = np.asarray(primary, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), _EPS)
    b = np.asarray(secondary, dtype=np.float64)
    b = b - np.sum(a * b, axis=-1, keepdims=True) * a
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), _EPS)
    return np.stack([a, b, np.cross(a, b)], axis=-1)

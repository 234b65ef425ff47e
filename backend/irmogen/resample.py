"""Change the frame rate of joint positions or of a clip (mocap at 60/120 fps -> the models' 20 fps).

Output frame k sits at time k / dst_fps, i.e. at source frame k * src_fps / dst_fps, and there are
round(T * dst_fps / src_fps) of them (at least one); times past the last source frame hold it.
Positions and root translation are interpolated linearly, rotations by slerp per joint on
sign-continuous quaternions.

Anti-aliasing: when downsampling by a factor r = src_fps / dst_fps >= 2 the signal is first
low-passed by a Gaussian over time with sigma = 0.4 * r source frames, the ends extended by point
reflection about the end samples (so steady motion passes unchanged and the end samples themselves
are kept).
Its gain is 0.45 at the new Nyquist frequency dst_fps / 2, under 0.05 at dst_fps and essentially
zero for frame-to-frame jitter, while movement at dst_fps / 4 keeps 0.82 of its amplitude and at
dst_fps / 10 (2 Hz at 20 fps) 0.97.
Below r = 2 the linear interpolation alone averages neighbouring frames. Quaternions are low-passed
componentwise on the sign-continuous sequence and renormalised, the usual small-spread approximation
of rotation averaging. Pure numpy and scipy; never imports bpy.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .errors import IrmogenError
from .quaternions import qcontinuous, qnormalize, qslerp

LOWPASS_MIN_RATIO = 2.0
LOWPASS_SIGMA_PER_RATIO = 0.4  # Gaussian sigma in source frames per unit of downsampling ratio


def resampled_length(num_frames: int, src_fps: float, dst_fps: float) -> int:
    _check_fps(src_fps, "src_fps")
    _check_fps(dst_fps, "dst_fps")
    return max(1, int(round(num_frames * dst_fps / src_fps)))


def lowpass(x: np.ndarray, src_fps: float, dst_fps: float, axis: int = 0) -> np.ndarray:
    """The anti-aliasing filter above, along `axis` (time); identity unless src/dst >= 2."""
    _check_fps(src_fps, "src_fps")
    _check_fps(dst_fps, "dst_fps")
    ratio = src_fps / dst_fps
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    if ratio < LOWPASS_MIN_RATIO or len(x) < 2:
        return np.moveaxis(x, 0, axis)
    sigma = LOWPASS_SIGMA_PER_RATIO * ratio
    radius = int(4.0 * sigma + 0.5)  # scipy's kernel radius at its default truncate = 4
    # Point reflection about each end sample: linear motion passes unchanged (no drag at the ends).
    padded = np.pad(x, [(radius, radius)] + [(0, 0)] * (x.ndim - 1), mode="reflect", reflect_type="odd")
    smooth = gaussian_filter1d(padded, sigma, axis=0, mode="nearest")[radius:radius + len(x)]
    return np.moveaxis(smooth, 0, axis)


def _sample_points(num_frames: int, src_fps: float, dst_fps: float):
    """Source indices (i0, i1) and weights w of every output frame: out = (1 - w) x[i0] + w x[i1]."""
    n = resampled_length(num_frames, src_fps, dst_fps)
    t = np.minimum(np.arange(n) * (src_fps / dst_fps), num_frames - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, num_frames - 1)
    return i0, i1, t - i0


def resample_positions(positions: np.ndarray, src_fps: float, dst_fps: float, antialias: bool = True) -> np.ndarray:
    """(T, J, 3) (or any (T, ...)) sampled at src_fps -> the same motion sampled at dst_fps.

    `antialias=False` skips the low-pass: joints of a rigid skeleton must not be averaged as free
    points in fast motion (the averaged chord shortens limbs by centimetres in a flip), and 60/120
    fps mocap decimated to 20 fps lands on exact source frames anyway, as HumanML3D's own
    downsampling does.
    """
    p = np.asarray(positions)
    if p.ndim < 1 or p.shape[0] < 1:
        raise IrmogenError(f"positions: shape {p.shape}, expected at least one frame")
    out_dtype = np.float32 if p.dtype == np.float32 else np.float64
    x = lowpass(p, src_fps, dst_fps) if antialias else p
    i0, i1, w = _sample_points(len(x), src_fps, dst_fps)
    w = w.reshape((-1,) + (1,) * (x.ndim - 1))
    return ((1.0 - w) * x[i0] + w * x[i1]).astype(out_dtype)


def at_fps(clip, fps: float):
    """The clip at `fps`: itself when it already is, else resampled."""
    return clip if abs(float(clip.fps) - float(fps)) <= 1e-6 else resample_clip(clip, fps)


def resample_clip(clip, dst_fps: float):
    """Clip -> Clip at dst_fps: root linear, rotations slerped, positions recomputed by FK.

    Stored features no longer match the new frame rate and are dropped.
    """
    from .rotations import forward_kinematics  # rotations imports heavier solver code; load on use

    src_fps = float(clip.fps)
    rotations = qcontinuous(clip.rotations, axis=0)            # (T, 22, 4)
    root = lowpass(clip.root_translation, src_fps, dst_fps)    # (T, 3)
    if src_fps / dst_fps >= LOWPASS_MIN_RATIO:
        rotations = qnormalize(lowpass(rotations, src_fps, dst_fps))
    i0, i1, w = _sample_points(len(rotations), src_fps, dst_fps)
    weights = np.broadcast_to(w[:, None], (len(w), rotations.shape[1]))
    rotations = qslerp(rotations[i0], rotations[i1], weights)
    root = (1.0 - w[:, None]) * root[i0] + w[:, None] * root[i1]
    return clip.with_(
        fps=float(dst_fps),
        rotations=rotations,
        root_translation=root,
        positions=forward_kinematics(clip.offsets, rotations, root),
        features=None,
    )


def _check_fps(fps: float, name: str) -> None:
    if not (np.isfinite(fps) and fps > 0):
        raise IrmogenError(f"{name}: {fps!r} is not a positive frame rate")

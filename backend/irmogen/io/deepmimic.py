"""DeepMimic humanoid clips (JSON `{"Loop", "Frames"}`) to world joint positions, metres, Y up.

Frame layout (pybullet_data/data/motions): duration to the next frame, root position (3, Y up,
metres), root quaternion (4, w first), then per joint in JOINT_ORDER a quaternion (4, w first) for
spherical joints or one angle (radians, about the URDF joint axis) for the knees and elbows. Joint
offsets come from humanoid.urdf (xml.etree), scaled by 0.25 as pybullet loads it. Durations may
vary, so the frame values are resampled on a uniform 60 fps grid before FK. Pure numpy; never imports bpy.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IrmogenError
from ..quaternions import qcontinuous, qfrom_axis_angle, qmul, qnormalize, qrot, qslerp
from .bvh import SkeletonMotion, read_text

URDF_SCALE = 0.25
# (joint, parent, number of values in a frame)
JOINT_ORDER = (
    ("chest", "root", 4), ("neck", "chest", 4),
    ("right_hip", "root", 4), ("right_knee", "right_hip", 1), ("right_ankle", "right_knee", 4),
    ("right_shoulder", "chest", 4), ("right_elbow", "right_shoulder", 1),
    ("left_hip", "root", 4), ("left_knee", "left_hip", 1), ("left_ankle", "left_knee", 4),
    ("left_shoulder", "chest", 4), ("left_elbow", "left_shoulder", 1),
)
FRAME_WIDTH = 1 + 3 + 4 + sum(n for _, _, n in JOINT_ORDER)  # 44


@dataclass
class Humanoid:
    offsets: dict[str, np.ndarray]   # joint -> (3,) origin in its parent link's frame, metres
    axes: dict[str, np.ndarray]      # revolute joint -> (3,) unit axis in its own frame
    extras: dict[str, tuple[str, np.ndarray]]  # point name -> (link, (3,) position in that link)


def _xyz(elem, attr="xyz") -> np.ndarray:
    return np.array([float(v) for v in elem.get(attr, "0 0 0").split()])


def parse_urdf(path) -> Humanoid:
    path = Path(path)
    try:
        # The shipped humanoid.urdf ends in a stray NUL byte; XML parsers refuse it.
        root = ET.fromstring(read_text(path).rstrip("\x00 \t\r\n"))
    except ET.ParseError as e:
        raise IrmogenError(f"{path}: not valid URDF XML ({e})") from None
    offsets, axes = {}, {}
    for joint in root.iter("joint"):
        child = joint.find("child").get("link")
        origin = joint.find("origin")
        offsets[child] = URDF_SCALE * (_xyz(origin) if origin is not None else np.zeros(3))
        if joint.find("axis") is not None:
            axes[child] = _xyz(joint.find("axis"))
    missing = [j for j, _, _ in JOINT_ORDER if j not in offsets]
    if missing:
        raise IrmogenError(f"{path}: URDF lacks joints {', '.join(missing)}")
    links = {link.get("name"): link for link in root.iter("link")}
    extras = {"head": ("neck", _shape_point(links, "neck", "sphere", path))}
    for side in ("left", "right"):
        extras[f"{side}_toe"] = (f"{side}_ankle", _shape_point(links, f"{side}_ankle", "box", path))
    return Humanoid(offsets, axes, extras)


def _shape_point(links, link: str, shape: str, path) -> np.ndarray:
    """Sphere: its centre (the head). Box: the middle of its front bottom edge (+X forward, the toes)."""
    for col in links[link].iter("collision"):
        geom = col.find("geometry")
        if geom is not None and geom.find(shape) is not None:
            centre = _xyz(col.find("origin"))
            if shape == "box":
                size = _xyz(geom.find("box"), "size")
                centre = centre + np.array([size[0] / 2, -size[1] / 2, 0.0])
            return URDF_SCALE * centre
    raise IrmogenError(f"{path}: link {link!r} has no {shape} collision shape")


def default_urdf(clip_path: Path) -> Path:
    """humanoid.urdf next to the clip, or in its parent folder (the walker/ clips)."""
    for folder in (clip_path.parent, clip_path.parent.parent):
        if (folder / "humanoid.urdf").is_file():
            return folder / "humanoid.urdf"
    raise IrmogenError(f"{clip_path}: no humanoid.urdf next to the clip or in its parent folder",
                       hint="pass the URDF path explicitly")


def parse_frames(path) -> np.ndarray:
    """-> (F, 44) frame values, checked."""
    path = Path(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise IrmogenError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    frames = data.get("Frames") if isinstance(data, dict) else None
    if not frames:
        raise IrmogenError(f"{path}: no 'Frames' list (not a DeepMimic motion file)")
    for k, f in enumerate(frames):
        if not isinstance(f, list) or len(f) != FRAME_WIDTH:
            n = len(f) if isinstance(f, list) else type(f).__name__
            raise IrmogenError(f"{path}: Frames[{k}] has {n} values, expected {FRAME_WIDTH}")
    try:
        values = np.array(frames, dtype=np.float64)
    except (TypeError, ValueError):
        raise IrmogenError(f"{path}: Frames hold non-numeric values") from None
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        raise IrmogenError(f"{path}: Frames[{bad[0][0]}] has a NaN or infinite value")
    return values


def forward_kinematics(values: np.ndarray, body: Humanoid) -> tuple[list[str], np.ndarray]:
    """(F, 44) frames -> point names and (F, J, 3) world positions, metres."""
    n = len(values)
    world_q = {"root": qnormalize(values[:, 4:8])}
    pos = {"root": values[:, 1:4]}
    col = 8
    for joint, parent, width in JOINT_ORDER:
        if width == 4:
            local = qnormalize(values[:, col:col + 4])
        else:
            local = qfrom_axis_angle(np.broadcast_to(body.axes[joint], (n, 3)), values[:, col])
        col += width
        pos[joint] = pos[parent] + qrot(world_q[parent], np.broadcast_to(body.offsets[joint], (n, 3)))
        world_q[joint] = qmul(world_q[parent], local)
    for side in ("left", "right"):  # wrists are fixed joints at the end of the forearm link
        elbow = f"{side}_elbow"
        pos[f"{side}_wrist"] = pos[elbow] + qrot(world_q[elbow], np.broadcast_to(body.offsets[f"{side}_wrist"], (n, 3)))
    for name, (link, point) in body.extras.items():
        pos[name] = pos[link] + qrot(world_q[link], np.broadcast_to(point, (n, 3)))
    names = list(pos)
    return names, np.stack([pos[k] for k in names], axis=1)


GRID_FPS = 60.0  # a multiple of the models' 20 fps, so the later decimation hits exact frames


def _quaternion_columns() -> list[int]:
    """First column of every quaternion in a frame row (the root's, then each spherical joint's)."""
    cols, col = [4], 8
    for _, _, width in JOINT_ORDER:
        if width == 4:
            cols.append(col)
        col += width
    return cols


def _uniform_time(values: np.ndarray) -> np.ndarray:
    """Frame k starts at the sum of earlier durations: re-sample the frame VALUES on a uniform
    60 fps grid (slerp for quaternions, linear otherwise), so the skeleton stays rigid; points
    interpolated after FK would shorten limbs in a flip."""
    durations = values[:-1, 0]
    times = np.concatenate([[0.0], np.cumsum(np.maximum(durations, 0.0))])
    keep = np.concatenate([np.diff(times) > 1e-9, [True]])  # zero durations: keep the later frame
    times, values = times[keep], values[keep].copy()
    quats = _quaternion_columns()
    for c in quats:
        values[:, c:c + 4] = qcontinuous(qnormalize(values[:, c:c + 4]))
    grid = np.arange(0.0, times[-1] + 1e-9, 1.0 / GRID_FPS)
    i1 = np.clip(np.searchsorted(times, grid, side="right"), 1, len(times) - 1)
    i0 = i1 - 1
    w = np.clip((grid - times[i0]) / np.maximum(times[i1] - times[i0], 1e-12), 0.0, 1.0)
    out = (1.0 - w[:, None]) * values[i0] + w[:, None] * values[i1]
    for c in quats:
        out[:, c:c + 4] = qslerp(values[i0, c:c + 4], values[i1, c:c + 4], w)
    return out


def read_deepmimic(path, urdf=None) -> SkeletonMotion:
    path = Path(path)
    body = parse_urdf(urdf if urdf is not None else default_urdf(path))
    values = parse_frames(path)
    if len(values) > 1:
        values = _uniform_time(values)
    names, positions = forward_kinematics(values, body)
    return SkeletonMotion(names, positions, GRID_FPS)

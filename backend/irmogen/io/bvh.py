"""BVH files: parse any hierarchy to world joint positions, and write clips on the SMPL-22 skeleton.

Reading: any channel order, 3 or 6 channels on any joint, End Sites (named `<parent>_end`), plain or
gzip (`.bvh.gz`). Position channels give a joint's local position outright (they replace its
OFFSET), as Blender's importer reads them. Units and up axis are left as the file has them; the
caller (`irmogen.io.read_source`) decides them from the mapped skeleton. Writing: SMPL joint names,
Y up, metres, ZXY rotation channels, atomic. Pure numpy; never imports bpy.
"""
from __future__ import annotations

import gzip
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IrmogenError, at
from ..quaternions import qfrom_euler, qto_euler, qto_matrix
from ..skeleton import JOINT_NAMES, PARENTS

WRITE_ORDER = "ZXY"  # rotation channel order the writer uses (intrinsic, as listed)
_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BvhJoint:
    name: str
    parent: int                 # index into the joint list, -1 for the root
    offset: np.ndarray          # (3,) file units, in the parent's frame
    channels: tuple[str, ...]   # e.g. ("Xposition", "Yposition", "Zposition", "Zrotation", ...)
    first_channel: int          # column of the first channel in a motion line


@dataclass
class SkeletonMotion:
    """A source skeleton's world joint positions: what every reader hands to the joint maps."""
    names: list[str]
    positions: np.ndarray       # (F, J, 3) world positions, file units and axes
    fps: float


def read_text(path: Path) -> str:
    """The file's text; `.gz` is decompressed. Latin-1 keeps odd header bytes readable."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise IrmogenError(f"{path}: no such file") from None
    except (OSError, EOFError) as e:
        raise IrmogenError(f"{path}: cannot read ({e})") from None
    return raw.decode("latin-1")


def _numbers(path, lineno: int, tokens: list[str], n: int, what: str) -> np.ndarray:
    if len(tokens) != n:
        raise IrmogenError(at(path, lineno, f"{what} needs {n} numbers, found {len(tokens)}"))
    try:
        v = np.array([float(t) for t in tokens])
    except ValueError:
        raise IrmogenError(at(path, lineno, f"{what} has a non-numeric value in {' '.join(tokens)!r}")) from None
    if not np.all(np.isfinite(v)):
        raise IrmogenError(at(path, lineno, f"{what} has a NaN or infinite value"))
    return v


def parse_bvh(path) -> tuple[list[BvhJoint], np.ndarray, float]:
    """-> (joints, motion (F, C) channel values, frame time in seconds)."""
    path = Path(path)
    lines = read_text(path).splitlines()
    if not any(line.strip() for line in lines):
        raise IrmogenError(f"{path}: empty file")
    joints: list[BvhJoint] = []
    stack: list[int] = []
    n_channels = 0
    i = 0
    pending: str | None = None  # name of the joint whose '{' we expect next
    while i < len(lines):
        tok = lines[i].split()
        i += 1
        if not tok:
            continue
        key = tok[0].upper()
        if key == "HIERARCHY":
            continue
        if key == "MOTION":
            break
        if key in ("ROOT", "JOINT"):
            if (key == "ROOT") != (not stack):
                raise IrmogenError(at(path, i, f"unexpected {tok[0]} here"))
            pending = " ".join(tok[1:]) or f"joint{len(joints)}"
        elif key == "END":
            if not stack:
                raise IrmogenError(at(path, i, "End Site outside a joint"))
            pending = joints[stack[-1]].name + "_end"
        elif key == "{":
            if pending is None:
                raise IrmogenError(at(path, i, "'{' without a joint"))
            joints.append(BvhJoint(pending, stack[-1] if stack else -1, np.zeros(3), (), n_channels))
            stack.append(len(joints) - 1)
            pending = None
        elif key == "}":
            if not stack:
                raise IrmogenError(at(path, i, "unbalanced '}'"))
            stack.pop()
        elif key == "OFFSET":
            if not stack:
                raise IrmogenError(at(path, i, "OFFSET outside a joint"))
            joints[stack[-1]].offset = _numbers(path, i, tok[1:], 3, "OFFSET")
        elif key == "CHANNELS":
            if not stack:
                raise IrmogenError(at(path, i, "CHANNELS outside a joint"))
            chans = tuple(tok[2:])
            ok = len(tok) >= 2 and tok[1].isdigit() and int(tok[1]) == len(chans)
            if not ok or any(c[:1].upper() not in _AXES or c[1:].lower() not in ("position", "rotation")
                             for c in chans):
                raise IrmogenError(at(path, i, f"bad CHANNELS line {' '.join(tok)!r}"))
            joints[stack[-1]].channels = chans
            joints[stack[-1]].first_channel = n_channels
            n_channels += len(chans)
        else:
            raise IrmogenError(at(path, i, f"unexpected {tok[0]!r} in the HIERARCHY"))
    else:
        raise IrmogenError(f"{path}: no MOTION section (truncated file?)")
    if stack or not joints:
        raise IrmogenError(at(path, i, "MOTION before the hierarchy is complete"))
    motion, frame_time = _parse_motion(path, lines, i, n_channels)
    return joints, motion, frame_time


def _parse_motion(path, lines: list[str], i: int, n_channels: int) -> tuple[np.ndarray, float]:
    header = {}
    for key in ("frames:", "frame time:"):
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines) or not lines[i].strip().lower().startswith(key):
            raise IrmogenError(at(path, i + 1, f"expected '{key[:-1].title()}:' after MOTION"))
        value = lines[i].split(":", 1)[1].strip()
        try:
            header[key] = float(value)
        except ValueError:
            raise IrmogenError(at(path, i + 1, f"bad {key[:-1]} value {value!r}")) from None
        i += 1
    n_frames, frame_time = int(header["frames:"]), header["frame time:"]
    if n_frames < 1 or not (np.isfinite(frame_time) and frame_time > 0):
        raise IrmogenError(at(path, i, f"bad MOTION header: {n_frames} frames, frame time {frame_time}"))
    rows = [(k + 1, line) for k, line in enumerate(lines[i:], start=i) if line.strip()]
    if len(rows) < n_frames:
        raise IrmogenError(f"{path}: truncated: 'Frames: {n_frames}' but only {len(rows)} motion lines")
    if len(rows) > n_frames:
        raise IrmogenError(at(path, rows[n_frames][0],
                              f"frame count mismatch: 'Frames: {n_frames}' but {len(rows)} motion lines"))
    tokens = [line.split() for _, line in rows]
    for (lineno, _), tok in zip(rows, tokens):
        if len(tok) != n_channels:
            raise IrmogenError(at(path, lineno, f"motion line has {len(tok)} values, expected {n_channels}"))
    try:
        motion = np.array(tokens, dtype=np.float64).reshape(n_frames, n_channels)
    except ValueError:
        motion = None
    if motion is None or not np.all(np.isfinite(motion)):
        for (lineno, _), tok in zip(rows, tokens):  # find the first bad line for the message
            _numbers(path, lineno, tok, n_channels, "motion line")
    return motion, frame_time


def forward_kinematics(joints: list[BvhJoint], motion: np.ndarray) -> np.ndarray:
    """World joint positions (F, J, 3) in file units; loops over joints, vectorised over frames."""
    n_frames = motion.shape[0]
    pos = np.zeros((n_frames, len(joints), 3))
    rot = np.zeros((n_frames, len(joints), 3, 3))
    for j, jt in enumerate(joints):
        local_pos = np.broadcast_to(jt.offset, (n_frames, 3)).copy()
        order = "".join(c[0].upper() for c in jt.channels if c[1:].lower() == "rotation")
        rot_cols = [jt.first_channel + k for k, c in enumerate(jt.channels) if c[1:].lower() == "rotation"]
        for k, c in enumerate(jt.channels):
            if c[1:].lower() == "position":
                local_pos[:, _AXES[c[0].upper()]] = motion[:, jt.first_channel + k]
        local_rot = qto_matrix(qfrom_euler(motion[:, rot_cols], order)) if order else np.eye(3)
        if jt.parent < 0:
            pos[:, j] = local_pos
            rot[:, j] = local_rot
        else:
            p = jt.parent
            pos[:, j] = pos[:, p] + np.einsum("fij,fj->fi", rot[:, p], local_pos)
            rot[:, j] = rot[:, p] @ local_rot
    return pos


def read_bvh(path) -> SkeletonMotion:
    """Any BVH -> world positions of every joint and End Site, in the file's units and axes."""
    joints, motion, frame_time = parse_bvh(path)
    return SkeletonMotion([j.name for j in joints], forward_kinematics(joints, motion), 1.0 / frame_time)


# ---- writing ---------------------------------------------------------------------------------

def bvh_text(offsets: np.ndarray, rotations: np.ndarray, root_translation: np.ndarray, fps: float) -> str:
    """BVH text of an SMPL-22 motion: offsets (22, 3) m, rotations (T, 22, 4) wxyz, root (T, 3) m."""
    children = {j: [c for c, p in enumerate(PARENTS) if p == j] for j in range(len(PARENTS))}
    rot_channels = " ".join(f"{a}rotation" for a in WRITE_ORDER)
    out = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        head = "ROOT" if PARENTS[j] < 0 else "JOINT"
        off = offsets[j]
        out.append(f"{pad}{head} {JOINT_NAMES[j]}")
        out.append(f"{pad}{{")
        out.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        if PARENTS[j] < 0:
            out.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rot_channels}")
        else:
            out.append(f"{pad}  CHANNELS 3 {rot_channels}")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:  # an End Site gives importers a bone tail along the last bone
            end = offsets[j] if np.linalg.norm(offsets[j]) > 1e-6 else np.array([0.0, 0.05, 0.0])
            out.append(f"{pad}  End Site")
            out.append(f"{pad}  {{")
            out.append(f"{pad}    OFFSET {end[0] * 0.5:.6f} {end[1] * 0.5:.6f} {end[2] * 0.5:.6f}")
            out.append(f"{pad}  }}")
        out.append(f"{pad}}}")

    emit(0, 0)
    # Channel order of a motion line follows the depth-first order of the hierarchy above.
    order = [JOINT_NAMES.index(line.split()[1]) for line in out if line.split()[0] in ("ROOT", "JOINT")]
    euler = qto_euler(rotations[:, order], WRITE_ORDER)            # (T, 22, 3) degrees
    table = np.concatenate([root_translation, euler.reshape(len(euler), -1)], axis=1)
    out += ["MOTION", f"Frames: {len(table)}", f"Frame Time: {1.0 / fps:.8f}"]
    out += [" ".join(f"{v:.6f}" for v in row) for row in table]
    return "\n".join(out) + "\n"


def write_bvh(path, offsets, rotations, root_translation, fps: float) -> Path:
    """Write atomically: the text is built first, then a temp file replaces `path` in one step."""
    path = Path(path)
    text = bvh_text(np.asarray(offsets, np.float64), np.asarray(rotations, np.float64),
                    np.asarray(root_translation, np.float64), float(fps))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".bvh", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path

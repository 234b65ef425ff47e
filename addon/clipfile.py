"""Motion files the add-on reads and writes: clip `.npz` (np.load, never pickle) and BVH.

A clip is a dict of numpy arrays with the contract's fields (DESIGN.md "Motion clip"): `fps`,
`offsets` (22, 3), `rotations` (T, 22, 4) wxyz local, `root_translation` (T, 3), `positions`
(T, 22, 3), metres, Y up, plus the strings `text` and `transcript`.

BVH files of any skeleton are read by a small numpy parser (any channel order, `.bvh.gz` too); the
joints are matched to the SMPL-22 joints by their names (the rig maps the caller loaded) or else by
the skeleton's shape (`rigmap.detect_rig`), and turned into a clip
whose rest pose is the file's own rest pose (offsets from the file, rotations relative to it).
Units become metres from the skeleton's standing height. Pure numpy: no bpy, no irmogen.
"""
from __future__ import annotations

import gzip
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import protocol, rigmap
from .retarget import RetargetError

SMPL_JOINTS, SMPL_PARENTS = protocol.JOINT_NAMES, protocol.PARENTS
ARRAY_FIELDS = ("offsets", "rotations", "root_translation", "positions")


class ClipFileError(Exception):
    """A motion file that cannot be used; the message names the file and what is wrong."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


def load_clip(path, rig_maps: dict | None = None) -> dict:
    """A clip `.npz` or a BVH (`.bvh`, `.bvh.gz`) -> clip dict. A BVH needs `rig_maps`
    (`rigmap.load_maps(...)`) to find its joints."""
    path = Path(path)
    if not path.is_file():
        raise ClipFileError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".npz"):
        return load_npz(path)
    if name.endswith(".bvh") or name.endswith(".bvh.gz"):
        return load_bvh(path, rig_maps or {})
    raise ClipFileError(f"{path}: not a clip .npz or a .bvh file", hint="Choose a .npz clip or a .bvh file")


def load_npz(path, where: str = "") -> dict:
    """A clip .npz from a path or a binary file object (`where` names it in errors)."""
    where = where or str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ClipFileError(f"{where}: not a readable clip .npz ({e})") from None
    missing = [k for k in ("fps",) + ARRAY_FIELDS if k not in data]
    if missing:
        raise ClipFileError(f"{where}: clip is missing field(s) {', '.join(missing)}")
    clip = {k: data[k].astype(np.float64) for k in ARRAY_FIELDS}
    clip["fps"] = float(data["fps"])
    clip["text"] = str(data["text"]) if "text" in data else ""
    clip["transcript"] = str(data["transcript"]) if "transcript" in data else ""
    return check_clip(clip, where)


def check_clip(clip: dict, where: str) -> dict:
    t = np.shape(clip["positions"])[0]
    expect = {"offsets": (22, 3), "rotations": (t, 22, 4), "root_translation": (t, 3), "positions": (t, 22, 3)}
    for key, shape in expect.items():
        arr = np.asarray(clip[key])
        if arr.shape != shape or t < 1:
            raise ClipFileError(f"{where}: field '{key}' has shape {arr.shape}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise ClipFileError(f"{where}: field '{key}' contains NaN or infinite values")
    if not clip["fps"] > 0:
        raise ClipFileError(f"{where}: field 'fps' is {clip['fps']!r}, expected a positive number")
    return clip


def write_npz(clip: dict, f) -> None:
    """Write a clip dict to a binary file object, compressed (strings as numpy unicode, loadable
    without pickle)."""
    arrays = {k: np.asarray(clip[k], np.float32) for k in ARRAY_FIELDS}
    arrays["fps"] = np.float32(clip["fps"])
    arrays["joint_names"] = np.array(SMPL_JOINTS)
    arrays["parents"] = np.array(SMPL_PARENTS, np.int32)
    for key in ("text", "transcript"):
        if clip.get(key):
            arrays[key] = np.array(str(clip[key]))
    np.savez_compressed(f, **arrays)


def save_npz(clip: dict, path) -> Path:
    """Write a clip dict to `path` atomically (see write_npz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write_npz(clip, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ---- BVH -----------------------------------------------------------------------------------------
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])   # (x, y, z) -> (x, -z, y)


def _read_text(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read()


def parse_bvh(path) -> tuple[list[str], list[int], np.ndarray, list[tuple], np.ndarray, float]:
    """-> names, parents, offsets (J, 3), channels per joint, motion (F, C), frame time (s).

    End Sites are skipped: they carry no channels and no joint the retargeting can use.
    """
    path = Path(path)
    tokens = _read_text(path).split()
    names, parents, offsets, channels = [], [], [], []
    stack, i, last = [], 0, -1
    try:
        while tokens[i] != "MOTION":
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                offsets.append((0.0, 0.0, 0.0))
                channels.append(())
                last, i = len(names) - 1, i + 2
            elif tok == "End":
                last, i = None, i + 2
            elif tok == "{":
                stack.append(last)
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                if last is not None:
                    offsets[last] = tuple(float(v) for v in tokens[i + 1:i + 4])
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                channels[last] = tuple(tokens[i + 2:i + 2 + n])
                i += 2 + n
            else:
                i += 1
        frames = int(tokens[i + 2])
        frame_time = float(tokens[i + 5])
        values = np.array(tokens[i + 6:], dtype=np.float64)
    except (IndexError, ValueError) as e:
        raise ClipFileError(f"{path}: not a readable BVH file ({e})") from None
    n_ch = sum(len(c) for c in channels)
    if frames < 1 or n_ch == 0 or values.size < frames * n_ch:
        raise ClipFileError(f"{path}: BVH MOTION section has {values.size} values, expected {frames} x {n_ch}")
    return names, parents, np.array(offsets), channels, values[:frames * n_ch].reshape(frames, n_ch), frame_time


def _axis_matrices(axis: str, angles: np.ndarray) -> np.ndarray:
    """(F,) radians -> (F, 3, 3) rotations about X, Y or Z."""
    c, s = np.cos(angles), np.sin(angles)
    m = np.zeros(angles.shape + (3, 3))
    a = "XYZ".index(axis)
    b, d = (a + 1) % 3, (a + 2) % 3
    m[:, a, a] = 1.0
    m[:, b, b], m[:, b, d], m[:, d, b], m[:, d, d] = c, -s, s, c
    return m


def bvh_world(offsets, parents, channels, motion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FK -> world rotations (F, J, 3, 3), world positions (F, J, 3), rest positions (J, 3)."""
    f, j = motion.shape[0], len(parents)
    rot = np.zeros((f, j, 3, 3))
    pos = np.zeros((f, j, 3))
    rest = np.zeros((j, 3))
    col = 0
    for k in range(j):
        local_r = np.broadcast_to(np.eye(3), (f, 3, 3)).copy()
        local_t = np.broadcast_to(offsets[k], (f, 3)).copy()
        for name in channels[k]:
            axis, kind = name[0].upper(), name[1:].lower()
            if kind == "position":
                local_t[:, "XYZ".index(axis)] = motion[:, col]   # replaces the OFFSET, as Blender does
            else:
                local_r = local_r @ _axis_matrices(axis, np.radians(motion[:, col]))
            col += 1
        p = parents[k]
        if p < 0:
            rot[:, k], pos[:, k], rest[k] = local_r, local_t, offsets[k]
        else:
            rot[:, k] = rot[:, p] @ local_r
            pos[:, k] = pos[:, p] + np.einsum("fij,fj->fi", rot[:, p], local_t)
            rest[k] = rest[p] + offsets[k]
    return rot, pos, rest


def _matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions wxyz (w >= 0)."""
    w = np.sqrt(np.maximum(0.0, 1.0 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2])) / 2
    x = np.sqrt(np.maximum(0.0, 1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2])) / 2
    y = np.sqrt(np.maximum(0.0, 1.0 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2])) / 2
    z = np.sqrt(np.maximum(0.0, 1.0 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2])) / 2
    x = np.copysign(x, m[..., 2, 1] - m[..., 1, 2])
    y = np.copysign(y, m[..., 0, 2] - m[..., 2, 0])
    z = np.copysign(z, m[..., 1, 0] - m[..., 0, 1])
    q = np.stack([w, x, y, z], -1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _metres_per_unit(rest: np.ndarray) -> float:
    """Guess the file unit from the standing height of the rest skeleton (~1.7 m for adults)."""
    height = float(np.ptp(rest[:, 1]))
    if height < 3.0:
        return 1.0
    return min((0.01, 0.0254), key=lambda s: abs(np.log(height * s / 1.7)))


def bvh_mapping(names: list[str], parents: list[int], rest: np.ndarray, rig_maps: dict) -> dict[str, str]:
    """SMPL joint -> BVH joint, found as for an armature (`rigmap.detect_rig`): the rig maps by
    joint names, then the skeleton's shape. A BVH joint is a point, so each gets the segment to its
    children (their mean, as Blender's BVH importer makes bone tails), a leaf a short stub that
    continues its parent's direction. `rest`: (J, 3) rest positions, Y up."""
    heads = np.asarray(rest, np.float64) @ Y_UP_TO_Z_UP.T
    parents = np.asarray(parents, int)
    tails = heads.copy()
    for k in range(len(names)):
        children = np.flatnonzero(parents == k)
        if children.size:
            tails[k] = heads[children].mean(axis=0)
        elif parents[k] >= 0:
            tails[k] = heads[k] + 0.5 * (heads[k] - heads[parents[k]])
    return dict(rigmap.detect_rig(names, parents, heads, tails, rig_maps).mapping)


def load_bvh(path, rig_maps: dict) -> dict:
    """BVH of any humanoid skeleton -> clip dict (Y up, metres). Its joints are found by the names
    the maps of `rig_maps` know, else by the skeleton's shape (`bvh_mapping`)."""
    names, parents, offsets, channels, motion, frame_time = parse_bvh(path)
    rot, pos, rest = bvh_world(offsets, parents, channels, motion)
    try:
        mapping = bvh_mapping(names, parents, rest, rig_maps)
    except RetargetError as e:
        raise ClipFileError(f"{path}: {e.message}", e.hint) from None
    missing = [j for j in SMPL_JOINTS if j not in mapping]
    if missing:
        raise ClipFileError(f"{path}: BVH skeleton has no joint for {', '.join(missing)}",
                            hint="Rename the joints or add a bone map in rigs/")
    index = {n: k for k, n in enumerate(names)}
    src = np.array([index[mapping[j]] for j in SMPL_JOINTS])
    scale = _metres_per_unit(rest)
    world_r = rot[:, src]                                            # (F, 22, 3, 3) relative to rest
    parent_r = world_r[:, [max(p, 0) for p in SMPL_PARENTS]]
    local_r = np.swapaxes(parent_r, -1, -2) @ world_r
    local_r[:, 0] = world_r[:, 0]
    rest_smpl = rest[src] * scale
    clip_offsets = rest_smpl - rest_smpl[[max(p, 0) for p in SMPL_PARENTS]]
    clip_offsets[0] = 0.0
    positions = pos[:, src] * scale
    clip = {
        "fps": 1.0 / frame_time if frame_time > 0 else 30.0,
        "offsets": clip_offsets,
        "rotations": _matrix_to_quat(local_r),
        "root_translation": positions[:, 0].copy(),
        "positions": positions,
        "text": Path(path).name,
        "transcript": "",
    }
    return check_clip(clip, str(path))


# ---- BVH axes ------------------------------------------------------------------------------------
# Blender is Z up, -Y forward; BVH readers (Blender's own importer at its defaults, MotionBuilder,
# the backend) expect Y up: Blender (x, y, z) -> BVH (x, z, -y).
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def reorient_bvh(text: str, matrix: np.ndarray) -> str:
    """A BVH text with every joint moved by the 4x4 `matrix` (rotation, uniform scale,
    translation): offsets and positions scaled and rotated, the root's positions also translated,
    each joint's rotation conjugated (R M R^T) and written back in its own channel order."""
    from .retarget import matrix_to_quat, quat_to_euler

    matrix = np.asarray(matrix, np.float64)
    linear, shift = matrix[:3, :3], matrix[:3, 3]
    scale = float(np.cbrt(abs(np.linalg.det(linear)))) or 1.0
    rot = linear / scale
    head, _, motion = text.partition("MOTION")
    out_lines, channels = [], []
    for line in head.splitlines():
        words = line.split()
        if words[:1] == ["OFFSET"]:
            v = linear @ np.array([float(w) for w in words[1:4]])
            line = line[:len(line) - len(line.lstrip())] + "OFFSET %.6f %.6f %.6f" % tuple(v)
        elif words[:1] == ["CHANNELS"]:
            channels.append(words[2:2 + int(words[1])])
        out_lines.append(line)
    lines = motion.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith("Frame Time")) + 1
    values = np.array([[float(v) for v in ln.split()] for ln in lines[start:] if ln.strip()], np.float64)
    col = 0
    for joint, names in enumerate(channels):
        pos = [col + k for k, n in enumerate(names) if n.lower().endswith("position")]
        rots = [col + k for k, n in enumerate(names) if n.lower().endswith("rotation")]
        if len(pos) == 3:
            order = [names[c - col][0].upper() for c in pos]
            p = values[:, pos][:, np.argsort(order)] @ linear.T + (shift if joint == 0 else 0.0)
            values[:, pos] = p[:, ["XYZ".index(a) for a in order]]
        if len(rots) == 3:
            axes = "".join(names[c - col][0].upper() for c in rots)
            m = np.broadcast_to(np.eye(3), (len(values), 3, 3)).copy()
            for c, axis in zip(rots, axes):
                m = m @ _axis_matrices(axis, np.radians(values[:, c]))
            euler = np.degrees(quat_to_euler(matrix_to_quat(rot @ m @ rot.T), axes[::-1]))
            values[:, rots] = euler[:, ["XYZ".index(a) for a in axes]]
        col += len(names)
    rows = [" ".join("%.6f" % v for v in row) for row in values]
    return "\n".join(out_lines + ["MOTION"] + lines[1:start] + rows) + "\n"

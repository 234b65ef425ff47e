"""Motion files in and out: BVH, ASF/AMC and DeepMimic JSON to SMPL-22 positions; clips to BVH.

`read_source` turns any supported file into the 22 SMPL joints at 20 fps, Y up, metres (not yet
canonicalised); `load_motion` goes on to a canonical Clip with rotations; `save_bvh` writes a clip
on the SMPL-22 skeleton. Format parsing lives in bvh / asf_amc / deepmimic, the source-to-SMPL
joint choice in jointmaps/*.toml. Never imports bpy.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..clip import MODEL_FPS, Clip
from ..errors import IrmogenError
from ..quaternions import qbetween, qto_matrix
from ..skeleton import INDEX
from .asf_amc import read_asf_amc
from .bvh import SkeletonMotion, read_bvh, write_bvh
from .deepmimic import read_deepmimic
from .jointmap import JointMap, builtin_maps, detect_map

__all__ = ["SourceMotion", "read_source", "load_motion", "save_bvh", "builtin_maps", "detect_map", "JointMap"]

# The CMU database lacks the skeletons of subjects 05, 88 and 90; its subject 08 skeleton is the
# customary stand-in (data README), used only when no ASF of the clip's own subject exists.
STAND_IN_ASF = "08.asf"
# Candidate length units of a BVH, metres per file unit: metres, inches, centimetres, millimetres.
UNITS = {"m": 1.0, "in": 0.0254, "cm": 0.01, "mm": 0.001}
TYPICAL_JOINT_HEIGHT = 1.45  # metres from ankle to head joint of a standing adult (~1.7 m tall)


@dataclass
class SourceMotion:
    positions: np.ndarray        # (T, 22, 3) SMPL joints, metres, Y up, at `fps`; not canonicalised
    source_fps: float
    source_format: str           # "bvh", "asf_amc" or "deepmimic"
    skeleton: str                # name of the joint map used
    meta: dict = field(default_factory=dict)
    fps: float = MODEL_FPS


def _format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".bvh", ".bvh.gz")):
        return "bvh"
    if name.endswith(".amc"):
        return "asf_amc"
    if name.endswith((".json", ".txt")):
        return "deepmimic"
    raise IrmogenError(f"{path}: unknown motion file type (expected .bvh, .bvh.gz, .amc, .json, .txt or .npz)")


def find_asf(amc: Path, meta: dict) -> Path:
    """The clip's own subject ASF (longest name prefix before '_'), else the CMU stand-in."""
    parts = amc.name[:-4].split("_")
    for k in range(len(parts) - 1, 0, -1):
        candidate = amc.parent / ("_".join(parts[:k]) + ".asf")
        if candidate.is_file():
            return candidate
    stand_in = amc.parent / STAND_IN_ASF
    if stand_in.is_file():
        note = f"no {parts[0]}.asf for {amc.name}: using {STAND_IN_ASF} as a stand-in skeleton"
        print(f"irmogen: warning: {note}", file=sys.stderr)
        meta["asf_stand_in"] = note
        return stand_in
    raise IrmogenError(f"{amc}: no ASF skeleton found next to it", hint="pass the ASF with --asf / asf=")


def _read_raw(path: Path, fmt: str, asf, meta: dict) -> SkeletonMotion:
    if fmt == "bvh":
        raw = read_bvh(path)
        # Namespaces such as "mixamorig:" are not part of a joint's identity.
        raw.names = [n.rsplit(":", 1)[-1] for n in raw.names]
        return raw
    if fmt == "asf_amc":
        asf = Path(asf) if asf is not None else find_asf(path, meta)
        meta["asf"] = str(asf)
        return read_asf_amc(path, asf)
    urdf = Path(asf) if asf is not None else None  # for DeepMimic the extra file is the URDF
    return read_deepmimic(path, urdf)


def up_rotation(p: np.ndarray) -> tuple[np.ndarray, str]:
    """(3, 3) proper rotation taking the body's up axis (feet -> head, median over frames) to +Y."""
    up = p[:, INDEX["head"]] - 0.5 * (p[:, INDEX["left_ankle"]] + p[:, INDEX["right_ankle"]])
    med = np.median(up, axis=0)
    k = int(np.argmax(np.abs(med)))
    axis = np.zeros(3)
    axis[k] = np.sign(med[k]) or 1.0
    label = ("+" if axis[k] > 0 else "-") + "XYZ"[k]
    return qto_matrix(qbetween(axis, np.array([0.0, 1.0, 0.0]))), label


def unit_scale(p: np.ndarray) -> tuple[float, str]:
    """Metres per file unit, from the standing height of the Y-up skeleton (p in file units)."""
    feet = p[:, [INDEX["left_ankle"], INDEX["right_ankle"]], 1].min(axis=1)
    height = float(np.percentile(p[:, INDEX["head"], 1] - feet, 90))
    if not height > 0:
        raise IrmogenError("cannot measure the skeleton's height: head never above the ankles")
    unit = min(UNITS, key=lambda u: abs(np.log(height * UNITS[u] / TYPICAL_JOINT_HEIGHT)))
    return UNITS[unit], unit


# A converter's prepended T-pose is left faster than a person moves from a held pose. Measured over
# a fixed time, not one frame: cgspeed's 120 fps files ease out of theirs over about 4 frames of
# ~0.2 m each (0.5-1.2 m in 1/30 s), which a per-frame threshold cannot tell from motion.
TPOSE_EXIT_SECONDS = 1 / 30
TPOSE_EXIT_METRES = 0.25        # within TPOSE_EXIT_SECONDS: 7.5 m/s


def arms_level(pose: np.ndarray) -> bool:
    """Both arms straight out sideways (shoulder to wrist within ~12 degrees of level): a T-pose."""
    arms = [pose[INDEX[f"{side}_wrist"]] - pose[INDEX[f"{side}_shoulder"]] for side in ("left", "right")]
    return all(abs(arm[1]) < 0.2 * np.linalg.norm(arm) for arm in arms)


def is_prepended_tpose(p: np.ndarray, fps: float) -> bool:
    """Frame 0 a T-pose that the body leaves at once: some joint more than 0.25 m from it 1/30 s on.

    True of frame 0 of every cgspeed file and of the 10 bvh_cc files that carry one; the one other
    first frame in the shared data with both arms level (bvh_cc 003_02, arms held out) moves 0.08 m.
    """
    k = max(1, round(fps * TPOSE_EXIT_SECONDS))
    if len(p) < max(3, k + 1):
        return False
    exit_metres = TPOSE_EXIT_METRES * (k / fps) / TPOSE_EXIT_SECONDS
    return bool(np.linalg.norm(p[k] - p[0], axis=-1).max() > exit_metres and arms_level(p[0]))


def read_source(path, asf=None, scale: float | None = None, fps: float | None = MODEL_FPS) -> SourceMotion:
    """Any supported motion file -> the 22 SMPL joints at `fps`, metres, Y up (not canonical).

    `asf` is the ASF skeleton of an AMC file (or the URDF of a DeepMimic clip); found next to the
    file when omitted. `scale` (metres per file unit) overrides the BVH unit detection. `fps=None`
    keeps the source's own frame rate (DeepMimic: its typical frame step).
    """
    from ..resample import resample_positions  # written alongside; keep import-time light

    path = Path(path)
    fmt = _format(path)
    meta = {"source_file": path.name, "source_format": fmt}
    raw = _read_raw(path, fmt, asf, meta)
    jmap = detect_map(raw.names, str(path))
    p = jmap.apply(raw.names, raw.positions)
    if fmt == "bvh":
        rot, meta["up_axis"] = up_rotation(p)
        p = p @ rot.T
        if scale is None:
            scale, meta["units"] = unit_scale(p)
        else:
            meta["units"] = f"{scale} m per unit (given)"
        p = p * scale
        if is_prepended_tpose(p, float(raw.fps)):
            p = p[1:]
            meta["dropped_tpose_frame"] = "1"
    if not np.all(np.isfinite(p)):
        raise IrmogenError(f"{path}: motion produced NaN or infinite joint positions")
    if fps is None:
        return SourceMotion(p, float(raw.fps), fmt, jmap.name, meta, fps=float(raw.fps))
    return SourceMotion(resample_positions(p, raw.fps, fps, antialias=False), float(raw.fps), fmt, jmap.name, meta, fps=float(fps))


def load_motion(path, asf=None) -> Clip:
    """A motion file -> canonical Clip at 20 fps with rotations; a clip `.npz` loads as it is."""
    from ..canonical import canonicalize
    from ..rotations import clip_from_positions

    path = Path(path)
    if path.name.lower().endswith(".npz"):
        return Clip.load(path)
    src = read_source(path, asf)
    clip = clip_from_positions(canonicalize(src.positions), MODEL_FPS)
    clip.meta.update({k: str(v) for k, v in src.meta.items()})
    clip.meta["skeleton"] = src.skeleton
    clip.meta["source_fps"] = f"{src.source_fps:g}"
    return clip


def save_bvh(clip: Clip, path) -> Path:
    """Write `clip` as BVH on the SMPL-22 skeleton (SMPL names, Y up, metres, ZXY rotations)."""
    clip.validate(str(path))
    return write_bvh(path, clip.offsets, clip.rotations, clip.root_translation, clip.fps)

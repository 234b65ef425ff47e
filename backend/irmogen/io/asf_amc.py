"""Acclaim ASF/AMC (CMU, HDM05 Vicon 31-bone skeletons) to world joint positions, metres, Y up.

ASF gives bones (direction in world rest coordinates, length, `axis` frame with its rotation
order, dof list); AMC gives, per frame, each bone's dof values in the ASF's dof order, bones in
any order. A bone's world rotation is parent * C * M * C^-1 (C from `axis`, M from the dofs), its
end is its start + length * rotation * direction. Each output point is named after the bone that
STARTS there (`lfemur` = hip joint centre); leaf bones add `<bone>_end`. Files are read as
latin-1 because HDM05 headers hold non-UTF-8 bytes. Pure numpy; never imports bpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import IrmogenError, at
from ..quaternions import qfrom_euler, qto_matrix
from .bvh import SkeletonMotion, read_text

INCH = 0.0254
AMC_FPS = 120.0  # CMU and HDM05 both capture at 120 Hz; AMC files do not say


@dataclass
class Bone:
    name: str
    direction: np.ndarray = field(default_factory=lambda: np.zeros(3))  # unit, world rest frame
    length: float = 0.0                                                  # metres
    axis: np.ndarray = field(default_factory=lambda: np.eye(3))          # C, (3, 3)
    dofs: tuple[str, ...] = ()                                           # e.g. ("rx", "rz")
    parent: str | None = None


@dataclass
class Skeleton:
    bones: dict[str, Bone]          # "root" first, then parents before children
    root_order: tuple[str, ...]     # AMC root channel order, e.g. ("tx","ty","tz","rx","ry","rz")
    to_metres: float
    degrees: bool
    root_axis: str = "XYZ"          # order the root rotation is applied in


def _axis_matrix(angles, order: str, degrees: bool) -> np.ndarray:
    """Rotations applied in `order` (first letter first) -> matrix, as ASF `axis` lines mean."""
    a = np.asarray(angles, dtype=np.float64)
    a = a if degrees else np.degrees(a)
    # Applying X then Y then Z is R = Rz Ry Rx: intrinsic in the reversed order.
    return qto_matrix(qfrom_euler(a[..., ::-1], order[::-1]))


def parse_asf(path) -> Skeleton:
    path = Path(path)
    lines = read_text(path).splitlines()
    section, bones, cur = None, {"root": Bone("root")}, None
    root_order, root_axis, length_unit, degrees = ("tx", "ty", "tz", "rx", "ry", "rz"), "XYZ", 1.0, True
    for n, line in enumerate(lines, start=1):
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        if tok[0].startswith(":"):
            section = tok[0][1:].lower()
            continue
        key = tok[0].lower()
        try:
            if section == "units" and key == "length":
                length_unit = float(tok[1])
            elif section == "units" and key == "angle":
                degrees = tok[1].lower().startswith("deg")
            elif section == "root" and key == "order":
                root_order = tuple(t.lower() for t in tok[1:])
            elif section == "root" and key == "axis":
                root_axis = tok[1].upper()
            elif section == "bonedata" and key == "begin":
                cur = Bone("")
            elif section == "bonedata" and key == "end":
                if cur is None or not cur.name:
                    raise IrmogenError(at(path, n, "bone without a name"))
                bones[cur.name] = cur
                cur = None
            elif section == "bonedata" and cur is not None:
                if key == "name":
                    cur.name = tok[1]
                elif key == "direction":
                    d = np.array([float(t) for t in tok[1:4]])
                    cur.direction = d / max(np.linalg.norm(d), 1e-12)
                elif key == "length":
                    cur.length = float(tok[1])
                elif key == "axis":
                    cur.axis = _axis_matrix([float(t) for t in tok[1:4]], tok[4].upper(), degrees)
                elif key == "dof":
                    cur.dofs = tuple(t.lower() for t in tok[1:])
            elif section == "hierarchy" and key not in ("begin", "end"):
                for child in tok[1:]:
                    if child not in bones or tok[0] not in bones:
                        raise IrmogenError(at(path, n, f"hierarchy names unknown bone {child!r}"))
                    bones[child].parent = tok[0]
        except (ValueError, IndexError):
            raise IrmogenError(at(path, n, f"cannot read {line.strip()!r}")) from None
    if len(bones) < 2:
        raise IrmogenError(f"{path}: no :bonedata in the ASF (is this an ASF file?)")
    orphans = [b for b in bones if b != "root" and bones[b].parent is None]
    if orphans:
        raise IrmogenError(f"{path}: bones missing from :hierarchy: {', '.join(orphans)}")
    # The root's `orientation` is zero in every CMU/HDM05 file; its frame is the world frame.
    bones["root"].axis = _axis_matrix([0.0, 0.0, 0.0], root_axis, True)
    bones["root"].dofs = tuple(c for c in root_order if c.startswith("r"))
    ordered: dict[str, Bone] = {}

    def visit(name: str) -> None:
        ordered[name] = bones[name]
        for b in bones.values():
            if b.parent == name:
                visit(b.name)

    visit("root")
    to_m = INCH / length_unit
    for b in ordered.values():
        b.length *= to_m
    return Skeleton(ordered, root_order, to_m, degrees, root_axis)


def parse_amc(path, skel: Skeleton) -> dict[str, np.ndarray]:
    """-> {bone: (F, number of its dofs)} (root: all channels in `root_order`)."""
    path = Path(path)
    lines = read_text(path).splitlines()
    frames: list[dict[str, tuple[int, list[str]]]] = []
    for n, line in enumerate(lines, start=1):
        tok = line.split()
        if not tok or tok[0].startswith(("#", ":")):
            continue
        if tok[0].isdigit() and len(tok) == 1:
            frames.append({})
            continue
        if not frames:
            raise IrmogenError(at(path, n, f"bone line {tok[0]!r} before the first frame number"))
        if tok[0] not in skel.bones:
            raise IrmogenError(at(path, n, f"unknown joint {tok[0]!r} (not in the ASF)"))
        frames[-1][tok[0]] = (n, tok[1:])
    if not frames:
        raise IrmogenError(f"{path}: no frames in the AMC file")
    out = {}
    for name, bone in skel.bones.items():
        width = len(skel.root_order) if name == "root" else len(bone.dofs)
        if width == 0:
            continue
        values = np.zeros((len(frames), width))
        for f, frame in enumerate(frames):
            if name not in frame:
                if name == "root" or f == len(frames) - 1:
                    raise IrmogenError(f"{path}: frame {f + 1} has no {name!r} line (truncated file?)")
                raise IrmogenError(f"{path}: frame {f + 1} has no {name!r} line")
            n, tok = frame[name]
            if len(tok) != width:
                raise IrmogenError(at(path, n, f"{name!r} has {len(tok)} values, expected {width}"))
            try:
                values[f] = [float(t) for t in tok]
            except ValueError:
                raise IrmogenError(at(path, n, f"non-numeric value in {' '.join(tok)!r}")) from None
            if not np.all(np.isfinite(values[f])):
                raise IrmogenError(at(path, n, "NaN or infinite value"))
        out[name] = values
    return out


def _dof_matrix(values: np.ndarray, dofs: tuple[str, ...], degrees: bool) -> np.ndarray:
    """(F, len(dofs)) rotation dof values applied in the listed order -> (F, 3, 3)."""
    order = "".join(d[1].upper() for d in dofs)
    return _axis_matrix(values, order, degrees)


def forward_kinematics(skel: Skeleton, motion: dict[str, np.ndarray]) -> SkeletonMotion:
    """World positions (F, J, 3) in metres; loops over bones, vectorised over frames."""
    root = motion["root"]
    n_frames = root.shape[0]
    ch = {c: k for k, c in enumerate(skel.root_order)}
    trans = np.stack([root[:, ch[c]] if c in ch else np.zeros(n_frames) for c in ("tx", "ty", "tz")], -1)
    rdofs = tuple(c for c in skel.root_order if c.startswith("r"))
    # The root rotation uses the root `axis` order, whatever order its AMC values come in.
    axis_order = skel.root_axis
    rvals = np.stack([root[:, ch["r" + a.lower()]] if "r" + a.lower() in rdofs else np.zeros(n_frames)
                      for a in axis_order], -1)
    rot = {"root": _axis_matrix(rvals, axis_order, skel.degrees)}
    end = {"root": trans * skel.to_metres}
    names, points = ["root"], [end["root"]]
    for name, bone in skel.bones.items():
        if name == "root":
            continue
        c = bone.axis
        m = _dof_matrix(motion[name], bone.dofs, skel.degrees) if bone.dofs else np.eye(3)
        rot[name] = rot[bone.parent] @ c @ m @ c.T
        end[name] = end[bone.parent] + bone.length * (rot[name] @ bone.direction)
        names.append(name)
        points.append(end[bone.parent])
        if not any(b.parent == name for b in skel.bones.values()):
            names.append(name + "_end")
            points.append(end[name])
    return SkeletonMotion(names, np.stack(points, axis=1), AMC_FPS)


def read_asf_amc(amc_path, asf_path) -> SkeletonMotion:
    skel = parse_asf(asf_path)
    return forward_kinematics(skel, parse_amc(amc_path, skel))

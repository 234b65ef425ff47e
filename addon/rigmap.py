"""Rig maps: which bone of an armature plays each SMPL joint, read from `rigs/*.toml`.

A map names, per SMPL joint, one bone name or a list of alternatives (the first present wins);
joints a rig lacks are left out. `detect` scores every map by how many SMPL joints it finds among
an armature's bone names and returns the best one with a report of what mapped and what is
missing; a map can also be forced by name (manual override). The rigs folder is always passed in.
`detect_rig` adds the rig's shape (`rigdetect`): it fills the joints the names miss, or maps the
whole rig when no map fits its names. `map_toml` writes a map (the editor's "Save Rig Map").
Pure Python (tomllib, re, numpy via rigdetect): no bpy, testable without Blender. File format:
rigs/README.md.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import rigdetect
from .retarget import JOINT_NAMES, RetargetError

# Without these the motion is not recognisably transferred; a map lacking one never wins.
CORE_JOINTS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee",
               "left_shoulder", "right_shoulder", "left_elbow", "right_elbow")
MIN_JOINTS = 15           # fewer mapped SMPL joints than this is refused
NAMESPACE = re.compile(r"^.*[:|]")   # "mixamorig:Hips", "Armature|Hips": FBX/Maya namespaces


@dataclass(frozen=True)
class RigMap:
    name: str
    description: str
    joints: dict[str, tuple[str, ...]]                 # SMPL joint -> candidate bone names
    prefix: str = ""                                   # regex a bone name may start with
    root: tuple[str, ...] = ()                         # candidate root bones (root-motion mode)
    priority: int = 0                                  # breaks ties between equally good maps
    properties: dict[str, dict] = field(default_factory=dict)  # bone -> {custom property: value}
    notes: str = ""


@dataclass
class MapResult:
    name: str
    mapping: dict[str, str]                            # SMPL joint -> bone name in this armature
    missing: list[str]                                 # SMPL joints with no bone
    report: str
    root_bone: str | None = None
    properties: dict[str, dict] = field(default_factory=dict)  # rig settings the retarget relies on
    scores: dict[str, int] = field(default_factory=dict)       # every map: joints found


def _names(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise RetargetError(f"{where}: expected a bone name or a list of names, got {value!r}")


def parse_map(text: str, where: str) -> RigMap:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RetargetError(f"{where}: not valid TOML ({e})") from None
    joints = data.get("joints")
    if not isinstance(joints, dict) or not joints:
        raise RetargetError(f"{where}: no [joints] table")
    unknown = [j for j in joints if j not in JOINT_NAMES]
    if unknown:
        raise RetargetError(f"{where}: [joints] has unknown SMPL joint(s) {unknown}",
                            f"valid names: {', '.join(JOINT_NAMES)}")
    prefix = str(data.get("prefix", ""))
    try:
        re.compile(prefix)
    except re.error as e:
        raise RetargetError(f"{where}: prefix {prefix!r} is not a valid regular expression ({e})") from None
    props = data.get("properties", {})
    if not isinstance(props, dict) or not all(isinstance(v, dict) for v in props.values()):
        raise RetargetError(f"{where}: [properties] must map bone names to tables of values")
    return RigMap(
        name=str(data.get("name", Path(where).stem)),
        description=str(data.get("description", "")),
        joints={j: _names(v, f"{where}: joints.{j}") for j, v in joints.items()},
        prefix=prefix,
        root=_names(data["root"], f"{where}: root") if "root" in data else (),
        priority=int(data.get("priority", 0)),
        properties=props,
        notes=str(data.get("notes", "")),
    )


def load_maps(rigs_dir, *user_dirs) -> dict[str, RigMap]:
    """Every `*.toml` map in `rigs_dir`, by map name, then those of `user_dirs` (folders that may
    not exist yet); a user's map replaces a shipped map of the same name."""
    folder = Path(rigs_dir)
    if not folder.is_dir():
        raise RetargetError(f"{folder}: rig map folder not found")
    maps = _folder_maps(folder)
    for extra in user_dirs:
        if extra is not None and Path(extra).is_dir():
            maps.update(_folder_maps(Path(extra)))
    return maps


def _folder_maps(folder: Path) -> dict[str, RigMap]:
    maps: dict[str, RigMap] = {}
    for path in sorted(folder.glob("*.toml")):
        m = parse_map(path.read_text(encoding="utf-8"), str(path))
        if m.name in maps:
            raise RetargetError(f"{path}: map name {m.name!r} is used twice")
        maps[m.name] = m
    return maps


MAP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def map_toml(name: str, mapping: dict[str, str], description: str = "", root: str | None = None) -> str:
    """A rig map file (rigs/README.md format) naming one bone per SMPL joint of `mapping`."""
    if not MAP_NAME.match(name):
        raise RetargetError(f"rig map name {name!r}: use letters, digits, '_', '-' or '.'")
    unknown = [j for j in mapping if j not in JOINT_NAMES]
    if unknown:
        raise RetargetError(f"rig map {name!r}: unknown SMPL joint(s) {unknown}")
    lines = [f"name = {_quoted(name)}", f"description = {_quoted(description or name)}"]
    lines += [f"root = {_quoted(root)}"] if root else []
    lines += ["", "[joints]"]
    lines += [f"{j} = {_quoted(mapping[j])}" for j in JOINT_NAMES if mapping.get(j)]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    """A TOML basic string (bone names may hold quotes, backslashes or non-ASCII letters)."""
    return '"' + "".join(c if c not in '"\\' and ord(c) >= 0x20 else f"\\u{ord(c):04x}" for c in text) + '"'


def bone_lookup(rig_map: RigMap, bone_names) -> dict[str, str]:
    """Map-side name -> actual bone name: exact names, then names with a namespace or the map's
    prefix removed ("mixamorig1:Hips", "mixamorig_Hips" -> "Hips")."""
    lookup: dict[str, str] = {}
    pattern = re.compile(f"^(?:{rig_map.prefix})") if rig_map.prefix else None
    for name in bone_names:
        for key in (NAMESPACE.sub("", name), pattern.sub("", name) if pattern else name):
            lookup.setdefault(key, name)
    for name in bone_names:                                    # an exact name always wins
        lookup[name] = name
    return lookup


def apply_map(rig_map: RigMap, bone_names) -> MapResult:
    """What `rig_map` finds in an armature with `bone_names` (no threshold applied)."""
    lookup = bone_lookup(rig_map, list(bone_names))
    mapping, missing = {}, []
    for joint in JOINT_NAMES:
        found = next((lookup[c] for c in rig_map.joints.get(joint, ()) if c in lookup), None)
        if found is None:
            missing.append(joint)
        else:
            mapping[joint] = found
    root = next((lookup[c] for c in rig_map.root if c in lookup), None)
    props = {lookup[b]: v for b, v in rig_map.properties.items() if b in lookup}
    report = (f"{rig_map.name}: {len(mapping)}/{len(JOINT_NAMES)} SMPL joints mapped"
              f"; missing: {', '.join(missing) or 'none'}; root bone: {root or 'none'}")
    return MapResult(rig_map.name, mapping, missing, report, root, props)


def detect(bone_names, maps: dict[str, RigMap], override: str | None = None,
           min_joints: int = MIN_JOINTS) -> MapResult:
    """The map that finds the most SMPL joints among `bone_names` (or the map named `override`).

    Raises RetargetError naming the missing joints when the chosen map covers too few of them.
    """
    names = list(bone_names)
    if not maps:
        raise RetargetError("no rig maps loaded", "check the add-on's rigs folder")
    if override:
        if override not in maps:
            raise RetargetError(f"rig map {override!r} not found", f"available: {', '.join(sorted(maps))}")
        results = {override: apply_map(maps[override], names)}
    else:
        results = {n: apply_map(m, names) for n, m in maps.items()}
    best = max(results.values(), key=lambda r: (len(r.mapping), maps[r.name].priority, r.name))
    best.scores = {n: len(r.mapping) for n, r in results.items()}
    core_missing = [j for j in CORE_JOINTS if j in best.missing]
    if core_missing or len(best.mapping) < min_joints:
        raise RetargetError(
            f"armature not recognised: best rig map {best.name!r} finds {len(best.mapping)}/22 SMPL joints, "
            f"missing {', '.join(best.missing)}",
            "pick a rig map by hand, or add a map for this rig to the rigs folder")
    others = sorted(((s, n) for n, s in best.scores.items() if n != best.name), reverse=True)[:2]
    if others:
        best.report += "; next: " + ", ".join(f"{n} {s}/22" for s, n in others)
    return best


def detect_rig(bone_names, parents, heads, tails, maps: dict[str, RigMap], override: str | None = None,
               min_joints: int = MIN_JOINTS) -> MapResult:
    """Names first (the best map, or the map named `override`), then the shape: `rigdetect` fills
    the joints the names miss, or maps the whole rig when no map fits. `parents` (N,) and
    `heads`/`tails` (N, 3, world, Z up) describe the bones of `bone_names`."""
    names = list(bone_names)
    if override:
        return detect(names, maps, override, min_joints)
    try:
        found = detect(names, maps, min_joints=min_joints)
    except RetargetError as by_names:
        try:
            shape = rigdetect.detect(names, parents, heads, tails)
        except RetargetError as e:
            raise RetargetError(f"armature not recognised: no rig map fits its bone names, and by its shape "
                                f"{e.message}", e.hint or by_names.hint) from None
        return _shape_result(shape, names, parents, min_joints)
    if found.missing:
        try:
            shape = rigdetect.detect(names, parents, heads, tails)
        except RetargetError:
            return found
        used = set(found.mapping.values())
        added = {j: b for j, b in shape.items() if j in found.missing and b not in used}
        found.mapping.update(added)
        found.missing = [j for j in found.missing if j not in added]
        if added:
            found.report += f"; by shape: {', '.join(f'{j}={b}' for j, b in added.items())}"
    return found


def _shape_result(mapping: dict[str, str], names: list[str], parents, min_joints: int) -> MapResult:
    missing = [j for j in JOINT_NAMES if j not in mapping]
    if len(mapping) < min_joints:
        raise RetargetError(f"armature not recognised: by its shape {len(mapping)}/22 SMPL joints found, "
                            f"missing {', '.join(missing)}", rigdetect.BY_HAND)
    index = {n: i for i, n in enumerate(names)}
    top = index[mapping["pelvis"]]
    while int(parents[top]) >= 0:                          # the hips' topmost ancestor: a root bone
        top = int(parents[top])
    root = names[top] if names[top] != mapping["pelvis"] else None
    ordered = {j: mapping[j] for j in JOINT_NAMES if j in mapping}
    report = (f"by shape: {len(ordered)}/{len(JOINT_NAMES)} SMPL joints mapped; missing: {', '.join(missing) or 'none'}"
              f"; root bone: {root or 'none'}")
    return MapResult("shape", ordered, missing, report, root)

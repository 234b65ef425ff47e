"""The bone map of an armature: stored on the armature data (saved with the .blend), else detected.

Which bone plays each SMPL joint is decided, in order: the mapping stored on the armature (filled by
Auto-detect or picked by hand in the editor, `bonemap_ui`), else `rigmap.detect_rig` (the rig maps
by bone names, then the rig's shape). The maps are the shipped `rigs/` folder plus the user's own
(`<extension user folder>/rigs`, written by "Save Rig Map", kept when the extension is reinstalled).
`mapping_for` is what Generate, Refine, Apply and Use Round use (through `jobs.rig_mapping`, which
calls it before anything is sent to the backend); `check_rig` says the same verdict in one line.
Imports bpy, numpy and the add-on's pure modules; no UI classes (they are in bonemap_ui).
"""
from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from . import preferences, rigmap
from .retarget import JOINT_NAMES, RetargetError

PROPERTY = "irmogen_bone_map"       # bpy.types.Armature.<PROPERTY>: the stored mapping
_cache: dict[str, dict] = {}


def shipped_rigs_dir() -> Path:
    """build.py stages the repository's `rigs/` inside the add-on folder."""
    return Path(__file__).resolve().parent / "rigs"


def user_rigs_dir() -> Path | None:
    """The user's rig maps: a folder the extension keeps when it is reinstalled (None outside an
    installed extension)."""
    try:
        return preferences.user_dir("rigs")
    except (ValueError, RuntimeError):
        return None


def rig_maps() -> dict:
    """The shipped maps and the user's, by name (a user's map replaces a shipped one of its name);
    read once until `forget_maps`."""
    if "maps" not in _cache:
        _cache["maps"] = rigmap.load_maps(shipped_rigs_dir(), user_rigs_dir())
    return _cache["maps"]


def forget_maps() -> None:
    _cache.clear()


def rig_shape(obj) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Bone names, parents (N,) and rest heads / tails (N, 3) in world space (Z up)."""
    bones = obj.data.bones
    names = [b.name for b in bones]
    index = {n: i for i, n in enumerate(names)}
    parents = np.array([index[b.parent.name] if b.parent else -1 for b in bones], dtype=int)
    world = np.array(obj.matrix_world, np.float64)
    heads = np.array([tuple(b.head_local) for b in bones], np.float64).reshape(-1, 3)
    tails = np.array([tuple(b.tail_local) for b in bones], np.float64).reshape(-1, 3)
    return names, parents, heads @ world[:3, :3].T + world[:3, 3], tails @ world[:3, :3].T + world[:3, 3]


def stored(obj) -> dict[str, str]:
    """The mapping stored on the armature: SMPL joint -> bone name (empty when none is stored)."""
    group = getattr(obj.data, PROPERTY, None)
    if group is None:
        return {}
    return {j: getattr(group, j) for j in JOINT_NAMES if getattr(group, j)}


def store(obj, found: rigmap.MapResult) -> None:
    """Keep `found` on the armature (every joint, the root bone and where it came from)."""
    group = getattr(obj.data, PROPERTY)
    for j in JOINT_NAMES:
        setattr(group, j, found.mapping.get(j, ""))
    group.root = found.root_bone or ""
    group.source = found.name


def clear(obj) -> None:
    group = getattr(obj.data, PROPERTY)
    for j in JOINT_NAMES:
        setattr(group, j, "")
    group.root = group.source = ""


def detect(obj, maps: dict, override: str | None = None) -> rigmap.MapResult:
    """Auto-detection on `obj`: rig maps by names, then the shape (ignores the stored mapping)."""
    names, parents, heads, tails = rig_shape(obj)
    try:
        return rigmap.detect_rig(names, parents, heads, tails, maps, override)
    except RetargetError as e:
        raise RetargetError(f"'{obj.name}': {e.message}", e.hint) from None


def from_stored(obj) -> rigmap.MapResult | None:
    """The stored mapping as a MapResult, checked against the armature; None when none is stored."""
    mapping = stored(obj)
    if not mapping:
        return None
    bones = obj.data.bones
    gone = [f"{j} -> {b!r}" for j, b in mapping.items() if bones.get(b) is None]
    if gone:
        raise RetargetError(f"'{obj.name}': its bone map names bones it does not have: {', '.join(gone)}",
                            "Auto-detect again or pick the bones in the Bone Map panel")
    core = [j for j in rigmap.CORE_JOINTS if j not in mapping]
    if core:
        raise RetargetError(f"'{obj.name}': its bone map has no bone for {', '.join(core)}",
                            "Pick those bones in the Bone Map panel, or clear it to auto-detect")
    seen: dict[str, str] = {}
    for j, b in mapping.items():
        if b in seen:
            raise RetargetError(f"'{obj.name}': its bone map gives bone {b!r} to both {seen[b]} and {j}",
                                "Each SMPL joint needs its own bone")
        seen[b] = j
    group = getattr(obj.data, PROPERTY)
    root = group.root if group.root and bones.get(group.root) is not None else None
    missing = [j for j in JOINT_NAMES if j not in mapping]
    source = group.source or "by hand"
    report = (f"bone map on the armature ({source}): {len(mapping)}/{len(JOINT_NAMES)} SMPL joints; "
              f"missing: {', '.join(missing) or 'none'}; root bone: {root or 'none'}")
    return rigmap.MapResult(f"armature ({source})", mapping, missing, report, root)


def mapping_for(obj, maps: dict, override: str | None = None) -> rigmap.MapResult:
    """The bone map Generate / Apply / Refine use on `obj`: the stored one, else auto-detection
    (`override` forces a named rig map there). Raises RetargetError naming what is wrong."""
    found = from_stored(obj)
    if found is not None:
        named = maps.get(getattr(obj.data, PROPERTY).source)
        if named is not None:                              # a map's rig switches (Rigify FK) still apply
            found.properties = rigmap.apply_map(named, [b.name for b in obj.data.bones]).properties
        return found
    return detect(obj, maps, override)


def check_rig(obj, maps: dict | None = None, override: str | None = None) -> str | None:
    """Why `obj` cannot take a motion, in one line (None when it can): not an armature, a bone
    map naming missing bones, or no humanoid found by names nor by shape."""
    if obj is None or getattr(obj, "type", None) != "ARMATURE":
        return f"{getattr(obj, 'name', 'nothing')!r} is not an armature: select the character's armature"
    try:
        mapping_for(obj, rig_maps() if maps is None else maps, override)
    except RetargetError as e:
        return e.message
    return None


def save_map(obj, name: str, description: str = "", folder: Path | None = None) -> Path:
    """Write the armature's stored mapping as rig map `name` into the user's rigs folder (or
    `folder`); the maps are read again afterwards. Returns the file written."""
    found = from_stored(obj)
    if found is None:
        raise RetargetError(f"'{obj.name}' has no bone map to save", "Auto-detect or pick the bones first")
    text = rigmap.map_toml(name, found.mapping, description or f"saved from '{obj.name}'", found.root_bone)
    target = folder or user_rigs_dir()
    if target is None:
        raise RetargetError("no user folder to save rig maps in", "Install IRMoGen as an extension")
    path = Path(target) / f"{name}.toml"
    rigmap.parse_map(text, str(path))                       # never write a map the loader refuses
    path.write_text(text, encoding="utf-8")
    forget_maps()
    return path

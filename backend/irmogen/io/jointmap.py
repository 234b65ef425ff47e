"""Joint maps: which source-skeleton points make the 22 SMPL joints. The maps are data (TOML).

Each map in `jointmaps/*.toml` names, for every SMPL joint, one source joint or a weighted blend of
source joints (weights summing to 1), e.g. `spine2 = { abdomen = 0.5, chest = 0.5 }`. A file's
map is found by its joint names: the map whose names the file covers best wins, and a file no map
covers fully is refused with the SMPL joints it lacks. Pure Python and numpy; never imports bpy.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..errors import IrmogenError
from ..skeleton import JOINT_NAMES


@dataclass(frozen=True)
class JointMap:
    name: str
    description: str
    sources: tuple[tuple[tuple[str, float], ...], ...]  # per SMPL joint: ((source name, weight), ...)

    @property
    def source_names(self) -> set[str]:
        return {s for blend in self.sources for s, _ in blend}

    def missing(self, names) -> list[str]:
        """SMPL joints whose source joints are not all in `names`."""
        have = set(names)
        return [JOINT_NAMES[j] for j, blend in enumerate(self.sources) if any(s not in have for s, _ in blend)]

    def apply(self, names, positions: np.ndarray) -> np.ndarray:
        """(F, J, 3) source positions -> (F, 22, 3) SMPL joint positions (same units and axes)."""
        index = {n: i for i, n in enumerate(names)}
        weights = np.zeros((len(JOINT_NAMES), len(names)))
        for j, blend in enumerate(self.sources):
            for s, w in blend:
                weights[j, index[s]] += w
        return np.einsum("kj,fjc->fkc", weights, positions)


def parse_map(text: str, where: str) -> JointMap:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise IrmogenError(f"{where}: not valid TOML ({e})") from None
    table = data.get("joints", {})
    missing = [n for n in JOINT_NAMES if n not in table]
    unknown = [n for n in table if n not in JOINT_NAMES]
    if missing or unknown:
        raise IrmogenError(f"{where}: [joints] missing {missing or 'none'}, unknown {unknown or 'none'}")
    sources = []
    for n in JOINT_NAMES:
        v = table[n]
        blend = ((v, 1.0),) if isinstance(v, str) else tuple((k, float(w)) for k, w in v.items())
        if not blend or abs(sum(w for _, w in blend) - 1.0) > 1e-6:
            raise IrmogenError(f"{where}: joints.{n}: blend weights must sum to 1, got {v!r}")
        sources.append(blend)
    return JointMap(str(data.get("name", where)), str(data.get("description", "")), tuple(sources))


def builtin_maps() -> dict[str, JointMap]:
    """The maps shipped in irmogen/io/jointmaps, by name."""
    maps = {}
    folder = resources.files(__package__).joinpath("jointmaps")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            m = parse_map(entry.read_text(encoding="utf-8"), f"jointmaps/{entry.name}")
            maps[m.name] = m
    return maps


def detect_map(names, where: str = "skeleton", maps: dict[str, JointMap] | None = None) -> JointMap:
    """The map covering the most SMPL joints with `names`; IrmogenError when none covers all 22."""
    maps = builtin_maps() if maps is None else maps
    ranked = sorted(maps.values(), key=lambda m: (len(m.missing(names)), -len(m.source_names & set(names))))
    best = ranked[0]
    lacking = best.missing(names)
    if lacking:
        raise IrmogenError(
            f"{where}: unknown skeleton: closest joint map '{best.name}' lacks source joints for "
            f"SMPL {', '.join(lacking)}",
            code="unknown_skeleton",
            hint=f"known skeletons: {', '.join(sorted(maps))}; add a map to irmogen/io/jointmaps",
        )
    return best

"""Rig detection by shape, without Blender: the joints are found whatever the bones are called.

The test rigs of rigs.py (SMPL proportions; Mixamo proportions with extra finger/toe/head-top
bones under an FBX-like object transform; a UE5-like A-pose with five spine bones, a root, IK and
twist bones) get meaningless names, in shuffled order; the shape must give back the true bones.
Bad input (one bone, a four-legged armature, arms missing) is refused naming what is missing.
"""
from __future__ import annotations

import numpy as np
import pytest

from irmogen.skeleton import JOINT_NAMES
from rigs import MIXAMO, MIXAMO_OBJECT_MATRIX, REPO, UE5, Bone, addon_module, mixamo_layout, smpl_layout, ue5_layout

rigdetect = addon_module("rigdetect")
rigmap = addon_module("rigmap")
retarget = addon_module("retarget")


def anonymous(bones: list[Bone], seed: int = 0) -> tuple[list[Bone], dict[str, str]]:
    """The layout with bones called bone_000... in a shuffled order; -> (bones, old -> new name)."""
    order = np.random.default_rng(seed).permutation(len(bones))
    rename = {bones[k].name: f"bone_{n:03d}" for n, k in enumerate(order)}
    out = [Bone(rename[b.name], rename.get(b.parent) if b.parent else None, b.head, b.tail, b.roll)
           for b in (bones[k] for k in order)]
    return out, rename


def arrays(bones: list[Bone], object_matrix=None):
    """Names, parents and world heads/tails; with `object_matrix` the positions go through the
    object's transform and back (as Blender stores an FBX rig), to test world-space reading."""
    names = [b.name for b in bones]
    parents = [names.index(b.parent) if b.parent else -1 for b in bones]
    heads, tails = np.array([b.head for b in bones], float), np.array([b.tail for b in bones], float)
    if object_matrix is not None:
        inv = np.linalg.inv(object_matrix)
        local = [p @ inv[:3, :3].T + inv[:3, 3] for p in (heads, tails)]
        heads, tails = [p @ object_matrix[:3, :3].T + object_matrix[:3, 3] for p in local]
    return names, parents, heads, tails


CASES = {
    "smpl": (smpl_layout, {n: n for n in JOINT_NAMES}, None),
    "mixamo": (mixamo_layout, {j: "mixamorig:" + b for j, b in MIXAMO.items()}, MIXAMO_OBJECT_MATRIX),
    "ue5_apose": (ue5_layout, UE5, None),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_shape_finds_the_true_bones_whatever_the_names(kind):
    layout, truth, matrix = CASES[kind]
    bones, rename = anonymous(layout(), seed=len(kind))
    found = rigdetect.detect(*arrays(bones, matrix))
    expected = {j: rename[b] for j, b in truth.items()}
    # UE5 has five spine bones for SMPL's three: any lower spine bone may drive spine1.
    spine_choice = {"spine1": {rename["spine_01"], rename["spine_02"]}} if kind == "ue5_apose" else {}
    wrong = {j: (found.get(j), expected[j]) for j in JOINT_NAMES
             if found.get(j) != expected[j] and found.get(j) not in spine_choice.get(j, ())}
    assert not wrong, wrong


def test_names_first_then_shape_fills_the_rest():
    maps = rigmap.load_maps(REPO / "rigs")
    bones = mixamo_layout()
    found = rigmap.detect_rig(*arrays(bones), maps)
    assert found.name == "mixamo" and not found.missing            # names win when a map fits
    # A Mixamo rig whose toes were renamed: the names miss them, the shape adds them.
    for b in bones:
        b.name = b.name.replace("ToeBase", "Toe_Unknown")
        b.parent = b.parent and b.parent.replace("ToeBase", "Toe_Unknown")
    found = rigmap.detect_rig(*arrays(bones), maps)
    assert found.name == "mixamo" and not found.missing
    assert found.mapping["left_foot"] == "mixamorig:LeftToe_Unknown" and "by shape" in found.report
    # No map fits: the whole rig by shape, its root bone found above the hips.
    anon, rename = anonymous(ue5_layout())
    found = rigmap.detect_rig(*arrays(anon), maps)
    assert found.name == "shape" and found.root_bone == rename["root"] and not found.missing


def quadruped() -> list[Bone]:
    """A four-legged armature: a horizontal spine, a leg pair at each end, a neck and head."""
    p = lambda *v: np.array(v, float)  # noqa: E731
    bones = [Bone("pelvis", None, p(0, 0.5, 0.8), p(0, 0.2, 0.8)), Bone("back", "pelvis", p(0, 0.2, 0.8), p(0, -0.2, 0.8)),
             Bone("chest", "back", p(0, -0.2, 0.8), p(0, -0.5, 0.8)), Bone("neck", "chest", p(0, -0.5, 0.8), p(0, -0.7, 1.1)),
             Bone("head", "neck", p(0, -0.7, 1.1), p(0, -0.9, 1.2))]
    for end, y in (("pelvis", 0.5), ("chest", -0.5)):
        for side, x in (("l", 0.15), ("r", -0.15)):
            name = f"{end}_{side}"
            bones += [Bone(name + "_up", end, p(x, y, 0.8), p(x, y, 0.4)), Bone(name + "_low", name + "_up", p(x, y, 0.4), p(x, y, 0.05)),
                      Bone(name + "_foot", name + "_low", p(x, y, 0.05), p(x, y - 0.1, 0.0))]
    return bones


def test_bad_armatures_name_what_is_missing():
    with pytest.raises(retarget.RetargetError, match="1 bone"):
        rigdetect.detect(["Bone"], [-1], [[0, 0, 0]], [[0, 0, 1]])
    with pytest.raises(retarget.RetargetError, match="4 legs"):
        rigdetect.detect(*arrays(quadruped()))
    armless = [b for b in smpl_layout() if not any(k in b.name for k in ("collar", "shoulder", "elbow", "wrist"))]
    with pytest.raises(retarget.RetargetError, match="0 arm"):
        rigdetect.detect(*arrays(armless))
    maps = rigmap.load_maps(REPO / "rigs")
    with pytest.raises(retarget.RetargetError, match="no rig map fits its bone names, and by its shape not a humanoid"):
        rigmap.detect_rig(*arrays(quadruped()), maps)


def test_saved_map_round_trips(tmp_path):
    _, rename = anonymous(smpl_layout())
    mapping = {j: rename[j] for j in JOINT_NAMES}
    mapping["head"] = 'odd "name" \\ é'
    text = rigmap.map_toml("my_rig", mapping, "a test rig", root="bone_000")
    (tmp_path / "my_rig.toml").write_text(text, encoding="utf-8")
    maps = rigmap.load_maps(REPO / "rigs", tmp_path, tmp_path / "absent")
    saved = maps["my_rig"]
    assert {j: names[0] for j, names in saved.joints.items()} == mapping and saved.root == ("bone_000",)
    assert "mixamo" in maps                                          # the shipped maps stay
    with pytest.raises(retarget.RetargetError, match="rig map name"):
        rigmap.map_toml("../escape", mapping)

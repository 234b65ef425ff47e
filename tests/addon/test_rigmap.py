"""Rig maps: every shipped map parses, rigs are recognised by their bone names, failures name joints."""
from __future__ import annotations

import pytest

from rigs import MIXAMO, REPO, UE5, addon_module

rigmap = addon_module("rigmap")
retarget = addon_module("retarget")
RIGS_DIR = REPO / "rigs"
EXPECTED = {"smpl", "mixamo", "rigify", "rigify_deform", "ue5_mannequin", "auto_rig_pro",
            "auto_rig_pro_deform", "cmu_bvh", "cmu_daz", "vicon_asf"}


@pytest.fixture(scope="module")
def maps():
    return rigmap.load_maps(RIGS_DIR)


def test_all_maps_load(maps):
    assert EXPECTED <= set(maps)
    for m in maps.values():
        assert set(m.joints) <= set(retarget.JOINT_NAMES)
        assert all(j in m.joints for j in rigmap.CORE_JOINTS), m.name


@pytest.mark.parametrize("prefix", ["mixamorig:", "mixamorig1:", "mixamorig_", "mixamorig12_", ""])
def test_mixamo_any_prefix(maps, prefix):
    bones = [prefix + b for b in MIXAMO.values()] + [prefix + "HeadTop_End", prefix + "LeftHandThumb1"]
    result = rigmap.detect(bones, maps)
    assert result.name == "mixamo" and not result.missing
    assert result.mapping["left_elbow"] == prefix + "LeftForeArm"
    assert "22/22" in result.report


def test_ue5_and_root_bone(maps):
    bones = list(UE5.values()) + ["root", "spine_01", "spine_03", "upperarm_twist_01_l", "ik_foot_root"]
    result = rigmap.detect(bones, maps)
    assert result.name == "ue5_mannequin" and result.root_bone == "root"
    assert result.mapping["spine1"] == "spine_02" and result.mapping["spine3"] == "spine_05"
    assert "upperarm_twist_01_l" not in result.mapping.values()


def test_rigify_prefers_fk_controls_and_reports_switches(maps):
    fk = [n for names in maps["rigify"].joints.values() for n in names]
    deform = [n for names in maps["rigify_deform"].joints.values() for n in names]
    extra = ["root", "upper_arm_parent.L", "upper_arm_parent.R", "thigh_parent.L", "thigh_parent.R"]
    result = rigmap.detect(fk + deform + extra, maps)
    assert result.name == "rigify" and result.mapping["left_shoulder"] == "upper_arm_fk.L"
    assert result.properties["upper_arm_parent.L"] == {"IK_FK": 1.0}
    only_deform = rigmap.detect(deform, maps)
    assert only_deform.name == "rigify_deform" and not only_deform.missing


def test_bvh_skeletons(maps):
    daz = ["hip", "abdomen", "chest", "neck", "head", "leftEye", "rightEye", "rButtock", "lButtock"] + [
        s + n for s in "lr" for n in ("Collar", "Shldr", "ForeArm", "Hand", "Thigh", "Shin", "Foot")]
    result = rigmap.detect(daz, maps)
    assert result.name == "cmu_daz"
    assert set(result.missing) == {"spine2", "left_foot", "right_foot"}
    asf = ["root", "lhipjoint", "lfemur", "ltibia", "lfoot", "ltoes", "rhipjoint", "rfemur", "rtibia", "rfoot",
           "rtoes", "lowerback", "upperback", "thorax", "lowerneck", "upperneck", "head", "lclavicle",
           "lhumerus", "lradius", "lwrist", "lhand", "rclavicle", "rhumerus", "rradius", "rwrist", "rhand"]
    assert rigmap.detect(asf, maps).name == "vicon_asf"
    smpl = list(retarget.JOINT_NAMES)
    assert rigmap.detect(smpl, maps).name == "smpl"


def test_override_and_refusal(maps):
    bones = [("mixamorig:" + b) for b in MIXAMO.values()]
    with pytest.raises(retarget.RetargetError, match="finds 0/22"):
        rigmap.detect(bones, maps, override="ue5_mannequin")
    with pytest.raises(retarget.RetargetError, match="not found"):
        rigmap.detect(bones, maps, override="no_such_rig")
    # A rig with arms only: refused, and the message names what is missing.
    arms = [("mixamorig:" + MIXAMO[j]) for j in ("left_shoulder", "left_elbow", "right_shoulder", "right_elbow")]
    with pytest.raises(retarget.RetargetError, match="missing pelvis, left_hip") as err:
        rigmap.detect(arms, maps)
    assert err.value.hint


def test_bad_map_files_name_the_fault(tmp_path):
    (tmp_path / "a.toml").write_text('name = "a"\n[joints]\npelvis = "Hips"\nelbow = "X"\n')
    with pytest.raises(retarget.RetargetError, match="elbow"):
        rigmap.load_maps(tmp_path)
    (tmp_path / "a.toml").write_text('name = "a"\nprefix = "("\n[joints]\npelvis = "Hips"\n')
    with pytest.raises(retarget.RetargetError, match="prefix"):
        rigmap.load_maps(tmp_path)

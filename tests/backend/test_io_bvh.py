"""BVH reading (hierarchy, channel orders, position channels, End Sites, gz, units, up axis, the
prepended T-pose) and writing (SMPL-22, round trip), plus one-line errors on malformed files."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from irmogen.errors import IrmogenError
from irmogen.io import read_source, save_bvh
from irmogen.io.bvh import read_bvh, write_bvh
from irmogen.quaternions import qfrom_axis_angle, qmul, qnormalize, qrot
from irmogen.rotations import forward_kinematics
from irmogen.skeleton import INDEX, REST_OFFSETS, rest_positions
from irmogen.clip import Clip
from irmogen.resample import resampled_length


def rot(axis: str, deg: float) -> np.ndarray:
    """Plain rotation matrix, written out independently of irmogen.quaternions."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return {"X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def two_joint_bvh(order: str, angles, child_channels: str = "") -> str:
    chans = " ".join(f"{a}rotation" for a in order)
    child = child_channels or f"CHANNELS 3 {chans}"
    return f"""HIERARCHY
ROOT Hips
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition {chans}
  JOINT Chest
  {{
    OFFSET 0 10 0
    {child}
    End Site
    {{
      OFFSET 0 5 0
    }}
  }}
}}
MOTION
Frames: 2
Frame Time: 0.05
1 2 3 {angles[0]} {angles[1]} {angles[2]} 0 0 0
1 2 3 0 0 0 0 0 0
"""


@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YZX", "ZYX"])
def test_channel_order_is_intrinsic_in_listed_order(tmp_path, order):
    angles = (30.0, -50.0, 70.0)
    f = tmp_path / "a.bvh"
    f.write_text(two_joint_bvh(order, angles))
    m = read_bvh(f)
    assert m.names == ["Hips", "Chest", "Chest_end"]
    r = rot(order[0], angles[0]) @ rot(order[1], angles[1]) @ rot(order[2], angles[2])
    root = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(m.positions[0, 1], root + r @ [0, 10, 0], atol=1e-9)
    np.testing.assert_allclose(m.positions[0, 2], root + r @ [0, 15, 0], atol=1e-9)
    np.testing.assert_allclose(m.positions[1, 2], root + [0, 15, 0], atol=1e-9)
    assert m.fps == pytest.approx(20.0)


def test_position_channels_on_a_non_root_joint_replace_its_offset(tmp_path):
    f = tmp_path / "six.bvh"
    text = two_joint_bvh("ZXY", (0, 0, 0), "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
    text = text.split("Frame Time: 0.05")[0] + "Frame Time: 0.05\n0 0 0 0 0 0 0 7 0 90 0 0\n1 2 3 0 0 0 4 5 6 0 0 0\n"
    f.write_text(text)
    m = read_bvh(f)
    np.testing.assert_allclose(m.positions[0, 1], [0, 7, 0], atol=1e-9)
    np.testing.assert_allclose(m.positions[0, 2], [-5, 7, 0], atol=1e-9)  # Z 90 turns +Y into -X
    np.testing.assert_allclose(m.positions[1, 1], [1 + 4, 2 + 5, 3 + 6], atol=1e-9)
    np.testing.assert_allclose(m.positions[1, 2], [5, 12, 9], atol=1e-9)


def test_gz_reads_like_plain(tmp_path):
    text = two_joint_bvh("ZYX", (10, 20, 30))
    (tmp_path / "a.bvh").write_text(text)
    (tmp_path / "a.bvh.gz").write_bytes(gzip.compress(text.encode()))
    np.testing.assert_array_equal(read_bvh(tmp_path / "a.bvh").positions, read_bvh(tmp_path / "a.bvh.gz").positions)


def random_clip(n: int = 30, seed: int = 0, fps: float = 20.0) -> Clip:
    """An SMPL-22 motion with random (smooth) rotations, for writer tests."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(1, 22, 3))
    angle = np.linspace(0, 1, n)[:, None] * rng.uniform(-1.5, 1.5, size=(1, 22))
    angle[:, 0] *= 0.2  # keep the body upright: unit and up-axis detection assume a person
    rotations = qnormalize(qfrom_axis_angle(np.broadcast_to(axis, (n, 22, 3)), angle))
    root = np.stack([np.linspace(0, 1, n), 0.9 + 0.05 * np.sin(np.arange(n)), np.zeros(n)], -1)
    offsets = np.array(REST_OFFSETS)
    return Clip(fps, offsets, rotations, root, forward_kinematics(offsets, rotations, root))


def test_writer_round_trip_is_exact_to_a_tenth_of_a_millimetre(tmp_path):
    clip = random_clip()
    path = save_bvh(clip, tmp_path / "out.bvh")
    text = path.read_text()
    assert "ROOT pelvis" in text and "JOINT right_wrist" in text and "Zrotation Xrotation Yrotation" in text
    src = read_source(path, fps=None)
    assert src.skeleton == "smpl22" and src.meta["units"] == "m" and src.meta["up_axis"] == "+Y"
    err = np.abs(src.positions - clip.positions).max()
    print(f"\nsynthetic clip: BVH writer -> reader max error {err:.2e} m")
    assert err < 1e-4


def bvh_of_positions(tmp_path, name: str, scale: float = 1.0, up_z: bool = False, tpose: bool = False):
    """A clip written as BVH in other units / axes: the reader must recover the same metres, Y up."""
    clip = random_clip(n=40, seed=3)
    root, rotations = clip.root_translation.copy(), clip.rotations.copy()
    if up_z:  # Y-up -> Z-up is +90 degrees about X
        q = qfrom_axis_angle(np.array([1.0, 0.0, 0.0]), np.pi / 2)
        root, rotations[:, 0] = qrot(q, root), qmul(q, rotations[:, 0])
    if tpose:
        rotations = np.concatenate([np.tile([1.0, 0, 0, 0], (1, 22, 1)), rotations])
        root = np.concatenate([[[5.0, 0.9, 5.0]], root])
    path = write_bvh(tmp_path / name, clip.offsets * scale, rotations, root * scale, 20.0)
    return clip, path


@pytest.mark.parametrize("scale,unit", [(1.0, "m"), (100.0, "cm"), (1 / 0.0254, "in"), (1000.0, "mm")])
def test_units_are_detected_from_body_height(tmp_path, scale, unit):
    clip, path = bvh_of_positions(tmp_path, "u.bvh", scale=scale)
    src = read_source(path, fps=None)
    assert src.meta["units"] == unit
    np.testing.assert_allclose(src.positions, clip.positions, atol=1e-5)


def test_explicit_scale_overrides_detection(tmp_path):
    clip, path = bvh_of_positions(tmp_path, "u.bvh", scale=100.0)
    src = read_source(path, scale=0.02, fps=None)
    np.testing.assert_allclose(src.positions, clip.positions * 2.0, atol=1e-5)


def test_z_up_files_come_out_y_up(tmp_path):
    clip, path = bvh_of_positions(tmp_path, "z.bvh", up_z=True)
    src = read_source(path, fps=None)
    assert src.meta["up_axis"] == "+Z"
    np.testing.assert_allclose(src.positions, clip.positions, atol=1e-5)


def test_prepended_tpose_frame_is_dropped_and_only_then(tmp_path):
    clip, path = bvh_of_positions(tmp_path, "t.bvh", tpose=True)
    src = read_source(path, fps=None)
    assert src.meta.get("dropped_tpose_frame") == "1"
    np.testing.assert_allclose(src.positions, clip.positions, atol=1e-5)
    _, plain = bvh_of_positions(tmp_path, "p.bvh")
    assert "dropped_tpose_frame" not in read_source(plain, fps=None).meta


def test_resampled_to_20_fps_by_default(tmp_path):
    clip = random_clip(n=121, fps=60.0)
    path = save_bvh(clip, tmp_path / "60.bvh")
    src = read_source(path)
    assert src.fps == 20.0 and src.source_fps == pytest.approx(60.0)
    assert src.positions.shape == (resampled_length(121, 60.0, 20.0), 22, 3)


def test_mixamo_namespaced_names_are_recognised(tmp_path):
    clip = random_clip(n=5)
    text = save_bvh(clip, tmp_path / "x.bvh").read_text()
    names = {"pelvis": "Hips", "left_hip": "LeftUpLeg", "right_hip": "RightUpLeg", "spine1": "Spine",
             "left_knee": "LeftLeg", "right_knee": "RightLeg", "spine2": "Spine1", "left_ankle": "LeftFoot",
             "right_ankle": "RightFoot", "spine3": "Spine2", "left_foot": "LeftToeBase",
             "right_foot": "RightToeBase", "neck": "Neck", "left_collar": "LeftShoulder",
             "right_collar": "RightShoulder", "head": "Head", "left_shoulder": "LeftArm",
             "right_shoulder": "RightArm", "left_elbow": "LeftForeArm", "right_elbow": "RightForeArm",
             "left_wrist": "LeftHand", "right_wrist": "RightHand"}
    lines = []
    for line in text.splitlines():
        tok = line.split()
        if tok and tok[0] in ("ROOT", "JOINT"):
            line = line.replace(tok[1], "mixamorig:" + names[tok[1]])
        lines.append(line)
    (tmp_path / "m.bvh").write_text("\n".join(lines) + "\n")
    src = read_source(tmp_path / "m.bvh", fps=None)
    assert src.skeleton == "mixamo"
    np.testing.assert_allclose(src.positions, clip.positions, atol=1e-5)


# ---- bad input ----------------------------------------------------------------------------------

GOOD = two_joint_bvh("ZXY", (1, 2, 3))


@pytest.mark.parametrize("name,text,line,words", [
    ("empty.bvh", "", None, "empty"),
    ("nomotion.bvh", GOOD.split("MOTION")[0], None, "no MOTION"),
    ("truncated.bvh", GOOD.rsplit("1 2 3 0", 1)[0], None, "truncated"),
    ("count.bvh", GOOD.replace("1 2 3 0 0 0 0 0 0", "1 2 3 0 0 0 0 0"), 20, "expected 9"),
    ("nan.bvh", GOOD.replace("1 2 3 0 0 0 0 0 0", "1 2 3 0 nan 0 0 0 0"), 20, "NaN"),
    ("text.bvh", GOOD.replace("1 2 3 0 0 0 0 0 0", "1 2 3 0 zero 0 0 0 0"), 20, "non-numeric"),
    ("extra.bvh", GOOD + "1 2 3 0 0 0 0 0 0\n", 21, "frame count mismatch"),
    ("offset.bvh", GOOD.replace("OFFSET 0 10 0", "OFFSET 0 10"), 8, "OFFSET"),
])
def test_malformed_bvh_gives_one_line_error_naming_file_and_line(tmp_path, name, text, line, words):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(IrmogenError) as e:
        read_source(f)
    msg = str(e.value)
    assert "\n" not in msg and name in msg and words in msg, msg
    if line is not None:
        assert f"{name}:{line}:" in msg, msg


def test_unknown_skeleton_names_missing_smpl_joints(tmp_path):
    f = tmp_path / "odd.bvh"
    f.write_text(GOOD)
    with pytest.raises(IrmogenError) as e:
        read_source(f)
    msg = str(e.value)
    assert "odd.bvh" in msg and "unknown skeleton" in msg and "left_knee" in msg, msg


def test_failed_write_leaves_nothing_behind(tmp_path):
    clip = random_clip(n=4)
    bad = clip.with_(rotations=np.full_like(clip.rotations, np.nan))
    with pytest.raises(IrmogenError):
        save_bvh(bad, tmp_path / "bad.bvh")
    assert list(tmp_path.iterdir()) == []
    good = save_bvh(clip, tmp_path / "ok.bvh")
    assert [p.name for p in tmp_path.iterdir()] == ["ok.bvh"] and good.stat().st_size > 0


def test_rest_pose_bvh_lands_on_rest_positions(tmp_path):
    rotations = np.tile([1.0, 0, 0, 0], (3, 22, 1))
    path = write_bvh(tmp_path / "rest.bvh", REST_OFFSETS, rotations, np.zeros((3, 3)), 20.0)
    src = read_source(path, fps=None)
    np.testing.assert_allclose(src.positions[0], rest_positions(), atol=1e-6)
    assert src.positions[0, INDEX["head"], 1] > src.positions[0, INDEX["left_ankle"], 1]

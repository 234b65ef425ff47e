"""DeepMimic JSON clips: URDF offsets at scale 0.25, quaternion/angle layout, time resampling, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from irmogen.errors import IrmogenError
from irmogen.io import read_source
from irmogen.io.deepmimic import FRAME_WIDTH, JOINT_ORDER, read_deepmimic

# A URDF with the DeepMimic humanoid's joint names and simple offsets (file units; x 0.25 on load).
LINKS = {"chest": ("root", "0 1 0"), "neck": ("chest", "0 1 0"),
         "right_hip": ("root", "0 0 1"), "right_knee": ("right_hip", "0 -2 0"),
         "right_ankle": ("right_knee", "0 -2 0"), "right_shoulder": ("chest", "0 1 1"),
         "right_elbow": ("right_shoulder", "0 -1 0"), "right_wrist": ("right_elbow", "0 -1 0"),
         "left_hip": ("root", "0 0 -1"), "left_knee": ("left_hip", "0 -2 0"),
         "left_ankle": ("left_knee", "0 -2 0"), "left_shoulder": ("chest", "0 1 -1"),
         "left_elbow": ("left_shoulder", "0 -1 0"), "left_wrist": ("left_elbow", "0 -1 0")}


def urdf_text() -> str:
    out = ['<robot name="dm">', '<link name="root"/>']
    for name, (parent, xyz) in LINKS.items():
        shape = ""
        if name == "neck":
            shape = '<collision><origin xyz="0 0.8 0"/><geometry><sphere radius="0.4"/></geometry></collision>'
        if name.endswith("ankle"):
            shape = '<collision><origin xyz="0.2 -0.1 0"/><geometry><box size="0.8 0.2 0.4"/></geometry></collision>'
        out.append(f'<link name="{name}">{shape}</link>')
        axis = '<axis xyz="0 0 1"/>' if name.endswith(("knee", "elbow")) else ""
        out.append(f'<joint name="{name}" type="spherical"><parent link="{parent}"/><child link="{name}"/>'
                   f'<origin rpy="0 0 0" xyz="{xyz}"/>{axis}</joint>')
    return "\n".join(out + ["</robot>"]) + "\x00"  # the real file ends in a NUL byte too


def frame(duration: float, root=(0.0, 1.0, 0.0), right_knee: float = 0.0) -> list[float]:
    f = [duration, *root, 1.0, 0.0, 0.0, 0.0]
    for name, _, width in JOINT_ORDER:
        f += [right_knee if name == "right_knee" else 0.0] if width == 1 else [1.0, 0.0, 0.0, 0.0]
    assert len(f) == FRAME_WIDTH
    return f


def write(tmp_path, frames) -> object:
    (tmp_path / "humanoid.urdf").write_text(urdf_text())
    clip = tmp_path / "walker" / "clip.txt"
    clip.parent.mkdir(exist_ok=True)
    clip.write_text(json.dumps({"Loop": "wrap", "Frames": frames}))
    return clip


def test_resampling_keeps_bones_rigid_through_fast_rotation(tmp_path):
    """Frames are interpolated as rotations, so a half-turn between two frames keeps limb lengths."""
    turn = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])  # 90 degrees about Z per frame
    frames = [frame(0.2), frame(0.2), frame(0.0)]
    frames[1][4:8] = turn
    frames[2][4:8] = [0.0, 0.0, 0.0, 1.0]  # 180 degrees
    m = read_deepmimic(write(tmp_path, frames))
    i, j = m.names.index("root"), m.names.index("head")
    lengths = np.linalg.norm(m.positions[:, j] - m.positions[:, i], axis=-1)
    np.testing.assert_allclose(lengths, lengths[0], atol=1e-9)


def test_rest_pose_offsets_and_knee_angle(tmp_path):
    clip = write(tmp_path, [frame(0.5), frame(0.0, right_knee=np.pi / 2)])
    m = read_deepmimic(clip)  # humanoid.urdf found in the clip's parent folder
    p = {n: m.positions[0, i] for i, n in enumerate(m.names)}
    np.testing.assert_allclose(p["right_ankle"], [0, 1, 0.25] + np.array([0, -1.0, 0]), atol=1e-9)
    np.testing.assert_allclose(p["left_wrist"], [0, 1.5, -0.25] + np.array([0, -0.5, 0]), atol=1e-9)
    np.testing.assert_allclose(p["head"], [0, 1.5 + 0.2, 0], atol=1e-9)
    np.testing.assert_allclose(p["right_toe"], [0, 0, 0.25] + 0.25 * np.array([0.6, -0.2, 0]), atol=1e-9)
    last = {n: m.positions[-1, i] for i, n in enumerate(m.names)}
    # Knee 90 degrees about +Z swings the shin from -Y to +X.
    np.testing.assert_allclose(last["right_ankle"], last["right_knee"] + [0.5, 0, 0], atol=1e-9)


def test_uneven_durations_are_resampled_by_time(tmp_path):
    durations = [0.1, 0.3, 0.05, 0.15, 0.0]  # times 0, .1, .4, .45, .6; root x = 2 * time
    times = np.concatenate([[0], np.cumsum(durations[:-1])])
    clip = write(tmp_path, [frame(d, root=(2 * t, 1.0, 0.0)) for d, t in zip(durations, times)])
    m = read_deepmimic(clip)
    step = 1.0 / m.fps
    assert m.fps == 60.0  # a uniform grid that 20 fps decimates exactly
    assert len(m.positions) == 37  # 0 .. 0.6 s inclusive
    root_x = m.positions[:, m.names.index("root"), 0]
    np.testing.assert_allclose(root_x, 2 * step * np.arange(len(root_x)), atol=1e-9)


@pytest.mark.parametrize("frames,words", [
    ([frame(0.1)[:-1]], "Frames[0] has 43 values, expected 44"),
    ([frame(0.1), ["a"] * FRAME_WIDTH], "non-numeric"),
    ([], "no 'Frames'"),
])
def test_malformed_clips(tmp_path, frames, words):
    clip = write(tmp_path, frames)
    with pytest.raises(IrmogenError) as e:
        read_deepmimic(clip)
    assert "clip.txt" in str(e.value) and words in str(e.value)


def test_broken_json_names_the_line(tmp_path):
    clip = write(tmp_path, [frame(0.1)])
    clip.write_text('{"Loop": "wrap",\n "Frames": [[1, 2,\n')
    with pytest.raises(IrmogenError, match=r"clip.txt:3: not valid JSON"):
        read_deepmimic(clip)


@pytest.mark.realdata
def test_real_walk_is_a_walking_adult(data_dir):
    src = read_source(data_dir / "deepmimic/humanoid3d_walk.txt")
    p = src.positions
    assert src.skeleton == "deepmimic" and src.fps == 20.0
    assert np.all(p[:, 15, 1] > p[:, 0, 1] + 0.4)               # head well above the pelvis
    assert np.abs(p[:, [10, 11], 1].min()) < 0.05               # toes touch the floor (y = 0)
    travel = np.linalg.norm(p[-1, 0, [0, 2]] - p[0, 0, [0, 2]])
    assert travel > 0.5                                         # it walks somewhere

"""Timeline operations on real mocap: exact length, continuing a take, splicing a refined range or
body part. What an animator relies on: asked lengths hold to the frame, untouched frames and
joints are bit-identical, and nothing jumps at a seam."""
import numpy as np
import pytest

from irmogen import splice
from irmogen.clip import Clip
from irmogen.errors import IrmogenError
from irmogen.io import load_motion
from irmogen.rotations import forward_kinematics
from irmogen.canonical import heading_angles


@pytest.fixture(scope="module")
def punch(data_dir):
    """CMU 02_05 (punch/strike), about 7.7 s at 20 fps, saved and loaded as a take is (float32)."""
    return load_motion(data_dir / "cmu" / "bvh_cc" / "002_05.bvh.gz")


@pytest.fixture(scope="module")
def walk(data_dir):
    return load_motion(data_dir / "cmu" / "bvh_cc" / "002_01.bvh.gz")


@pytest.fixture(scope="module")
def jump(data_dir):
    return load_motion(data_dir / "deepmimic" / "humanoid3d_jump.txt")


def saved(clip: Clip, tmp_path, name="take.npz") -> Clip:
    clip.save(tmp_path / name)
    return Clip.load(tmp_path / name)


def fk_ok(clip: Clip) -> bool:
    return np.allclose(forward_kinematics(clip.offsets, clip.rotations, clip.root_translation), clip.positions,
                       atol=1e-4)


@pytest.mark.parametrize("frames", [2, 41, 60, 157, 300])
def test_fit_length_gives_exactly_the_frames_asked_and_keeps_the_ends(walk, frames):
    out = splice.fit_length(walk, frames)
    assert out.num_frames == frames and fk_ok(out)
    assert np.allclose(out.positions[0], walk.positions[0], atol=1e-6)
    assert np.allclose(out.positions[-1], walk.positions[-1], atol=1e-6)


def test_frames_for_rounds_seconds_to_the_frame():
    assert [splice.frames_for(s, 20.0) for s in (3, 3.02, 15, 60, 0.05)] == [60, 60, 300, 1200, 2]


def test_extend_keeps_the_take_and_continues_without_a_jump(walk, jump, tmp_path):
    take = saved(walk, tmp_path)
    out = saved(splice.extend(take, jump), tmp_path, "out.npz")
    n = take.num_frames
    assert out.num_frames == n + jump.num_frames - 1
    for name in ("rotations", "root_translation", "positions"):
        assert np.array_equal(getattr(out, name)[:n], getattr(take, name)), name
    assert fk_ok(out)
    jumps = splice.frame_jumps(out)
    inside = max(splice.frame_jumps(walk).max(), splice.frame_jumps(jump).max())
    assert jumps[n - 1] <= inside
    # Same ground position and facing across the seam (the jump starts where the walk ended).
    assert np.linalg.norm(out.root_translation[n, [0, 2]] - take.root_translation[n - 1, [0, 2]]) < 0.1
    h = heading_angles(out.positions[n - 1:n + 1])
    assert abs(h[1] - h[0]) < np.radians(10)


def test_cleaning_only_the_new_frames_keeps_the_take_and_eases_in(walk, jump, tmp_path):
    from irmogen.feet import cleanup_if

    take = saved(walk, tmp_path)
    joined = splice.extend(take, jump)
    n = take.num_frames
    out = splice.clean_after(joined, n, lambda c: cleanup_if(c, True))
    for name in ("rotations", "root_translation", "positions"):
        assert np.array_equal(getattr(out, name)[:n], getattr(take, name)), name
    assert fk_ok(out)
    steps = splice.frame_jumps(out)
    assert steps[n - 1:n + 10].max() <= splice.frame_jumps(take).max()   # the ease-in makes no jump
    cleaned_tail = cleanup_if(splice.window(joined, (n, joined.num_frames)), True)
    late = n + 20                                     # past the 0.5 s ease-in: the cleaned motion itself
    assert np.allclose(out.positions[late:], cleaned_tail.positions[late - n:], atol=1e-6)


def test_a_seam_blend_lasts_at_least_0_3_seconds(walk, jump):
    tail = splice.continue_from(walk, jump, blend_frames=1)
    placed = splice.place(jump, splice.heading_at(walk, walk.num_frames - 1),
                          walk.root_translation[-1, [0, 2]])
    differs = ~np.all(np.isclose(tail.rotations, placed.rotations[1:], atol=1e-6), axis=(1, 2))
    assert differs[:5].all()  # 6 frames (0.3 s at 20 fps) bend toward the previous end


@pytest.mark.parametrize("part", ["whole", "upper", "lower", "arms", "legs"])
def test_splice_leaves_every_other_frame_and_joint_bit_identical(punch, jump, tmp_path, part):
    take = saved(punch, tmp_path)
    a, b = 40, 90
    out = saved(splice.splice(take, jump, (a, b), part), tmp_path, "out.npz")
    joints, owns_root = splice.part_joints(part)
    others = [j for j in range(22) if j not in joints]
    for name in ("rotations", "root_translation", "positions"):
        assert np.array_equal(getattr(out, name)[:a], getattr(take, name)[:a]), name
        assert np.array_equal(getattr(out, name)[b:], getattr(take, name)[b:]), name
    assert np.array_equal(out.rotations[a:b, others], take.rotations[a:b, others])
    if not owns_root:
        assert np.array_equal(out.root_translation, take.root_translation)
    changed = ~np.all(np.isclose(out.rotations[a:b, list(joints)], take.rotations[a:b, list(joints)], atol=1e-4),
                      axis=-1)
    assert changed.any(), "the part's joints inside the range must take the new motion"
    assert fk_ok(out)
    still = [j for j in range(22) if j not in splice.moved_joints(joints, owns_root)]
    assert np.array_equal(out.positions[:, still], take.positions[:, still])   # nothing carries them


def test_splice_seams_blend_with_no_jump(punch, jump):
    a, b = 40, 90
    out = splice.splice(punch, jump, (a, b), "whole")
    jumps = splice.frame_jumps(out)
    inside = max(splice.frame_jumps(punch).max(), splice.frame_jumps(splice.fit_length(jump, b - a)).max())
    assert jumps[a - 1] <= inside and jumps[b - 1] <= inside * 1.5


def test_bad_ranges_and_parts_are_named(punch, jump):
    with pytest.raises(IrmogenError, match="frames: 90:40"):
        splice.splice(punch, jump, (90, 40))
    with pytest.raises(IrmogenError, match="inside the take"):
        splice.splice(punch, jump, (0, punch.num_frames + 1))
    with pytest.raises(IrmogenError, match="'head' is not a body part"):
        splice.splice(punch, jump, (0, 20), "head")
    with pytest.raises(IrmogenError, match="two whole numbers"):
        splice.parse_frames("10-20")
    assert splice.parse_frames("10:20") == (10, 20)


def test_seam_report_compares_seams_with_within_part_jumps(walk, jump):
    out = splice.extend(walk, jump)
    n = walk.num_frames
    r = splice.seam_report(out, [n], window=10)
    jumps = splice.frame_jumps(out)
    assert r["seam_max"] == pytest.approx(jumps[n - 1])
    assert r["transition_max"] == pytest.approx(jumps[n - 1:n + 10].max())
    assert r["within_max"] == pytest.approx(np.delete(jumps, range(n - 1, n + 10)).max())

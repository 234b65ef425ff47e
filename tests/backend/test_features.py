"""HumanML3D 263-d features: layout, HumanML3D facts, exact round trips, and real clips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from irmogen import features as F
from irmogen import skeleton as sk
from irmogen.canonical import canonicalize, facing_directions, heading_angles
from irmogen.errors import IrmogenError
from irmogen.quaternions import cont6d_to_matrix, qabout_y, qfrom_axis_angle, qfrom_matrix, qmul, qrot


# ---- synthetic motion: own FK on the rest skeleton ----------------------------------------------
def fk(local: np.ndarray, root: np.ndarray, offsets: np.ndarray = sk.REST_OFFSETS) -> np.ndarray:
    """(T, 22, 4) local wxyz, (T, 3) root -> (T, 22, 3) world positions."""
    world = np.empty_like(local)
    pos = np.empty(local.shape[:2] + (3,))
    world[:, 0], pos[:, 0] = local[:, 0], root
    for j in range(1, sk.NUM_JOINTS):
        p = sk.PARENTS[j]
        world[:, j] = qmul(world[:, p], local[:, j])
        pos[:, j] = pos[:, p] + qrot(world[:, p], np.broadcast_to(offsets[j], (len(local), 3)))
    return pos


def walking_motion(frames=200, fps=20.0, turn=0.7, start_yaw=0.7, seed=0, speed=1.0):
    """A body walking forward while turning `turn` rad/s, limbs swinging smoothly, placed anywhere."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    yaw = start_yaw + turn * t
    local = np.zeros((frames, sk.NUM_JOINTS, 4))
    local[..., 0] = 1.0
    for j in range(1, sk.NUM_JOINTS):
        torso = j in (1, 2, 3, 6, 9, 13, 14)   # keep the across line readable, as a real body's is
        amp = 0.15 if torso else 0.6
        angle = amp * np.sin(2 * np.pi * rng.uniform(0.4, 1.5) * t + rng.uniform(0, 6))
        local[:, j] = qfrom_axis_angle(rng.normal(size=3), angle)
    local[:, 0] = qmul(qabout_y(yaw), qfrom_axis_angle(np.array([1.0, 0, 0]), 0.1 * np.sin(3 * t)))
    step = speed / fps * np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], -1)
    root = np.cumsum(step, axis=0) + np.array([2.5, 0.0, -1.5])
    root[:, 1] = 0.95 + 0.03 * np.sin(4 * np.pi * t)
    return fk(local, root)


@pytest.fixture(scope="module")
def motion() -> np.ndarray:
    return walking_motion()


# ---- layout ------------------------------------------------------------------------------------
def test_named_slices_tile_the_263_dims_in_humanml3d_order():
    order = [F.ROOT_ROT_VEL, F.ROOT_LIN_VEL, F.ROOT_Y, F.RIC, F.ROT6D, F.VEL, F.CONTACTS]
    sizes = [s.stop - s.start for s in order]
    assert sizes == [1, 2, 1, 63, 126, 66, 4]
    assert [s.start for s in order[1:]] == [s.stop for s in order[:-1]]
    assert order[0].start == 0 and order[-1].stop == F.FEATURE_DIM == 263


def test_features_shape_contacts_and_root_height(motion):
    f = F.positions_to_features(motion)
    c = canonicalize(motion)
    assert f.shape == (len(motion) - 1, 263) and f.dtype == np.float64
    assert set(np.unique(f[:, F.CONTACTS])) <= {0.0, 1.0}
    np.testing.assert_allclose(f[:, F.ROOT_Y.start], c[:-1, 0, 1], atol=1e-12)
    # RIC keeps absolute heights; the root's own x, z are zero in its own frame.
    np.testing.assert_allclose(f[:, F.RIC].reshape(-1, 21, 3)[..., 1], c[:-1, 1:, 1], atol=1e-12)


def test_features_do_not_depend_on_placement(motion):
    moved = qrot(qabout_y(2.2), motion) + np.array([-4.0, 0.3, 7.0])
    np.testing.assert_allclose(F.positions_to_features(moved), F.positions_to_features(motion), atol=1e-9)


def test_contacts_follow_the_named_feet():
    """Left foot planted, right foot sliding: channels are left ankle, left toe, right ankle, right toe."""
    p = np.repeat(sk.rest_positions()[None], 30, axis=0)
    p[:, [5, 8, 11], 2] += 0.05 * np.arange(30)[:, None]   # right shin and foot slide 5 cm per frame
    f = F.positions_to_features(p)
    assert np.all(f[:, F.CONTACTS] == [1.0, 1.0, 0.0, 0.0])


def test_standing_t_pose_matches_humanml3d_facts():
    """Still T-pose facing +Z: no turn, no velocity, legs at the IK rest, arms 90 deg from hanging."""
    p = np.repeat(sk.rest_positions()[None], 10, axis=0)
    f = F.positions_to_features(p)
    np.testing.assert_allclose(f[:, :3], 0.0, atol=1e-12)
    np.testing.assert_allclose(f[:, F.VEL], 0.0, atol=1e-12)
    rot = cont6d_to_matrix(f[0, F.ROT6D].reshape(21, 6))
    left_upper_arm = rot[13 - 1] @ rot[16 - 1]  # world rotation of the collar -> shoulder bone
    # The raw-offset arm hangs down (0, -1, 0); in a T-pose it points along the collar->shoulder line.
    bone = sk.rest_positions()[16] - sk.rest_positions()[13]
    hanging = np.array([0.0, -1.0, 0.0])
    np.testing.assert_allclose(left_upper_arm @ hanging, bone / np.linalg.norm(bone), atol=1e-9)


def test_rot6d_is_humanml3d_naive_ik(motion):
    """FK on the raw-offset skeleton, every chain starting at the heading, lands on the joints."""
    c = canonicalize(motion)
    heading = F.heading_quaternions(c)[:-1]
    f = F.positions_to_features(motion)
    local = qfrom_matrix(cont6d_to_matrix(f[:, F.ROT6D].reshape(-1, 21, 6)))
    for chain in sk.CHAINS:
        world = heading
        for parent, child in zip(chain[:-1], chain[1:]):
            world = qmul(world, local[:, child - 1])
            length = np.linalg.norm(c[:-1, child] - c[:-1, parent], axis=-1, keepdims=True)
            rest = np.broadcast_to(F.RAW_OFFSETS[child], (len(world), 3))
            got = c[:-1, parent] + length * qrot(world, rest)
            np.testing.assert_allclose(got, c[:-1, child], atol=1e-9)


def test_root_turn_is_half_the_heading_step(motion):
    c = canonicalize(motion)
    h = F.heading_quaternions(c)
    angle = np.unwrap(2 * np.arctan2(h[:, 2], h[:, 0]))
    f = F.positions_to_features(motion)
    np.testing.assert_allclose(f[:, 0], 0.5 * np.diff(angle), atol=1e-12)


# ---- round trips -------------------------------------------------------------------------------
def test_positions_features_positions_round_trip(motion):
    f = F.positions_to_features(motion)
    back = F.features_to_positions(f)
    c = canonicalize(motion)
    assert back.shape == motion.shape
    # Recovery starts at heading 0, HumanML3D's frame-0 heading is the smoothed one: the result is
    # the canonical motion turned by that heading, and canonicalising it gives the input back.
    h0 = F.heading_quaternions(c)[0]
    np.testing.assert_allclose(back, qrot(h0, c), atol=1e-5)
    np.testing.assert_allclose(canonicalize(back), c, atol=1e-5)


def test_features_positions_features_round_trip(motion):
    f = F.positions_to_features(motion)
    again = F.positions_to_features(F.features_to_positions(f))
    err = np.abs(again - f).max()
    print(f"\nsynthetic features round trip max error {err:.2e}")
    assert err < 1e-4


def test_incomplete_recovery_is_the_first_frames(motion):
    f = F.positions_to_features(motion)
    full = F.features_to_positions(f, complete=True)
    part = F.features_to_positions(f, complete=False)
    assert part.shape == (len(f), 22, 3)
    np.testing.assert_allclose(part, full[:-1], atol=1e-12)


def test_turning_through_180_degrees_keeps_the_turn_direction():
    """Two full turns: HumanML3D's w >= 0 heading would flip the turn's sign at each 180-degree pass."""
    p = walking_motion(frames=300, turn=1.0, start_yaw=0.0, speed=0.5, seed=3)
    assert heading_angles(p)[-1] - heading_angles(p)[0] > 4 * np.pi
    f = F.positions_to_features(p)
    assert np.all(np.sign(f[:, 0]) == np.sign(f[0, 0]))
    back = F.features_to_positions(f)
    # The recovered body faces where the input did, up to the constant frame-0 offset, all the way round.
    drift = heading_angles(back) - heading_angles(canonicalize(p))
    np.testing.assert_allclose(drift - drift[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(canonicalize(back), canonicalize(p), atol=1e-5)


def test_batched_recovery_matches_one_by_one(motion):
    f1 = F.positions_to_features(motion)
    f2 = F.positions_to_features(walking_motion(seed=5))
    both = F.features_to_positions(np.stack([f1, f2]), complete=False)
    np.testing.assert_allclose(both[0], F.features_to_positions(f1, complete=False), atol=1e-12)
    np.testing.assert_allclose(both[1], F.features_to_positions(f2, complete=False), atol=1e-12)


def test_float32_in_float32_out(motion):
    p32 = motion.astype(np.float32)
    f32 = F.positions_to_features(p32)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, F.positions_to_features(p32.astype(np.float64)), atol=1e-6)
    back = F.features_to_positions(f32)
    assert back.dtype == np.float32 and back.shape == motion.shape


def test_bad_inputs_name_the_problem():
    with pytest.raises(IrmogenError, match="shape"):
        F.positions_to_features(np.zeros((10, 21, 3)))
    with pytest.raises(IrmogenError, match="frame"):
        F.positions_to_features(np.zeros((1, 22, 3)))
    with pytest.raises(IrmogenError, match="263"):
        F.features_to_positions(np.zeros((10, 251)))


def test_facing_directions_are_unit_and_horizontal(motion):
    d = facing_directions(motion, sigma=F.HEADING_SIGMA)
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(d[:, 1], 0.0, atol=1e-12)


# ---- real clips --------------------------------------------------------------------------------
def _real_files(data_dir: Path):
    """(motion file, ASF or None) for every clip the importer reads (data README)."""
    cmu = data_dir / "cmu"
    for pattern in ("bvh_cc/*.bvh.gz", "bvh_daz/*.bvh.gz"):
        yield from ((p, None) for p in sorted(cmu.glob(pattern)))
    # The subject 05/88/90 skeletons are missing; 08.asf is the stand-in the README names.
    for amc in sorted((cmu / "amc").glob("*.amc")):
        own = cmu / "amc" / f"{amc.name.split('_')[0]}.asf"
        yield amc, own if own.is_file() else cmu / "amc" / "08.asf"
    for amc in sorted((data_dir / "hdm05").glob("**/*.amc")):
        yield amc, next(amc.parent.glob("*.asf"))
    yield from ((p, None) for p in sorted((data_dir / "deepmimic").glob("**/*.txt")))


@pytest.mark.realdata
@pytest.mark.slow
def test_real_clips_round_trip(data_dir):
    io = pytest.importorskip("irmogen.io")
    load_motion = getattr(io, "load_motion", None)
    if load_motion is None:
        pytest.skip("irmogen.io.load_motion does not exist yet")
    from irmogen.resample import resample_positions

    worst, worst_file, worst_pos, count = 0.0, None, 0.0, 0
    for path, asf in _real_files(data_dir):
        clip = load_motion(path, asf=asf) if asf is not None else load_motion(path)
        p = resample_positions(clip.positions, clip.fps, 20.0)
        if len(p) < 2:
            continue
        f = F.positions_to_features(p)
        back = F.features_to_positions(f)
        err = float(np.abs(F.positions_to_features(back) - f).max())
        worst_pos = max(worst_pos, float(np.abs(canonicalize(back) - canonicalize(p)).max()))
        count += 1
        if err > worst:
            worst, worst_file = err, path
    print(f"\nreal clips: {count}, features -> positions -> features max error {worst:.2e} ({worst_file}),"
          f" positions -> features -> positions max error {worst_pos:.2e} m")
    assert count > 0
    assert worst < 1e-4, f"{worst_file}: round-trip error {worst:.2e}"
    assert worst_pos < 1e-5

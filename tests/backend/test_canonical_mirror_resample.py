"""Canonical placement, left/right mirroring and frame-rate changes of positions, clips and features."""
from __future__ import annotations

import numpy as np
import pytest

from irmogen import features as F
from irmogen import skeleton as sk
from irmogen.canonical import canonicalize, facing_directions, heading_angles
from irmogen.clip import Clip
from irmogen.errors import IrmogenError
from irmogen.mirror import mirror_clip, mirror_features, mirror_positions, mirror_rotations
from irmogen.quaternions import qabout_y, qfrom_axis_angle, qmul, qrot
from irmogen.resample import resample_clip, resample_positions, resampled_length
from irmogen.rotations import forward_kinematics


def swinging_clip(frames=300, fps=60.0, turn=1.6, seed=0) -> Clip:
    """Rest skeleton, every joint swinging smoothly, the root walking and turning more than 360 deg."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    yaw = -2.0 + turn * t
    rot = np.zeros((frames, sk.NUM_JOINTS, 4))
    for j in range(1, sk.NUM_JOINTS):
        amp = 0.15 if j in (1, 2, 3, 6, 9, 13, 14) else 0.6
        angle = amp * np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * t + rng.uniform(0, 6))
        rot[:, j] = qfrom_axis_angle(rng.normal(size=3), angle)
    rot[:, 0] = qmul(qabout_y(yaw), qfrom_axis_angle(np.array([0.0, 0, 1]), 0.1 * np.sin(2 * t)))
    root = np.cumsum(0.02 * np.stack([np.sin(yaw), np.zeros_like(t), np.cos(yaw)], -1), axis=0)
    root += np.array([1.0, 0.95, 2.0])
    return Clip(fps=fps, offsets=sk.REST_OFFSETS.copy(), rotations=rot, root_translation=root,
                positions=forward_kinematics(sk.REST_OFFSETS, rot, root))


@pytest.fixture(scope="module")
def clip() -> Clip:
    return swinging_clip()


# ---- canonical ---------------------------------------------------------------------------------
def test_canonicalize_puts_the_body_on_the_floor_at_the_origin_facing_z(clip):
    before = clip.positions.copy()
    c = canonicalize(clip.positions)
    np.testing.assert_array_equal(clip.positions, before)          # input untouched
    assert abs(c[..., 1].min()) < 1e-12
    np.testing.assert_allclose(c[0, 0, [0, 2]], 0.0, atol=1e-12)
    np.testing.assert_allclose(facing_directions(c[:1])[0], [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(canonicalize(c), c, atol=1e-12)      # idempotent
    np.testing.assert_allclose(sk.bone_lengths(c), sk.bone_lengths(clip.positions), atol=1e-12)


def test_canonicalize_turns_a_body_facing_minus_x_to_face_plus_z():
    rest = sk.rest_positions()
    facing_minus_x = qrot(qabout_y(-np.pi / 2), rest)[None] + np.array([3.0, 0.5, -1.0])
    np.testing.assert_allclose(facing_directions(facing_minus_x)[0], [-1.0, 0.0, 0.0], atol=1e-12)
    c = canonicalize(facing_minus_x)
    np.testing.assert_allclose(facing_directions(c)[0], [0.0, 0.0, 1.0], atol=1e-12)
    expected = rest - rest[0] * np.array([1.0, 0.0, 1.0])
    expected[:, 1] -= expected[:, 1].min()
    np.testing.assert_allclose(c[0], expected, atol=1e-12)
    assert c[0, sk.INDEX["left_hip"], 0] > 0 > c[0, sk.INDEX["right_hip"], 0]  # left side is +X


def test_heading_angles_unwrap_over_full_turns(clip):
    h = heading_angles(clip.positions)
    assert h[-1] - h[0] > 2 * np.pi
    assert np.abs(np.diff(h)).max() < 0.2


# ---- mirror ------------------------------------------------------------------------------------
def test_mirrored_positions_swap_sides_and_mirror_twice_is_identity(clip):
    m = mirror_positions(clip.positions)
    li, ri = sk.INDEX["left_wrist"], sk.INDEX["right_wrist"]
    np.testing.assert_allclose(m[:, li], clip.positions[:, ri] * [-1, 1, 1])
    np.testing.assert_allclose(mirror_positions(m), clip.positions)
    np.testing.assert_allclose(mirror_positions(sk.rest_positions()), sk.rest_positions(), atol=1e-12)


def test_mirror_features_commutes_with_feature_extraction(clip):
    p = clip.positions[::3]
    f = F.positions_to_features(p)
    direct = F.positions_to_features(mirror_positions(p))
    err = np.abs(mirror_features(f) - direct).max()
    print(f"\nmirror(features(p)) vs features(mirror(p)) max difference {err:.2e}")
    assert err < 1e-5
    np.testing.assert_allclose(mirror_features(mirror_features(f)), f, atol=1e-12)
    c = F.CONTACTS.start
    np.testing.assert_array_equal(mirror_features(f)[:, c:c + 2], f[:, c + 2:c + 4])


def test_mirror_clip_is_the_mirror_of_its_positions(clip):
    m = mirror_clip(clip)
    np.testing.assert_allclose(m.positions, mirror_positions(clip.positions), atol=1e-9)
    np.testing.assert_allclose(m.offsets, sk.REST_OFFSETS, atol=1e-12)   # the rest skeleton is symmetric
    np.testing.assert_allclose(mirror_rotations(m.rotations), clip.rotations, atol=1e-12)
    twice = mirror_clip(m)
    np.testing.assert_allclose(twice.positions, clip.positions, atol=1e-9)
    assert m.fps == clip.fps and m.num_frames == clip.num_frames


def test_mirror_clip_mirrors_stored_features(clip):
    f = F.positions_to_features(clip.positions)
    m = mirror_clip(clip.with_(features=f))
    np.testing.assert_allclose(m.features, F.positions_to_features(m.positions), atol=1e-5)


# ---- resample ----------------------------------------------------------------------------------
def sine_positions(frames: int, fps: float, hz: float = 0.8) -> np.ndarray:
    t = np.arange(frames) / fps
    p = np.zeros((frames, 22, 3))
    p[..., 0] = np.sin(2 * np.pi * hz * t)[:, None]
    p[..., 2] = 0.5 * t[:, None]
    return p


@pytest.mark.parametrize("src,dst", [(120.0, 20.0), (60.0, 20.0), (20.0, 60.0), (29.97, 20.0), (50.0, 20.0)])
def test_resampling_keeps_a_smooth_trajectory(src, dst):
    p = sine_positions(int(6 * src), src)
    out = resample_positions(p, src, dst)
    assert len(out) == round(len(p) * dst / src)
    t = np.arange(len(out)) / dst
    inside = t <= (len(p) - 1) / src
    expected_x = np.broadcast_to(np.sin(2 * np.pi * 0.8 * t[inside])[:, None], (inside.sum(), 22))
    np.testing.assert_allclose(out[inside, :, 0], expected_x, atol=0.01)
    expected_z = np.broadcast_to(0.5 * t[inside, None], expected_x.shape)
    np.testing.assert_allclose(out[inside, :, 2], expected_z, atol=1e-9)


def test_upsampling_keeps_the_original_frames():
    p = sine_positions(40, 20.0)
    out = resample_positions(p, 20.0, 60.0)
    np.testing.assert_allclose(out[::3][: len(p)], p, atol=1e-12)


def test_downsampling_does_not_alias_frame_jitter():
    """1 cm jitter alternating every 120 fps frame would, decimated by 6, become a constant 1 cm offset."""
    p = sine_positions(720, 120.0)
    jitter = 0.01 * (-1.0) ** np.arange(720)
    noisy = p.copy()
    noisy[..., 1] += jitter[:, None]
    out = resample_positions(noisy, 120.0, 20.0)
    assert np.abs(out[1:-1, :, 1]).max() < 1e-3   # the end samples are kept as they are (module docstring)
    assert np.abs(resample_positions(noisy, 120.0, 40.0)[1:-1, :, 1]).max() < 1e-3


def test_resample_clip_recomputes_positions_and_keeps_the_motion(clip):
    out = resample_clip(clip, 20.0)
    assert out.fps == 20.0 and out.num_frames == round(clip.num_frames / 3)
    fk = forward_kinematics(out.offsets, out.rotations, out.root_translation)
    np.testing.assert_allclose(out.positions, fk)
    out.validate()
    reference = resample_positions(clip.positions, clip.fps, 20.0)   # same filter, applied to positions
    assert np.abs(out.positions - reference).max() < 0.01


def test_resample_clip_ignores_quaternion_sign_flips(clip):
    flipped = clip.rotations.copy()
    flipped[1::2] *= -1.0
    a = resample_clip(clip, 30.0)
    b = resample_clip(clip.with_(rotations=flipped), 30.0)
    np.testing.assert_allclose(b.positions, a.positions, atol=1e-9)


def test_resample_rejects_bad_frame_rates():
    with pytest.raises(IrmogenError, match="dst_fps"):
        resample_positions(np.zeros((10, 22, 3)), 120.0, 0.0)
    assert resampled_length(1, 120.0, 20.0) == 1

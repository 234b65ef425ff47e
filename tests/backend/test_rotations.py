"""Rotation solver: FK of the solved rotations must land on the input joint positions."""
import numpy as np
import pytest

from irmogen import skeleton as sk
from irmogen.quaternions import qabout_y, qfrom_axis_angle, qmul
from irmogen.rotations import clip_from_positions, fk_errors, forward_kinematics, solve


def synthetic_motion(T=240, seed=0, scale=1.07):
    """A body swinging every joint and turning more than a full circle while travelling."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 6, T)
    axes = rng.normal(size=(22, 3))
    angles = rng.uniform(0.2, 1.2, 22)[None] * np.sin(rng.uniform(0.3, 1.5, 22)[None] * 2 * np.pi * t[:, None])
    q = qfrom_axis_angle(np.broadcast_to(axes, (T, 22, 3)), angles)
    q[:, 0] = qmul(qabout_y(t * 1.3), q[:, 0])
    root = np.stack([np.sin(t), 0.95 + 0.05 * np.sin(3 * t), 0.6 * t], -1)
    return forward_kinematics(sk.REST_OFFSETS * scale, q, root)


def test_fk_of_rest_rotations_is_the_rest_skeleton():
    T = 3
    q = np.zeros((T, 22, 4)); q[..., 0] = 1
    pos = forward_kinematics(sk.REST_OFFSETS, q, np.zeros((T, 3)))
    assert np.allclose(pos[1], sk.rest_positions())


def test_rest_pose_solves_to_identity():
    pos = np.repeat(sk.rest_positions()[None], 4, axis=0) + [0, 0.93, 0]
    offsets, rot, root = solve(pos)
    assert np.allclose(np.abs(rot[..., 0]), 1.0, atol=1e-9), "a T-pose must give identity rotations"
    assert np.allclose(offsets, sk.REST_OFFSETS, atol=1e-9)
    assert np.allclose(root, pos[:, 0])


def test_solver_reproduces_positions_exactly_on_a_rigid_skeleton():
    pos = synthetic_motion()
    offsets, rot, root = solve(pos)
    e = fk_errors(pos, offsets, rot, root)
    assert e["max_joint_m"] < 1e-9 and e["max_bone_deg"] < 1e-4, e
    assert np.allclose(np.linalg.norm(rot, axis=-1), 1.0)


def test_quaternions_are_sign_continuous_over_time():
    _, rot, _ = solve(synthetic_motion(T=400, seed=3))
    assert np.all(np.sum(rot[1:] * rot[:-1], axis=-1) > 0)


def test_straight_limbs_and_arms_overhead_stay_finite():
    rest = sk.rest_positions() + [0, 0.93, 0]
    pos = np.repeat(rest[None], 10, axis=0)
    # Raise both arms straight up (parallel to the chest's up axis: the degenerate case).
    for shoulder, elbow, wrist in ((16, 18, 20), (17, 19, 21)):
        pos[5:, elbow] = pos[5:, shoulder] + [0, 0.257, 0]
        pos[5:, wrist] = pos[5:, elbow] + [0, 0.252, 0]
    offsets, rot, root = solve(pos)
    assert np.all(np.isfinite(rot))
    assert fk_errors(pos, offsets, rot, root)["max_joint_m"] < 1e-6


def test_clip_from_positions_satisfies_the_clip_contract(tmp_path):
    pos = synthetic_motion(T=60)
    clip = clip_from_positions(pos, 20.0, text="a test")
    assert np.allclose(forward_kinematics(clip.offsets, clip.rotations, clip.root_translation), clip.positions)
    loaded = type(clip).load(clip.save(tmp_path / "c.npz"))
    assert loaded.text == "a test" and loaded.rotations.shape == (60, 22, 4)
    assert np.allclose(loaded.positions, clip.positions, atol=1e-5)


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        solve(np.zeros((10, 21, 3)))

"""Rotation primitives: the one place the backend does rotation math must be right."""
import numpy as np
import pytest

from irmogen import quaternions as Q

ORDERS = ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]


def random_q(rng, n):
    return Q.qnormalize(rng.normal(size=(n, 4)))


def test_matrix_round_trip_and_rotation_agree():
    rng = np.random.default_rng(1)
    q = random_q(rng, 500)
    v = rng.normal(size=(500, 3))
    m = Q.qto_matrix(q)
    assert np.allclose(np.einsum("nij,nj->ni", m, v), Q.qrot(q, v), atol=1e-12)
    back = Q.qfrom_matrix(m)
    assert np.allclose(np.abs(np.sum(back * q, -1)), 1.0, atol=1e-12)  # same rotation up to sign


def test_product_composes_rotations():
    rng = np.random.default_rng(2)
    a, b = random_q(rng, 100), random_q(rng, 100)
    v = rng.normal(size=(100, 3))
    assert np.allclose(Q.qrot(Q.qmul(a, b), v), Q.qrot(a, Q.qrot(b, v)), atol=1e-12)
    assert np.allclose(Q.qrot(Q.qmul(a, Q.qconj(a)), v), v, atol=1e-12)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_round_trip_every_channel_order(order):
    rng = np.random.default_rng(3)
    angles = rng.uniform(-170, 170, size=(300, 3))
    angles[:, 1] = rng.uniform(-85, 85, size=300)  # keep away from gimbal lock
    q = Q.qfrom_euler(angles, order)
    assert np.allclose(Q.qto_euler(q, order), angles, atol=1e-7)


def test_euler_is_intrinsic_in_listed_order():
    # ZX: first about Z by 90, then about the NEW x by 90: the x axis ends on +Y, y on +Z.
    q = Q.qfrom_euler(np.array([90.0, 90.0, 0.0]), "ZXY")
    assert np.allclose(Q.qrot(q, [1, 0, 0]), [0, 1, 0], atol=1e-12)
    assert np.allclose(Q.qrot(q, [0, 1, 0]), [0, 0, 1], atol=1e-12)


def test_between_handles_parallel_and_opposite():
    a = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.3, -0.2, 0.9]])
    for b in (a, -a):
        q = Q.qbetween(a, b)
        assert np.allclose(Q.qrot(q, a), b / np.linalg.norm(b, axis=-1, keepdims=True) * np.linalg.norm(a, axis=-1, keepdims=True), atol=1e-9)


def test_continuity_removes_sign_flips():
    rng = np.random.default_rng(4)
    q = Q.qslerp(random_q(rng, 1), random_q(rng, 1), np.linspace(0, 1, 50))
    flipped = q * np.where(rng.random(50) < 0.5, -1.0, 1.0)[:, None]
    fixed = Q.qcontinuous(flipped)
    assert np.all(np.sum(fixed[1:] * fixed[:-1], -1) > 0)
    assert np.allclose(np.abs(fixed), np.abs(q))


def test_cont6d_round_trip():
    rng = np.random.default_rng(5)
    m = Q.qto_matrix(random_q(rng, 200))
    assert np.allclose(Q.cont6d_to_matrix(Q.matrix_to_cont6d(m)), m, atol=1e-12)

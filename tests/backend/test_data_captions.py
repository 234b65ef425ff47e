"""Captions and measured motion facts on synthetic SMPL-22 trajectories (20 fps, Y up, facing +Z)."""
from __future__ import annotations

import numpy as np
import pytest

from irmogen.data.captions import conjugate, make_captions, mirror_text
from irmogen.data.describe import describe, heading_degrees
from irmogen.data.sources import cmu_phrasings
from irmogen.mirror import mirror_positions
from irmogen.quaternions import qabout_y, qrot
from irmogen.skeleton import rest_positions

FPS = 20.0


def standing(frames: int) -> np.ndarray:
    """A body standing still with arms down-ish: the T-pose with the feet on the floor."""
    rest = rest_positions()
    rest = rest - [0.0, rest[:, 1].min(), 0.0]
    return np.repeat(rest[None], frames, axis=0)


def walking(frames: int, velocity_xz, yaw_rate_deg: float = 0.0) -> np.ndarray:
    """Rigid body translated along `velocity_xz` (m/s, world) and turned at `yaw_rate_deg` deg/s,
    with alternating foot lifts so it does not look like a jump."""
    p = standing(frames)
    t = np.arange(frames) / FPS
    yaw = np.radians(yaw_rate_deg * t)
    root = p[0, 0] * [1, 0, 1]
    p = qrot(qabout_y(yaw)[:, None], p - root) + root
    p[:, :, 0] += velocity_xz[0] * t[:, None]
    p[:, :, 2] += velocity_xz[1] * t[:, None]
    lift = 0.05 * np.clip(np.sin(2 * np.pi * t), 0, None)
    p[:, [7, 10], 1] += lift[:, None]
    p[:, [8, 11], 1] += 0.05 * np.clip(-np.sin(2 * np.pi * t), 0, None)[:, None]
    return p


def jumping(frames: int, hops: int) -> np.ndarray:
    """Whole body thrown 0.3 m up `hops` times (parabolic flights), standing in between."""
    p = standing(frames)
    seg = frames // hops
    h = np.zeros(frames)
    for k in range(hops):
        s = k * seg + seg // 3
        u = np.linspace(0, 1, seg // 3)
        h[s:s + len(u)] = 0.3 * 4 * u * (1 - u)
    return p + h[:, None, None] * [0, 1, 0]


def test_walking_forward_is_measured_forward_with_distance():
    f = describe(walking(100, (0.0, 1.2)), FPS)  # 5 s at 1.2 m/s along +Z, the facing direction
    assert f.direction == "forward" and f.body_direction == "forward"
    assert 5.0 < f.distance < 6.5
    assert f.pace == "normal" and abs(f.turn_degrees) < 5 and f.jumps == 0


def test_sideways_and_backward_travel():
    assert describe(walking(80, (1.0, 0.0)), FPS).direction == "left"     # +X is the body's left
    assert describe(walking(80, (-1.0, 0.0)), FPS).direction == "right"
    back = describe(walking(80, (0.0, -0.5)), FPS)
    assert back.direction == "backward" and back.pace == "slow"


def test_turning_left_is_positive_and_mirrors_to_right():
    p = walking(60, (0.0, 0.0), yaw_rate_deg=60.0)  # turn toward +X (left) by 180 degrees
    assert heading_degrees(p)[-1] == pytest.approx(177.0, abs=5)
    left = describe(p, FPS)
    right = describe(mirror_positions(p), FPS)
    assert left.turn_degrees > 150 and right.turn_degrees < -150


def test_jumps_are_counted_and_standing_is_still():
    f = describe(jumping(90, 3), FPS)
    assert f.jumps == 3
    still = describe(standing(60), FPS)
    assert still.pace == "still" and still.jumps == 0 and still.direction is None


def test_crouch_and_hand_above_head():
    p = standing(60)
    drop = np.concatenate([np.linspace(0, 0.35, 20), np.full(20, 0.35), np.linspace(0.35, 0, 20)])
    crouch = p.copy()
    crouch[:, [0, 1, 2, 3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], 1] -= drop[:, None]
    thigh = np.linalg.norm(p[0, 4] - p[0, 1])  # knees move forward so the thighs keep their length
    crouch[:, [4, 5], 2] += np.sqrt(thigh**2 - (thigh - drop) ** 2)[:, None]
    assert describe(crouch, FPS).crouches
    raised = p.copy()
    raised[:, 20, 1] = raised[:, 15, 1] + 0.2  # left wrist above the head all the time
    assert describe(raised, FPS).hands_up == "left"
    assert describe(mirror_positions(raised), FPS).hands_up == "right"


def test_mirror_text_swaps_sides_inside_words_and_keeps_others():
    assert mirror_text("turns left, then leftward with the Right hand") == "turns right, then rightward with the Left hand"
    assert mirror_text("spins clockwise then counterclockwise") == "spins counterclockwise then clockwise"
    assert mirror_text("stands upright, bright and left-handed") == "stands upright, bright and right-handed"
    assert mirror_text(mirror_text("a left-to-right turn")) == "a left-to-right turn"


def test_conjugation_of_phrases():
    assert conjugate("bend down and put something on the floor", "s") == "bends down and puts something on the floor"
    assert conjugate("climb, hang and swing", "ing") == "climbing, hanging and swinging"
    assert conjugate("lie down, then get up", "s") == "lies down, then gets up"


def test_cmu_descriptions_become_phrases():
    phr, vague = cmu_phrasings("playground - climb, hang, swing")
    assert phr == ("climb, hang and swing on a playground",) and vague
    assert cmu_phrasings("run/jog")[0] == ("run", "jog")
    assert cmu_phrasings("slow walk")[0] == ("walk slowly",)


def test_make_captions_count_measured_words_and_determinism():
    p = walking(100, (0.0, 1.2), yaw_rate_deg=-20.0)  # forward, turning right by ~100 degrees
    caps = make_captions(["walk forward"], describe(p, FPS), seed="clip1")
    assert len(caps) >= 3 and len(set(caps)) == len(caps)
    assert all(c.endswith(".") and "#" not in c for c in caps)
    assert any("walks" in c or "walking" in c for c in caps)
    measured = " ".join(caps)
    assert "right" in measured and "metre" in measured
    assert caps == make_captions(["walk forward"], describe(p, FPS), seed="clip1")


def test_vague_labels_get_a_measurement_only_caption():
    p = jumping(90, 2)
    caps = make_captions(["dance"], describe(p, FPS), seed="x", vague=True)
    assert any("jumps twice" in c and "danc" not in c for c in caps)

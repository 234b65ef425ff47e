"""Facts measured from a motion itself, for captions: travel, turning, pace, jumps, posture, limbs.

Input is SMPL-22 joint positions (T, 22, 3) in metres, Y up, at a known frame rate. The clip need not
be canonicalised: the initial facing is measured from the hip and shoulder lines. Heading angles are
about +Y and positive when the body turns to its own LEFT, which is counterclockwise seen from
above. Every threshold is in metres, seconds or degrees and is named below. Pure numpy; imports
nothing from the rest of the package except the skeleton's joint indices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..skeleton import FOOT_JOINTS_LEFT, FOOT_JOINTS_RIGHT, HIP_LINE, SHOULDER_LINE

PELVIS, HEAD, NECK = 0, 15, 12
LEFT_WRIST, RIGHT_WRIST, LEFT_ANKLE, RIGHT_ANKLE = 20, 21, 7, 8
THIGHS, SHINS = ((1, 4), (2, 5)), ((4, 7), (5, 8))

STILL_METRES = 0.5        # net travel below this, with a short path, counts as staying in place
SLOW_SPEED, FAST_SPEED = 0.7, 1.9   # m/s of the pelvis over the ground: slow walk / jog
RUN_SPEED = 2.8           # m/s: running rather than jogging
TURN_MIN_DEG = 40.0       # smaller heading changes are not mentioned
FOOT_LIFT = 0.07          # m above the foot's own resting height: that foot is off the ground
JUMP_RISE = 0.07          # m the pelvis must rise above standing height during a jump
CROUCH_RATIO, LIE_RATIO = 0.75, 0.4  # pelvis height / standing pelvis height
BEND_TORSO_DEG, LIE_TORSO_DEG = 45.0, 60.0  # torso tilt from vertical
HAND_ABOVE_HEAD = 0.0     # m a wrist must be above the head joint (SMPL puts it mid-skull)
LEG_HIGH_RATIO = 0.65     # ankle height / leg length for "raises the leg high" (above running swing)
HOLD_SECONDS = 0.25       # a posture must last this long to count


@dataclass(frozen=True)
class MotionFacts:
    seconds: float
    distance: float           # net ground displacement, metres
    path_length: float        # metres walked along the (smoothed) pelvis path
    direction: str | None     # net travel relative to the INITIAL facing: forward/backward/left/right
    body_direction: str | None  # dominant travel relative to the CURRENT facing (walking backwards...)
    turn_degrees: float       # signed total heading change, + = left (counterclockwise from above)
    speed: float              # mean ground speed of the pelvis, m/s
    pace: str                 # "still", "slow", "normal", "fast", "very fast"
    circle: bool              # travels around a loop back near its start
    jumps: int                # flights with both feet off the ground and the pelvis raised
    crouches: bool
    bends_down: bool
    lies_down: bool           # ends lying on the floor after starting upright
    gets_up: bool             # starts lying, ends upright
    lying: bool               # lies on the floor for a while (any of the above, or throughout)
    upside_down: bool         # head below the pelvis (handstands, flips, cartwheels)
    hands_up: str | None      # "left", "right", "both": wrist above the head
    leg_raised: str | None    # "left", "right", "both": ankle lifted high
    busiest: str | None       # "arms" or "legs" when one pair clearly moves more
    busier_hand: str | None   # "left" or "right" when one hand clearly moves more


def _smooth(x: np.ndarray, frames: int) -> np.ndarray:
    """Moving average along axis 0 with edge padding; (T, ...) -> (T, ...)."""
    if frames <= 1 or len(x) < 3:
        return x
    k = min(frames, len(x))
    pad = np.concatenate([np.repeat(x[:1], k // 2, 0), x, np.repeat(x[-1:], k - 1 - k // 2, 0)])
    c = np.cumsum(np.concatenate([np.zeros_like(x[:1]), pad]), axis=0)
    return (c[k:] - c[:-k]) / k


def _runs(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """[(start, end)) index ranges where `mask` is True for at least `min_len` frames."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(s, e) for s, e in zip(edges[::2], edges[1::2]) if e - s >= min_len]


def facing(positions: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> (T, 2) unit forward direction on the ground as (x, z)."""
    p = np.asarray(positions, dtype=np.float64)
    across = (p[:, HIP_LINE[1]] - p[:, HIP_LINE[0]]) + (p[:, SHOULDER_LINE[1]] - p[:, SHOULDER_LINE[0]])
    # forward = across x up = (-across_z, across_x) on the (x, z) plane: across = +X gives +Z.
    fwd = np.stack([-across[:, 2], across[:, 0]], axis=-1)
    return fwd / np.maximum(np.linalg.norm(fwd, axis=-1, keepdims=True), 1e-9)


def heading_degrees(positions: np.ndarray) -> np.ndarray:
    """(T,) unwrapped facing angle in degrees, 0 at +Z, increasing as the body turns left (+X)."""
    f = facing(positions)
    return np.degrees(np.unwrap(np.arctan2(f[:, 0], f[:, 1])))


def _sector(fwd: float, left: float) -> str:
    ang = np.degrees(np.arctan2(left, fwd))
    if abs(ang) <= 45:
        return "forward"
    if abs(ang) >= 135:
        return "backward"
    return "left" if ang > 0 else "right"


def _side(left: bool, right: bool) -> str | None:
    return "both" if left and right else "left" if left else "right" if right else None


def describe(positions: np.ndarray, fps: float = 20.0) -> MotionFacts:
    """Measure what a (T, 22, 3) clip does; see MotionFacts for the meaning of every field."""
    p = np.asarray(positions, dtype=np.float64)
    t = p.shape[0]
    hold = max(2, int(round(HOLD_SECONDS * fps)))
    floor = np.percentile(p[:, FOOT_JOINTS_LEFT + FOOT_JOINTS_RIGHT, 1].min(axis=1), 2)
    y = p[..., 1] - floor

    # Travel on the ground plane, from a pelvis path smoothed over 0.25 s to drop the body's sway.
    root = _smooth(p[:, PELVIS, [0, 2]], hold)
    steps = np.linalg.norm(np.diff(root, axis=0), axis=-1)
    path = float(steps.sum())
    net = root[-1] - root[0]
    distance = float(np.linalg.norm(net))
    f0 = facing(p[: max(1, hold)]).mean(axis=0)
    f0 /= max(np.linalg.norm(f0), 1e-9)
    left0 = np.array([f0[1], -f0[0]])  # the body's left on the (x, z) plane: +X when facing +Z
    moving = distance >= STILL_METRES or path >= 2 * STILL_METRES
    direction = _sector(float(net @ f0), float(net @ left0)) if distance >= STILL_METRES else None

    # Travel relative to where the body faces at each moment, weighted by speed.
    f = _smooth(facing(p), hold)[:-1]
    vel = np.diff(root, axis=0)
    body = (float(np.sum(vel * f)), float(np.sum(vel[:, 0] * f[:, 1] - vel[:, 1] * f[:, 0])))
    body_direction = _sector(*body) if moving else None

    heading = _smooth(heading_degrees(p), hold)
    turn = float(heading[-1] - heading[0])
    seconds = t / fps
    speed = path / max(seconds - 1.0 / fps, 1e-9)
    if not moving:
        pace = "still"
    else:
        pace = ("slow" if speed < SLOW_SPEED else "normal" if speed < FAST_SPEED
                else "fast" if speed < RUN_SPEED else "very fast")
    circle = path > 2.5 and distance < 0.4 * path and abs(turn) > 270

    # Body proportions measured on the clip, so thresholds scale with the body.
    leg = float(np.median(sum(np.linalg.norm(p[:, a] - p[:, b], axis=-1) for a, b in THIGHS[:1] + SHINS[:1])))
    feet = FOOT_JOINTS_LEFT + FOOT_JOINTS_RIGHT
    foot_rest = np.percentile(y[:, feet], 5, axis=0)
    hip_drop = np.median(p[:, PELVIS, 1] - p[:, list(HIP_LINE), 1].mean(axis=1))
    stand = leg + foot_rest[0] + hip_drop  # pelvis height of this body standing straight
    pelvis_h = y[:, PELVIS]
    torso = p[:, NECK] - p[:, PELVIS]
    tilt = np.degrees(np.arccos(np.clip(torso[:, 1] / np.maximum(np.linalg.norm(torso, axis=-1), 1e-9), -1, 1)))
    upside = p[:, HEAD, 1] < p[:, PELVIS, 1] - 0.1

    off = y[:, feet] - foot_rest > FOOT_LIFT
    left_off, right_off = off[:, :2].all(axis=1), off[:, 2:].all(axis=1)
    flights = _runs(left_off & right_off & ~upside, 2)
    jumps = sum(1 for s, e in flights if pelvis_h[s:e].max() > stand + JUMP_RISE)

    lying_now = (pelvis_h < LIE_RATIO * stand) & (tilt > LIE_TORSO_DEG)
    lying = bool(_runs(lying_now, 2 * hold))
    edge = max(hold, t // 8)
    starts_lying, ends_lying = lying_now[:edge].mean() > 0.5, lying_now[-edge:].mean() > 0.5
    crouch_now = (pelvis_h < CROUCH_RATIO * stand) & (tilt < BEND_TORSO_DEG) & ~lying_now & ~upside
    bend_now = (tilt > BEND_TORSO_DEG) & (pelvis_h > LIE_RATIO * stand) & ~upside & ~lying_now

    head_h = p[:, HEAD, 1]
    lhand = _runs(p[:, LEFT_WRIST, 1] > head_h + HAND_ABOVE_HEAD, hold) and not upside.any()
    rhand = _runs(p[:, RIGHT_WRIST, 1] > head_h + HAND_ABOVE_HEAD, hold) and not upside.any()
    high = LEG_HIGH_RATIO * leg + foot_rest[0]
    lleg = _runs((y[:, LEFT_ANKLE] > high) & ~right_off & ~upside & ~lying_now, 2)
    rleg = _runs((y[:, RIGHT_ANKLE] > high) & ~left_off & ~upside & ~lying_now, 2)

    # Limb activity: mean speed of wrists and ankles relative to the pelvis, m/s.
    rel = p - p[:, PELVIS:PELVIS + 1]
    spd = np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean(axis=0) * fps if t > 1 else np.zeros(22)
    arms, legs = spd[LEFT_WRIST] + spd[RIGHT_WRIST], spd[LEFT_ANKLE] + spd[RIGHT_ANKLE]
    busiest = "arms" if arms > 1.8 * legs and arms > 0.3 else "legs" if legs > 1.8 * arms and legs > 0.3 else None
    lw, rw = spd[LEFT_WRIST], spd[RIGHT_WRIST]
    busier_hand = "left" if lw > 1.8 * rw and lw > 0.3 else "right" if rw > 1.8 * lw and rw > 0.3 else None

    return MotionFacts(
        seconds=seconds, distance=distance, path_length=path, direction=direction,
        body_direction=body_direction, turn_degrees=turn, speed=float(speed), pace=pace,
        circle=bool(circle), jumps=int(jumps),
        crouches=bool(_runs(crouch_now, hold)) and not lying, bends_down=bool(_runs(bend_now, hold)),
        lies_down=bool(ends_lying and not starts_lying), gets_up=bool(starts_lying and not ends_lying),
        lying=lying, upside_down=bool(_runs(upside, 3)),
        hands_up=_side(bool(lhand), bool(rhand)), leg_raised=_side(bool(lleg), bool(rleg)),
        busiest=busiest, busier_hand=busier_hand,
    )

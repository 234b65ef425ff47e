"""Feet that stay planted: contact detection, foot locking with two-bone leg IK, and the skate metric.

`clean_feet(clip)` is the one entry point (generate, refine, extend, the server and
`irmogen motion clean` all reach it through `cleanup_if(clip, enabled)`). Per foot it finds the
frames where the foot stands on the ground (height and speed, with hysteresis), locks the ankle and
the foot's direction where the foot stands during each contact, blends in and out of each lock over
a few frames, keeps planted feet out of the ground, and solves hip-knee-ankle with two-bone IK
whose knee keeps the side it bends to in the motion. Only the leg joints' local rotations (hip,
knee, ankle) change, plus the root height on the frames where a leg cannot reach its lock; the
positions are forward kinematics of the new rotations, so the clip contract holds.

`foot_metrics` is the one measure of foot skate, used by the tests and `benchmarks/feet.py`.
Y up, metres; positions (T, 22, 3). Pure numpy and scipy; never imports bpy or torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d

from .clip import Clip
from .errors import IrmogenError
from .quaternions import qbetween, qconj, qmul, qrot
from .rotations import forward_kinematics
from .skeleton import NUM_JOINTS, PARENTS

# (hip, knee, ankle, toe) joint indices of each leg; the toe is the SMPL "foot" joint.
LEGS = {"left": (1, 4, 7, 10), "right": (2, 5, 8, 11)}
LEG_JOINTS = (1, 2, 4, 5, 7, 8, 10, 11)
UP = np.array([0.0, 1.0, 0.0])

PLANTED_HEIGHT = 0.03    # m above the joint's lowest height: the definition of planted
SLIDE_SPEED = 0.05       # m/s: a planted foot moving faster than this slides


# ---- the metric ------------------------------------------------------------------------------
def planted_pairs(positions: np.ndarray) -> dict[str, np.ndarray]:
    """Per foot, (T-1,) bool: ankle and toe both within 3 cm of their lowest height on frames t and t+1."""
    p = np.asarray(positions, dtype=np.float64)
    out = {}
    for side, (_, _, ankle, toe) in LEGS.items():
        y = p[:, [ankle, toe], 1]
        low = np.all(y - y.min(axis=0) <= PLANTED_HEIGHT, axis=1)
        out[side] = low[:-1] & low[1:]
    return out


def foot_metrics(positions: np.ndarray, fps: float) -> dict:
    """Foot skate and ground penetration of one motion.

    speeds: horizontal speed (m/s) of each planted foot (mean of its ankle and toe) per frame pair;
    skate_m_s: their median; sliding_share: share faster than 5 cm/s; penetration_m: the deepest a
    foot joint goes below the height it stands at (median height of that joint over planted
    frames, both feet pooled).
    """
    p = np.asarray(positions, dtype=np.float64)
    if len(p) < 2:
        return {"speeds": np.zeros(0), "skate_m_s": 0.0, "sliding_share": 0.0, "planted_share": 0.0,
                "penetration_m": 0.0}
    planted = planted_pairs(p)
    speeds = []
    for side, (_, _, ankle, toe) in LEGS.items():
        v = np.diff(p[:, [ankle, toe]][..., [0, 2]], axis=0)            # (T-1, 2, 2) horizontal steps
        speed = np.linalg.norm(v, axis=-1).mean(axis=1) * fps
        speeds.append(speed[planted[side]])
    speeds = np.concatenate(speeds)
    return {"speeds": speeds,
            "skate_m_s": float(np.median(speeds)) if speeds.size else 0.0,
            "sliding_share": float(np.mean(speeds > SLIDE_SPEED)) if speeds.size else 0.0,
            "planted_share": float(speeds.size / (2 * (len(p) - 1))),
            "penetration_m": _penetration(p, planted)}


def _penetration(p: np.ndarray, planted: dict) -> float:
    depth = 0.0
    for k in (2, 3):   # ankle, toe
        frames = [p[1:][planted[s]][:, LEGS[s][k], 1] for s in LEGS]
        heights = np.concatenate(frames)
        if heights.size == 0:
            continue
        ground = np.median(heights)
        lowest = min(p[:, LEGS[s][k], 1].min() for s in LEGS)
        depth = max(depth, ground - lowest)
    return float(depth)


def joint_change(before: np.ndarray, after: np.ndarray) -> dict:
    """How far joints moved (m): mean and max over all joints, and max over the joints outside the legs."""
    d = np.linalg.norm(np.asarray(after) - np.asarray(before), axis=-1)
    other = [j for j in range(NUM_JOINTS) if j not in LEG_JOINTS]
    return {"mean_m": float(d.mean()), "max_m": float(d.max()), "other_max_m": float(d[:, other].max())}


# ---- contacts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeetOptions:
    enter_height: float = PLANTED_HEIGHT   # m above the lowest height to start a contact
    exit_height: float = 0.04              # ... and to keep it while the foot is still
    enter_speed: float = 1.0               # m/s, horizontal, to start a contact
    exit_speed: float = 1.5                # ... and to keep it
    still_speed: float = 0.15              # m/s: a foot this slow keeps its contact up to exit_height
    min_contact_s: float = 0.1             # shorter contacts are dropped
    bridge_gap_s: float = 0.1              # shorter gaps between two contacts are closed
    blend_s: float = 0.10                  # ramp into and out of each lock
    max_root_drop: float = 0.08            # m the root may be lowered where a leg cannot reach
    reach_slack: float = 0.02              # m a lock may stay out of reach before the root lowers
    kneel_ratio: float = 0.5               # the knee must be this share of the shin above the ankle
    floor_window_s: float = 0.75           # contact heights are measured from the lowest within +-this
    max_floor_height: float = 0.10         # m: never a contact this far above the foot's lowest


@dataclass
class FeetReport:
    contacts: dict = field(default_factory=dict)   # side -> list of (first, last) frames
    root_drop_max_m: float = 0.0
    before: dict = field(default_factory=dict)     # foot_metrics without the speeds
    after: dict = field(default_factory=dict)
    change: dict = field(default_factory=dict)     # joint_change

    def summary(self) -> str:
        n = sum(len(c) for c in self.contacts.values())
        return (f"feet: {n} contact(s), skate {self.before['skate_m_s'] * 100:.1f} -> "
                f"{self.after['skate_m_s'] * 100:.1f} cm/s, penetration {self.before['penetration_m'] * 100:.1f} -> "
                f"{self.after['penetration_m'] * 100:.1f} cm, joints moved {self.change['mean_m'] * 100:.2f} cm "
                f"on average")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frames of each run of True."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1))


def _hysteresis(enter: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Runs of `keep` that contain at least one `enter` frame."""
    out = np.zeros_like(keep)
    for a, b in _runs(keep):
        if enter[a:b + 1].any():
            out[a:b + 1] = True
    return out


def detect_contacts(p: np.ndarray, fps: float, o: FeetOptions) -> dict[str, np.ndarray]:
    """Per foot, (T,) bool: the foot stands on the ground (and the leg stands on it, not kneels)."""
    out = {}
    for side, (hip, knee, ankle, toe) in LEGS.items():
        # Height above the lowest the foot goes within about a second (generated feet stand at
        # slightly different levels from step to step), and not far above its lowest overall.
        y = p[:, [ankle, toe], 1]
        local = minimum_filter1d(y, 2 * int(round(o.floor_window_s * fps)) + 1, axis=0, mode="nearest")
        height = (y - local).max(axis=1)
        near_floor = (y - y.min(axis=0)).max(axis=1) <= o.max_floor_height
        xz = p[:, [ankle, toe]][..., [0, 2]].mean(axis=1)
        step = np.linalg.norm(np.diff(xz, axis=0), axis=-1) * fps
        speed = np.minimum(np.concatenate([step[:1], step]), np.concatenate([step, step[-1:]]))
        shin = np.linalg.norm(p[:, knee] - p[:, ankle], axis=-1)
        upright = (p[:, knee, 1] - p[:, ankle, 1] > o.kneel_ratio * shin) & near_floor  # not lying, kneeling
        enter = (height <= o.enter_height) & (speed <= o.enter_speed) & upright
        # Keep a contact while the foot stays low, or slightly higher while it hardly moves (a
        # heel lifting to push off moves on; a generated foot jittering in place does not).
        keep = upright & (((height <= o.enter_height) & (speed <= o.exit_speed))
                          | ((height <= o.exit_height) & (speed <= o.still_speed)))
        c = _hysteresis(enter, keep)
        gap, shortest = int(round(o.bridge_gap_s * fps)), int(round(o.min_contact_s * fps))
        for a, b in _runs(~c):
            if a > 0 and b < len(c) - 1 and b - a + 1 <= gap and upright[a:b + 1].all():
                c[a:b + 1] = True
        for a, b in _runs(c):
            if b - a + 1 < shortest:
                c[a:b + 1] = False
        out[side] = c
    return out


# ---- targets ------------------------------------------------------------------------------------
def _lock_targets(p, contact, ankle, toe, blend):
    """Ankle target (T,3), foot vector target (T,3) and lock weight (T,) for one foot."""
    T = len(p)
    ank, vec = p[:, ankle].copy(), p[:, toe] - p[:, ankle]
    runs = _runs(contact)
    if not runs:
        return ank, vec, np.zeros(T)
    t = np.arange(T)
    # Weight of each run: 1 inside, a smooth ramp over `blend` frames on either side.
    dist = np.stack([np.maximum(np.maximum(a - t, t - b), 0) for a, b in runs])       # (R, T)
    ramp = np.clip(1.0 - dist / (blend + 1.0), 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)
    nearest = np.argmin(dist, axis=0)
    weight = ramp[nearest, t]
    # Each foot is locked where it stands: its mean place over the contact (half the slide of a
    # lock at the landing frame, so clean mocap barely moves). Only the horizontal place and the
    # foot's heading are locked; heights and the foot's pitch stay the motion's (heel and toe roll).
    lock = np.stack([p[a:b + 1, ankle].mean(axis=0) for a, b in runs])
    heading = np.stack([_unit(vec[a:b + 1].mean(axis=0) * [1, 0, 1]) for a, b in runs])
    w = weight[:, None]
    ank_t = ank.copy()
    ank_t[:, [0, 2]] = (1 - w) * ank[:, [0, 2]] + w * lock[nearest][:, [0, 2]]
    flat = np.linalg.norm(vec[:, [0, 2]], axis=-1, keepdims=True)
    locked = heading[nearest] * flat
    vec_t = vec.copy()
    vec_t[:, [0, 2]] = _unit((1 - w) * vec[:, [0, 2]] + w * locked[:, [0, 2]]) * flat
    return ank_t, vec_t, weight


def _ground(p, contacts, k):
    """The height joint k of the feet (2 ankle, 3 toe) stands at: the low quartile of its lowest
    height in each contact (robust to one sunken step of a generated motion), or None without
    contacts."""
    h = [p[a:b + 1, LEGS[s][k], 1].min() for s in LEGS for a, b in _runs(contacts[s])]
    return float(np.percentile(h, 25)) if h else None


# ---- two-bone IK ----------------------------------------------------------------------------------
def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _knee(hip, ankle_t, knee0, hip0, l1, l2):
    """Knee position reaching ankle_t from hip, bending to the side the motion's knee bends to."""
    d_vec = ankle_t - hip
    d = np.clip(np.linalg.norm(d_vec, axis=-1), abs(l1 - l2) + 1e-6, (l1 + l2) * (1 - 1e-6))
    u = _unit(d_vec)
    pole = knee0 - hip0
    v = pole - np.sum(pole * u, -1, keepdims=True) * u
    v = _unit(v)
    cos_a = np.clip((l1 ** 2 + d ** 2 - l2 ** 2) / (2 * l1 * d), -1.0, 1.0)
    return hip + l1 * (cos_a[:, None] * u + np.sqrt(1 - cos_a ** 2)[:, None] * v), hip + d[:, None] * u


def _world_rotations(rot):
    w = np.empty_like(rot)
    w[:, 0] = rot[:, 0]
    for j in range(1, NUM_JOINTS):
        w[:, j] = qmul(w[:, PARENTS[j]], rot[:, j])
    return w


def _aim(world_parent, local, offset, target_dir):
    """New world rotation of a joint whose child (rest offset) points along target_dir: the
    shortest swing from where it points now, so its twist stays."""
    world = qmul(world_parent, local)
    now = qrot(world, np.broadcast_to(offset, target_dir.shape))
    return qmul(qbetween(now, target_dir), world)


# ---- the cleanup --------------------------------------------------------------------------------
def clean_feet(clip: Clip, options: FeetOptions | None = None, **overrides) -> tuple[Clip, FeetReport]:
    """Contact-aware foot cleanup of a clip -> (cleaned clip, report). See the module docstring."""
    o = options or FeetOptions()
    if overrides:
        o = FeetOptions(**{**o.__dict__, **overrides})
    clip.validate("clip")
    p0 = np.asarray(clip.positions, dtype=np.float64)
    if len(p0) < 3:
        raise IrmogenError(f"clip: {len(p0)} frame(s); foot cleanup needs at least 3")
    contacts = detect_contacts(p0, clip.fps, o)
    blend = max(1, int(round(o.blend_s * clip.fps)))
    rot = np.array(clip.rotations, dtype=np.float64)
    root = np.array(clip.root_translation, dtype=np.float64)
    off = np.asarray(clip.offsets, dtype=np.float64)

    targets = {s: _lock_targets(p0, contacts[s], LEGS[s][2], LEGS[s][3], blend) for s in LEGS}
    _keep_above_ground(p0, contacts, targets)
    drop = _root_drop(p0, off, targets, blend, o)
    root[:, 1] -= drop
    world = _world_rotations(rot)
    changed = drop > 0
    for s, (hip, knee, ankle, toe) in LEGS.items():
        ank_t, vec_t, weight = targets[s]
        moved = ((weight > 0) | np.any(ank_t != p0[:, ankle], axis=-1)
                 | np.any(vec_t != p0[:, toe] - p0[:, ankle], axis=-1) | changed)
        if not moved.any():
            continue
        f = np.flatnonzero(moved)
        hip_pos = p0[f, hip] - drop[f, None] * UP
        knee_t, ank_r = _knee(hip_pos, ank_t[f], p0[f, knee], p0[f, hip],
                              np.linalg.norm(off[knee]), np.linalg.norm(off[ankle]))
        w_hip = _aim(world[f, 0], rot[f, hip], off[knee], knee_t - hip_pos)
        w_knee = _aim(w_hip, rot[f, knee], off[ankle], ank_r - knee_t)
        w_ankle = _aim(w_knee, rot[f, ankle], off[toe], vec_t[f])
        rot[f, hip] = qmul(qconj(world[f, 0]), w_hip)
        rot[f, knee] = qmul(qconj(w_hip), w_knee)
        rot[f, ankle] = qmul(qconj(w_knee), w_ankle)
        changed = changed | moved
    positions = p0.copy()
    if changed.any():
        f = np.flatnonzero(changed)
        positions[f] = forward_kinematics(off, rot[f], root[f])
    out = clip.with_(rotations=rot, root_translation=root, positions=positions, features=None)
    return out, _report(p0, positions, clip.fps, contacts, drop)


def _keep_above_ground(p, contacts, targets) -> None:
    """Lift ankles and toes that would go below the height the feet stand at, wherever the leg
    stands on its foot (knee above ankle) and, blended, around each lock. A kneeling, lying or
    crawling leg, and a body without contacts, are left alone."""
    ground_ankle, ground_toe = _ground(p, contacts, 2), _ground(p, contacts, 3)
    if ground_ankle is None:
        return
    for s, (hip, knee, ankle, toe) in LEGS.items():
        ank_t, vec_t, weight = targets[s]
        shin = np.linalg.norm(p[:, knee] - p[:, ankle], axis=-1)
        weight = np.where(p[:, knee, 1] - p[:, ankle, 1] > 0.5 * shin, 1.0, weight)
        ank_t[:, 1] += weight * np.maximum(ground_ankle - ank_t[:, 1], 0.0)
        lift = weight * np.maximum(ground_toe - (ank_t[:, 1] + vec_t[:, 1]), 0.0)
        low = lift > 0
        if low.any():   # pitch the foot up about the ankle, its length kept
            length = np.linalg.norm(vec_t[low], axis=-1)
            vec_t[low, 1] = np.clip(vec_t[low, 1] + lift[low], -length, length)
            flat = np.linalg.norm(vec_t[low][:, [0, 2]], axis=-1)
            room = np.sqrt(np.maximum(length ** 2 - vec_t[low, 1] ** 2, 0.0)) / np.maximum(flat, 1e-9)
            vec_t[low, 0] *= room
            vec_t[low, 2] *= room


def _root_drop(p, off, targets, blend, o) -> np.ndarray:
    """(T,) metres to lower the root so each locked leg can reach its target, smooth in time."""
    need = np.zeros(len(p))
    for s, (hip, knee, ankle, _) in LEGS.items():
        reach = (np.linalg.norm(off[knee]) + np.linalg.norm(off[ankle])) * 0.995
        d = targets[s][0] - p[:, hip]
        flat2 = d[:, 0] ** 2 + d[:, 2] ** 2
        # Lowering the hip by h makes |d| = reach when (d_y + h)^2 = reach^2 - flat^2 (d_y < 0).
        h = -d[:, 1] - np.sqrt(np.maximum(reach ** 2 - flat2, 0.0))
        # Only the stretch the lock adds counts: a leg straight in the motion stays as it was.
        d0 = p[:, ankle] - p[:, hip]
        h0 = -d0[:, 1] - np.sqrt(np.maximum(reach ** 2 - d0[:, 0] ** 2 - d0[:, 2] ** 2, 0.0))
        need = np.maximum(need, np.where(targets[s][2] > 0, h - np.maximum(h0, 0.0) - o.reach_slack, 0.0))
    need = np.clip(need, 0.0, o.max_root_drop)
    if not need.any():
        return need
    # Hold the largest need over the blend window, then smooth, so the root eases in and out.
    held = maximum_filter1d(need, 2 * blend + 1, mode="nearest")
    return np.where(held > 0, uniform_filter1d(held, 2 * blend + 1, mode="nearest"), 0.0)


def _report(p0, p1, fps, contacts, drop) -> FeetReport:
    strip = lambda m: {k: v for k, v in m.items() if k != "speeds"}  # noqa: E731
    return FeetReport(contacts={s: [(int(a), int(b)) for a, b in _runs(c)] for s, c in contacts.items()},
                      root_drop_max_m=float(drop.max()), before=strip(foot_metrics(p0, fps)),
                      after=strip(foot_metrics(p1, fps)), change=joint_change(p0, p1))


def cleanup_if(clip: Clip, enabled: bool = True) -> Clip:
    """The cleanup every command and server job applies to motion it produces: on unless disabled."""
    if not enabled or clip is None or clip.num_frames < 3:
        return clip
    return clean_feet(clip)[0]

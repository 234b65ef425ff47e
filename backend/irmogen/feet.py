"""Feet that stay planted: contact detection, foot locking with two-bone leg IK, and the skate metric.

`clean_feet(clip)` is the one entry point (generate, refine, extend, the server and
`irmogen motion clean` all reach it through `cleanup_if(clip, enabled)`). Per foot it finds the
frames where the foot stands on the ground (height and speed, with hysteresis), locks the ankle and
the foot's direction where the foot stands during each contact, blends in and out of each lock over
a few frames, lifts standing feet that dip below the floor (`floor_heights`) back onto it, and
solves hip-knee-ankle with two-bone IK whose knee keeps the side it bends to in the motion. Only
the leg joints' local rotations (hip, knee, ankle) change, plus the root height: down where a leg
cannot reach its lock, up where both feet sank into the floor. The positions are forward
kinematics of the new rotations, so the clip contract holds.

`foot_metrics` is the one measure of foot skate and ground penetration, used by the tests and
`benchmarks/feet.py`.
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
STANDING_RATIO = 0.5     # a leg stands on its foot when the knee is this share of the shin above the ankle
DIP_S = 0.1              # s: a foot lower than its floor for about this long or less dips into it


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
    foot joint of a leg standing on its foot goes below the floor (`floor_heights`).
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
            "penetration_m": _penetration(p, fps)}


def standing(p: np.ndarray, knee: int, ankle: int, ratio: float = STANDING_RATIO) -> np.ndarray:
    """(T,) bool: the leg stands on its foot (knee above the ankle by `ratio` of the shin), as
    opposed to kneeling, sitting on the floor or lying. A leg in the air counts as standing too:
    it would land on its foot."""
    shin = np.linalg.norm(p[:, knee] - p[:, ankle], axis=-1)
    return p[:, knee, 1] - p[:, ankle, 1] > ratio * shin


def floor_heights(p: np.ndarray, fps: float, ratio: float = STANDING_RATIO) -> tuple[float, float] | None:
    """The floor, as the heights ankles and toes stand at: per joint, the lowest height a foot
    holds for longer than about `DIP_S` while its leg stands, both feet pooled; None if no leg
    ever stands. Shorter dips (a generated foot or body sinking for a frame or two) go below the
    floor rather than define it. The lowest of both feet, as on uneven ground (steps, a
    playground) the feet stand at different heights; only standing legs, as a kneeling or lying
    leg's ankle rests lower without being in the floor."""
    size = 2 * max(1, int(round(DIP_S * fps / 2))) + 1   # a closing of this many frames fills the dips
    floor = [np.inf, np.inf]
    for _, knee, ankle, toe in LEGS.values():
        up = standing(p, knee, ankle, ratio)
        for i, j in enumerate((ankle, toe)):
            y = np.where(up, p[:, j, 1], np.inf)     # frames the leg does not stand hold no floor
            held = minimum_filter1d(maximum_filter1d(y, size, mode="nearest"), size, mode="nearest")
            floor[i] = min(floor[i], float(held.min()))
    return None if not np.isfinite(floor).all() else (floor[0], floor[1])


def _penetration(p: np.ndarray, fps: float) -> float:
    floor = floor_heights(p, fps)
    if floor is None:
        return 0.0
    depth = 0.0
    for _, knee, ankle, toe in LEGS.values():
        up = standing(p, knee, ankle)
        if up.any():
            depth = max(depth, floor[0] - p[up, ankle, 1].min(), floor[1] - p[up, toe, 1].min())
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
    max_lock_travel: float = 0.15          # m a foot may travel within one contact before its steps split it
    step_speed: float = 0.5                # m/s: ... at the frames it moves faster than this
    blend_s: float = 0.10                  # ramp into and out of each lock
    max_root_drop: float = 0.08            # m the root may be lowered where a leg cannot reach
    max_root_raise: float = 0.08           # m the root may be raised where both feet sank into the floor
    reach_slack: float = 0.02              # m a lock may stay out of reach before the root lowers
    kneel_ratio: float = STANDING_RATIO    # the knee must be this share of the shin above the ankle
    floor_window_s: float = 0.75           # contact heights are measured from the lowest within +-this
    max_floor_height: float = 0.10         # m: never a contact this far above the foot's lowest
    floor_slack: float = 0.01              # m a standing foot may go below the floor before it is lifted


@dataclass
class FeetReport:
    contacts: dict = field(default_factory=dict)   # side -> list of (first, last) frames
    root_drop_max_m: float = 0.0                   # m the root was lowered where a leg cannot reach
    root_raise_max_m: float = 0.0                  # m the root was raised where both feet sank
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
        upright = standing(p, knee, ankle, o.kneel_ratio) & near_floor  # not lying, kneeling
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
        _split_steps(c, xz, speed, o)
        for a, b in _runs(c):
            if b - a + 1 < shortest:
                c[a:b + 1] = False
        out[side] = c
    return out


def _split_steps(c, xz, speed, o) -> None:
    """A foot that travels further than `max_lock_travel` within one contact took low, shuffling
    steps (a skip into a kick, a pivot): its frames faster than `step_speed` stop being contact,
    so each stance is held on its own rather than all of them at one average place."""
    for a, b in _runs(c):
        if np.linalg.norm(np.ptp(xz[a:b + 1], axis=0)) > o.max_lock_travel:
            c[a:b + 1] &= speed[a:b + 1] <= o.step_speed


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
    raised = _keep_above_ground(p0, clip.fps, contacts, targets, blend, o)
    drop = _root_drop(p0 + raised[:, None, None] * UP, off, targets, blend, o)
    lift = raised - drop
    root[:, 1] += lift
    world = _world_rotations(rot)
    changed = lift != 0
    for s, (hip, knee, ankle, toe) in LEGS.items():
        ank_t, vec_t, weight = targets[s]
        moved = ((weight > 0) | np.any(ank_t != p0[:, ankle], axis=-1)
                 | np.any(vec_t != p0[:, toe] - p0[:, ankle], axis=-1) | changed)
        if not moved.any():
            continue
        f = np.flatnonzero(moved)
        hip_pos = p0[f, hip] + lift[f, None] * UP
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
    return out, _report(p0, positions, clip.fps, contacts, drop, raised)


def _keep_above_ground(p, fps, contacts, targets, blend, o) -> np.ndarray:
    """Lift ankle and toe targets that would go below the floor (`floor_heights`, less `floor_slack`),
    wherever the leg stands on its foot and, blended, around each lock; -> (T,) metres to raise
    the root where both standing feet are under the floor (the body sank: lifting it beats bending
    both knees). A kneeling, lying or crawling leg, and a body without contacts, are left alone."""
    if not any(c.any() for c in contacts.values()):
        return np.zeros(len(p))
    floor_ankle, floor_toe = (h - o.floor_slack for h in floor_heights(p, fps, o.kneel_ratio))
    sunk = []
    for s, (hip, knee, ankle, toe) in LEGS.items():
        ank_t, vec_t, weight = targets[s]
        up = standing(p, knee, ankle, o.kneel_ratio)
        weight = np.where(up, 1.0, weight)
        rise = weight * np.maximum(floor_ankle - ank_t[:, 1], 0.0)
        ank_t[:, 1] += rise
        sunk.append(np.where(up, rise, 0.0))
        _pitch_up(vec_t, weight * np.maximum(floor_toe - (ank_t[:, 1] + vec_t[:, 1]), 0.0))
    return _ease(np.clip(np.minimum(*sunk), 0.0, o.max_root_raise), blend)


def _pitch_up(vec, lift) -> None:
    """Raise the toe end of foot vectors (T, 3) by `lift` (T,) metres about the ankle, in place,
    the foot's length kept."""
    low = lift > 0
    if low.any():
        length = np.linalg.norm(vec[low], axis=-1)
        vec[low, 1] = np.clip(vec[low, 1] + lift[low], -length, length)
        flat = np.linalg.norm(vec[low][:, [0, 2]], axis=-1)
        room = np.sqrt(np.maximum(length ** 2 - vec[low, 1] ** 2, 0.0)) / np.maximum(flat, 1e-9)
        vec[low, 0] *= room
        vec[low, 2] *= room


def _ease(need, blend) -> np.ndarray:
    """A root height change (T,) that covers `need` and eases in and out: the largest need held
    over the blend window, then smoothed."""
    if not need.any():
        return np.zeros_like(need)
    held = maximum_filter1d(need, 2 * blend + 1, mode="nearest")
    return np.where(held > 0, uniform_filter1d(held, 2 * blend + 1, mode="nearest"), 0.0)


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
    return _ease(np.clip(need, 0.0, o.max_root_drop), blend)


def _report(p0, p1, fps, contacts, drop, raised) -> FeetReport:
    strip = lambda m: {k: v for k, v in m.items() if k != "speeds"}  # noqa: E731
    return FeetReport(contacts={s: [(int(a), int(b)) for a, b in _runs(c)] for s, c in contacts.items()},
                      root_drop_max_m=float(drop.max()), root_raise_max_m=float(raised.max()),
                      before=strip(foot_metrics(p0, fps)), after=strip(foot_metrics(p1, fps)),
                      change=joint_change(p0, p1))


def cleanup_if(clip: Clip, enabled: bool = True) -> Clip:
    """The cleanup every command and server job applies to motion it produces: on unless disabled."""
    if not enabled or clip is None or clip.num_frames < 3:
        return clip
    return clean_feet(clip)[0]

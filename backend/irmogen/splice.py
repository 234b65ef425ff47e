"""Timeline operations on clips: exact length, continuing one motion from another's last frame, and
splicing a refined stretch (a frame range, a body part) into a take.

Everything works on rotations and root translation, then recomputes positions by forward
kinematics for the frames it changed, so the clip contract (FK reproduces positions) holds.
Frames and joints an operation does not own are copied, never recomputed: they stay bit-identical.
Pure numpy; must not import torch or bpy.
"""
from __future__ import annotations

import numpy as np

from .canonical import heading_angles
from .clip import Clip
from .errors import IrmogenError
from .quaternions import qabout_y, qcontinuous, qmul, qnormalize, qrot, qslerp
from .rotations import forward_kinematics
from .skeleton import PARENTS

MIN_BLEND_SECONDS = 0.3    # a transition between two motions is never shorter than this
SEAM_BLEND_SECONDS = 0.5   # default transition between the parts of a sequence
EDGE_BLEND_FRAMES = 4      # frames inside a refined range used to blend into the untouched take

# Body parts an animator can refine alone (SMPL-22 joint indices); "root" says whether the
# pelvis translation belongs to the part (it carries the travel, so it goes with the legs' owner).
_LEGS = (1, 2, 4, 5, 7, 8, 10, 11)
_ARMS = (13, 14, 16, 17, 18, 19, 20, 21)
_SPINE_HEAD = (3, 6, 9, 12, 15)
PARTS: dict[str, tuple[tuple[int, ...], bool]] = {
    "whole": (tuple(range(22)), True),
    "upper": (_SPINE_HEAD + _ARMS, False),
    "lower": ((0,) + _LEGS, True),
    "arms": (_ARMS, False),
    "legs": (_LEGS, False),
}


def part_joints(part: str) -> tuple[tuple[int, ...], bool]:
    """(joint indices, owns root translation) of a body part name."""
    if part not in PARTS:
        raise IrmogenError(f"part: {part!r} is not a body part; use one of {', '.join(PARTS)}")
    return PARTS[part]


def frames_for(seconds: float, fps: float) -> int:
    """The frame count a length in seconds asks for: round(seconds * fps), at least 2."""
    return max(2, int(round(float(seconds) * float(fps))))


def exact_length(clip: Clip, seconds: float | None) -> Clip:
    """The clip time-fitted to exactly round(seconds * fps) frames (unchanged without seconds): the
    model writes whole 4-frame codes within +-10 % of an asked length; users ask to the frame."""
    return clip if seconds is None else fit_length(clip, frames_for(seconds, clip.fps))


def _with_motion(clip: Clip, rotations: np.ndarray, root: np.ndarray) -> Clip:
    rotations = qnormalize(np.asarray(rotations, np.float64))
    root = np.asarray(root, np.float64)
    return clip.with_(rotations=rotations, root_translation=root,
                      positions=forward_kinematics(clip.offsets, rotations, root), features=None)


def _leg(offsets: np.ndarray) -> float:
    o = np.asarray(offsets, np.float64)
    return float(abs(o[1, 1]) + np.linalg.norm(o[4]) + np.linalg.norm(o[7]))


def on_body(clip: Clip, offsets: np.ndarray) -> Clip:
    """The clip's motion on another body (rest offsets): rotations kept, root translation scaled by
    the ratio of leg lengths so steps and heights fit the new legs."""
    if np.array_equal(np.asarray(clip.offsets), np.asarray(offsets)):
        return clip
    scale = _leg(offsets) / max(_leg(clip.offsets), 1e-6)
    return _with_motion(clip.with_(offsets=np.asarray(offsets, np.float64)), clip.rotations,
                        np.asarray(clip.root_translation, np.float64) * scale)


# ---- exact length ----------------------------------------------------------------------------
def fit_length(clip: Clip, frames: int) -> Clip:
    """Time-warp a clip to exactly `frames` frames (same first and last pose; rotations slerped)."""
    frames = int(frames)
    if frames < 2:
        raise IrmogenError(f"length: {frames} frames; a motion needs at least 2")
    if frames == clip.num_frames:
        return clip
    src = qcontinuous(np.asarray(clip.rotations, np.float64), axis=0)
    t = np.linspace(0.0, clip.num_frames - 1, frames)
    i0 = np.minimum(np.floor(t).astype(int), clip.num_frames - 1)
    i1 = np.minimum(i0 + 1, clip.num_frames - 1)
    w = t - i0
    rot = qslerp(src[i0], src[i1], np.broadcast_to(w[:, None], (frames, src.shape[1])))
    root = np.asarray(clip.root_translation, np.float64)
    root = (1.0 - w[:, None]) * root[i0] + w[:, None] * root[i1]
    return _with_motion(clip, rot, root)


# ---- placing one motion after another --------------------------------------------------------
def heading_at(clip: Clip, frame: int) -> float:
    """Facing angle about +Y (radians, 0 = +Z) at a frame, from the hip and shoulder lines."""
    return float(heading_angles(np.asarray(clip.positions[frame:frame + 1]))[0])


def place(clip: Clip, heading: float, ground_xz, frame: int = 0) -> Clip:
    """Turn a clip about +Y and shift it on the ground so that at `frame` it faces `heading` with
    its pelvis over `ground_xz` (x, z). Heights are kept."""
    turn = heading - heading_at(clip, frame)
    q = qabout_y(np.array(turn))
    root = np.asarray(clip.root_translation, np.float64)
    pivot = root[frame] * np.array([1.0, 0.0, 1.0])
    moved = qrot(np.broadcast_to(q, root.shape[:-1] + (4,)), root - pivot)
    moved[:, [0, 2]] += np.asarray(ground_xz, np.float64)
    moved[:, 1] = root[:, 1]
    rot = np.array(clip.rotations, np.float64)
    rot[:, 0] = qmul(np.broadcast_to(q, rot[:, 0].shape), rot[:, 0])
    return _with_motion(clip, rot, moved)


def _smooth_weights(n: int) -> np.ndarray:
    """n weights easing from 1 down to 0 (exclusive of both ends), smoothstep shaped."""
    x = np.arange(1, n + 1) / (n + 1)
    return 1.0 - x * x * (3.0 - 2.0 * x)


def continue_from(prev: Clip, nxt: Clip, blend_frames: int | None = None) -> Clip:
    """`nxt` placed to start where `prev` ends: same ground position and facing, and its first
    `blend_frames` frames bent from `prev`'s last pose into its own, so neither pose nor root jumps.

    `nxt`'s first frame stands on `prev`'s last frame and is dropped: the result has
    `nxt.num_frames - 1` frames and is meant to be appended to `prev`.
    """
    fps = float(prev.fps)
    if blend_frames is None:
        blend_frames = int(round(SEAM_BLEND_SECONDS * fps))
    blend_frames = max(int(np.ceil(MIN_BLEND_SECONDS * fps)), blend_frames)
    blend_frames = min(blend_frames, nxt.num_frames - 1)
    last = prev.num_frames - 1
    nxt = on_body(nxt, prev.offsets)
    placed = place(nxt, heading_at(prev, last), np.asarray(prev.root_translation[last], np.float64)[[0, 2]])
    rot = qcontinuous(np.asarray(placed.rotations, np.float64), axis=0)
    root = np.asarray(placed.root_translation, np.float64).copy()
    end_rot = np.asarray(prev.rotations[last], np.float64)
    root_delta = np.asarray(prev.root_translation[last], np.float64) - root[0]
    w = np.zeros(nxt.num_frames)
    w[0] = 1.0
    w[1:blend_frames + 1] = _smooth_weights(blend_frames)
    # Cross-fade each joint from prev's last pose into nxt's own. (Not an offset carried along:
    # solved rotations can twist a lot between frames in ways the positions do not show, and an
    # offset applied to another pose would turn that hidden twist into a visible jump.)
    for t in np.flatnonzero(w > 0):
        rot[t] = qslerp(end_rot, rot[t], np.full(rot.shape[1], 1.0 - w[t]))
        root[t] += w[t] * root_delta
    return _with_motion(placed, rot[1:], root[1:])


def concatenate(clips: list[Clip], text: str = "") -> Clip:
    """Join clips that already continue one another (see continue_from) into one."""
    first = clips[0]
    return first.with_(
        rotations=np.concatenate([c.rotations for c in clips]).astype(np.float64),
        root_translation=np.concatenate([c.root_translation for c in clips]).astype(np.float64),
        positions=np.concatenate([c.positions for c in clips]).astype(np.float64),
        features=None, text=text or first.text)


def extend(take: Clip, more: Clip, blend_frames: int | None = None) -> Clip:
    """The take followed by `more`, which continues from the take's last frame. The take's own
    frames are copied unchanged."""
    if abs(take.fps - more.fps) > 1e-6:
        raise IrmogenError(f"extend: the take is at {take.fps:g} fps and the new motion at {more.fps:g} fps")
    tail = continue_from(take, more, blend_frames)
    dtype = np.asarray(take.rotations).dtype
    return take.with_(
        rotations=np.concatenate([take.rotations, tail.rotations.astype(dtype)]),
        root_translation=np.concatenate([take.root_translation, tail.root_translation.astype(dtype)]),
        positions=np.concatenate([take.positions, tail.positions.astype(np.asarray(take.positions).dtype)]),
        features=None)


def join_tail(clip: Clip, start: int, tail: Clip) -> Clip:
    """`clip` with its frames from `start` on replaced by `tail` (e.g. a cleaned-up continuation)."""
    def cat(name):
        head = np.asarray(getattr(clip, name))[:start]
        return np.concatenate([head, np.asarray(getattr(tail, name)).astype(head.dtype)])
    return clip.with_(rotations=cat("rotations"), root_translation=cat("root_translation"),
                      positions=cat("positions"), features=None)


def clean_after(clip: Clip, start: int, clean) -> Clip:
    """`clip` with `clean` (foot cleanup) applied to its frames from `start` on only: the frames
    before stay bit-identical. The cleanup re-plants the new frames' feet, which can move their first
    frame off the kept last one, so the cleaned motion is eased in over SEAM_BLEND_SECONDS."""
    if start <= 0:
        return clean(clip)
    raw = window(clip, (start, clip.num_frames))
    done = clean(raw)
    n = min(int(round(SEAM_BLEND_SECONDS * clip.fps)), raw.num_frames)
    w = np.ones(raw.num_frames)
    w[:n] = 1.0 - _smooth_weights(n)     # 0 would be the raw continuation, 1 the cleaned motion
    a = qcontinuous(np.asarray(raw.rotations, np.float64), axis=0)
    b = np.asarray(done.rotations, np.float64)
    b = b * np.where(np.sum(a * b, axis=-1, keepdims=True) < 0, -1.0, 1.0)
    rot = qslerp(a, b, np.broadcast_to(w[:, None], a.shape[:2]))
    root = raw.root_translation + w[:, None] * (np.asarray(done.root_translation) - raw.root_translation)
    return join_tail(clip, start, _with_motion(raw, rot, root))


# ---- refining a stretch of a take ------------------------------------------------------------
def check_range(frames: tuple[int, int], num_frames: int) -> tuple[int, int]:
    a, b = int(frames[0]), int(frames[1])
    if not 0 <= a < b <= num_frames or b - a < 2:
        raise IrmogenError(f"frames: {a}:{b} is not a range of at least 2 frames inside the take's 0:{num_frames}")
    return a, b


def parse_frames(text: str) -> tuple[int, int]:
    """'A:B' -> (A, B): frames A (included) to B (excluded), 0-based."""
    try:
        a, b = (int(s) for s in str(text).split(":"))
    except ValueError:
        raise IrmogenError(f"--frames: {text!r} must be two whole numbers A:B "
                           "(frame A up to, not including, B)") from None
    return a, b


def _edge_weights(n: int, blend_in: bool, blend_out: bool, edge: int) -> np.ndarray:
    """(n,) weight of the new motion inside the range: eases in and out over `edge` frames."""
    w = np.ones(n)
    k = min(edge, n // 2)
    if k > 0:
        ramp = 1.0 - _smooth_weights(k)
        if blend_in:
            w[:k] = np.minimum(w[:k], ramp)
        if blend_out:
            w[n - k:] = np.minimum(w[n - k:], ramp[::-1])
    return w


def splice(take: Clip, new: Clip, frames: tuple[int, int], part: str = "whole",
           edge_frames: int = EDGE_BLEND_FRAMES) -> Clip:
    """The take with frames [A, B) of the joints of `part` replaced by `new` (time-fitted to B - A
    frames, placed where the take is at frame A). Frames outside the range and joints outside the
    part (their rotations, and positions unless a moved parent carries them) are bit-identical to
    the take; the new stretch blends into the take over `edge_frames` frames inside the range at
    each end that borders untouched frames."""
    a, b = check_range(frames, take.num_frames)
    joints, owns_root = part_joints(part)
    n = b - a
    new = on_body(fit_length(new, n) if new.num_frames != n else new, take.offsets)
    new = place(new, heading_at(take, a), np.asarray(take.root_translation[a], np.float64)[[0, 2]])
    w = _edge_weights(n, a > 0, b < take.num_frames, edge_frames)
    js = list(joints)
    old_rot = qcontinuous(np.asarray(take.rotations[a:b, js], np.float64), axis=0)
    new_rot = np.asarray(new.rotations, np.float64)[:, js]
    new_rot = new_rot * np.where(np.sum(old_rot * new_rot, axis=-1, keepdims=True) < 0, -1.0, 1.0)
    mixed = qslerp(old_rot, new_rot, np.broadcast_to(w[:, None], (n, len(js))))
    out_rot, out_root, out_pos = (np.array(take.rotations), np.array(take.root_translation),
                                  np.array(take.positions))
    out_rot[a:b, js] = mixed  # only the part's joints: the others keep their exact values
    if owns_root:
        root = np.asarray(take.root_translation[a:b], np.float64)
        out_root[a:b] = root + w[:, None] * (np.asarray(new.root_translation, np.float64) - root)
    moved = moved_joints(joints, owns_root)
    out_pos[a:b, moved] = forward_kinematics(take.offsets, out_rot[a:b], out_root[a:b])[:, moved]
    return take.with_(rotations=out_rot, root_translation=out_root, positions=out_pos, features=None)


def moved_joints(joints, owns_root: bool) -> list[int]:
    """The joints whose positions change when `joints` rotate (and the root moves, if owned): those
    and everything below them. The others keep their stored positions exactly."""
    if owns_root:
        return list(range(len(PARENTS)))
    moved: set[int] = set()
    for j, parent in enumerate(PARENTS):   # parents come before their children
        if j in joints or parent in moved:
            moved.add(j)
    return sorted(moved)


def window(clip: Clip, frames: tuple[int, int]) -> Clip:
    """Frames [A, B) of a clip as a clip of their own."""
    a, b = frames
    return clip.with_(rotations=clip.rotations[a:b], root_translation=clip.root_translation[a:b],
                      positions=clip.positions[a:b], features=None)


MAX_RANGE_FRAMES = 197     # one refinement reads at most 49 codes (9.8 s at 20 fps) + the end frame


def refine_stretch(take: Clip, frames: tuple[int, int] | None, part: str, refine_fn) -> tuple[Clip, dict]:
    """Refine frames [A, B) and/or one body part of a take; everything else stays bit-identical.

    `refine_fn(window_clip, seconds) -> new clip` is the ordinary refinement (cleanup included), run
    on the range alone and asked for a motion as long as the range."""
    lo, hi = check_range(frames if frames is not None else (0, take.num_frames), take.num_frames)
    part_joints(part)
    if hi - lo < 5:
        raise IrmogenError(f"frames {lo}:{hi}: the model needs at least 5 frames to read a motion")
    if hi - lo > MAX_RANGE_FRAMES:
        raise IrmogenError(f"frames {lo}:{hi} are {hi - lo} frames; one refinement covers at most "
                           f"{MAX_RANGE_FRAMES - 1} ({(MAX_RANGE_FRAMES - 1) / take.fps:g} s)",
                           hint="refine a long take in several ranges")
    new = refine_fn(window(take, (lo, hi)), min(hi - lo, MAX_RANGE_FRAMES - 1) / take.fps)
    return splice(take, new, (lo, hi), part), {"frames": [lo, hi], "part": part}


# ---- seam figures ----------------------------------------------------------------------------
def frame_jumps(clip: Clip) -> np.ndarray:
    """(T-1,) largest joint displacement (metres) between each frame and the next."""
    p = np.asarray(clip.positions, np.float64)
    return np.linalg.norm(np.diff(p, axis=0), axis=-1).max(axis=1)


def seam_report(clip: Clip, seams: list[int], window: int | None = None) -> dict:
    """Largest joint jump (metres per frame) across each seam (frame s-1 -> s) and over each
    transition (the seam and the `window` blended frames after it), against the largest jump
    everywhere else (inside the parts)."""
    jumps = frame_jumps(clip)
    window = int(round(SEAM_BLEND_SECONDS * clip.fps)) if window is None else int(window)
    seams = [int(s) for s in seams if 0 < s < clip.num_frames]
    near = sorted({i for s in seams for i in range(s - 1, min(s + window, len(jumps)))})
    inside = np.delete(jumps, near) if near else jumps
    return {"seam_max": float(max((jumps[s - 1] for s in seams), default=0.0)),
            "transition_max": float(jumps[near].max()) if near else 0.0,
            "within_max": float(inside.max()) if inside.size else 0.0, "seams": seams}

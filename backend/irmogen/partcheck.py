"""Is each part of a sequence really in its window of the clip? Measured, not eyeballed.

A part's caption names actions (engine.compare.caption_terms); each action has a measurable sign
in the part's frames: travel for gaits (the way the words say: ahead, back, to the side, round a
circle), a flight for jumps, heading change for turns, a pelvis drop for crouches and sitting, a
rise for standing up, a hand above the shoulders for waves, one foot lifted well above the other
for kicks, a wrist reaching out for punches, a still end for stopping. The signs reuse data.describe's facts where one
exists. Pure numpy; must not import torch or bpy.
"""
from __future__ import annotations

import re

import numpy as np

from .data.describe import describe, facing
from .engine.compare import caption_terms

PELVIS, NECK, L_WRIST, R_WRIST, L_ANKLE, R_ANKLE = 0, 12, 20, 21, 7, 8
TRAVEL_M = 0.5          # a gait part covers at least this much ground (metres of pelvis path)
SIDESTEP_M = 0.2        # a step to the side goes this much further across the body than ahead
TURN_DEG = 60.0         # a turn or spin changes heading by at least this much
CIRCLE_DEG = 180.0      # going in a circle turns the heading at least half way round
DROP_M = 0.15           # crouching / sitting lowers the pelvis by at least this much from standing
RISE_M = 0.15           # standing up raises it by at least this much within the part
KICK_M = 0.5            # a kicking foot rises this much higher than the other foot (a jump lifts both
                        # alike; a running swing reaches 0.48 m in DeepMimic's run)
STILL_MPS = 0.3         # a stopped body's pelvis moves slower than this over the part's last 0.5 s
PUNCH_M = 0.45          # a punching wrist gets at least this far from the neck (horizontally)
HOLD = 4                # frames a posture must hold


def _held(mask: np.ndarray, frames: int = HOLD) -> bool:
    run = 0
    for m in mask:
        run = run + 1 if m else 0
        if run >= frames:
            return True
    return False


def signs(positions: np.ndarray, fps: float, stand_height: float) -> dict[str, float]:
    """The measured figures of one window (metres, degrees, counts)."""
    p = np.asarray(positions, np.float64)
    f = describe(p, fps)
    floor = float(p[:, [7, 8, 10, 11], 1].min())
    pelvis = p[:, PELVIS, 1] - floor
    wrist_over = np.maximum(p[:, L_WRIST, 1], p[:, R_WRIST, 1]) - p[:, NECK, 1]
    ankles = p[:, [L_ANKLE, R_ANKLE], 1] - floor
    tail = p[-max(2, int(0.5 * fps)):, PELVIS][:, [0, 2]]
    tail_speed = float(np.linalg.norm(np.diff(tail, axis=0), axis=-1).sum() * fps / max(len(tail) - 1, 1))
    reach = np.linalg.norm((p[:, [L_WRIST, R_WRIST]] - p[:, NECK:NECK + 1])[..., [0, 2]], axis=-1).max()
    # Travel across the body (to its left or right, at each moment's facing) beyond travel ahead or
    # back: a sidestep, not a walk that drifts.
    fwd, step = facing(p)[:-1], np.diff(p[:, PELVIS][:, [0, 2]], axis=0)
    across = abs(float(np.sum(step[:, 0] * fwd[:, 1] - step[:, 1] * fwd[:, 0])))
    ahead = float(np.sum(step * fwd))
    return {
        "path": f.path_length, "distance": f.distance, "turn": f.turn_degrees, "jumps": float(f.jumps),
        "drop": float(stand_height - pelvis.min()), "rise": float(pelvis[-HOLD:].mean() - pelvis.min()),
        "hand_over_neck": float(wrist_over.max()) if _held(wrist_over > 0) else float(min(wrist_over.max(), 0.0)),
        "kick": float(np.abs(ankles[:, 0] - ankles[:, 1]).max()), "end_speed": tail_speed, "reach": float(reach),
        "crouches": float(f.crouches), "sideways": across - abs(ahead), "ahead": ahead, "back": -ahead,
    }


# action class (engine.compare) -> (figure, threshold, "min" = figure must reach it / "max" = stay under)
_TESTS = {
    "walk": ("path", TRAVEL_M, "min"), "jog": ("path", TRAVEL_M, "min"), "run": ("path", TRAVEL_M, "min"),
    "sneak": ("path", TRAVEL_M, "min"), "crawl": ("path", TRAVEL_M, "min"), "hop": ("jumps", 1, "min"),
    "jump": ("jumps", 1, "min"), "turn": ("turn", TURN_DEG, "abs"), "squat": ("drop", DROP_M, "min"),
    "sit": ("drop", DROP_M, "min"), "get up": ("rise", RISE_M, "min"), "wave": ("hand_over_neck", 0.0, "above"),
    "raise": ("hand_over_neck", 0.0, "above"), "kick": ("kick", KICK_M, "min"), "punch": ("reach", PUNCH_M, "min"),
}


_GAITS = ("walk", "jog", "run", "sneak", "crawl")
_DIRECTIONS = [   # (words, (figure, threshold, how)), the first that matches applies
    (r"\b(?:in a circle|around in a circle|circles?)\b", ("turn", CIRCLE_DEG, "abs")),
    (r"\b(?:sideways|to the side|sidesteps?)\b", ("sideways", SIDESTEP_M, "min")),
    (r"\bbackwards?\b", ("back", TRAVEL_M, "min")),
    (r"\bforwards?\b", ("ahead", TRAVEL_M, "min")),
]


def expected(caption: str) -> list[tuple[str, str, float, str]]:
    """(action, figure, threshold, how) the caption's actions should show; "stop" is read from the words."""
    terms = caption_terms(caption)
    out = [(a, *_TESTS[a]) for a in dict.fromkeys(terms.actions) if a in _TESTS]
    words = caption.lower()
    if " stop" in f" {words}":
        out.append(("stop", "end_speed", STILL_MPS, "max"))
    # A gait that names its direction must go that way (relative to where the body faces), not
    # only cover ground: "walks backward" done as a walk forward is not there.
    for word, test in _DIRECTIONS:
        if re.search(word, words):
            out = [(a, *test) if a in _GAITS else (a, f, t, h) for a, f, t, h in out]
            break
    return out


def _passes(value: float, threshold: float, how: str) -> bool:
    if how == "abs":
        return abs(value) >= threshold
    if how == "max":
        return value <= threshold
    if how == "above":
        return value > threshold
    return value >= threshold


def check_parts(clip, parts: list[dict]) -> list[dict]:
    """Per part (dicts with caption, start, frames as the sequence transcript writes them): every
    expected action with its measured figure and whether it is there."""
    p = np.asarray(clip.positions, np.float64)
    floor = float(p[:, [7, 8, 10, 11], 1].min())
    stand = float(np.percentile(p[:, PELVIS, 1] - floor, 90))
    out = []
    for part in parts:
        a, b = int(part["start"]), int(part["start"]) + int(part["frames"])
        figures = signs(p[a:b], clip.fps, stand)
        checks = [{"action": act, "figure": fig, "value": round(figures[fig], 3), "threshold": thr,
                   "ok": _passes(figures[fig], thr, how)} for act, fig, thr, how in expected(part["caption"])]
        out.append({"caption": part["caption"], "frames": [a, b], "checks": checks,
                    "ok": bool(checks) and all(c["ok"] for c in checks)})
    return out

"""Timeline arithmetic of Extend and range Refine: which frames of a take's clip a scene frame range
covers, and what a refine request says about the range and the body part.

A take's keys start at its NLA strip's first frame and run at the scene's frame rate, while its
clip runs at the clip's own rate (20 fps for generated motion); the animator picks scene frames
(the preview range or two numbers), the backend works on clip frames. Imports bpy, the stdlib
and the add-on's `protocol` and `takes` only (no numpy: this is plain index arithmetic).
"""
from __future__ import annotations

from . import protocol, takes

RANGES = [
    ("TAKE", "Whole Take", "Refine the whole take"),
    ("PREVIEW", "Preview Range", "Refine the scene's preview range (Timeline > View > Set Preview Range)"),
    ("FRAMES", "Frames", "Refine the frames given below (scene frames, end included)"),
]
BODY_PARTS = [
    ("whole", "Whole Body", "Every joint and the root motion"),
    ("upper", "Upper Body", "Spine, head and arms; the legs and the root motion stay"),
    ("lower", "Lower Body", "Legs and the root motion; spine, head and arms stay"),
    ("arms", "Arms", "Collars, shoulders, elbows and wrists only"),
    ("legs", "Legs", "Hips, knees, ankles and feet only; the root motion stays"),
]


class RangeError(ValueError):
    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


def scene_range(scene, mode: str, first: int, last: int) -> tuple[int, int] | None:
    """The scene frames (first, last, both included) the animator picked, or None for the whole take."""
    if mode == "TAKE":
        return None
    if mode == "PREVIEW":
        if not scene.use_preview_range:
            raise RangeError("the scene has no preview range",
                             "Set one in the Timeline (View > Set Preview Range, or Ctrl P), or type the frames")
        return int(scene.frame_preview_start), int(scene.frame_preview_end)
    return int(first), int(last)


def clip_frames(first: int, last: int, strip_start: float, scene_fps: float, clip_fps: float,
                num_frames: int) -> tuple[int, int]:
    """Scene frames first..last (included) of a take starting at `strip_start` -> clip frames [A, B),
    refused unless they overlap the take by at least protocol.MIN_RANGE_FRAMES clip frames."""
    if last < first:
        raise RangeError(f"frames {first}-{last}: the end comes before the start")
    ratio = float(clip_fps) / float(scene_fps)
    a = max(0, int(round((first - strip_start) * ratio)))
    b = min(num_frames, int(round((last + 1 - strip_start) * ratio)))
    if b - a < protocol.MIN_RANGE_FRAMES:
        end = strip_start + (num_frames / ratio) - 1
        raise RangeError(f"frames {first}-{last} cover {max(b - a, 0)} frame(s) of the take (it spans scene "
                         f"frames {strip_start:g}-{end:.0f}); a range needs at least {protocol.MIN_RANGE_FRAMES}",
                         "Pick a range inside the take")
    return a, b


def refine_where(scene, obj, take, clip: dict, mode: str, first: int, last: int, part: str) -> dict:
    """The refine params for the picked range and body part ({} for the whole take, whole body):
    {"frames": [A, B], "part": part} in the take's clip frames."""
    picked = scene_range(scene, mode, first, last)
    if picked is None and part == "whole":
        return {}
    where = {"part": part}
    if picked is not None:
        strip = takes.take_strip(obj, take)
        start = strip.frame_start if strip is not None else scene.frame_current
        fps = scene.render.fps / scene.render.fps_base
        where["frames"] = list(clip_frames(*picked, start, fps, clip["fps"], len(clip["positions"])))
    return where


def range_seconds(where: dict, clip: dict) -> float:
    """How much motion the model is asked to refine: the range's length (the whole clip without
    one), refused above what one refinement covers (protocol.MAX_SECONDS)."""
    a, b = where.get("frames", (0, len(clip["positions"])))
    seconds = (b - a) / float(clip["fps"])
    if seconds > protocol.MAX_SECONDS + 1e-6:
        raise RangeError(f"the range is {seconds:.1f} s; the model refines at most {protocol.MAX_SECONDS:g} s "
                         "at a time",
                         "Refine it in several shorter ranges")
    return seconds

"""Takes: every generation, refinement or applied clip becomes a NEW action on the armature.

A take is an action carrying `irmogen_*` custom properties (prompt, model, seed, transcript JSON,
parent take, rounds, date, ...) and the clips it was made from (packed in the .blend, so Refine and
Use Round work after the file moves). It lives ONLY as an NLA strip at the playhead on its own
track, with the blend type and extrapolation set explicitly, so "Nothing" and "Combine" mean what
they say. The animator's own active action is pushed down to an NLA track first (as Blender's Push
Down does): it keeps a user, saved and reopened, and plays wherever the take is absent. The take
that plays is the one whose track is unmuted (one at a time: picking a take solos it among the
IRMoGen tracks). Action-API details live in `keying`; imports bpy, numpy and `keying` only.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import keying

PREFIX = "irmogen_"
TRACK_PREFIX = "IRMoGen "
CLIPS_KEY = "_irmogen_clips"   # {name: clip .npz bytes}; a leading "_" hides it from the UI
KIND_LABELS = {"generate": "generated", "refine": "refined", "round": "round", "clip": "applied",
               "extend": "extended", "cleaned": "cleaned"}


@dataclass
class TakeInfo:
    """What a take remembers about where it came from (stored as custom properties)."""
    prompt: str = ""
    kind: str = "generate"          # generate | refine | round | clip | extend | cleaned (KIND_LABELS)
    model: str = ""
    seed: int = 0
    rounds: int = 0                 # reasoning rounds the backend ran
    round_used: int = -1            # which round's motion this take shows (-1: the final one)
    transcript: str = "{}"          # JSON: {"analysis", "rounds": [{round, assessment, refinement, clip}]}
    parent: str = ""                # name of the take this one refines or derives from
    source: str = ""                # clip file the keys were made from
    armature: str = ""
    date: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class PoseTracks:
    """Keys for one take: frames (F,) scene frames from 0, rotations {bone: (F, 4) wxyz},
    locations {bone: (F, 3)} in bone (pose channel) space."""
    frames: np.ndarray
    rotations: dict
    locations: dict


def write_info(action, info: TakeInfo) -> None:
    for key, value in asdict(info).items():
        if key == "extra":
            value = json.dumps(value)
        action[PREFIX + key] = value


def read_info(action) -> TakeInfo:
    fields = {}
    for key in TakeInfo.__dataclass_fields__:
        if PREFIX + key in action:
            value = action[PREFIX + key]
            fields[key] = json.loads(value) if key == "extra" else value
    return TakeInfo(**fields)


def is_take(action) -> bool:
    return action is not None and PREFIX + "kind" in action


def takes_of(obj) -> list:
    """The takes made on this armature, oldest first."""
    return [a for a in _all_actions() if is_take(a) and a.get(PREFIX + "armature") == obj.name]


def _all_actions():
    import bpy

    return bpy.data.actions


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def _take_name(info: TakeInfo) -> str:
    """A unique readable name: "IRM <n> <kind>: <first words of the prompt>"."""
    words = " ".join(info.prompt.split()[:6])[:40] or "motion"
    n = 1 + sum(1 for a in _all_actions() if is_take(a))
    while True:
        name = f"IRM {n} {kind_label(info.kind)}: {words}"
        if name not in _all_actions():
            return name
        n += 1


def pack_clip(action, name: str, data: bytes) -> None:
    """Store a clip file's bytes inside the take (saved in the .blend)."""
    clips = dict(action.get(CLIPS_KEY, {}))
    clips[name] = data
    action[CLIPS_KEY] = clips


def packed_clip(action, name: str) -> bytes | None:
    clips = action.get(CLIPS_KEY)
    if clips is None or name not in clips:
        return None
    return bytes(clips[name])


def push_down_user_action(obj):
    """Move the armature's active action, if it is the animator's own, onto an NLA track of its own
    (its blend type and extrapolation kept), as Blender's Push Down does; -> the strip."""
    ad = obj.animation_data
    action = ad.action if ad else None
    if action is None:
        return None
    if is_take(action):             # files made before takes lived on the NLA only
        keying.assign_action(obj, None)
        return None
    start = int(round(keying.frame_range(action)[0]))
    strip = keying.push_nla_strip(obj, action, action.name, start, ad.action_blend_type, ad.action_extrapolation,
                                  slot=keying.active_slot(obj))
    keying.assign_action(obj, None)
    return strip


def create_take(obj, tracks: PoseTracks, info: TakeInfo, *, start_frame: int,
                blend_type: str = "COMBINE", extrapolation: str = "NOTHING", clips: dict | None = None):
    """Key a new action from `tracks` at `start_frame` and put it on its own NLA track.

    Each bone is keyed in its own rotation mode (see keying.key_pose). The animator's active action
    is pushed down first; older IRMoGen tracks on the armature are muted so the newest take is
    what plays; the animator's own tracks are left alone. `clips` ({name: .npz bytes}) are packed
    into the take. Returns the new action.
    """
    info.armature = obj.name
    info.date = info.date or time.strftime("%Y-%m-%d %H:%M")
    for bone in list(tracks.rotations) + list(tracks.locations):
        if obj.pose.bones.get(bone) is None:
            raise ValueError(f"armature '{obj.name}' has no bone '{bone}'")
    action = keying.new_action(_take_name(info))
    frames = np.asarray(tracks.frames, np.float64)
    frames = frames - frames[0] + start_frame
    keying.key_pose(action, obj, frames, tracks.rotations, tracks.locations)
    write_info(action, info)
    for name, data in (clips or {}).items():
        pack_clip(action, name, data)
    obj.animation_data_create()
    push_down_user_action(obj)
    keying.push_nla_strip(obj, action, TRACK_PREFIX + action.name, start_frame, blend_type, extrapolation)
    activate(obj, action)
    return action


def take_strip(obj, action):
    """The NLA strip that holds this take on the armature, or None."""
    ad = obj.animation_data
    for track in (ad.nla_tracks if ad else ()):
        for strip in track.strips:
            if strip.action == action:
                return strip
    return None


def activate(obj, action) -> None:
    """Make a take the one that plays: unmute its track, mute the other IRMoGen tracks."""
    strip = take_strip(obj, action)
    for track in obj.animation_data.nla_tracks:
        if track.name.startswith(TRACK_PREFIX):
            track.mute = strip is None or strip not in track.strips.values()


def current_take(obj):
    """The take that plays on `obj` (its unmuted IRMoGen track's), else None."""
    ad = obj.animation_data if obj is not None else None
    if ad is not None and is_take(ad.action):
        return ad.action
    for track in reversed(list(ad.nla_tracks) if ad else []):
        if track.name.startswith(TRACK_PREFIX) and not track.mute:
            for strip in track.strips:
                if is_take(strip.action):
                    return strip.action
    return None

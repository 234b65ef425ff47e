"""Takes: every generation, refinement or applied clip becomes a NEW action on the armature.

A take is an action carrying `irmogen_*` custom properties (prompt, model, seed, transcript JSON,
parent take, rounds, date, ...). It is assigned to the armature as its active action and also
pushed as an NLA strip at the playhead on its own track, with the blend type and extrapolation
set explicitly. A user's own animation is never overwritten. Action-API details live in
`keying`; this module imports bpy, numpy and the add-on's keying only.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import keying

PREFIX = "irmogen_"
TRACK_PREFIX = "IRMoGen "


@dataclass
class TakeInfo:
    """What a take remembers about where it came from (stored as custom properties)."""
    prompt: str = ""
    kind: str = "generate"          # generate | refine | round | clip
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


def _take_name(info: TakeInfo) -> str:
    words = " ".join(info.prompt.split()[:5]) or info.kind
    return f"IRM {words}"


def create_take(obj, tracks: PoseTracks, info: TakeInfo, *, start_frame: int,
                blend_type: str = "COMBINE", extrapolation: str = "NOTHING"):
    """Key a new action from `tracks` at `start_frame`, assign it to `obj`, push it on the NLA.

    Each bone is keyed in its own rotation mode (see keying.key_pose). Older IRMoGen tracks on the
    armature are muted so the newest take is what plays; the user's own tracks are left alone.
    Returns the new action.
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
    keying.assign_action(obj, action)
    ad = obj.animation_data
    for track in ad.nla_tracks:
        if track.name.startswith(TRACK_PREFIX):
            track.mute = True
    keying.push_nla_strip(obj, action, TRACK_PREFIX + action.name, start_frame, blend_type, extrapolation)
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
    """Make an existing take the armature's active motion: assign it and unmute only its track."""
    keying.assign_action(obj, action)
    strip = take_strip(obj, action)
    for track in obj.animation_data.nla_tracks:
        if track.name.startswith(TRACK_PREFIX):
            track.mute = strip is None or strip not in track.strips.values()

"""Scene settings (`scene.irmogen`) and the live job state the panel draws.

The settings are read by operators into the plain `Settings` dataclass; the live state (status,
progress, transcript rounds, last error) is written on the main thread from backend events, so the
panel only draws stored values. Imports bpy, the stdlib and `takeview` (picking a take); never
`jobs`, which imports this module.
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from . import takeview, timeline

BLEND_TYPES = [
    ("COMBINE", "Combine", "Quaternion-aware layering over the tracks below (good for takes)"),
    ("REPLACE", "Replace", "The take replaces what the tracks below do"),
    ("ADD", "Add", "Add the take's values to the tracks below"),
]
EXTRAPOLATIONS = [
    ("NOTHING", "Nothing", "The take has no effect outside its own frame range"),
    ("HOLD_FORWARD", "Hold Forward", "Hold the last pose after the take ends"),
    ("HOLD", "Hold", "Hold the first pose before and the last pose after the take"),
]
ROOT_MODES = [
    ("HIPS", "On the hips", "Root motion moves the hips bone"),
    ("ROOT_BONE", "On a root bone", "Root motion moves the armature's root bone (game engines)"),
    ("IN_PLACE", "In place", "No horizontal root motion"),
]
AUTO_RIG_MAP = "AUTO"
# Items of the bone-map menu: Blender needs the item strings kept alive by Python, so the list is
# module state, filled once at registration from the add-on's rigs folder (never while drawing).
_RIG_MAP_ITEMS: list[tuple[str, str, str]] = [(AUTO_RIG_MAP, "Auto-detect", "Pick the bone map that finds most joints")]


def _rig_map_items(self, context):
    return _RIG_MAP_ITEMS


def set_rig_maps(maps: dict) -> None:
    """The bone maps the menu offers besides auto-detection: {name: rigmap.RigMap}."""
    del _RIG_MAP_ITEMS[1:]
    _RIG_MAP_ITEMS.extend((name, name, m.description or name) for name, m in sorted(maps.items()))


def _pick_take(self, context) -> None:
    # A named module function, defined before the class: Blender evaluates the (string) annotations
    # in a namespace of its own, where a lambda's module names are not found at call time.
    takeview.pick(context)


class IRMOGEN_PG_round(bpy.types.PropertyGroup):
    """One reasoning round of the live job, as the backend reported it."""
    index: IntProperty()
    analysis: StringProperty()
    assessment: StringProperty()
    refinement: StringProperty()
    has_motion: BoolProperty()
    part: IntProperty(default=-1)      # the prompt part (0-based) of a sequence's round; -1: one motion
    part_round: IntProperty()          # the model's own round number within that part
    caption: StringProperty()          # the part's caption
    assessed_by: StringProperty()      # who wrote the assessment: "model" or "measured"
    contradicted: StringProperty()     # JSON [{"clause", "fact"}]: the model's clauses measurements contradict


class IRMOGEN_PG_settings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="What the character should do",
                           default="a person walks forward and waves")
    seconds: FloatProperty(name="Duration", description="Length of the motion, exact to the frame, up to 60 s "
                           "(0: the model decides). Longer than 9.8 s is continued part by part",
                           default=4.0, min=0.0, max=60.0, soft_max=20.0, unit="TIME_ABSOLUTE")
    max_rounds: IntProperty(name="Max Rounds", description="Most generate-assess-refine rounds",
                            default=3, min=1, max=10)
    seed: IntProperty(name="Seed", default=0, min=0)
    cleanup_feet: BoolProperty(name="Clean Up Feet", default=True,
                               description="Lock planted feet, remove foot sliding and ground penetration "
                               "from generated and refined motion (the backend's foot contact cleanup)")
    variations: IntProperty(name="Variations", description="Takes to make from the prompt, one per seed",
                            default=1, min=1, max=8)
    instruction: StringProperty(name="Instruction", description="How to change the selected take",
                                default="raise the arms higher")
    extend_text: StringProperty(name="Next", description="What happens after the selected take (Extend)",
                                default="then waves with the right hand")
    extend_seconds: FloatProperty(name="By", description="Length of the new motion (0: the model decides)",
                                  default=3.0, min=0.0, max=60.0, soft_max=20.0, unit="TIME_ABSOLUTE")
    refine_range: EnumProperty(name="Range", items=timeline.RANGES, default="TAKE",
                               description="Which frames of the take Refine changes; the others stay as they are")
    range_first: IntProperty(name="From", description="First scene frame to refine", default=1)
    range_last: IntProperty(name="To", description="Last scene frame to refine (included)", default=40)
    body_part: EnumProperty(name="Body Part", items=timeline.BODY_PARTS, default="whole",
                            description="Which joints Refine changes; the others stay as they are")
    take_index: IntProperty(name="Take", default=-1, update=_pick_take,
                            description="The take that plays, is exported and refined")
    blend_type: EnumProperty(name="Blend", items=BLEND_TYPES, default="COMBINE",
                             description="NLA blend type of new takes")
    extrapolation: EnumProperty(name="Extrapolation", items=EXTRAPOLATIONS, default="NOTHING",
                                description="NLA extrapolation of new takes")
    root_mode: EnumProperty(name="Root Motion", items=ROOT_MODES, default="HIPS")
    rig_map: EnumProperty(name="Bone Map", items=_rig_map_items,
                          description="Which rig's bone names to use (rigs/*.toml); auto-detect by default")
    # What the last retarget found on the armature: the bone map's report and constraint warnings.
    rig_armature: StringProperty()
    rig_report: StringProperty()
    rig_warnings: StringProperty(description="One warning per line")
    # Live job state, written from backend events on the main thread.
    running: BoolProperty()
    status: StringProperty()
    progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR")
    analysis: StringProperty()
    rounds: CollectionProperty(type=IRMOGEN_PG_round)
    transcript_take: StringProperty(description="The take whose rounds are shown (empty while a job runs)")
    error_message: StringProperty()
    error_hint: StringProperty()
    error_fix: StringProperty(description="Operator that fixes the last error, if one exists")
    warnings: StringProperty(description="The last job's warnings (the backend's and the add-on's), one per line")


@dataclass
class Settings:
    """A plain copy of `scene.irmogen` that operators hand to the logic."""
    prompt: str
    seconds: float
    max_rounds: int
    seed: int
    variations: int
    instruction: str
    blend_type: str
    extrapolation: str
    root_mode: str
    refine_range: str = "TAKE"     # timeline.RANGES
    range_first: int = 1
    range_last: int = 40
    body_part: str = "whole"       # timeline.BODY_PARTS
    cleanup: bool = True           # foot contact cleanup of generated and refined motion


def read(scene) -> Settings:
    p = scene.irmogen
    return Settings(prompt=p.prompt, seconds=p.seconds, max_rounds=p.max_rounds, seed=p.seed,
                    variations=p.variations, instruction=p.instruction, blend_type=p.blend_type,
                    extrapolation=p.extrapolation, root_mode=p.root_mode, refine_range=p.refine_range,
                    range_first=p.range_first, range_last=p.range_last, body_part=p.body_part,
                    cleanup=p.cleanup_feet)


def clear_error(scene) -> None:
    p = scene.irmogen
    p.error_message = p.error_hint = p.error_fix = ""


def show_error(scene, message: str, hint: str = "", fix: str = "") -> None:
    p = scene.irmogen
    p.error_message, p.error_hint, p.error_fix = message, hint or "", fix or ""


def show_rig(scene, armature: str, report: str, warnings: list[str]) -> None:
    p = scene.irmogen
    p.rig_armature, p.rig_report, p.rig_warnings = armature, report, "\n".join(warnings)


classes = (IRMOGEN_PG_round, IRMOGEN_PG_settings)


def register() -> None:
    bpy.types.Scene.irmogen = PointerProperty(type=IRMOGEN_PG_settings)


def unregister() -> None:
    del bpy.types.Scene.irmogen

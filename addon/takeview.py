"""Which take the panel shows: picking a row of the takes list makes that take the one that plays
(its track solo among the IRMoGen tracks, the animator's own tracks untouched) and fills the
Reasoning panel with its rounds.

Kept apart from `jobs` so that `properties` (whose take_index update calls `pick`) and `jobs`
(which imports `properties`) do not import each other. Imports bpy and the add-on's `takes` only.
"""
from __future__ import annotations

import json

import bpy

from . import takes


def transcript(info: takes.TakeInfo) -> dict:
    """A take's transcript JSON as a dict ({} when absent or unreadable)."""
    try:
        data = json.loads(info.transcript or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def fill_rounds(live, rounds: list[dict]) -> None:
    """Copy rounds ({round, assessment, refinement, clip, assessed_by, contradicted}; a sequence's
    also part, part_round, caption) into the panel's round list."""
    live.rounds.clear()
    for k, r in enumerate(rounds):
        item = live.rounds.add()
        item.index = int(r.get("round", k))
        item.assessment = str(r.get("assessment") or "")
        item.refinement = str(r.get("refinement") or "")
        item.has_motion = bool(r.get("clip") or r.get("motion"))
        item.part = int(r.get("part", -1))
        item.part_round = int(r.get("part_round", item.index))
        item.caption = str(r.get("caption") or "")
        item.assessed_by = str(r.get("assessed_by") or "")
        marks = r.get("contradicted")
        item.contradicted = json.dumps([m for m in marks if isinstance(m, dict)] if isinstance(marks, list) else [])


def show_take(scene, take) -> None:
    """Show a take's transcript in the panel (the rounds with their "use this motion" buttons)."""
    data = transcript(takes.read_info(take))
    live = scene.irmogen
    live.analysis = data.get("analysis", "")
    live.transcript_take = take.name
    fill_rounds(live, data.get("rounds", []))


def select(scene, take) -> None:
    """Point the takes list at `take` without re-running the pick callback's side effects twice."""
    index = bpy.data.actions.find(take.name)
    if scene.irmogen.take_index != index:
        scene.irmogen.take_index = index


def pick(context) -> None:
    """The take_index update: the picked take plays (solo among takes), is exported and refined,
    and its rounds are shown. Rows of other armatures' takes only show their rounds."""
    scene = context.scene
    index = scene.irmogen.take_index
    actions = bpy.data.actions
    if not 0 <= index < len(actions) or not takes.is_take(actions[index]):
        return
    take = actions[index]
    obj = bpy.data.objects.get(take.get(takes.PREFIX + "armature", ""))
    if obj is not None and obj.type == "ARMATURE":
        takes.activate(obj, take)
    if not scene.irmogen.running:
        show_take(scene, take)

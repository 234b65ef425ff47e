"""The IRMoGen sidebar tab in the 3D View: prompt, live transcript, takes, export, rig.

`draw()` only draws state that is already stored (scene.irmogen, the takes' custom properties):
no subprocess, no file I/O, no numpy. Imports bpy and the add-on's `takes` only.
"""
from __future__ import annotations

import json

import bpy

from . import takes


class _Sidebar:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "IRMoGen"


def _wrapped(layout, text: str, width: int = 48, icon: str = "NONE") -> None:
    """Draw a long text as several labels (Blender labels do not wrap)."""
    words, line, first = text.split(), "", True
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            layout.label(text=line, icon=icon if first else "BLANK1")
            line, first = word, False
        else:
            line = f"{line} {word}".strip()
    if line:
        layout.label(text=line, icon=icon if first else "BLANK1")


# Who wrote a round's assessment (the backend's `assessed_by`), as the panel names it, with its icon.
AUTHORS = {"model": ("by the model", "TEXT"), "measured": ("measured", "DRIVER_DISTANCE")}


def round_headings(rounds) -> list[tuple[str, str]]:
    """(part heading or "", round title) per round. A sequence's rounds come grouped by prompt part:
    the first round of each part is headed by the part's caption, and rounds count from 1 in each."""
    out, shown = [], -1
    for r in rounds:
        if r.part < 0:
            out.append(("", f"Round {r.index}"))
            continue
        out.append((f"Part {r.part + 1}: {r.caption}" if r.part != shown else "", f"Round {r.part_round}"))
        shown = r.part
    return out


def assessment_lines(r) -> list[tuple[str, str]]:
    """(text, icon) lines of a round's assessment: who wrote it, then each clause of it that the
    motion's measurements contradict, marked with the measured fact (assessor "checked")."""
    if not r.assessment:
        return []
    who, icon = AUTHORS.get(r.assessed_by or "model", (r.assessed_by, "TEXT"))
    lines = [(f"Assessment ({who}): {r.assessment}", icon)]
    try:
        marks = json.loads(r.contradicted or "[]")
    except ValueError:
        marks = []
    for m in marks:
        lines.append((f"Contradicted: \"{m.get('clause', '')}\" ({m.get('fact', 'measured')})", "ERROR"))
    return lines


class IRMOGEN_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "IRMoGen"

    def draw(self, context):
        layout = self.layout
        p = context.scene.irmogen
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            row = layout.row()
            row.label(text="Select an armature", icon="ARMATURE_DATA")
            row.operator("irmogen.add_mannequin", text="Add Mannequin", icon="OUTLINER_OB_ARMATURE")
        layout.prop(p, "prompt", text="")
        col = layout.column(align=True)
        col.prop(p, "seconds")
        col.prop(p, "max_rounds")
        row = col.row(align=True)
        row.prop(p, "seed")
        row.prop(p, "variations")
        layout.prop(p, "cleanup_feet")
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("irmogen.generate", icon="PLAY")
        sub = row.row(align=True)
        sub.enabled = p.running
        sub.operator("irmogen.cancel", text="", icon="CANCEL")
        if p.running or p.status:
            if hasattr(layout, "progress"):
                layout.progress(factor=p.progress, type="BAR", text=p.status or "Working")
            else:
                layout.label(text=f"{p.status} {p.progress * 100:.0f}%")
        if p.error_message:
            box = layout.box()
            box.alert = True
            _wrapped(box, p.error_message, icon="ERROR")
            if p.error_hint:
                _wrapped(box, p.error_hint, icon="INFO")
            if p.error_fix:
                box.operator(p.error_fix)
        if p.warnings:
            box = layout.box()
            for note in p.warnings.splitlines():
                _wrapped(box, note, icon="ERROR")


class IRMOGEN_PT_transcript(_Sidebar, bpy.types.Panel):
    bl_label = "Reasoning"
    bl_parent_id = "IRMOGEN_PT_main"

    def draw(self, context):
        layout = self.layout
        p = context.scene.irmogen
        if not p.analysis and not len(p.rounds):
            layout.label(text="The model's reasoning appears here")
            return
        if p.analysis:
            box = layout.box()
            box.label(text="Goal analysis", icon="VIEWZOOM")
            for line in p.analysis.splitlines():   # a sequence: one line per part
                _wrapped(box, line)
        for r, (part, title) in zip(p.rounds, round_headings(p.rounds)):
            if part:
                layout.label(text=part, icon="SEQUENCE")
            box = layout.box()
            head = box.row()
            head.label(text=title, icon="FILE_REFRESH")
            if r.has_motion and p.transcript_take:
                op = head.operator("irmogen.use_round", text="Use", icon="ARMATURE_DATA")
                op.take, op.round = p.transcript_take, r.index
            for text, icon in assessment_lines(r):
                _wrapped(box, text, icon=icon)
            if r.refinement:
                _wrapped(box, f"Refinement: {r.refinement}")


class IRMOGEN_UL_takes(bpy.types.UIList):
    """The takes (actions made by IRMoGen) of the active armature: picking one makes it the take
    that plays, is exported and refined. Each row: kind, prompt, length."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        kind = takes.kind_label(item.get(takes.PREFIX + "kind", ""))   # the name holds kind and prompt
        start, end = item.frame_range
        fps = context.scene.render.fps / context.scene.render.fps_base
        row = layout.row(align=True)
        row.label(text=item.name, icon="ACTION")
        sub = row.row(align=True)
        sub.alignment = "RIGHT"
        sub.label(text=f"{kind} · {(end - start + 1) / fps:.1f} s")

    def filter_items(self, context, data, propname):
        actions = getattr(data, propname)
        obj = context.active_object
        name = obj.name if obj is not None else None
        flags = [self.bitflag_filter_item if takes.is_take(a) and a.get(takes.PREFIX + "armature") == name else 0
                 for a in actions]
        return flags, []


class IRMOGEN_PT_takes(_Sidebar, bpy.types.Panel):
    bl_label = "Takes"
    bl_parent_id = "IRMOGEN_PT_main"

    def draw(self, context):
        layout = self.layout
        p = context.scene.irmogen
        layout.template_list("IRMOGEN_UL_takes", "", bpy.data, "actions", p, "take_index", rows=4)
        row = layout.row(align=True)
        row.prop(p, "instruction", text="")
        row.operator("irmogen.refine", icon="MODIFIER")
        row = layout.row(align=True)
        row.prop(p, "refine_range", text="")
        row.prop(p, "body_part", text="")
        if p.refine_range == "FRAMES":
            row = layout.row(align=True)
            row.prop(p, "range_first")
            row.prop(p, "range_last")
        row = layout.row(align=True)
        row.prop(p, "extend_text", text="")
        row.prop(p, "extend_seconds")
        row.operator("irmogen.extend", icon="FORWARD")
        layout.operator("irmogen.clean_feet", icon="CON_FLOOR")
        col = layout.column(align=True)
        col.prop(p, "blend_type")
        col.prop(p, "extrapolation")
        col.prop(p, "root_mode")
        row = layout.row(align=True)
        row.operator("irmogen.apply_clip", text="Apply Clip", icon="IMPORT")
        row.operator("irmogen.export_fbx", text="FBX", icon="EXPORT")
        row.operator("irmogen.export_bvh", text="BVH", icon="EXPORT")


class IRMOGEN_PT_rig(_Sidebar, bpy.types.Panel):
    """The bone map: auto or picked by hand, and what the last retarget found on the armature."""
    bl_label = "Rig"
    bl_parent_id = "IRMOGEN_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        p = context.scene.irmogen
        layout.prop(p, "rig_map")
        if p.rig_report:
            box = layout.box()
            box.label(text=f"Last retarget: {p.rig_armature}", icon="ARMATURE_DATA")
            _wrapped(box, p.rig_report)
            for warning in p.rig_warnings.splitlines():
                _wrapped(box, warning, icon="ERROR")
        layout.operator("irmogen.add_mannequin", text="Add Mannequin", icon="OUTLINER_OB_ARMATURE")


classes = (IRMOGEN_UL_takes, IRMOGEN_PT_main, IRMOGEN_PT_transcript, IRMOGEN_PT_takes, IRMOGEN_PT_rig)

"""The bone-map editor: the 22 SMPL joints, each with a bone picker, stored on the armature.

`IRMOGEN_PG_bone_map` lives on the armature data (`Armature.irmogen_bone_map`), so the mapping is
saved with the .blend and follows the armature. Operators: Auto-detect (rig maps by names, then
the rig's shape), Clear (back to automatic detection at retarget time), Save Rig Map (the mapping
as a TOML rig map in the user's rigs folder, kept across reinstalls). The panel draws stored
values only. Imports bpy and the add-on's `bonemap`, `properties`, `retarget`.
"""
from __future__ import annotations

import re

import bpy
from bpy.props import PointerProperty, StringProperty

from . import bonemap, properties
from .retarget import JOINT_NAMES, RetargetError

# The editor's rows, grouped as an animator reads a body.
GROUPS = (
    ("Body", ("pelvis", "spine1", "spine2", "spine3", "neck", "head")),
    ("Left Arm", ("left_collar", "left_shoulder", "left_elbow", "left_wrist")),
    ("Right Arm", ("right_collar", "right_shoulder", "right_elbow", "right_wrist")),
    ("Left Leg", ("left_hip", "left_knee", "left_ankle", "left_foot")),
    ("Right Leg", ("right_hip", "right_knee", "right_ankle", "right_foot")),
)


def _label(joint: str) -> str:
    return joint.replace("_", " ").title()


IRMOGEN_PG_bone_map = type("IRMOGEN_PG_bone_map", (bpy.types.PropertyGroup,), {
    "__doc__": "Which bone plays each SMPL joint (empty: detected when a motion is applied)",
    "__annotations__": {
        **{j: StringProperty(name=_label(j), description=f"The bone that plays the SMPL joint '{j}'")
           for j in JOINT_NAMES},
        "root": StringProperty(name="Root", description="The rig's root bone, for root motion on a root bone"),
        "source": StringProperty(name="Source", description="Where the mapping came from"),
    },
})


def _armature(context):
    obj = context.active_object
    return obj if obj is not None and obj.type == "ARMATURE" else None


class _OnArmature:
    @classmethod
    def poll(cls, context):
        return _armature(context) is not None


class IRMOGEN_OT_detect_bones(_OnArmature, bpy.types.Operator):
    """Find the bone of each SMPL joint: known rigs by bone names, then by the rig's shape"""
    bl_idname = "irmogen.detect_bones"
    bl_label = "Auto-detect"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = _armature(context)
        override = context.scene.irmogen.rig_map
        try:
            found = bonemap.detect(obj, bonemap.rig_maps(),
                                   None if override == properties.AUTO_RIG_MAP else override)
        except RetargetError as e:
            self.report({"ERROR"}, e.message + (f" ({e.hint})" if e.hint else ""))
            return {"CANCELLED"}
        bonemap.store(obj, found)
        self.report({"INFO"}, found.report)
        return {"FINISHED"}


class IRMOGEN_OT_clear_bone_map(_OnArmature, bpy.types.Operator):
    """Forget the armature's bone map: it is detected again whenever a motion is applied"""
    bl_idname = "irmogen.clear_bone_map"
    bl_label = "Clear Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        bonemap.clear(_armature(context))
        return {"FINISHED"}


class IRMOGEN_OT_save_rig_map(_OnArmature, bpy.types.Operator):
    """Save this bone map as a rig map, used for every armature with these bone names"""
    bl_idname = "irmogen.save_rig_map"
    bl_label = "Save Rig Map..."
    name: StringProperty(name="Name", description="The rig map's name (letters, digits, _ - .)")
    description: StringProperty(name="Description", description="Shown in the Bone Map menu")

    def invoke(self, context, event):
        if not self.name:
            self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", _armature(context).name).strip("_.-") or "my_rig"
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        try:
            path = bonemap.save_map(_armature(context), self.name, self.description)
            properties.set_rig_maps(bonemap.rig_maps())
        except RetargetError as e:
            self.report({"ERROR"}, e.message)
            return {"CANCELLED"}
        self.report({"INFO"}, f"IRMoGen: rig map '{self.name}' saved to {path}")
        return {"FINISHED"}


class IRMOGEN_PT_bone_map(bpy.types.Panel):
    """The active armature's bone map: one bone picker per SMPL joint."""
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "IRMoGen"
    bl_label = "Bone Map"
    bl_parent_id = "IRMOGEN_PT_rig"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        obj = _armature(context)
        if obj is None:
            layout.label(text="Select an armature", icon="ARMATURE_DATA")
            return
        group = getattr(obj.data, bonemap.PROPERTY)
        row = layout.row(align=True)
        row.operator("irmogen.detect_bones", icon="VIEWZOOM")
        row.operator("irmogen.clear_bone_map", text="", icon="X")
        filled = sum(1 for j in JOINT_NAMES if getattr(group, j))
        if filled:
            layout.label(text=f"{filled}/22 joints · {group.source or 'by hand'}", icon="BONE_DATA")
        else:
            layout.label(text="Empty: detected when a motion is applied", icon="INFO")
        for title, joints in GROUPS:
            col = layout.column(align=True)
            col.label(text=title)
            for j in joints:
                col.prop_search(group, j, obj.data, "bones", text=_label(j).split(" ", 1)[-1]
                                if title != "Body" else _label(j))
        layout.prop_search(group, "root", obj.data, "bones")
        layout.operator("irmogen.save_rig_map", icon="FILE_TICK")


classes = (IRMOGEN_PG_bone_map, IRMOGEN_OT_detect_bones, IRMOGEN_OT_clear_bone_map, IRMOGEN_OT_save_rig_map,
           IRMOGEN_PT_bone_map)


def register() -> None:
    setattr(bpy.types.Armature, bonemap.PROPERTY, PointerProperty(type=IRMOGEN_PG_bone_map))


def unregister() -> None:
    delattr(bpy.types.Armature, bonemap.PROPERTY)

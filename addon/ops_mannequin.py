"""`irmogen.add_mannequin`: add the built-in skinned mannequin (a preview dummy) at the 3D cursor.

Thin: the body is built by `mannequin.build_mannequin`. The operator puts itself in the 3D View's
Add > Armature menu when it is registered. Imports bpy and the add-on's modules only.
"""
from __future__ import annotations

import bpy
from bpy.props import StringProperty

from . import mannequin


class IRMOGEN_OT_add_mannequin(bpy.types.Operator):
    """Add a simple skinned humanoid (SMPL joint names, T-pose) to preview motions on"""
    bl_idname = "irmogen.add_mannequin"
    bl_label = "Add Mannequin"
    bl_options = {"REGISTER", "UNDO"}
    name: StringProperty(name="Name", default="Mannequin")

    def execute(self, context):
        if context.mode != "OBJECT" and context.active_object is not None:
            bpy.ops.object.mode_set(mode="OBJECT")
        rig = mannequin.build_mannequin(self.name, tuple(context.scene.cursor.location),
                                        context.collection or context.scene.collection)
        for obj in context.view_layer.objects:
            obj.select_set(False)
        rig.select_set(True)
        context.view_layer.objects.active = rig
        self.report({"INFO"}, f"IRMoGen: added {rig.name}")
        return {"FINISHED"}

    # bpy.utils.register_class / unregister_class call these classmethods.
    @classmethod
    def register(cls):
        bpy.types.VIEW3D_MT_armature_add.append(_menu)

    @classmethod
    def unregister(cls):
        bpy.types.VIEW3D_MT_armature_add.remove(_menu)


def _menu(self, context):
    self.layout.operator(IRMOGEN_OT_add_mannequin.bl_idname, text="IRMoGen Mannequin", icon="OUTLINER_OB_ARMATURE")


classes = (IRMOGEN_OT_add_mannequin,)

"""IRMoGen for Blender: text to motion from a local model that assesses and refines its own motion.

The add-on half. Runs inside Blender and imports bpy, mathutils, numpy and the stdlib only: the
model runs in a separate backend process (`bridge`), started with the Python chosen in the
preferences. Registration is symmetric: each module has a `classes` tuple.
"""
from __future__ import annotations

import bpy

from . import (bonemap_ui, bridge, jobs, operators, ops_feet, ops_mannequin, ops_timeline, panels, preferences,
               properties)

_MODULES = (preferences, properties, operators, ops_mannequin, ops_timeline, ops_feet, panels, bonemap_ui)


def _tick():
    """UI path: drain the backend's events on the main thread (never fires in the bpy module)."""
    if bridge.BRIDGE.jobs:
        jobs.poll()
        return 0.1
    return 0.5


def _menu_import(self, context):
    self.layout.operator("irmogen.apply_clip", text="IRMoGen Motion Clip (.npz, .bvh)")


def register() -> None:
    for module in _MODULES:
        for cls in module.classes:
            bpy.utils.register_class(cls)
    properties.register()
    bonemap_ui.register()
    jobs.offer_rig_maps()
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)
    bpy.app.timers.register(_tick, first_interval=0.5, persistent=True)


def unregister() -> None:
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    bridge.BRIDGE.stop()
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
    bonemap_ui.unregister()
    properties.unregister()
    for module in reversed(_MODULES):
        for cls in reversed(module.classes):
            bpy.utils.unregister_class(cls)

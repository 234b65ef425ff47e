"""IRMoGen for Blender: the add-on half. Runs inside Blender; imports bpy, mathutils and numpy only.

The panel, operators, bridge to the backend process and retargeting arrive in the add-on issue;
this package already registers cleanly so the extension can be built and enabled.
"""
from __future__ import annotations

classes: tuple = ()


def register() -> None:
    import bpy

    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    import bpy

    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)

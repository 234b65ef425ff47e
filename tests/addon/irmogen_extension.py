"""Test helper: build the extension zip with build.py, install it into the bpy module, once.

The add-on's modules import each other relatively and `protocol` exists only in the built
package, so the add-on tests go through the real zip, as a user's Blender would. Blender's user
folders are pointed at a temporary directory so tests never touch the real user's Blender.
"""
from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "bl_ext.user_default.irmogen"
_state: dict = {}


def user_root() -> Path:
    """A temporary folder for the user_default extension repository (and its user data)."""
    if "user" not in _state:
        import bpy

        _state["user"] = Path(tempfile.mkdtemp(prefix="irmogen-blender-user-"))
        repo = next(r for r in bpy.context.preferences.extensions.repos if r.module == "user_default")
        repo.use_custom_directory = True
        repo.custom_directory = str(_state["user"] / "extensions")
    return _state["user"]


def build_module():
    """The repository's build.py, imported as a module."""
    sys.path.insert(0, str(REPO))
    try:
        return importlib.import_module("build")
    finally:
        sys.path.remove(str(REPO))


def build_zip() -> Path:
    """Stage and build the extension (build.py's own functions) into a temporary dist folder."""
    if "zip" not in _state:
        build = build_module()
        work = user_root().parent / f"{user_root().name}-build"
        stage = build.stage_extension(work / "stage")
        _state["zip"] = build.build_zip(Path(sys.executable), stage, work / "dist")
    return _state["zip"]


def install():
    """The installed, enabled add-on package (re-enabled if a factory reset turned it off)."""
    import addon_utils
    import bpy

    user_root()
    if "installed" not in _state:
        result = bpy.ops.extensions.package_install_files(
            filepath=str(build_zip()), repo="user_default", enable_on_install=True)
        assert result == {"FINISHED"}, result
        _state["installed"] = True
    if not addon_utils.check(PACKAGE)[1]:
        addon_utils.enable(PACKAGE, default_set=True)
    return importlib.import_module(PACKAGE)


def reset_scene() -> None:
    """An empty scene with the add-on still enabled (factory settings would disable it)."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    install()


def configure_backend(model_dir: Path) -> None:
    """Preferences for the real backend: the interpreter from $IRMOGEN_BACKEND_PYTHON (default:
    the test's own venv Python, which has irmogen installed) and a model directory on the CPU."""
    import bpy

    os.environ.setdefault("IRMOGEN_BACKEND_PYTHON", sys.executable)
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.python_path = ""
    prefs.model_kind, prefs.model_dir, prefs.device = "DIRECTORY", str(model_dir), "cpu"


def tiny_model(folder: Path) -> Path:
    from irmogen.llm.testing import tiny_motionllm

    if not (folder / "config.json").is_file():
        tiny_motionllm().save_pretrained(folder)
    return folder


def smpl_armature(name: str = "Body", extra_bones: int = 0):
    """An armature with the 22 SMPL joints as bones (T-pose, facing -Y, Z up, metres), plus
    `extra_bones` small finger-like bones under the wrists, made through bpy.data (no operators)."""
    import bpy
    from irmogen.skeleton import JOINT_NAMES, PARENTS, rest_positions

    pos = rest_positions()[:, [0, 2, 1]] * [1, -1, 1]  # Y up -> Z up: (x, y, z) -> (x, -z, y)
    pos = pos + [0.0, 0.0, 0.95]
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    children = {j: [c for c, p in enumerate(PARENTS) if p == j] for j in range(len(JOINT_NAMES))}
    bones = []
    for j, joint in enumerate(JOINT_NAMES):
        b = arm.edit_bones.new(joint)
        b.head = pos[j]
        kids = children[j]
        tail = pos[kids[0]] if len(kids) == 1 else pos[j] + [0.0, 0.0, 0.08]
        b.tail = tail if ((tail - pos[j]) ** 2).sum() > 1e-6 else pos[j] + [0.0, 0.0, 0.08]
        if PARENTS[j] >= 0:
            b.parent = bones[PARENTS[j]]
        bones.append(b)
    for k in range(extra_bones):
        wrist = bones[20 + k % 2]
        b = arm.edit_bones.new(f"finger_{k:02d}")
        b.head = wrist.tail
        b.tail = wrist.tail + (wrist.tail - wrist.head) * 0.3
        b.parent = wrist
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj

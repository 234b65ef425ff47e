"""The extension: the manifest passes Blender's validator, the zip holds what the add-on needs,
installs from the zip, registers every operator, and keeps its writable state outside itself."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402

pytestmark = pytest.mark.blender
OPERATORS = ("generate", "refine", "cancel", "apply_clip", "use_round", "export_fbx", "export_bvh", "setup_backend",
             "extend")


def blender_ext() -> Path:
    return ext.build_module().blender_ext_tool(Path(sys.executable))


def test_manifest_passes_blenders_validator(tmp_path):
    stage = tmp_path / "src"
    stage.mkdir()
    (stage / "blender_manifest.toml").write_bytes((ext.REPO / "blender_manifest.toml").read_bytes())
    (stage / "__init__.py").write_text("")
    out = subprocess.run([sys.executable, str(blender_ext()), "validate", str(stage)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_zip_contents():
    names = set(zipfile.ZipFile(ext.build_zip()).namelist())
    for required in ("blender_manifest.toml", "__init__.py", "keying.py", "bridge.py", "protocol.py",
                     "backend/pyproject.toml", "backend/irmogen/cli.py", "backend/irmogen/protocol.py"):
        assert required in names, required
    assert any(n.startswith("rigs/") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") or ".egg-info" in n for n in names)
    # the protocol copy exists only in the package, never in the source tree
    assert not (ext.REPO / "addon" / "protocol.py").exists()
    shipped = (ext.REPO / "backend/irmogen/models/default/config.json").is_file()
    assert ("backend/irmogen/models/default/config.json" in names) == shipped


def test_installs_enables_and_registers_every_operator():
    addon = ext.install()
    assert addon.__name__ == "bl_ext.user_default.irmogen"
    for name in OPERATORS:
        assert hasattr(bpy.ops.irmogen, name) and getattr(bpy.ops.irmogen, name).poll() in (True, False)
    assert hasattr(bpy.types.Scene, "irmogen")
    # A fresh install uses the shipped model (the declared default: other tests change the value).
    prefs = bpy.context.preferences.addons[ext.PACKAGE].preferences
    assert prefs.bl_rna.properties["model_kind"].default == "DEFAULT"
    for cls in ("IRMOGEN_PT_main", "IRMOGEN_UL_takes"):
        assert hasattr(bpy.types, cls)


def test_writable_state_lives_outside_the_addon_folder():
    addon = ext.install()
    user = addon.preferences.user_dir("clips").resolve()
    assert user.is_dir() and addon.preferences.ADDON_DIR.resolve() not in user.parents


def test_disable_unregisters_and_stops_the_backend():
    import addon_utils

    addon = ext.install()
    addon_utils.disable(ext.PACKAGE, default_set=True)
    try:
        assert not hasattr(bpy.types.Scene, "irmogen") and not hasattr(bpy.types, "IRMOGEN_PT_main")
        assert not addon.bridge.BRIDGE.alive()
    finally:
        ext.install()
    assert hasattr(bpy.types.Scene, "irmogen")

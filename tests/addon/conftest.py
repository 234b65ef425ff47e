"""The add-on tests' shared fixture: the extension installed in this Blender, its backend a real
`irmogen serve` subprocess with a tiny random model (fast, and the protocol is all that matters),
a fresh scene. A module that needs another backend (the shipped model) defines its own `addon`."""
import pytest


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    pytest.importorskip("bpy")
    import irmogen_extension as ext

    mod = ext.install()
    ext.configure_backend(ext.tiny_model(tmp_path_factory.mktemp("tiny")))
    ext.reset_scene()
    yield mod
    mod.bridge.BRIDGE.stop()

"""Who wrote each assessment, and the clauses measurements contradict, from the add-on preferences'
assessor choice through the REAL backend process (the shipped default model) to the Reasoning panel's
lines and the take's stored transcript."""
from __future__ import annotations

import json

import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]


@pytest.fixture(scope="module")
def addon():
    mod = ext.install()
    ext.configure_backend(ext.REPO / "backend" / "irmogen" / "models" / "default")
    ext.reset_scene()
    ext.smpl_armature("Hero")
    yield mod
    mod.preferences.get().assessor = mod.protocol.DEFAULT_ASSESSOR
    mod.bridge.BRIDGE.stop()


def _generate(addon, assessor: str, prompt: str):
    addon.preferences.get().assessor = assessor
    s = bpy.context.scene.irmogen
    s.prompt, s.max_rounds, s.seconds, s.variations, s.seed = prompt, 2, 0.0, 1, 0
    assert bpy.ops.irmogen.generate() == {"FINISHED"}, s.error_message
    take = addon.takes.current_take(bpy.data.objects["Hero"])
    return s, json.loads(addon.takes.read_info(take).transcript)


def test_the_assessor_choice_is_a_preference(addon):
    prefs = addon.preferences.get()
    names = [i.identifier for i in prefs.bl_rna.properties["assessor"].enum_items]
    assert names == list(addon.protocol.ASSESSORS)
    assert prefs.bl_rna.properties["assessor"].default == addon.protocol.DEFAULT_ASSESSOR


def test_measured_assessments_say_so(addon):
    s, transcript = _generate(addon, "measured", "a person walks backward slowly")
    assert len(s.rounds) >= 1 and all(r.assessed_by == "measured" for r in s.rounds)
    assert all(r["assessed_by"] == "measured" for r in transcript["rounds"])   # kept with the take
    for r in s.rounds:
        (text, icon), *marks = addon.panels.assessment_lines(r)
        assert text == f"Assessment (measured): {r.assessment}" and icon == "DRIVER_DISTANCE" and marks == []


def test_checked_clauses_are_marked_with_the_measured_fact(addon):
    # The shipped model calls its first motion for this prompt "well aligned"; it travels straight.
    s, transcript = _generate(addon, "checked", "someone jogs in a circle")
    stored = [m for r in transcript["rounds"] for m in r.get("contradicted", [])]
    assert stored, "the backend marked no clause"
    shown = []
    for r in s.rounds:
        (text, icon), *marks = addon.panels.assessment_lines(r)
        assert r.assessed_by == "model" and text == f"Assessment (by the model): {r.assessment}" and icon == "TEXT"
        shown += marks
    assert shown == [(f"Contradicted: \"{m['clause']}\" ({m['fact']})", "ERROR") for m in stored]
    assert all(m["clause"] in r["assessment"] for r in transcript["rounds"] for m in r.get("contradicted", []))
    # Picking the take again (its stored transcript, not the live job) shows the same marks.
    addon.takeview.show_take(bpy.context.scene, addon.takes.current_take(bpy.data.objects["Hero"]))
    again = [line for r in s.rounds for line in addon.panels.assessment_lines(r)[1:]]
    assert again == shown


def test_an_irg_stage1_checkpoint_runs_the_stage1_loop(addon, tmp_path):
    """The preferences' IRG stage reaches the backend's model spec (stage 1: the stage-1 loop)."""
    prefs = addon.preferences.get()
    saved = prefs.model_kind, prefs.irg_stage
    try:
        prefs.model_kind, prefs.checkpoint, prefs.gemma_dir = "IRG", str(tmp_path / "s1.pth"), str(tmp_path)
        for stage, expected in (("1", 1), ("TRACE", None)):
            prefs.irg_stage = stage
            _, path = addon.preferences.model_args(prefs)
            spec = json.loads(open(path).read())
            assert spec["format"] == "irg" and spec.get("stage") == expected
    finally:
        prefs.model_kind, prefs.irg_stage = saved

"""Issue 14 defects 5-11, headless, from the installed zip against the real backend process (tiny
model): what goes wrong reaches the animator with its real reason and a fix, before work is wasted."""
from __future__ import annotations

import time

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return ext.tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def addon(model):
    mod = ext.install()
    ext.configure_backend(model)
    yield mod
    mod.bridge.BRIDGE.stop()


@pytest.fixture()
def scene(addon, model):
    ext.reset_scene()
    ext.configure_backend(model)
    s = bpy.context.scene.irmogen
    s.max_rounds, s.seconds, s.variations = 1, 1.0, 1
    return s


def _clip(addon, folder, seconds: float, fps: float, name="swing.npz"):
    """A synthetic clip of `seconds` (frames = seconds * fps + 1): joints swing, the root walks."""
    from irmogen.skeleton import REST_OFFSETS, rest_positions

    frames = int(round(seconds * fps)) + 1
    t = np.linspace(0.0, seconds, frames)[:, None]
    axes = np.random.default_rng(5).normal(size=(22, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    half = 0.3 * np.sin(2 * np.pi * t)
    rotations = np.concatenate([np.cos(half)[..., None].repeat(22, 1), np.sin(half)[..., None] * axes], axis=-1)
    root = np.zeros((frames, 3))
    root[:, 1], root[:, 2] = -rest_positions()[:, 1].min(), 0.5 * t[:, 0]
    clip = {"fps": fps, "offsets": np.array(REST_OFFSETS), "rotations": rotations, "root_translation": root,
            "positions": np.zeros((frames, 22, 3)) + root[:, None], "text": "a person sways"}
    return addon.clipfile.save_npz(clip, folder / name)


def _seconds(take):
    start, end = take.frame_range
    r = bpy.context.scene.render
    return (end - start) / (r.fps / r.fps_base)


@pytest.mark.parametrize("seconds, fps", [(600.0, 60.0), (12.0, 20.0)])
def test_refining_a_long_take_fails_at_once_with_the_reason(addon, scene, sent, tmp_path, seconds, fps):
    """Defect 5 (add-on): a 10-minute take made a request over the backend's line limit and the job
    waited 600 s. The model refines at most 9.8 s at once: a longer take is refused at once, before
    its clip is encoded, with its length and what to do; nothing is sent, no job waits."""
    ext.smpl_armature("Long")
    path = _clip(addon, tmp_path, seconds, fps)
    assert bpy.ops.irmogen.apply_clip(filepath=str(path)) == {"FINISHED"}, scene.error_message
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="too long to refine"):
        bpy.ops.irmogen.refine()
    assert time.monotonic() - t0 < 60 and not addon.bridge.BRIDGE.active_jobs() and not scene.running
    assert sent == [] and f"({int(seconds)}" in scene.error_message and "9.8 s at a time" in scene.error_message
    assert "shorter" in scene.error_hint and "frame range" in scene.error_hint


def test_an_over_long_request_comes_back_with_its_job_id(addon, scene):
    """Defect 5 (backend): the line_too_long error carries the job's id, so the job ends."""
    spec, _ = addon.jobs._command()
    bridge = addon.bridge.BRIDGE
    job = bridge.submit(spec.command(), "refine", {"instruction": "x" * (17 * 2 ** 20)}, cwd=spec.cwd)
    bridge.pump(job, 120)
    assert job.status == "error" and job.error["code"] == "line_too_long", job.error
    bridge.jobs.pop(job.id, None)


def test_cancel_ends_a_job_the_backend_never_read(addon, scene):
    """Defect 5 (cancel): a job the backend does not know is cancelled instead of waiting 600 s."""
    spec, _ = addon.jobs._command()
    bridge = addon.bridge.BRIDGE
    bridge.start(spec.command(), spec.cwd)
    lost = addon.bridge.Job(id="j-lost", method="refine", params={})
    bridge.jobs[lost.id] = lost
    assert bpy.ops.irmogen.cancel() == {"FINISHED"}
    bridge.pump(lost, 60)
    assert lost.status == "cancelled"
    bridge.jobs.pop(lost.id, None)


def test_a_bad_model_directory_shows_the_backends_reason(addon, scene, tmp_path):
    """Defect 6: the backend's reason (here: no config.json) reaches the panel, pointing at the
    preferences instead of "no model is loaded" and Set up Backend."""
    ext.smpl_armature("Hero")
    prefs = bpy.context.preferences.addons[ext.PACKAGE].preferences
    (tmp_path / "empty").mkdir()
    prefs.model_dir = str(tmp_path / "empty")
    with pytest.raises(RuntimeError):
        bpy.ops.irmogen.generate()
    assert "empty: missing config.json" in scene.error_message, scene.error_message
    assert "preferences" in scene.error_hint and scene.error_fix == ""


def test_the_text_guidance_preference_reaches_the_backend(addon, scene):
    """The preference is sent with the request: the tiny model has no prompt encoder, so the
    backend refuses the scale by name; below 1 the model's own setting applies and it generates."""
    ext.smpl_armature("Hero")
    prefs = bpy.context.preferences.addons[ext.PACKAGE].preferences
    scene.prompt = "a person walks forward"
    try:
        prefs.guidance = 2.5
        with pytest.raises(RuntimeError):
            bpy.ops.irmogen.generate()
        assert "guidance 2.5: this model has no prompt encoder" in scene.error_message, scene.error_message
        prefs.guidance = 0.0
        assert bpy.ops.irmogen.generate() == {"FINISHED"}, scene.error_message
    finally:
        prefs.guidance = 0.0


def test_a_backend_python_that_exits_at_once_gets_a_hint_and_a_fix(addon, scene, monkeypatch):
    """Defect 7: /bin/false as the backend Python."""
    ext.smpl_armature("Hero")
    prefs = bpy.context.preferences.addons[ext.PACKAGE].preferences
    monkeypatch.setattr(prefs, "python_path", "/bin/false")
    with pytest.raises(RuntimeError, match="exited"):
        bpy.ops.irmogen.generate()
    assert "Backend Python" in scene.error_hint and scene.error_fix == "irmogen.setup_backend"
    assert not addon.bridge.BRIDGE.active_jobs()          # the unsent job does not wait to be cancelled


@pytest.mark.parametrize("prompt, expect", [
    ("a person walks forward " * 220, "characters cut"),        # 5,060 characters
    ("一个人向前走然后挥手", "English"),
    ("🏃‍♂️🕺💃", "English"),
])
def test_prompt_warnings_reach_the_panel(addon, scene, prompt, expect):
    """Defect 8: the backend's cut warning and the non-English warning are shown."""
    ext.smpl_armature("Hero")
    scene.prompt = prompt
    assert bpy.ops.irmogen.generate() == {"FINISHED"}, scene.error_message
    assert expect in scene.warnings, scene.warnings


def test_a_success_clears_the_old_error(addon, scene, tmp_path):
    """Defect 9: a failed Apply, then a successful Apply or Export, leaves no error box."""
    ext.smpl_armature("Hero")
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    good = _clip(addon, tmp_path, 2.0, 20.0)
    for ok in (lambda: bpy.ops.irmogen.apply_clip(filepath=str(good)),
               lambda: bpy.ops.irmogen.export_bvh(filepath=str(tmp_path / "out.bvh"))):
        with pytest.raises(RuntimeError):
            bpy.ops.irmogen.apply_clip(filepath=str(bad))
        assert scene.error_message
        assert ok() == {"FINISHED"}
        assert scene.error_message == "" and scene.error_hint == ""


def _armature(name, bones):
    """An armature from (bone, parent, head, tail) rows, Z up."""
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    made = {}
    for bone, parent, head, tail in bones:
        b = arm.edit_bones.new(bone)
        b.head, b.tail = head, tail
        if parent:
            b.parent = made[parent]
        made[bone] = b
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


@pytest.fixture()
def sent(addon, monkeypatch):
    """The method of every request the add-on writes to the backend (the real send still runs)."""
    methods = []
    real = addon.bridge.Bridge.send

    def spy(self, rid, method, params=None):
        methods.append(method)
        return real(self, rid, method, params)

    monkeypatch.setattr(addon.bridge.Bridge, "send", spy)
    return methods


def _bad_rig(kind):
    """A 1-bone armature, or a four-legged one (a spine, a neck and four two-bone legs)."""
    if kind == "one bone":
        _armature("Stick", [("Bone", None, (0, 0, 0), (0, 0, 1))])
        return "'Stick'", "1 bone"
    rows = [("spine", None, (0, -0.5, 0.8), (0, 0.5, 0.8)), ("neck", "spine", (0, 0.5, 0.8), (0, 0.8, 1.1))]
    for k, (x, y) in enumerate([(-0.2, 0.4), (0.2, 0.4), (-0.2, -0.4), (0.2, -0.4)]):
        rows += [(f"leg{k}", "spine", (x, y, 0.8), (x, y, 0.4)), (f"shin{k}", f"leg{k}", (x, y, 0.4), (x, y, 0.0))]
    _armature("Dog", rows)
    return "'Dog'", "4 legs"


@pytest.mark.parametrize("operator", ["generate", "apply"])
@pytest.mark.parametrize("rig", ["one bone", "four legs"])
def test_an_unusable_rig_is_refused_before_anything_runs(addon, scene, sent, tmp_path, operator, rig):
    """Defect 10: Generate and Apply refuse a 1-bone or 4-legged armature in one line naming it and
    why; no request reaches the backend (a generation used to run first) and nothing is keyed."""
    name, why = _bad_rig(rig)
    clip = _clip(addon, tmp_path, 2.0, 20.0)
    actions = len(bpy.data.actions)
    with pytest.raises(RuntimeError, match=why):
        if operator == "generate":
            bpy.ops.irmogen.generate()
        else:
            bpy.ops.irmogen.apply_clip(filepath=str(clip))
    assert sent == [] and not scene.running and len(bpy.data.actions) == actions
    assert name in scene.error_message and why in scene.error_message and "\n" not in scene.error_message
    assert scene.error_hint


def test_refine_checks_the_rig_first(addon, scene, sent, tmp_path):
    """Defect 10 (Refine): a take's armature whose stored bone map names a bone renamed since is
    refused, naming the joint, before the take's clip is sent."""
    rig = ext.smpl_armature("Hero")
    assert bpy.ops.irmogen.apply_clip(filepath=str(_clip(addon, tmp_path, 2.0, 20.0))) == {"FINISHED"}
    assert bpy.ops.irmogen.detect_bones() == {"FINISHED"}          # the map is now stored on the armature
    rig.data.bones["left_knee"].name = "knee.L"
    with pytest.raises(RuntimeError, match="does not have"):
        bpy.ops.irmogen.refine()
    assert sent == [] and not scene.running and "left_knee" in scene.error_message


def _clip_frames(addon, take) -> tuple[int, float]:
    clip = addon.jobs.take_clip(take)
    return len(clip["positions"]), clip["fps"]


def test_refine_keeps_the_takes_length(addon, scene, sent, tmp_path):
    """Defect 11: a 4.45 s take (90 frames at 20 fps), refined by the shipped model, comes back with
    exactly its frames and its frame range on the timeline (it came back 1.85 s)."""
    prefs = bpy.context.preferences.addons[ext.PACKAGE].preferences
    prefs.model_kind = "DEFAULT"
    rig = ext.smpl_armature("Hero")
    assert bpy.ops.irmogen.apply_clip(filepath=str(_clip(addon, tmp_path, 4.45, 20.0))) == {"FINISHED"}
    source = addon.takes.current_take(rig)
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    assert abs(_seconds(source) - 4.45) <= 1 / fps and _clip_frames(addon, source) == (90, 20.0)
    scene.instruction = "raise the arms higher"
    assert bpy.ops.irmogen.refine() == {"FINISHED"}, scene.error_message
    refined = addon.takes.current_take(rig)
    assert sent == ["refine"] and addon.takes.read_info(refined).parent == source.name
    assert _clip_frames(addon, refined) == (90, 20.0)
    assert abs(_seconds(refined) - _seconds(source)) <= 1 / fps, (_seconds(source), _seconds(refined))

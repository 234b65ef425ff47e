"""What the operators do: send generate/refine jobs, mirror their events into the panel's state,
and turn clips (from the backend or from files) into takes on the active armature.

Runs on Blender's main thread only (the bridge's threads never call into here). Retargeting is
`retarget.retarget_clip` on the rig's rest pose (`armature`) and the bone map `rigmap.detect` finds
among the maps in the add-on's `rigs/` folder; keys are written by `takes`/`keying`. Errors are
`JobError(message, hint, fix)`; operators report them.
Imports bpy, numpy and the add-on's modules only.
"""
from __future__ import annotations

import functools
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from . import armature, bridge, clipfile, preferences, properties, protocol, retarget, rigmap, takes

WAIT_SECONDS = 600.0  # background runs: longest wait for one job's result


class JobError(Exception):
    def __init__(self, message: str, hint: str = "", fix: str = ""):
        super().__init__(message)
        self.hint, self.fix = hint, fix


@dataclass
class Target:
    """Where a result goes: the armature (by name) and the scene frame its take starts at."""
    armature: str
    scene: str
    start_frame: int


def active_armature(context):
    obj = context.active_object
    if obj is None or obj.type != "ARMATURE":
        raise JobError("select an armature first", "Click the character's armature, then try again")
    return obj


# ---- backend jobs ----------------------------------------------------------------------------
def _command():
    prefs = preferences.get()
    spec = preferences.backend_spec(prefs)
    if spec is None:
        raise JobError("no Python with the IRMoGen backend was found",
                       "Set up the backend (it installs into the add-on's user folder) or choose a Python "
                       f"in the preferences (or set ${preferences.ENV_PYTHON})", "irmogen.setup_backend")
    return spec, preferences.model_label(prefs)


def _submit(method: str, params: dict, target: Target, info: takes.TakeInfo) -> bridge.Job:
    spec, model = _command()
    info.model = info.model or model
    try:
        return bridge.BRIDGE.submit(spec.command(), method, params, cwd=spec.cwd,
                                    context={"target": target, "info": info})
    except bridge.BackendError as e:
        raise JobError(str(e), e.hint, "irmogen.setup_backend" if e.code == "no_backend" else "") from None


def start_generate(context, s: properties.Settings) -> list[bridge.Job]:
    """One generate job per variation (seeds s.seed, s.seed + 1, ...); greedy when there is one
    variation and seed 0, as the paper decodes."""
    obj = active_armature(context)
    target = Target(obj.name, context.scene.name, context.scene.frame_current)
    sample = s.variations > 1 or s.seed > 0
    jobs = []
    for k in range(s.variations):
        params = {"text": s.prompt, "max_rounds": s.max_rounds, "greedy": not sample}
        if sample:
            params["seed"] = s.seed + k
        if s.seconds > 0:
            params["seconds"] = min(max(s.seconds, protocol.MIN_SECONDS), protocol.MAX_SECONDS)
        info = takes.TakeInfo(prompt=s.prompt, kind="generate", seed=s.seed + k)
        jobs.append(_submit("generate", params, target, info))
    _begin_live(context.scene, "Generating")
    return jobs


def start_refine(context, s: properties.Settings, take) -> bridge.Job:
    """Refine a take by an instruction: the backend gets the take's source clip and its prompt."""
    obj = active_armature(context)
    parent = takes.read_info(take)
    clip = _load_source(parent)
    params = {"clip": protocol.encode_clip(clip["fps"], clip["offsets"], clip["rotations"],
                                           clip["root_translation"], clip["positions"], parent.prompt),
              "instruction": s.instruction}
    if parent.prompt:
        params["text"] = parent.prompt
    info = takes.TakeInfo(prompt=parent.prompt or s.instruction, kind="refine", seed=parent.seed,
                          parent=take.name, extra={"instruction": s.instruction})
    target = Target(obj.name, context.scene.name, context.scene.frame_current)
    job = _submit("refine", params, target, info)
    _begin_live(context.scene, "Refining")
    return job


def cancel_all() -> int:
    active = bridge.BRIDGE.active_jobs()
    for job in active:
        bridge.BRIDGE.cancel(job)
    return len(active)


def wait(jobs: list[bridge.Job], timeout: float = WAIT_SECONDS) -> None:
    """Background runs: block until every job finished, mirroring events into the scene."""
    for job in jobs:
        bridge.BRIDGE.pump(job, timeout, on_change=_mirror)


def poll() -> list[bridge.Job]:
    """Timer / modal: dispatch waiting events and mirror them; returns the jobs that changed."""
    changed = bridge.BRIDGE.drain()
    for job in changed:
        _mirror(job)
    return changed


def finish(jobs: list[bridge.Job]) -> tuple[list, list]:
    """Turn finished jobs into takes; -> (new takes, errors as JobError). Clears the live state."""
    made, errors = [], []
    for job in jobs:
        if job.status == "done":
            try:
                made.append(_take_from_job(job))
            except JobError as e:
                errors.append(e)
        elif job.status == "error":
            err = job.error or {}
            fix = "irmogen.setup_backend" if err.get("code") in {bridge.EXITED, "no_model"} else ""
            errors.append(JobError(err.get("message", "the backend failed"), err.get("hint") or "", fix))
        bridge.BRIDGE.jobs.pop(job.id, None)
    scene = bpy.data.scenes.get(jobs[0].context["target"].scene) if jobs else None
    if scene is not None:
        live = scene.irmogen
        live.running = False
        live.status = "Cancelled" if all(j.status == "cancelled" for j in jobs) else "Done"
        if errors:
            properties.show_error(scene, str(errors[0]), errors[0].hint, errors[0].fix)
        if made:
            show_take(scene, made[-1])
    return made, errors


# ---- live state for the panel -----------------------------------------------------------------
def _begin_live(scene, status: str) -> None:
    live = scene.irmogen
    properties.clear_error(scene)
    live.running, live.status, live.progress, live.analysis = True, status, 0.0, ""
    live.transcript_take = ""
    live.rounds.clear()


def _mirror(job: bridge.Job) -> None:
    """Copy one job's state into its scene's `irmogen` properties (what the panel draws)."""
    scene = bpy.data.scenes.get(job.context["target"].scene)
    if scene is None:
        return
    live = scene.irmogen
    live.progress = job.progress
    live.status = f"{job.method.capitalize()}: {job.status}"
    live.analysis = job.analysis
    _fill_rounds(live, job.rounds)
    for area in (bpy.context.screen.areas if bpy.context.screen else ()):
        area.tag_redraw()


def _fill_rounds(live, rounds: list[dict]) -> None:
    live.rounds.clear()
    for k, r in enumerate(rounds):
        item = live.rounds.add()
        item.index = int(r.get("round", k))
        item.assessment = str(r.get("assessment") or "")
        item.refinement = str(r.get("refinement") or "")
        item.has_motion = bool(r.get("clip") or r.get("motion"))


def show_take(scene, take) -> None:
    """Show a take's transcript in the panel (the rounds with their "use this motion" buttons)."""
    info = takes.read_info(take)
    transcript = _transcript(info)
    live = scene.irmogen
    live.analysis = transcript.get("analysis", "")
    live.transcript_take = take.name
    _fill_rounds(live, transcript.get("rounds", []))


def _transcript(info: takes.TakeInfo) -> dict:
    try:
        data = json.loads(info.transcript or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# ---- clips -> takes --------------------------------------------------------------------------
def clip_from_payload(payload: dict, where: str = "result") -> dict:
    try:
        c = protocol.decode_clip(payload, where)
    except protocol.ProtocolError as e:
        raise JobError(f"the backend sent a bad clip: {e}") from None
    if c.rotations is None or c.offsets is None or c.root_translation is None:
        raise JobError(f"{where}: the backend's clip has no rotations/offsets/root translation")
    clip = {k: getattr(c, k).to_numpy().astype(np.float64) for k in clipfile.ARRAY_FIELDS}
    clip.update(fps=c.fps, text=c.text, transcript="")
    return clip


def _clip_dir(info: takes.TakeInfo) -> Path:
    return preferences.user_dir("clips") / info.extra.setdefault("id", uuid.uuid4().hex[:12])


def _take_from_job(job: bridge.Job):
    """Store the job's clips (final and per round) under the user folder, then make the take."""
    info: takes.TakeInfo = job.context["info"]
    result = job.result or {}
    final = clip_from_payload(result.get("clip") or result.get("motion") or {}, "result.clip")
    folder = _clip_dir(info)
    rounds = []
    for k, r in enumerate(job.rounds):
        entry = {key: r[key] for key in ("round", "analysis", "assessment", "refinement") if key in r}
        entry.setdefault("round", k)
        payload = r.get("clip") or r.get("motion")
        if isinstance(payload, dict):
            path = folder / f"round_{entry['round']}.npz"
            clipfile.save_npz(clip_from_payload(payload, f"round {k}"), path)
            entry["clip"] = str(path)
        rounds.append(entry)
    info.source = str(clipfile.save_npz(final, folder / "final.npz"))
    info.rounds = max(len(rounds), int(result.get("rounds", 0) or 0))
    info.transcript = json.dumps({"analysis": job.analysis, "rounds": rounds,
                                  "backend": result.get("transcript", "")}, ensure_ascii=False)
    target: Target = job.context["target"]
    return take_from_clip(bpy.data.objects[target.armature], final, info, target.start_frame,
                          bpy.data.scenes[target.scene])


def _load_source(info: takes.TakeInfo) -> dict:
    if not info.source or not Path(info.source).is_file():
        raise JobError(f"the take's motion file {info.source or '(none)'} is missing",
                       "Takes keep their clips in the add-on's user folder; regenerate the take")
    return _read_clip(info.source)


def rigs_dir() -> Path:
    """The bone maps: build.py stages the repository's `rigs/` inside the add-on folder."""
    return Path(__file__).resolve().parent / "rigs"


@functools.cache
def _load_maps(folder: Path) -> dict:
    return rigmap.load_maps(folder)


def rig_maps() -> dict:
    """Every bone map of `rigs_dir()` by name, read once per session."""
    try:
        return _load_maps(rigs_dir())
    except retarget.RetargetError as e:
        raise JobError(e.message, e.hint or "Reinstall the add-on: its rigs folder is damaged") from None


def retarget_options(scene, start_frame: int, root_bone: str | None) -> retarget.RetargetOptions:
    """The scene's settings as retargeting options (frame rate, take start, root motion mode)."""
    return retarget.RetargetOptions(scene_fps=scene.render.fps / scene.render.fps_base,
                                    frame_start=int(start_frame),
                                    root_motion=scene.irmogen.root_mode.lower(), root_bone=root_bone)


def take_from_clip(obj, clip: dict, info: takes.TakeInfo, start_frame: int, scene):
    """Retarget a clip dict onto `obj` and key it as a new take starting at `start_frame`.

    The bone map is detected (or the one picked in the panel is used), the rig's switches the map
    names are set, and the map's report and the constraint warnings go to the panel's rig box.
    """
    override = scene.irmogen.rig_map
    try:
        found = rigmap.detect([b.name for b in obj.data.bones], rig_maps(),
                              override=None if override == properties.AUTO_RIG_MAP else override)
        if scene.irmogen.root_mode == "ROOT_BONE" and found.root_bone is None:
            raise JobError(f"'{obj.name}': its bone map '{found.name}' names no root bone",
                           "Put the root motion on the hips or in place, or name the root in the map (rigs/)")
        changed = armature.prepare_rig(obj, found.properties)
        rest = armature.rig_rest_from_object(obj)
        tracks = retarget.retarget_clip(rest, clip, found.mapping,
                                        retarget_options(scene, start_frame, found.root_bone))
    except retarget.RetargetError as e:
        raise JobError(f"'{obj.name}': {e.message}", e.hint) from None
    report = found.report + (f"; set {', '.join(changed)}" if changed else "")
    properties.show_rig(scene, obj.name, report, armature.relevant_warnings(rest, found.mapping.values()))
    pose = takes.PoseTracks(frames=np.asarray(tracks.frames), rotations=dict(tracks.rotations),
                            locations=dict(tracks.locations))
    info.extra.setdefault("rig", found.name)
    try:
        return takes.create_take(obj, pose, info, start_frame=start_frame,
                                 blend_type=scene.irmogen.blend_type, extrapolation=scene.irmogen.extrapolation)
    except ValueError as e:
        raise JobError(str(e)) from None


def _read_clip(path) -> dict:
    try:
        return clipfile.load_clip(path, rig_maps())
    except clipfile.ClipFileError as e:
        raise JobError(str(e), e.hint) from None


def apply_clip_file(context, path) -> object:
    """`irmogen.apply_clip`: a clip .npz or BVH -> a new take on the active armature."""
    obj = active_armature(context)
    clip = _read_clip(path)
    info = takes.TakeInfo(prompt=clip.get("text") or Path(path).name, kind="clip", model="file")
    folder = _clip_dir(info)
    info.source = str(clipfile.save_npz(clip, folder / "final.npz"))
    info.transcript = clip.get("transcript") or "{}"
    take = take_from_clip(obj, clip, info, context.scene.frame_current, context.scene)
    show_take(context.scene, take)
    return take


def use_round(context, take_name: str, index: int):
    """`irmogen.use_round`: round `index` of a take becomes a new take (its child) and is assigned."""
    obj = active_armature(context)
    take = bpy.data.actions.get(take_name)
    if take is None or not takes.is_take(take):
        raise JobError(f"no take named '{take_name}'")
    parent = takes.read_info(take)
    rounds = _transcript(parent).get("rounds", [])
    entry = next((r for r in rounds if r.get("round") == index), None)
    if entry is None or not entry.get("clip"):
        raise JobError(f"take '{take_name}' has no motion for round {index}")
    clip = _load_source(takes.TakeInfo(source=entry["clip"]))
    info = takes.TakeInfo(prompt=parent.prompt, kind="round", model=parent.model, seed=parent.seed,
                          rounds=parent.rounds, round_used=index, transcript=parent.transcript,
                          parent=take.name, source=entry["clip"], date=time.strftime("%Y-%m-%d %H:%M"))
    new = take_from_clip(obj, clip, info, context.scene.frame_current, context.scene)
    show_take(context.scene, new)
    return new

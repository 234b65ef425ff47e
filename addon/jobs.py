"""What the operators do: send generate/refine jobs, mirror their events into the panel's state,
and turn clips (from the backend or from files) into takes on the active armature.

Runs on Blender's main thread only (the bridge's threads never call into here). Retargeting is
`retarget.retarget_clip` on the rig's rest pose (`armature`) and the bone map `rig_mapping` takes
from `bonemap` (the armature's stored map, else auto-detection), checked before any request is
sent; keys are written by `takes`/`keying`. The clips a
take was made from (final and per round) are packed into the take (`takes.pack_clip`), so Refine
and Use Round need nothing outside the .blend. Errors are `JobError(message, hint, fix)`;
operators report them; backend warnings go to the panel (`scene.irmogen.warnings`).
Imports bpy, numpy and the add-on's modules only.
"""
from __future__ import annotations

import io
import json
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from . import (armature, bonemap, bridge, clipfile, preferences, properties, protocol, retarget, rigdetect, rigmap,
               takes, takeview, timeline)

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


def submit(method: str, params: dict, target: Target, info: takes.TakeInfo) -> bridge.Job:
    spec, model = _command()
    prefs = preferences.get()
    if method in ("generate", "extend"):   # the requests whose rounds carry assessments
        params = {**params, "assessor": prefs.assessor}
    if method in ("generate", "extend", "refine") and prefs.guidance >= 1.0:
        params = {**params, "guidance": round(prefs.guidance, 3)}
    info.model = info.model or model
    try:
        return bridge.BRIDGE.submit(spec.command(), method, params, cwd=spec.cwd,
                                    context={"target": target, "info": info})
    except bridge.BackendError as e:
        raise JobError(str(e), e.hint, "irmogen.setup_backend" if e.code in {"no_backend", bridge.EXITED} else "") from None


def start_generate(context, s: properties.Settings) -> list[bridge.Job]:
    """One generate job per variation (seeds s.seed, s.seed + 1, ...); greedy when there is one
    variation and seed 0, as the paper decodes."""
    obj = usable_armature(context)           # refuse an unusable rig before a whole generation runs
    target = Target(obj.name, context.scene.name, context.scene.frame_current)
    sample = s.variations > 1 or s.seed > 0
    jobs = []
    for k in range(s.variations):
        params = {"text": s.prompt, "max_rounds": s.max_rounds, "greedy": not sample, "cleanup": s.cleanup}
        if sample:
            params["seed"] = s.seed + k
        if s.seconds > 0:
            params["seconds"] = min(max(s.seconds, protocol.MIN_SECONDS), protocol.MAX_SEQUENCE_SECONDS)
        info = takes.TakeInfo(prompt=s.prompt, kind="generate", seed=s.seed + k)
        jobs.append(submit("generate", params, target, info))
    begin_live(context.scene, "Generating", prompt_warnings(s.prompt))
    return jobs


def prompt_warnings(text: str) -> list[str]:
    """What the add-on can tell about a prompt before the backend reads it."""
    letters = [ch for ch in text if ch.isalpha()]
    foreign = sum(1 for ch in letters if not unicodedata.name(ch, "").startswith("LATIN"))
    symbols = sum(1 for ch in text if unicodedata.category(ch) == "So")
    if (letters and foreign > len(letters) / 3) or (symbols and symbols >= len(letters)):
        return ["the model was trained on English descriptions: text in other scripts or emoji "
                "gives unrelated motion; describe the motion in English"]
    return []


def start_refine(context, s: properties.Settings, take) -> bridge.Job:
    """Refine a take by an instruction: the backend gets the take's source clip and its prompt, and
    answers with exactly the take's length (`refine_seconds`)."""
    obj = usable_armature(context)
    parent = takes.read_info(take)
    clip = take_clip(take)
    try:   # a frame range and/or body part: only those change (the backend keeps the rest bit-identical)
        where = timeline.refine_where(context.scene, obj, take, clip, s.refine_range, s.range_first,
                                      s.range_last, s.body_part)
        seconds = timeline.range_seconds(where, clip) if where else refine_seconds(take.name, clip)
    except timeline.RangeError as e:
        raise JobError(f"take '{take.name}': {e}", e.hint) from None
    params = {"clip": protocol.encode_clip(clip["fps"], clip["offsets"], clip["rotations"],
                                           clip["root_translation"], clip["positions"], parent.prompt),
              "instruction": s.instruction, "cleanup": s.cleanup, **(where or {"seconds": seconds})}
    if parent.prompt:
        params["text"] = parent.prompt
    check_request_size(take.name, seconds, params)
    info = takes.TakeInfo(prompt=parent.prompt or s.instruction, kind="refine", seed=parent.seed,
                          parent=take.name, extra={"instruction": s.instruction, **where})
    strip = takes.take_strip(obj, take)
    start = int(strip.frame_start) if strip is not None else context.scene.frame_current
    job = submit("refine", params, Target(obj.name, context.scene.name, start), info)
    begin_live(context.scene, "Refining", prompt_warnings(s.instruction))
    return job


def refine_seconds(name: str, clip: dict) -> float:
    """The length a refined take must have: its clip's, frames / fps (the backend makes exactly
    round(seconds * 20) frames at the model's 20 fps). The model reads and writes at most
    protocol.MAX_SECONDS (9.8 s) of motion at once, so a longer take is refused here, before its
    whole clip is encoded and sent."""
    seconds = len(clip["positions"]) / float(clip["fps"])
    shown = f"{seconds:.1f}".removesuffix(".0") + " s"
    if seconds > protocol.MAX_SECONDS + 1e-6:
        raise JobError(f"take '{name}' is too long to refine as a whole ({shown}; the model refines at most "
                       f"{protocol.MAX_SECONDS:g} s at a time)",
                       f"Refine a shorter take, or a frame range of at most {protocol.MAX_SECONDS:g} s of this one")
    if seconds < protocol.MIN_SECONDS:
        raise JobError(f"take '{name}' is too short to refine ({shown}; the model needs at least "
                       f"{protocol.MIN_SECONDS:g} s)", "Refine a longer take, or generate a new one")
    return seconds


def check_request_size(name: str, seconds: float, params: dict) -> None:
    """Refuse a request the backend would skip as too long, before sending it."""
    size = len(protocol.encode_request("j0", "refine", params))
    limit = int((bridge.BRIDGE.hello.get("limits") or {}).get("max_line_bytes", protocol.MAX_LINE_BYTES))
    if size > limit:
        raise JobError(f"take '{name}' is too long to refine ({seconds:.0f} s makes a {size / 2**20:.0f} MB "
                       f"request; the backend reads at most {limit / 2**20:.0f} MB)",
                       f"Refine a shorter take: the model works on up to {protocol.MAX_SECONDS:g} s at a time")


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
            errors.append(job_error(job.error or {}))
        bridge.BRIDGE.jobs.pop(job.id, None)
    scene = bpy.data.scenes.get(jobs[0].context["target"].scene) if jobs else None
    if scene is not None:
        live = scene.irmogen
        live.running = False
        live.status = "Cancelled" if all(j.status == "cancelled" for j in jobs) else "Done"
        notes = [*live.warnings.splitlines(), *(w for j in jobs for w in j.warnings)]
        live.warnings = "\n".join(dict.fromkeys(n for n in notes if n))
        if errors:
            properties.show_error(scene, str(errors[0]), errors[0].hint, errors[0].fix)
        else:
            properties.clear_error(scene)
        if made:
            takeview.show_take(scene, made[-1])
    return made, errors


def job_error(err: dict) -> JobError:
    """A job's error event as a JobError. "No model" carries the backend's real reason (kept from
    its hello: a missing directory, not a model directory, ...) and points at the preferences."""
    code, message, hint = err.get("code"), err.get("message") or "the backend failed", err.get("hint") or ""
    if code == "no_model":
        reason = bridge.BRIDGE.hello.get("model_error") or {}
        message = reason.get("message") or message
        hint = "Choose the model in the add-on's preferences (Edit > Preferences > Add-ons > IRMoGen)" + (
            f"; {reason['hint']}" if reason.get("hint") else "")
        return JobError(message, hint)
    return JobError(message, hint, "irmogen.setup_backend" if code == bridge.EXITED else "")


# ---- live state for the panel -----------------------------------------------------------------
def begin_live(scene, status: str, warnings: list[str] = ()) -> None:
    live = scene.irmogen
    properties.clear_error(scene)
    live.running, live.status, live.progress, live.analysis = True, status, 0.0, ""
    live.transcript_take = ""
    live.warnings = "\n".join(warnings)
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
    takeview.fill_rounds(live, job.rounds)
    for area in (bpy.context.screen.areas if bpy.context.screen else ()):
        area.tag_redraw()


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


def clip_bytes(clip: dict) -> bytes:
    """A clip dict as the bytes of its .npz (what a take packs)."""
    buf = io.BytesIO()
    clipfile.write_npz(clip, buf)
    return buf.getvalue()


def _take_from_job(job: bridge.Job):
    """Pack the job's clips (final and per round) into a new take made from the final one."""
    info: takes.TakeInfo = job.context["info"]
    result = job.result or {}
    final = clip_from_payload(result.get("clip") or result.get("motion") or {}, "result.clip")
    rounds, packed = [], {"final": clip_bytes(final)}
    for k, r in enumerate(job.rounds):
        entry = {key: r[key] for key in ("round", "analysis", "assessment", "refinement", "part", "piece",
                                         "part_round", "caption", "assessed_by", "contradicted") if key in r}
        entry.setdefault("round", k)
        payload = r.get("clip") or r.get("motion")
        if isinstance(payload, dict):
            entry["clip"] = f"round_{entry['round']}"
            packed[entry["clip"]] = clip_bytes(clip_from_payload(payload, f"round {k}"))
        rounds.append(entry)
    info.source = "final"
    info.rounds = max(len(rounds), int(result.get("rounds", 0) or 0))
    info.transcript = json.dumps({"analysis": job.analysis, "rounds": rounds,
                                  "backend": result.get("transcript", "")}, ensure_ascii=False)
    target: Target = job.context["target"]
    return take_from_clip(bpy.data.objects[target.armature], final, info, target.start_frame,
                          bpy.data.scenes[target.scene], packed)


def take_clip(take, name: str = "") -> dict:
    """A clip a take was made from (`name`: "final" or a round's key; default the take's source),
    read from the copy packed in the take; takes from older files may name a clip file instead."""
    info = takes.read_info(take)
    name = name or info.source or "final"
    data = takes.packed_clip(take, name)
    if data is not None:
        try:
            return clipfile.load_npz(io.BytesIO(data), where=f"take '{take.name}' ({name})")
        except clipfile.ClipFileError as e:
            raise JobError(str(e), e.hint) from None
    if Path(name).is_file():
        return _read_clip(name)
    raise JobError(f"take '{take.name}' holds no motion '{name}' (its clip file is gone)",
                   "Apply the motion again or regenerate the take")


def offer_rig_maps() -> None:
    """Registration: fill the bone-map menu (auto-detection only if the rigs folder is damaged;
    retargeting then reports it)."""
    try:
        properties.set_rig_maps(bonemap.rig_maps())
    except retarget.RetargetError:
        pass


def rig_mapping(obj, scene) -> rigmap.MapResult:
    """The one place that decides the bone map of `obj` for Generate, Refine, Apply and Use Round:
    the mapping stored on the armature (the Bone Map editor), else auto-detection (by the rig maps'
    names, then the rig's shape; the panel's Bone Map menu can force a map). Raises JobError naming
    what is wrong, so callers can refuse a rig before anything is sent to the backend."""
    override = scene.irmogen.rig_map
    try:
        found = bonemap.mapping_for(obj, bonemap.rig_maps(),
                                    override=None if override == properties.AUTO_RIG_MAP else override)
    except retarget.RetargetError as e:
        message = e.message if e.message.startswith(f"'{obj.name}'") else f"'{obj.name}': {e.message}"
        raise JobError(message, e.hint or rigdetect.BY_HAND) from None
    if scene.irmogen.root_mode == "ROOT_BONE" and found.root_bone is None:
        raise JobError(f"'{obj.name}': its bone map '{found.name}' names no root bone",
                       "Put the root motion on the hips or in place, or pick the Root bone in the Bone Map panel")
    return found


def usable_armature(context):
    """The active armature, once its bone map is known to work (Generate, Refine and Apply call
    this first: a 1-bone or 4-legged armature is refused before any request or file is read)."""
    obj = active_armature(context)
    rig_mapping(obj, context.scene)
    return obj


def retarget_options(scene, start_frame: int, root_bone: str | None) -> retarget.RetargetOptions:
    """The scene's settings as retargeting options (frame rate, take start, root motion mode)."""
    return retarget.RetargetOptions(scene_fps=scene.render.fps / scene.render.fps_base,
                                    frame_start=int(start_frame),
                                    root_motion=scene.irmogen.root_mode.lower(), root_bone=root_bone)


def take_from_clip(obj, clip: dict, info: takes.TakeInfo, start_frame: int, scene, packed: dict | None = None):
    """Retarget a clip dict onto `obj` and key it as a new take starting at `start_frame`.

    The bone map is `rig_mapping`'s, the rig's switches the map names are set, and the map's report
    and the constraint warnings go to the panel's rig box. `packed` ({name: .npz bytes}, default
    the clip itself as "final") goes into the take, which becomes the picked one in the list.
    """
    found = rig_mapping(obj, scene)
    try:
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
        take = takes.create_take(obj, pose, info, start_frame=start_frame, blend_type=scene.irmogen.blend_type,
                                 extrapolation=scene.irmogen.extrapolation,
                                 clips=packed if packed is not None else {"final": clip_bytes(clip)})
    except ValueError as e:
        raise JobError(str(e)) from None
    takeview.select(scene, take)
    return take


def _read_clip(path) -> dict:
    try:
        return clipfile.load_clip(path, bonemap.rig_maps())
    except clipfile.ClipFileError as e:
        raise JobError(str(e), e.hint) from None
    except retarget.RetargetError as e:
        raise JobError(e.message, e.hint or "Reinstall the add-on: its rigs folder is damaged") from None


def apply_clip_file(context, path) -> object:
    """`irmogen.apply_clip`: a clip .npz or BVH -> a new take on the active armature."""
    obj = usable_armature(context)
    clip = _read_clip(path)
    info = takes.TakeInfo(prompt=clip.get("text") or Path(path).name, kind="clip", model="file", source="final")
    info.transcript = clip.get("transcript") or "{}"
    take = take_from_clip(obj, clip, info, context.scene.frame_current, context.scene)
    takeview.show_take(context.scene, take)
    properties.clear_error(context.scene)
    return take


def use_round(context, take_name: str, index: int):
    """`irmogen.use_round`: round `index` of a take becomes a new take (its child) and is assigned."""
    obj = usable_armature(context)
    take = bpy.data.actions.get(take_name)
    if take is None or not takes.is_take(take):
        raise JobError(f"no take named '{take_name}'")
    parent = takes.read_info(take)
    rounds = takeview.transcript(parent).get("rounds", [])
    entry = next((r for r in rounds if r.get("round") == index), None)
    if entry is None or not entry.get("clip"):
        raise JobError(f"take '{take_name}' has no motion for round {index}")
    clip = take_clip(take, entry["clip"])
    packed = {name: takes.packed_clip(take, name) for name in take.get(takes.CLIPS_KEY, {}).keys()}
    packed["final"] = clip_bytes(clip)     # the new take's own motion; the rounds stay usable from it
    info = takes.TakeInfo(prompt=parent.prompt, kind="round", model=parent.model, seed=parent.seed,
                          rounds=parent.rounds, round_used=index, transcript=parent.transcript,
                          parent=take.name, source="final", date=time.strftime("%Y-%m-%d %H:%M"))
    new = take_from_clip(obj, clip, info, context.scene.frame_current, context.scene, packed)
    takeview.show_take(context.scene, new)
    properties.clear_error(context.scene)
    return new

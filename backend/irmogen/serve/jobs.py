"""What the server does for each job: the loaded model (Session) and one handler per job method.

A handler takes (session, typed params from protocol.py, job) and yields (event, data) pairs:
`progress` and `round` while it works, then exactly one `result` or `cancelled`. It raises
IrmogenError for anything a user can fix; the server turns every exception into an `error` event.
Clips cross the protocol as payloads (protocol.encode_clip / decode_clip) with numpy fast paths here.
Needs numpy and, through the model, torch; must not import bpy.
"""
from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import protocol as P
from ..clip import Clip
from ..errors import IrmogenError
from ..feet import cleanup_if
from ..resample import at_fps


class Session:
    """The model the server holds warm and the device it runs on; only the worker thread changes it."""

    def __init__(self, device: str = "auto", dtype: str | None = None):
        from ..device import resolve_device

        self.device, self.dtype = resolve_device(device, dtype)
        self.model = None
        self.info: dict | None = None   # model_info of the loaded model

    def load(self, spec) -> dict:
        """Load a model (our directory, a .json spec path, or a spec dict); the old one stays on failure."""
        from ..llm.loaders import load_model

        t = time.perf_counter()
        model = load_model(spec, device=self.device, dtype=self.dtype)
        self.model, self.info = model, model_info(model, spec, time.perf_counter() - t)
        return self.info

    def require_model(self):
        if self.model is None:
            raise IrmogenError("no model is loaded", code=P.NO_MODEL,
                               hint="send load_model with a model directory, or start the server with --model DIR")
        return self.model


def model_info(model, spec, load_seconds: float) -> dict:
    """What hello, status and load_model report about a model."""
    if isinstance(spec, dict):
        path, name = None, str(spec.get("name") or spec["format"])
    else:
        p = Path(spec).resolve()
        path, name = str(p), (p.name if p.is_dir() else p.stem)
    config = model.config
    if config.prompt_style == "motion_agent":
        kind = "motion_agent"
    else:
        kind = "irg" if config.normalisation == "published_vq" else "irmogen"
    return {"id": name, "path": path, "kind": kind, "prompt_style": config.prompt_style,
            "parameters": int(sum(p.numel() for p in model.lm.parameters())), "fps": config.fps,
            "codebook_size": config.codebook_size, "load_s": round(load_seconds, 3)}


# ---- clips <-> payloads ----------------------------------------------------------------------
def clip_payload(clip: Clip, form: str = "base64") -> dict:
    return P.encode_clip(clip.fps, clip.offsets, clip.rotations, clip.root_translation, clip.positions,
                         clip.text, form)


def clip_from_payload(data: P.ClipData) -> Clip:
    """A decoded payload -> Clip; rotations are solved from the positions when the payload has none."""
    positions = data.positions.to_numpy().astype(np.float64)
    if data.rotations is None or data.root_translation is None or data.offsets is None:
        from ..rotations import clip_from_positions

        return clip_from_positions(positions, data.fps, text=data.text)
    clip = Clip(data.fps, data.offsets.to_numpy().astype(np.float64), data.rotations.to_numpy().astype(np.float64),
                data.root_translation.to_numpy().astype(np.float64), positions, text=data.text)
    return clip.validate("params.clip")


def motion_argument(motion: P.Motion):
    return clip_from_payload(motion.clip) if motion.clip is not None else list(motion.codes)


def sampling_options(s: P.Sampling) -> dict:
    """Decoder keyword arguments; a sampled job without a seed gets a random one (reported back)."""
    seed = s.seed if s.seed is not None or s.greedy else random.getrandbits(63)
    return {"greedy": s.greedy, "temperature": s.temperature, "top_p": s.top_p, "seed": seed, "guidance": s.guidance}


def _timings(job, t0: float, first_round: float | None = None) -> dict:
    out = {"queued_s": round(job.queued_s, 4), "total_s": round(time.perf_counter() - t0, 4)}
    if first_round is not None:
        out["first_round_s"] = round(first_round - t0, 4)
    return out


# ---- handlers ----------------------------------------------------------------------------------
def _round_data(ev, payload: str) -> dict | None:
    """A reasoning event as the data of a `round` event (None for events that are not rounds)."""
    from ..reasoning.template import NO_REFINEMENT

    if ev.kind == "analysis":
        return {"kind": "analysis", "round": 0, "text": ev.text, "tokens": ev.tokens}
    if ev.kind == "motion":
        return {"kind": "motion", "round": ev.round, "codes": ev.codes, "tokens": ev.tokens,
                "clip": clip_payload(ev.clip, payload)}
    if ev.kind == "assessment":
        return {"kind": "assessment", "round": ev.round, "assessment": ev.text, "refinement": ev.refinement,
                "tokens": ev.tokens, "satisfied": (ev.refinement or "").strip() == NO_REFINEMENT,
                "assessed_by": ev.author, "contradicted": ev.contradicted}
    return None


def run_generate(session: Session, p: P.GenerateParams, job) -> Iterator[tuple[str, dict]]:
    """The IRMoGen trace: a `round` event per analysis, motion and assessment, then `result`.
    Prompts of several parts, and lengths beyond one motion, run as a sequence (run_sequence)."""
    from ..reasoning import sequence, tasks
    from ..splice import exact_length

    if p.start is not None or not sequence.is_plain(p.text, p.seconds):
        yield from run_sequence(session, p, job)
        return
    model = session.require_model()
    sampling = sampling_options(p.sampling)
    t0, first = time.perf_counter(), None
    for ev in tasks.generate(model, p.text, seconds=p.seconds, max_rounds=p.max_rounds,
                             max_text_tokens=p.max_text_tokens, cancel=job.cancel, assessor=p.assessor,
                             **sampling):
        if ev.kind == "progress":
            yield "progress", {"tokens": ev.tokens, "round": ev.round}
            continue
        if ev.kind == "cancelled":
            yield "cancelled", {"rounds": len(ev.trace.rounds), "tokens": ev.tokens,
                                "transcript": ev.trace.to_json()}
            return
        if ev.kind == "done":
            trace = ev.trace
            clip = cleanup_if(exact_length(ev.final_clip, p.seconds), p.cleanup)
            yield "result", {"clip": clip_payload(clip, p.payload), "codes": trace.final_codes,
                             "transcript": trace.to_json(), "rounds": len(trace.rounds),
                             "finished": trace.finished, "satisfied": trace.satisfied, "text": p.text,
                             "seed": sampling["seed"], "tokens": len(ev.ids) - ev.prompt_length,
                             "warnings": p.warnings, "timings": _timings(job, t0, first)}
            return
        first = first or time.perf_counter()
        data = _round_data(ev, p.payload)
        if data is not None:
            yield "round", data


def run_sequence(session: Session, p: P.GenerateParams, job) -> Iterator[tuple[str, dict]]:
    """generate for several parts or more than one motion's length, and extend (p.start): the parts
    in order, each continued from the previous end; every event says which part (and piece) it is
    of. A cancel stops the part being generated; the parts after it never start."""
    model = session.require_model()
    sampling = sampling_options(p.sampling)
    start = None if p.start is None else at_fps(clip_from_payload(p.start), model.config.fps)
    t0 = time.perf_counter()
    ended = yield from _part_events(model, p, job, start, sampling)
    if ended is not None:
        done, first_round = ended
        yield "result", _sequence_result(done, p, start, sampling, _timings(job, t0, first_round))


def _part_events(model, p: P.GenerateParams, job, start, sampling):
    """Yield the sequence's progress / round / cancelled events, tagged with their part; return
    (SequenceDone, time of the first round), or None when cancelled."""
    from ..reasoning import sequence

    n_parts = len(sequence.plan(sequence.split_prompt(p.text), p.seconds, model.config.fps))
    piece, base, last, motions, first = None, 0, 0, 0, None  # token counts restart with every piece
    for ev in sequence.run_sequence(model, p.text, seconds=p.seconds, start_clip=start, max_rounds=p.max_rounds,
                                    max_text_tokens=p.max_text_tokens, cancel=job.cancel, assessor=p.assessor,
                                    **sampling):
        if isinstance(ev, sequence.SequenceDone):
            return ev, first
        if (ev.part, ev.piece) != piece:
            piece, base = (ev.part, ev.piece), base + last
        where = {"part": ev.part, "piece": ev.piece, "parts": n_parts, "caption": ev.caption}
        inner = ev.event
        last = getattr(inner, "tokens", last)
        if inner.kind == "cancelled":
            yield "cancelled", {"rounds": motions, "tokens": base + inner.tokens,
                                "transcript": inner.trace.to_json(), **where}   # the interrupted part's rounds
            return None
        if inner.kind == "progress":
            yield "progress", {"tokens": base + inner.tokens, "round": inner.round, **where}
            continue
        first = first or time.perf_counter()
        motions += inner.kind == "motion"
        data = _round_data(inner, p.payload)
        if data is not None:
            yield "round", {**data, "tokens": base + data["tokens"], **where}
    raise IrmogenError("generate: the model produced no motion", code="internal")


def _sequence_result(done, p: P.GenerateParams, start, sampling: dict, timings: dict) -> dict:
    import json

    from ..reasoning.sequence import transcript
    from ..splice import clean_after

    n = start.num_frames if start is not None else 0
    # Cleanup runs on the new frames only: an extended clip's own frames stay as they were.
    clip = clean_after(done.clip, n, lambda c: cleanup_if(c, p.cleanup))
    trace = transcript(p.text, done.parts, done.seams)
    return {"clip": clip_payload(clip.with_(text=p.text), p.payload), "codes": None,
            "transcript": json.dumps(trace, ensure_ascii=False),
            "rounds": sum(part["rounds"] for part in done.parts), "finished": trace["finished"],
            "satisfied": all(part["satisfied"] for part in done.parts), "text": p.text, "seed": sampling["seed"],
            "parts": [{k: v for k, v in part.items() if k != "traces"} for part in done.parts],
            "seams": done.seams, "take_frames": n, "warnings": p.warnings, "timings": timings}


def run_refine(session: Session, p: P.RefineParams, job) -> Iterator[tuple[str, dict]]:
    """Instructed refinement (instruction, optional goal text) or direct refinement (text only).
    With `seconds` the motion comes back exactly round(seconds * fps) frames long (the model writes
    whole 4-frame codes within +-10 % of it; the clip is then time-fitted), so a refined take keeps
    its take's length."""
    from ..reasoning import tasks
    from ..splice import exact_length

    if p.frames is not None or p.part != "whole":   # a stretch or body part of the take only
        yield from run_refine_range(session, p, job)
        return
    model, t0 = session.require_model(), time.perf_counter()
    motion, sampling = motion_argument(p.motion), sampling_options(p.sampling)
    if p.instruction is not None:
        codes, clip = tasks.refine_instructed(model, motion, p.instruction, goal=p.text, seconds=p.seconds,
                                              cancel=job.cancel, **sampling)
    else:
        codes, clip = tasks.refine_direct(model, motion, p.text, seconds=p.seconds, cancel=job.cancel, **sampling)
    payload = clip_payload(cleanup_if(exact_length(clip, p.seconds), p.cleanup), p.payload)
    yield "round", {"kind": "motion", "round": 1, "codes": codes, "clip": payload}
    yield "result", {"clip": payload, "codes": codes, "mode": "instructed" if p.instruction is not None else "direct",
                     "seed": sampling["seed"], "warnings": p.warnings, "timings": _timings(job, t0)}


def run_refine_range(session: Session, p: P.RefineParams, job) -> Iterator[tuple[str, dict]]:
    """Refine frames [A, B) and/or one body part of the clip: the model refines that stretch alone,
    it is spliced back (splice.refine_stretch), and every other value comes back bit-identical."""
    from ..reasoning import tasks
    from ..splice import fit_length, refine_stretch

    model, t0 = session.require_model(), time.perf_counter()
    take, sampling, found = clip_from_payload(p.motion.clip), sampling_options(p.sampling), {}

    def refine(window, seconds):
        if p.instruction is not None:
            codes, clip = tasks.refine_instructed(model, window, p.instruction, goal=p.text, seconds=seconds,
                                                  cancel=job.cancel, **sampling)
        else:
            codes, clip = tasks.refine_direct(model, window, p.text, seconds=seconds, cancel=job.cancel, **sampling)
        found["codes"] = codes
        return cleanup_if(fit_length(clip, window.num_frames), p.cleanup)
    out, where = refine_stretch(take, p.frames, p.part, refine)
    payload = clip_payload(out, p.payload)
    yield "round", {"kind": "motion", "round": 1, "codes": found["codes"], "clip": payload}
    yield "result", {"clip": payload, "codes": found["codes"], **where,
                     "mode": "instructed" if p.instruction is not None else "direct",
                     "seed": sampling["seed"], "warnings": p.warnings, "timings": _timings(job, t0)}


def run_assess(session: Session, p: P.AssessParams, job) -> Iterator[tuple[str, dict]]:
    from ..reasoning import tasks
    from ..reasoning.template import NO_REFINEMENT

    model, t0 = session.require_model(), time.perf_counter()
    sampling = sampling_options(p.sampling)
    assessment, refinement = tasks.assess(model, motion_argument(p.motion), p.text, max_text_tokens=p.max_text_tokens,
                                          cancel=job.cancel, **sampling)
    data = {"assessment": assessment, "refinement": refinement, "satisfied": refinement == NO_REFINEMENT}
    yield "round", {"kind": "assessment", "round": 1, **data}
    yield "result", {**data, "seed": sampling["seed"], "warnings": p.warnings, "timings": _timings(job, t0)}


def run_caption(session: Session, p: P.CaptionParams, job) -> Iterator[tuple[str, dict]]:
    from ..reasoning import tasks

    model, t0 = session.require_model(), time.perf_counter()
    sampling = sampling_options(p.sampling)
    text = tasks.caption(model, motion_argument(p.motion), max_text_tokens=p.max_text_tokens, cancel=job.cancel,
                         **sampling)
    yield "result", {"caption": text, "seed": sampling["seed"], "timings": _timings(job, t0)}


def run_load_model(session: Session, p: P.LoadModelParams, job) -> Iterator[tuple[str, dict]]:
    """Switch models. Loading cannot be interrupted: a cancel arriving meanwhile changes nothing."""
    t0 = time.perf_counter()
    info = session.load(p.model)
    yield "result", {"model": info, "timings": _timings(job, t0)}


def run_clean(session: Session, p: P.CleanParams, job) -> Iterator[tuple[str, dict]]:
    """Foot contact cleanup of a clip the client holds (an imported take); needs no model."""
    from ..feet import clean_feet

    t0 = time.perf_counter()
    clip, report = clean_feet(clip_from_payload(p.clip))
    yield "result", {"clip": clip_payload(clip, p.payload), "report": report.summary(),
                     "contacts": report.contacts, "timings": _timings(job, t0)}


HANDLERS = {"generate": run_generate, "extend": run_generate, "refine": run_refine, "assess": run_assess,
            "caption": run_caption, "load_model": run_load_model, "clean": run_clean}

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
    return {"greedy": s.greedy, "temperature": s.temperature, "top_p": s.top_p, "seed": seed}


def _timings(job, t0: float, first_round: float | None = None) -> dict:
    out = {"queued_s": round(job.queued_s, 4), "total_s": round(time.perf_counter() - t0, 4)}
    if first_round is not None:
        out["first_round_s"] = round(first_round - t0, 4)
    return out


# ---- handlers ----------------------------------------------------------------------------------
def run_generate(session: Session, p: P.GenerateParams, job) -> Iterator[tuple[str, dict]]:
    """The IRMoGen trace: a `round` event per analysis, motion and assessment, then `result`."""
    from ..reasoning import tasks
    from ..reasoning.template import NO_REFINEMENT

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
            clip = cleanup_if(ev.final_clip, p.cleanup)
            yield "result", {"clip": clip_payload(clip, p.payload), "codes": trace.final_codes,
                             "transcript": trace.to_json(), "rounds": len(trace.rounds),
                             "finished": trace.finished, "satisfied": trace.satisfied, "text": p.text,
                             "seed": sampling["seed"], "tokens": len(ev.ids) - ev.prompt_length,
                             "warnings": p.warnings, "timings": _timings(job, t0, first)}
            return
        first = first or time.perf_counter()
        if ev.kind == "analysis":
            yield "round", {"kind": "analysis", "round": 0, "text": ev.text, "tokens": ev.tokens}
        elif ev.kind == "motion":
            yield "round", {"kind": "motion", "round": ev.round, "codes": ev.codes, "tokens": ev.tokens,
                            "clip": clip_payload(ev.clip, p.payload)}
        elif ev.kind == "assessment":
            yield "round", {"kind": "assessment", "round": ev.round, "assessment": ev.text,
                            "refinement": ev.refinement, "tokens": ev.tokens,
                            "satisfied": (ev.refinement or "").strip() == NO_REFINEMENT,
                            "assessed_by": ev.author, "contradicted": ev.contradicted}


def run_refine(session: Session, p: P.RefineParams, job) -> Iterator[tuple[str, dict]]:
    """Instructed refinement (instruction, optional goal text) or direct refinement (text only)."""
    from ..reasoning import tasks

    model, t0 = session.require_model(), time.perf_counter()
    motion, sampling = motion_argument(p.motion), sampling_options(p.sampling)
    if p.instruction is not None:
        codes, clip = tasks.refine_instructed(model, motion, p.instruction, goal=p.text, seconds=p.seconds,
                                              cancel=job.cancel, **sampling)
    else:
        codes, clip = tasks.refine_direct(model, motion, p.text, seconds=p.seconds, cancel=job.cancel, **sampling)
    payload = clip_payload(cleanup_if(clip, p.cleanup), p.payload)
    yield "round", {"kind": "motion", "round": 1, "codes": codes, "clip": payload}
    yield "result", {"clip": payload, "codes": codes, "mode": "instructed" if p.instruction is not None else "direct",
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


HANDLERS = {"generate": run_generate, "refine": run_refine, "assess": run_assess, "caption": run_caption,
            "load_model": run_load_model, "clean": run_clean}

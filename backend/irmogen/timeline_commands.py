"""The timeline side of `irmogen generate / extend / refine`: prompts of several actions, lengths
up to 60 s exact to the frame, continuing a take, and refining a frame range or a body part.

commands.py hands over to these functions; both share command_io (model loading, printing, cleanup,
file writing), so output looks the same and files are written only when everything succeeded.
"""
from __future__ import annotations

import json
import time

from . import command_io, splice
from .clip import Clip
from .errors import IrmogenError


def _run(model, a, text: str, seconds, start_clip=None):
    """Generate the parts of `text` (after `start_clip` if given); print as it streams; return
    (clip, parts report, seams)."""
    from .reasoning import sequence, tasks
    from .reasoning.decoder import CancelledEvent

    run = tasks.generate_manual if a.manual else tasks.generate
    opts = dict(max_rounds=a.max_rounds, assessor=a.assessor, **command_io.sampling_options(a))
    for ev in sequence.run_sequence(model, text, seconds=seconds, start_clip=start_clip, generate=run, **opts):
        if isinstance(ev, sequence.SequenceDone):
            return ev.clip, ev.parts, ev.seams
        if isinstance(ev.event, CancelledEvent):
            raise IrmogenError("cancelled", code="cancelled")
        part = f"part {ev.part + 1}" + (f".{ev.piece + 1}" if ev.piece else "")
        named = ev.event.kind == "analysis"            # a part (piece) starts: say which caption it is
        command_io.print_round(ev.event, model.config.fps, tag=f'{part} "{ev.caption}": ' if named else f"{part}: ")
    raise IrmogenError("generate: the model produced no motion", code="internal")


def _summary(parts: list[dict], fps: float) -> None:
    for i, p in enumerate(parts, 1):
        command_io.say(f"part {i}: \"{p['caption']}\" frames {p['start']}-{p['start'] + p['frames']} "
                     f"({p['frames'] / fps:.2f} s), {p['rounds']} round(s)")


def generate_sequence(a) -> None:
    """`irmogen generate` for several parts or more than one motion's length."""
    model = command_io.load(a.model, a.device)
    t0 = time.perf_counter()
    clip, parts, seams = _run(model, a, a.text, a.seconds)
    _summary(parts, clip.fps)
    from .reasoning.sequence import transcript as sequence_transcript
    transcript = {**sequence_transcript(a.text, parts, seams), "model": str(a.model or "default"),
                  "seconds_taken": round(time.perf_counter() - t0, 3)}
    clip = command_io.cleaned(clip.with_(text=a.text, transcript=json.dumps(transcript, ensure_ascii=False)), a)
    command_io.write_outputs(clip, a.out, a.bvh, transcript, a.transcript)


def extend(a) -> None:
    """`irmogen extend CLIP "TEXT" [--seconds S] --out CLIP`: the take followed by new motion."""
    from .io import load_motion

    from .resample import at_fps

    model = command_io.load(a.model, a.device)
    take = at_fps(load_motion(a.clip), model.config.fps)
    if take.num_frames < 2:
        raise IrmogenError(f"{a.clip}: {take.num_frames} frame(s); a take to extend needs at least 2")
    t0 = time.perf_counter()
    clip, parts, seams = _run(model, a, a.text, a.seconds, start_clip=take)
    _summary(parts, clip.fps)
    # Cleanup runs on the new frames only: the take's own frames stay as they were.
    clip = splice.clean_after(clip, take.num_frames, lambda c: command_io.cleaned(c, a))
    text = f"{take.text}, then {a.text}" if take.text else a.text
    from .reasoning.sequence import transcript as sequence_transcript
    transcript = {**sequence_transcript(a.text, parts, seams), "extended_from": str(a.clip),
                  "take_frames": take.num_frames, "seconds_taken": round(time.perf_counter() - t0, 3)}
    command_io.write_outputs(clip.with_(text=text, transcript=json.dumps(transcript, ensure_ascii=False)),
                           a.out, a.bvh, transcript, a.transcript)


def refine_range(a, clip: Clip, model, refine_fn) -> tuple[Clip, dict]:
    """Refine frames A:B and/or one body part of a take; everything else stays bit-identical.

    `refine_fn(window_clip) -> new clip` is the ordinary refinement, run on the range alone.
    """
    frames = splice.parse_frames(a.frames) if a.frames else None

    def run(window: Clip, seconds: float) -> Clip:
        if getattr(a, "seconds", None) is None:  # ask the model for a motion as long as the range
            a.seconds = seconds
        return command_io.cleaned(refine_fn(window), a)
    return splice.refine_stretch(clip, frames, a.part, run)


def add_extend(e) -> None:
    e.add_argument("clip", help="the take to continue (clip .npz or any importable motion file)")
    e.add_argument("text", help="what happens next; several parts allowed (\"waves, then sits down\")")
    e.add_argument("--seconds", type=float, help="length of the new motion (up to 60 s; exact to the frame)")
    e.add_argument("--max-rounds", type=int, default=5, help="cap on generate/assess/refine rounds per part")
    e.add_argument("--manual", action="store_true", help="stage-1 mode: separate generate / instruct / refine calls")
    command_io.add_assessor_argument(e)
    command_io.add_model_arguments(e)
    command_io.add_output_arguments(e)
    e.set_defaults(run=extend)


def add_range_arguments(r) -> None:
    r.add_argument("--frames", help="refine only frames A:B of the take (A included, B excluded, from 0)")
    r.add_argument("--part", default="whole", choices=list(splice.PARTS),
                   help="refine only this body part (default: whole)")

"""What `irmogen generate / refine / assess / caption` do, apart from parsing flags.

Loads the model once, runs one task from `reasoning.tasks`, prints the reasoning as it streams
(analysis, then per round the motion, the assessment and the refinement instruction), and writes
the clip (with its text and transcript inside), optionally a BVH and a transcript JSON. Files are
written only after the model has finished, so a failure or Ctrl-C leaves nothing half-written.
"""
from __future__ import annotations

import json
import time

from .clip import Clip
from .command_io import (add_assessor_argument, add_model_arguments, add_output_arguments, cleaned, load,
                         print_round, sampling_options, say, write_outputs)
from .errors import IrmogenError


def generate(a) -> None:
    from .reasoning import tasks
    from .reasoning.decoder import DoneEvent
    from .reasoning.sequence import is_plain

    if not is_plain(a.text, a.seconds):  # several actions, or longer than one motion
        from .timeline_commands import generate_sequence
        return generate_sequence(a)
    model = load(a.model, a.device)
    run = tasks.generate_manual if a.manual else tasks.generate
    opts = dict(seconds=a.seconds, max_rounds=a.max_rounds, assessor=a.assessor, **sampling_options(a))
    t0 = time.perf_counter()
    done = None
    for ev in run(model, a.text, **opts):
        if isinstance(ev, DoneEvent):
            done = ev
        else:
            print_round(ev, model.config.fps)
    if done is None or done.final_clip is None:
        raise IrmogenError("generate: the model produced no motion", code="internal")
    trace = done.trace.to_dict()
    transcript = {"text": a.text, "model": str(a.model or "default"), **trace,
                  "seconds_taken": round(time.perf_counter() - t0, 3)}
    clip = done.final_clip.with_(text=a.text, transcript=json.dumps(transcript, ensure_ascii=False))
    from .splice import exact_length
    clip = cleaned(exact_length(clip, a.seconds), a)
    say(f"{len(done.trace.rounds)} round(s), {'satisfied' if done.trace.satisfied else 'round cap reached'}")
    write_outputs(clip, a.out, a.bvh, transcript, a.transcript)


def _input_clip(path) -> Clip:
    from .io import load_motion

    return load_motion(path)


def refine(a) -> None:
    from .reasoning import tasks

    clip = _input_clip(a.clip)
    model = load(a.model, a.device)
    ranged = bool(getattr(a, "frames", None)) or getattr(a, "part", "whole") != "whole"

    def run(c):
        if a.direct:
            return tasks.refine_direct(model, c, a.instruction, seconds=a.seconds, **sampling_options(a))
        return tasks.refine_instructed(model, c, a.instruction, goal=a.goal, seconds=a.seconds,
                                       **sampling_options(a))
    if ranged:  # only frames A:B and/or one body part change; the rest stays bit-identical
        from .timeline_commands import refine_range
        found = {}
        out, where = refine_range(a, clip, model, lambda c: found.setdefault("r", run(c))[1])
        codes = found["r"][0]
    else:
        from .splice import exact_length
        codes, out = run(clip)
        out, where = exact_length(out, a.seconds), {}      # --seconds: exactly that many frames
    text = a.instruction if a.direct else a.goal or clip.text or a.instruction
    transcript = {"refined_from": str(a.clip), "instruction": a.instruction, "direct": a.direct,
                  "goal": a.goal, "codes": [int(c) for c in codes], **where}
    out = out.with_(text=text, transcript=json.dumps(transcript, ensure_ascii=False))
    out = out if ranged else cleaned(out, a)
    say(f"refined {a.clip} by \"{a.instruction}\": {len(codes)} codes")
    write_outputs(out, a.out, a.bvh, transcript, a.transcript)


def assess(a) -> None:
    from .reasoning import tasks

    clip = _input_clip(a.clip)
    model = load(a.model, a.device)
    assessment, refinement = tasks.assess(model, clip, a.text, **sampling_options(a))
    say(f"assessment: {assessment}")
    say(f"refinement: {refinement}")


def caption(a) -> None:
    from .reasoning import tasks

    clip = _input_clip(a.clip)
    model = load(a.model, a.device)
    say(tasks.caption(model, clip, **sampling_options(a)))


def add_generate(g) -> None:
    g.add_argument("text")
    g.add_argument("--seconds", type=float, help="length, exact to the frame (up to 60 s: longer motions and "
                   "prompts of several parts, \"walks, then jumps\", are continued part by part)")
    g.add_argument("--max-rounds", type=int, default=5, help="cap on generate/assess/refine rounds")
    g.add_argument("--manual", action="store_true", help="stage-1 mode: separate generate / instruct / refine calls")
    add_assessor_argument(g)
    add_model_arguments(g)
    add_output_arguments(g)
    g.set_defaults(run=generate)


def add_refine(r) -> None:
    r.add_argument("clip", help="clip .npz (or any importable motion file)")
    r.add_argument("instruction")
    r.add_argument("--goal", help="the goal text the refined motion should match")
    r.add_argument("--direct", action="store_true", help="treat INSTRUCTION as the new target text")
    r.add_argument("--seconds", type=float)
    from .timeline_commands import add_range_arguments
    add_range_arguments(r)
    add_model_arguments(r)
    add_output_arguments(r)
    r.set_defaults(run=refine)


def add_assess(s) -> None:
    s.add_argument("clip")
    s.add_argument("text")
    add_model_arguments(s)
    s.set_defaults(run=assess)


def add_caption(c) -> None:
    c.add_argument("clip")
    add_model_arguments(c)
    c.set_defaults(run=caption)

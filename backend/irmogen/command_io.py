"""What every model command of the CLI shares: loading the model, printing as it streams, the
sampling and output flags, the foot cleanup and writing the outputs.

`commands` (generate / refine / assess / caption) and `timeline_commands` (sequences, extend, range
refine) both build on it, so their output looks the same and files are written only at the end.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .clip import Clip


def load(model_spec, device: str):
    from .llm.loaders import load_model, resolve_model_spec

    spec = resolve_model_spec(model_spec)
    t0 = time.perf_counter()
    model = load_model(spec, device=device)
    say(f"model {spec} on {model.device} ({str(model.dtype).replace('torch.', '')}) in {time.perf_counter() - t0:.1f} s")
    return model


def say(line: str) -> None:
    print(line, flush=True)


def sampling_options(a) -> dict:
    """Greedy decoding (the paper's) unless --sample or --seed asks for sampling."""
    sample = a.sample or a.seed is not None
    return {"greedy": not sample, "temperature": a.temperature, "top_p": a.top_p, "seed": a.seed,
            "guidance": a.guidance}


def write_outputs(clip: Clip, out, bvh=None, transcript: dict | None = None, transcript_path=None) -> None:
    clip.save(out)
    written = [str(out)]
    if bvh:
        from .io import save_bvh

        save_bvh(clip, bvh)
        written.append(str(bvh))
    if transcript_path:
        Path(transcript_path).write_text(json.dumps(transcript, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(str(transcript_path))
    say(f"wrote {', '.join(written)}: {clip.num_frames} frames at {clip.fps:g} fps ({clip.seconds:.2f} s)")


def cleaned(clip: Clip, a) -> Clip:
    """The foot contact cleanup every generating command applies, unless --no-cleanup."""
    from .feet import cleanup_if

    return cleanup_if(clip, not getattr(a, "no_cleanup", False))


def add_model_arguments(p, sampling: bool = True) -> None:
    p.add_argument("--model", help="model directory or a .json spec of Motion-Agent / IRG files (default: the shipped model)")
    p.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:1, mps")
    if sampling:
        p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
        p.add_argument("--seed", type=int, help="random seed (implies --sample)")
        p.add_argument("--temperature", type=float, default=1.0)
        p.add_argument("--top-p", type=float, default=1.0)
        p.add_argument("--guidance", type=float, help="classifier-free guidance scale of motion codes, 1-10 "
                       "(1: none; default: the model's own, from its config.json)")


def add_output_arguments(p) -> None:
    p.add_argument("--out", required=True, help="clip .npz to write")
    p.add_argument("--bvh", help="also write a BVH file")
    p.add_argument("--transcript", help="also write the reasoning transcript as JSON")
    add_cleanup_argument(p)


def add_cleanup_argument(p) -> None:
    p.add_argument("--no-cleanup", action="store_true",
                   help="keep the model's feet as they are (foot contact cleanup is on by default)")


def print_round(ev, fps: float, tag: str = "") -> None:
    """One streamed reasoning event as the lines a user reads (tag: "part 2: " in a sequence)."""
    from .reasoning.decoder import AnalysisEvent, AssessmentEvent, MotionEvent

    if isinstance(ev, AnalysisEvent):
        say(f"{tag}analysis: {ev.text}")
    elif isinstance(ev, MotionEvent):
        say(f"{tag}round {ev.round}: motion of {len(ev.codes)} codes ({len(ev.codes) * 4 / fps:.1f} s)")
    elif isinstance(ev, AssessmentEvent):
        if ev.text:
            say(f"{tag}round {ev.round}: assessment ({ev.author}): {ev.text}")
        for c in ev.contradicted:
            say(f"{tag}round {ev.round}: contradicted: {c['clause']!r} ({c['fact']})")
        say(f"{tag}round {ev.round}: refinement: {ev.refinement}")


def add_assessor_argument(p) -> None:
    from .protocol import ASSESSORS, DEFAULT_ASSESSOR

    p.add_argument("--assessor", choices=ASSESSORS, default=DEFAULT_ASSESSOR,
                   help="who writes each round's assessment: the model, the measurements of the motion, or the "
                   f"model with clauses the measurements contradict marked (default {DEFAULT_ASSESSOR})")

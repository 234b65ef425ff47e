"""Benchmark: prompts of several parts and long motions with the shipped default model.

For every prompt of sequence_prompts.txt, generates the clip as `irmogen generate` does (parts in
order, each continued from the previous end, exact length, foot cleanup on) and prints per part whether each
action it names is measurably there in its window (irmogen.partcheck: travel, jumps, turning,
pelvis drop/rise, hand over the shoulders, foot height, still end), then for the long requests
(15 s, 60 s) the clip length against the asked one and the largest joint jump between consecutive
frames across seams against the largest inside the parts. Asserts nothing.
Run: `.venv/bin/python benchmarks/seams.py [--model DIR] [--max-rounds 2] [--only N]`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from irmogen import splice
from irmogen.feet import cleanup_if
from irmogen.llm.loaders import load_model, resolve_model_spec
from irmogen.partcheck import check_parts
from irmogen.reasoning.sequence import SequenceDone, run_sequence

PROMPTS_FILE = Path(__file__).with_name("sequence_prompts.txt")   # shared with tests/backend/test_sequence.py
PROMPTS = [line.strip() for line in PROMPTS_FILE.read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.startswith("#")]
LONG = [("a person walks forward", 15.0), ("a person walks forward", 60.0), ("a person jogs, then jumps", 15.0)]


def make(model, text, seconds, max_rounds):
    for ev in run_sequence(model, text, seconds=seconds, max_rounds=max_rounds):
        if isinstance(ev, SequenceDone):
            return cleanup_if(ev.clip, True), ev.parts, ev.seams
    raise RuntimeError(f"no clip for {text!r}")


def prompt_report(model, text: str, max_rounds: int) -> list[dict]:
    """Generate one multi-part prompt, print each part's measured figures; -> the part checks."""
    t0 = time.perf_counter()
    clip, parts, seams = make(model, text, None, max_rounds)
    checks = check_parts(clip, parts)
    seam = splice.seam_report(clip, seams)
    print(f"\n{'OK  ' if all(c['ok'] for c in checks) else 'MISS'} {text!r}: {clip.num_frames} frames, "
          f"{time.perf_counter() - t0:.0f} s; seam jump {seam['seam_max']:.3f} m, "
          f"transitions {seam['transition_max']:.3f} m, within parts {seam['within_max']:.3f} m")
    for c in checks:
        figs = ", ".join(f"{x['action']}: {x['figure']}={x['value']:g} (need {x['threshold']:g}) "
                         f"{'yes' if x['ok'] else 'NO'}" for x in c["checks"])
        print(f"    frames {c['frames'][0]:>3}-{c['frames'][1]:<3} {c['caption']!r}: {figs or 'nothing measurable'}")
    return checks


def table_row(text: str, checks: list[dict]) -> str:
    cells = "; ".join(", ".join(f"{x['figure']} {x['value']:.2f} ({x['threshold']:g}){'' if x['ok'] else ' NO'}"
                                for x in c["checks"]) for c in checks)
    return f"| {text} | {sum(c['ok'] for c in checks)}/{len(checks)} | {cells} |"


def long_report(model, text: str, seconds: float, max_rounds: int) -> None:
    clip, parts, seams = make(model, text, seconds, max_rounds)
    seam = splice.seam_report(clip, seams)
    checks = check_parts(clip, parts)
    print(f"  {text!r} {seconds:g} s -> {clip.num_frames} frames ({clip.num_frames / clip.fps:g} s, asked "
          f"{round(seconds * clip.fps)}); {len(seams)} seams: seam max {seam['seam_max']:.3f} m, "
          f"transition max {seam['transition_max']:.3f} m, within-part max {seam['within_max']:.3f} m; "
          f"parts there: {sum(c['ok'] for c in checks)}/{len(checks)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--max-rounds", type=int, default=2)
    ap.add_argument("--only", type=int, help="run only the first N multi-part prompts")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model(resolve_model_spec(a.model), device="cpu")
    print(f"model {resolve_model_spec(a.model)}, greedy, max {a.max_rounds} rounds per part, cleanup on")
    table = ["| prompt | parts there | measured per part (figure value (needed)) |", "|---|---|---|"]
    parts_ok = parts_all = prompts_ok = 0
    for text in PROMPTS[:a.only]:
        checks = prompt_report(model, text, a.max_rounds)
        table.append(table_row(text, checks))
        prompts_ok += all(c["ok"] for c in checks)
        parts_all += len(checks)
        parts_ok += sum(c["ok"] for c in checks)
    print("\n" + "\n".join(table))
    print(f"\nparts measurably there: {parts_ok}/{parts_all}; prompts with every part there: "
          f"{prompts_ok}/{len(PROMPTS[:a.only])}")
    print("\nlong requests (asked seconds -> frames; largest joint jump per frame, metres)")
    for text, seconds in LONG:
        long_report(model, text, seconds, a.max_rounds)
    print(json.dumps({"parts_ok": parts_ok, "parts": parts_all, "prompts_ok": prompts_ok}))


if __name__ == "__main__":
    main()

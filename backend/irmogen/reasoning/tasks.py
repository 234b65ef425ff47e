"""What a user can ask a MotionLLM, one function each: generate (the IRMoGen trace, streamed),
the stage-1 "manual" loop, instructed and direct refinement, assessment, captioning.

A motion argument is either a Clip (turned into codes through HumanML3D features and the model's
VQ; at most 196 frames) or a sequence of codes. Models in Motion-Agent's prompt style
(`config.prompt_style == "motion_agent"`) can only generate: `generate` then writes one motion with
Motion-Agent's prompt. Needs torch through the decoder; must not import bpy.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..clip import Clip
from ..errors import IrmogenError
from ..features import positions_to_features
from ..llm.tokens import codes_to_text
from . import template as T
from .decoder import (MAX_CODES, MAX_TEXT_TOKENS, AssessmentEvent, DoneEvent, MotionEvent, ReasoningDecoder,
                      code_window)
from .parser import Round, Trace, render_trace

MAX_FRAMES = MAX_CODES * 4   # 196 frames: the longest motion the models were trained on


def _use_task(model, task: str) -> None:
    """Activate the task's LoRA adapter on adapter models (Motion-Agent); full-weight models ignore it."""
    if getattr(model.config, "adapters", None) and task in model.config.adapters:
        model.use_task(task)


def motion_codes(model, clip_or_codes) -> list[int]:
    """A Clip (resampled to the model's fps first) or codes -> the model's motion codes."""
    if not isinstance(clip_or_codes, Clip):
        codes = np.asarray(clip_or_codes, dtype=np.int64).reshape(-1)
        if codes.size == 0 or codes.size > MAX_CODES or codes.min() < 0 or codes.max() >= model.layout.codebook_size:
            raise IrmogenError(f"motion codes: {codes.size} codes (need 1..{MAX_CODES}, each in "
                               f"[0, {model.layout.codebook_size}))")
        return codes.tolist()
    clip = clip_or_codes
    from ..resample import at_fps
    clip = at_fps(clip, model.config.fps)
    if not 5 <= clip.num_frames <= MAX_FRAMES + 1:
        raise IrmogenError(f"clip: {clip.num_frames} frames at {clip.fps:g} fps; the model reads 5..{MAX_FRAMES + 1}",
                           hint=f"trim the clip to at most {MAX_FRAMES / model.config.fps:g} seconds")
    return [int(c) for c in model.encode_motion(positions_to_features(clip.positions))]


def generate(model, text: str, **opts) -> Iterator:
    """Stream the IRMoGen trace for `text` (events of reasoning.decoder; options of ReasoningDecoder.run)."""
    _use_task(model, "generate")
    if model.config.prompt_style == "motion_agent":
        return _generate_motion_agent(model, text, **opts)
    if getattr(model, "stage", None) == 1:  # IRG evaluates its stage-1 checkpoints with the manual loop
        return generate_manual(model, text, **opts)
    return ReasoningDecoder(model).run(text, **opts)


def _generate_motion_agent(model, text: str, *, seconds=None, min_codes=None, max_codes=None,
                           decode_clips=True, cancel=None, greedy=True, temperature=1.0, top_p=1.0,
                           seed=None, guidance=None, **_ignored) -> Iterator:
    d = ReasoningDecoder(model)
    lo, hi = code_window(seconds, min_codes, max_codes, fps=model.config.fps)
    caption = T.normalize_caption(text, model.tokenizer)
    codes = d.respond_motion(T.motion_agent_prompt(caption, d.bos_token), min_codes=lo, max_codes=hi,
                             cancel=cancel, greedy=greedy, temperature=temperature, top_p=top_p, seed=seed,
                             guidance=guidance)
    clip = model.codes_to_clip(codes, text=caption) if decode_clips else None
    yield MotionEvent(1, codes, clip, len(codes) + 1)
    trace = Trace(rounds=[Round(codes)], finished=True)
    yield DoneEvent(trace, clip, codes_to_text(codes), [], 0, [], 0)


def generate_manual(model, text: str, max_rounds: int = 5, *, seconds=None, min_codes=None, max_codes=None,
                    max_text_tokens: int = MAX_TEXT_TOKENS, decode_clips=True, cancel=None,
                    assessor: str = "model", **sampling) -> Iterator:
    """The stage-1 loop of separate calls: generate; then ask how to refine; stop on exactly "No
    refinements needed.", else refine by that instruction; at most `max_rounds` motions. Yields the
    same motion/assessment/done events as `generate` (assessments are None: stage 1 only asks for the
    refinement instruction)."""
    if not (isinstance(max_rounds, int) and max_rounds >= 1):
        raise IrmogenError(f"max_rounds={max_rounds!r} must be an integer >= 1")
    d = ReasoningDecoder(model)
    bos = d.bos_token
    lo, hi = code_window(seconds, min_codes, max_codes, fps=model.config.fps)
    caption = T.normalize_caption(text, model.tokenizer)
    trace, clip, prompt = Trace(), None, T.generation_prompt(caption, bos)
    for k in range(1, max_rounds + 1):
        _use_task(model, "generate" if k == 1 else "refine")
        codes = d.respond_motion(prompt, min_codes=lo, max_codes=hi, cancel=cancel, condition=caption, **sampling)
        clip = model.codes_to_clip(codes, text=caption) if decode_clips else None
        yield MotionEvent(k, codes, clip, 0)
        assessment, author = None, "model"
        if k == max_rounds:
            refinement = T.NO_REFINEMENT  # as the decoder: the round cap ends the loop
        elif assessor == "measured":
            from .assessors import facts_of, measured_assessment
            assessment, refinement = measured_assessment(caption, facts_of(model, codes))
            author = "measured"
        else:
            _use_task(model, "assess")
            refinement = d.respond_text(T.refinement_instruction_prompt(codes, caption, bos), condition=caption,
                                        max_tokens=max_text_tokens, cancel=cancel, **sampling).strip()
        trace.rounds.append(Round(codes, assessment, refinement, author))
        yield AssessmentEvent(k, assessment, refinement, 0, author)
        if refinement == T.NO_REFINEMENT or not refinement:
            break  # satisfied, or nothing to refine by (an empty instruction also ends the loop)
        prompt = T.instructed_refinement_prompt(codes, refinement, caption, bos)
    trace.finished = True
    yield DoneEvent(trace, clip, render_trace(trace), [], 0, [], 0)


def refine_instructed(model, clip_or_codes, instruction: str, goal: str | None = None, *,
                      seconds=None, decode_clip=True, cancel=None, **sampling) -> tuple[list[int], Clip | None]:
    """Refine a motion by an instruction ("raise the arms higher"), optionally toward a goal text."""
    _use_task(model, "refine")
    d = ReasoningDecoder(model)
    codes = motion_codes(model, clip_or_codes)
    lo, hi = code_window(seconds, fps=model.config.fps) if seconds is not None else (1, MAX_CODES)
    out = d.respond_motion(T.instructed_refinement_prompt(codes, instruction, goal, d.bos_token, model.tokenizer),
                           min_codes=lo, max_codes=hi, cancel=cancel, condition=goal or instruction, **sampling)
    text = goal if goal is not None else instruction
    return out, (model.codes_to_clip(out, text=text) if decode_clip else None)


def refine_direct(model, clip_or_codes, target_text: str, *, seconds=None, decode_clip=True, cancel=None,
                  **sampling) -> tuple[list[int], Clip | None]:
    """Turn a motion into one matching `target_text` (direct refinement, no instruction)."""
    _use_task(model, "refine")
    d = ReasoningDecoder(model)
    codes = motion_codes(model, clip_or_codes)
    lo, hi = code_window(seconds, fps=model.config.fps) if seconds is not None else (1, MAX_CODES)
    out = d.respond_motion(T.direct_refinement_prompt(codes, target_text, d.bos_token, model.tokenizer),
                           min_codes=lo, max_codes=hi, cancel=cancel, condition=target_text, **sampling)
    return out, (model.codes_to_clip(out, text=target_text) if decode_clip else None)


def assess(model, clip_or_codes, text: str, *, max_text_tokens: int = MAX_TEXT_TOKENS, cancel=None,
           **sampling) -> tuple[str, str]:
    """(assessment, refinement instruction) of a motion against a text; the instruction is exactly
    "No refinements needed." when the model finds the motion aligned."""
    _use_task(model, "assess")
    d = ReasoningDecoder(model)
    codes = motion_codes(model, clip_or_codes)
    kw = dict(max_tokens=max_text_tokens, cancel=cancel, condition=text, **sampling)
    assessment = d.respond_text(T.assessment_prompt(codes, text, d.bos_token, model.tokenizer), **kw)
    refinement = d.respond_text(T.refinement_instruction_prompt(codes, text, d.bos_token, model.tokenizer), **kw)
    return assessment.strip(), refinement.strip()


def caption(model, clip_or_codes, *, max_text_tokens: int = MAX_TEXT_TOKENS, cancel=None, **sampling) -> str:
    """A text description of a motion."""
    _use_task(model, "caption")
    d = ReasoningDecoder(model)
    codes = motion_codes(model, clip_or_codes)
    prompt = T.caption_prompt(codes, d.bos_token, model.config.prompt_style)
    return d.respond_text(prompt, max_tokens=max_text_tokens, cancel=cancel, **sampling).strip()

"""`irmogen train stage1`: the eight atomic tasks of IRG-MotionLLM's first stage.

Input: the previous model (`--model`, the base stage's directory), the data engine's
`stage1.jsonl` (`--engine`), the codes cache (`--codes`) and the dataset (`--data`). Each record is
rendered into (prompt, answer) with the template's stage-1 prompt builders; motion ids become VQ
codes through the cache (a random augmented variant per use):
  caption                 caption_prompt(motion)                         -> text (the caption)
  generate                generation_prompt(caption)                     -> target motion
  analyze                 analysis prompt(caption)                       -> text (the analysis)
  generate_from_analysis  analysis-guided prompt(caption, analysis)      -> target motion
  assess                  assessment_prompt(motion, caption)             -> text (the assessment)
  instruct                refinement_instruction_prompt(motion, caption) -> text (instruction, or
                                                                            "No refinements needed.")
  refine_direct           direct_refinement_prompt(motion, caption)      -> target motion
  refine_instructed       instructed_refinement_prompt(motion, instr., caption) -> target motion
Prompt tokens are masked; answers end with eos. To keep the base tasks, a share `base_ratio`
(default 0.2) of every batch are base examples (dataset captions: generation or captioning, as in
`train base`). Paper: full fine-tuning, lr 1e-5, 15 epochs, sequences <= 2048. Must not import bpy.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IrmogenError
from ..reasoning import template as T
from .base import (LMTrainConfig, base_examples, base_sequence, finetune, load_input_model, read_jsonl)
from .codes import CodesCache
from .common import Run, add_config_arguments, config_from_args
from .sequences import Renderer, Sequence

TASKS = ("caption", "generate", "analyze", "generate_from_analysis", "assess", "instruct", "refine_direct",
         "refine_instructed")


@dataclass
class Stage1TrainConfig(LMTrainConfig):
    engine: str = ""           # data engine folder (stage1.jsonl)
    codes: str = ""            # codes cache codes.npz
    base_ratio: float = 0.2    # share of base examples (dataset captions) in every batch
    epochs: float = 15.0
    lr: float = 1e-5


HELP = {"data": "dataset folder (HumanML3D layout)", "model": "input model directory (the base stage's model)",
        "engine": "data engine folder holding stage1.jsonl", "codes": "codes cache (codes.npz)"}


def render_record(r: Renderer, cache: CodesCache, rec: dict, rng) -> Sequence:
    """One stage-1 record -> a training sequence (prompt masked)."""
    task, caption = rec.get("task"), rec.get("caption") or ""
    need = lambda field: _field(rec, field)
    motion = lambda: cache.draw(need("motion"), rng)
    target = lambda: cache.draw(rec.get("target_motion") or need("id"), rng)
    answer = lambda field: rec.get("answer") or need(field)
    if task == "caption":
        return r.text_answer(T.caption_prompt(motion(), r.bos), answer("caption"))
    c = caption  # every task but captioning is about the goal text: the prompt encoder reads it
    caption = r.shown(caption, rng)  # what the LM's own text tokens show of it
    if task == "generate":
        return r.motion_answer(T.generation_prompt(caption, r.bos, r.tokenizer), target(), c)
    if task == "analyze":
        return r.text_answer(T.analysis_prompt(caption, r.bos, r.tokenizer), answer("analysis"), c)
    if task == "generate_from_analysis":
        return r.motion_answer(T.analysis_generation_prompt(caption, need("analysis"), r.bos, r.tokenizer), target(), c)
    if task == "assess":
        return r.text_answer(T.assessment_prompt(motion(), caption, r.bos, r.tokenizer), answer("assessment"), c)
    if task == "instruct":
        return r.text_answer(T.refinement_instruction_prompt(motion(), caption, r.bos, r.tokenizer),
                             answer("instruction"), c)
    if task == "refine_direct":
        return r.motion_answer(T.direct_refinement_prompt(motion(), caption, r.bos, r.tokenizer), target(), c)
    if task == "refine_instructed":
        prompt = T.instructed_refinement_prompt(motion(), need("instruction"), caption, r.bos, r.tokenizer)
        return r.motion_answer(prompt, target(), c)
    raise IrmogenError(f"stage-1 record for {rec.get('id')!r}: unknown task {task!r} (known: {', '.join(TASKS)})")


def _field(rec: dict, name: str):
    value = rec.get(name)
    if value in (None, ""):
        raise IrmogenError(f"stage-1 record {rec.get('task')!r} for {rec.get('id')!r}: field {name!r} is missing")
    return value


def usable(records: list[dict], cache: CodesCache) -> list[dict]:
    """Records whose motions all have codes (an engine run over another dataset would not)."""
    ok = lambda rec: all(rec.get(k) is None or rec[k] in cache for k in ("motion", "target_motion", "id"))
    return [rec for rec in records if ok(rec)]


class Mixture:
    """Batches of the stage's own items, `render(i, rng)`, of which a share `ratio` is replaced by
    `other(item, rng)` of a random item of `others` (base examples, stage-1 records)."""

    def __init__(self, render, others: list, ratio: float, other):
        self.render, self.others, self.ratio, self.other = render, others, ratio, other

    def __call__(self, idx: np.ndarray, rng) -> list[Sequence]:
        out = []
        for i in idx:
            if self.others and rng.random() < self.ratio:
                out.append(self.other(self.others[int(rng.integers(len(self.others)))], rng))
            else:
                out.append(self.render(int(i), rng))
        return out


def base_mixin(r: Renderer, cache: CodesCache):
    """A base example (clip id, caption) -> a captioning or generation sequence, half each."""
    return lambda ex, rng: base_sequence(r, cache, *ex, "caption" if rng.random() < 0.5 else "generate", rng)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, Stage1TrainConfig, HELP)


def run(args) -> int:
    train(config_from_args(Stage1TrainConfig, args))
    return 0


def train(config: Stage1TrainConfig) -> dict:
    if not (config.engine and config.codes):
        raise IrmogenError("--engine and --codes are required: the data engine folder and the codes cache")
    run_ = Run(config, "stage1")
    cache = CodesCache(config.codes, config.engine)
    records = usable(read_jsonl(Path(config.engine) / "stage1.jsonl"), cache)
    if not records:
        raise IrmogenError(f"{config.engine}/stage1.jsonl: no record whose motions are in {cache.path}")
    mllm = load_input_model(config.model)
    r = Renderer(mllm.tokenizer, mllm.layout, conditioned=mllm.prompt_encoder is not None,
                 caption_noise=config.caption_noise)
    data = Path(config.data)
    base = base_examples(data, cache, "train") if config.data else []
    val_ex = base_examples(data, cache, "val")[:config.val_examples] if config.data else []
    val = [base_sequence(r, cache, cid, cap, task, None) for cid, cap in val_ex for task in ("generate", "caption")]
    mix = Mixture(lambda i, rng: render_record(r, cache, records[i], rng), base, config.base_ratio,
                  base_mixin(r, cache))
    return finetune(run_, mllm, len(records), mix, val)

"""`irmogen train stage2`: whole IRMoGen-CoT traces (IRG-MotionLLM's second stage).

Each record of the engine's `stage2.jsonl` ({"id", "caption", "analysis", "rounds": [{"motion",
"assessment", "refinement"}, ...]}: 0-4 wrong motions worst -> best, then the goal motion with
"No refinements needed.") becomes a `Trace` whose text is `render_trace`'s, behind the exact
inference prompt `template.build_prompt(caption)`; token boundaries follow the decoder
(`sequences.Renderer.trace`). The INTERMEDIATE (wrong) motions' code tokens and their `</Motion>`
are excluded from the loss ("ignore incorrect": learning them teaches the model to write wrong
motions, and alignment collapses); every text token, tag and the final (goal) motion is learned.
A share `stage1_ratio` (default 0.2) of each batch are stage-1 records (when the engine folder has
stage1.jsonl), so the single-task skills stay. Paper: lr 1e-5, 20 epochs. Must not import bpy.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..errors import IrmogenError
from ..reasoning import template as T
from ..reasoning.parser import Round, Trace
from .base import LMTrainConfig, finetune, load_input_model, read_jsonl
from .codes import CodesCache
from .common import Run, add_config_arguments, config_from_args
from .sequences import Renderer, Sequence
from .stage1 import Mixture, render_record, usable

MAX_WRONG = 4


@dataclass
class Stage2TrainConfig(LMTrainConfig):
    engine: str = ""           # data engine folder (stage2.jsonl, optionally stage1.jsonl)
    codes: str = ""            # codes cache codes.npz
    stage1_ratio: float = 0.2  # share of stage-1 records in every batch
    learn_intermediate: bool = False  # True trains on the wrong motions too (the paper's ablation)
    epochs: float = 20.0
    lr: float = 1e-5
    max_length: int = 2048


HELP = {"model": "input model directory (the stage-1 model)", "engine": "data engine folder holding stage2.jsonl",
        "codes": "codes cache (codes.npz)", "learn_intermediate": "also learn the wrong intermediate motions"}


def record_trace(rec: dict, cache: CodesCache, rng) -> Trace:
    """A stage-2 record -> a finished Trace (codes drawn from the cache)."""
    rounds = rec.get("rounds")
    where = f"stage-2 record for {rec.get('id')!r}"
    if not isinstance(rounds, list) or not 1 <= len(rounds) <= MAX_WRONG + 1:
        raise IrmogenError(f"{where}: 'rounds' must hold 1-{MAX_WRONG + 1} rounds")
    if (rounds[-1].get("refinement") or "").strip() != T.NO_REFINEMENT:
        raise IrmogenError(f"{where}: the last round's refinement must be {T.NO_REFINEMENT!r}")
    return Trace(analysis=rec.get("analysis") or "", finished=True,
                 rounds=[Round(cache.draw(x["motion"], rng), x.get("assessment") or "", x.get("refinement") or "")
                         for x in rounds])


def render_trace_record(r: Renderer, cache: CodesCache, rec: dict, rng, learn_intermediate: bool = False) -> Sequence:
    return r.trace(rec["caption"], record_trace(rec, cache, rng), learn_intermediate, rng)


def usable_traces(records: list[dict], cache: CodesCache) -> list[dict]:
    return [rec for rec in records if rec.get("id") in cache and all(x.get("motion") in cache for x in rec.get("rounds", []))]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, Stage2TrainConfig, HELP)


def run(args) -> int:
    train(config_from_args(Stage2TrainConfig, args))
    return 0


def train(config: Stage2TrainConfig) -> dict:
    if not (config.engine and config.codes):
        raise IrmogenError("--engine and --codes are required: the data engine folder and the codes cache")
    run_ = Run(config, "stage2")
    cache = CodesCache(config.codes, config.engine)
    engine = Path(config.engine)
    traces = usable_traces(read_jsonl(engine / "stage2.jsonl"), cache)
    if not traces:
        raise IrmogenError(f"{engine}/stage2.jsonl: no trace whose motions are in {cache.path}")
    stage1 = usable(read_jsonl(engine / "stage1.jsonl"), cache) if (engine / "stage1.jsonl").is_file() else []
    mllm = load_input_model(config.model)
    r = Renderer(mllm.tokenizer, mllm.layout, conditioned=mllm.prompt_encoder is not None,
                 caption_noise=config.caption_noise)
    # validation: the last traces (a fixed slice, own codes) -- the loss on held-back traces
    held = max(1, min(config.val_examples, len(traces) // 10)) if len(traces) > 1 else 0
    train_traces, val_traces = traces[:len(traces) - held], traces[len(traces) - held:]
    val = [render_trace_record(r, cache, rec, None, config.learn_intermediate) for rec in val_traces]

    def render(i: int, rng) -> Sequence:
        return render_trace_record(r, cache, train_traces[i], rng, config.learn_intermediate)

    mix = Mixture(render, stage1, config.stage1_ratio, lambda rec, rng: render_record(r, cache, rec, rng))
    return finetune(run_, mllm, len(train_traces), mix, val)

"""`irmogen train all`: the whole chain, each step in its own folder under `--out`, resumable.

  vq/         the motion tokenizer                   (train.vq)
  evaluator/  the text-motion retrieval model        (train.evaluator)
  codes/      codes.npz of every clip                (train.codes)
  engine/     stage1.jsonl, stage2.jsonl, stats.json (irmogen.engine, negatives ranked by the evaluator)
  base/ stage1/ stage2/                               (train.base ... train.stage2; each <stage>/model)
  own/        the engine's records plus ones built on the stage-2 model's own first motions (engine.own)
  stage2_own/ stage 2 continued on own/ (so the model learns to judge and refine its own motions)
  stage3/     GRPO from stage2_own/model               (train.stage3)
  model/      the final model directory (the last stage's, plus evaluator.safetensors)
A finished step writes `<step>/done.json` and is skipped on the next call; an interrupted training
step continues from its last checkpoint. `--budget-minutes` splits a wall-clock budget over the
training steps by `SHARES`; `--set stage.field=value` sets any field of a stage's config
(e.g. `--set vq.width=128 --set base.layers=4`). Runs in one process (under `accelerate launch`
the data steps run on the main process only). Must not import bpy.
"""
from __future__ import annotations

import argparse
import json
import shutil
import typing
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..errors import IrmogenError

STEPS = ("vq", "evaluator", "codes", "engine", "base", "stage1", "stage2", "own", "stage2_own", "stage3")
SHARES = {"vq": 0.2, "evaluator": 0.1, "base": 0.2, "stage1": 0.15, "stage2": 0.1, "stage2_own": 0.15, "stage3": 0.1}
LM_STEPS = ("base", "stage1", "stage2", "stage2_own", "stage3")
DONE = "done.json"


@dataclass
class PipelineConfig:
    data: str = ""
    out: str = ""
    seed: int = 0
    device: str = "auto"
    budget_minutes: float = 0.0       # 0: every stage runs its own length
    stop_after: str = "stage3"        # the last step to run
    progress: bool = True


def _stage_modules():
    from . import base, stage1, stage2, stage3, vq
    from . import evaluator

    return {"vq": (vq, vq.VQTrainConfig), "evaluator": (evaluator, evaluator.EvaluatorTrainConfig),
            "base": (base, base.BaseTrainConfig), "stage1": (stage1, stage1.Stage1TrainConfig),
            "stage2": (stage2, stage2.Stage2TrainConfig), "stage2_own": (stage2, stage2.Stage2TrainConfig),
            "stage3": (stage3, stage3.Stage3TrainConfig)}


def parse_overrides(items: list[str], classes: dict) -> dict[str, dict]:
    """['vq.width=128', ...] -> {'vq': {'width': 128}}, typed by the stage config's fields."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        stage, dot, name = key.partition(".")
        if not (sep and dot) or stage not in classes:
            raise IrmogenError(f"--set {item!r}: expected STAGE.FIELD=VALUE with STAGE one of {', '.join(classes)}")
        hints = typing.get_type_hints(classes[stage])
        if name not in {f.name for f in fields(classes[stage])}:
            raise IrmogenError(f"--set {item!r}: {classes[stage].__name__} has no field {name!r}")
        out.setdefault(stage, {})[name] = _typed(hints[name], value, item)
    return out


def _typed(kind, value: str, item: str):
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if typing.get_origin(kind) is tuple:
            return tuple(typing.get_args(kind)[0](v) for v in value.split(",") if v)
        return kind(value)
    except ValueError:
        raise IrmogenError(f"--set {item!r}: {value!r} is not a {getattr(kind, '__name__', kind)}") from None


def run_pipeline(config: PipelineConfig, overrides: dict[str, dict] | None = None) -> Path:
    """Run (or continue) the chain; returns the final model directory (or the last step's folder)."""
    from accelerate import PartialState

    if not (config.data and config.out):
        raise IrmogenError("--data and --out are required")
    if config.stop_after not in STEPS:
        raise IrmogenError(f"--stop-after {config.stop_after!r}: expected one of {', '.join(STEPS)}")
    state = PartialState()
    out, data = Path(config.out), Path(config.data)
    modules = _stage_modules()
    overrides = overrides or {}
    inputs = {
        "vq": {}, "evaluator": {},
        "base": {"vq": str(out / "vq"), "codes": str(out / "codes" / "codes.npz"), "engine": str(out / "engine")},
        "stage1": {"model": str(out / "base" / "model"), "codes": str(out / "codes" / "codes.npz"),
                   "engine": str(out / "engine")},
        "stage2": {"model": str(out / "stage1" / "model"), "codes": str(out / "codes" / "codes.npz"),
                   "engine": str(out / "engine")},
        "stage2_own": {"model": str(out / "stage2" / "model"), "codes": str(out / "codes" / "codes.npz"),
                       "engine": str(out / "own")},
        "stage3": {"model": str(out / "stage2_own" / "model"), "evaluator": str(out / "evaluator")},
    }
    for step in STEPS[:STEPS.index(config.stop_after) + 1]:
        folder = out / step
        if (folder / DONE).is_file():
            continue
        if step in modules:
            module, cls = modules[step]
            fields_ = dict(data=str(data), out=str(folder), seed=config.seed, device=config.device,
                           progress=config.progress, resume=(folder / "checkpoints").is_dir(), **inputs[step])
            if config.budget_minutes:
                fields_["time_budget_minutes"] = config.budget_minutes * SHARES[step]
            module.train(replace(cls(), **{**fields_, **overrides.get(step, {})}))
        elif state.is_main_process:
            _data_step(step, data, out, config)
        state.wait_for_everyone()
        if state.is_main_process:
            (folder / DONE).write_text(json.dumps({"step": step}) + "\n")
    final = out / config.stop_after
    if config.stop_after in LM_STEPS and state.is_main_process:
        final = out / "model"
        shutil.rmtree(final, ignore_errors=True)
        shutil.copytree(out / config.stop_after / "model", final)
        weights = out / "evaluator" / "evaluator.safetensors"
        if weights.is_file():
            shutil.copy2(weights, final / weights.name)
    state.wait_for_everyone()
    return final


def _data_step(step: str, data: Path, out: Path, config: PipelineConfig) -> None:
    if step == "codes":
        from .codes import build_codes

        build_codes(out / "vq", data, out / "codes" / "codes.npz", seed=config.seed, device=config.device)
    elif step == "engine":
        from ..engine.build import EngineConfig, build_engine
        from ..evaluate.retrieval import Evaluator

        encoder = Evaluator.load(out / "evaluator", device="cpu")
        build_engine(data, out / "engine", EngineConfig(seed=config.seed), encoder=encoder, overwrite=True)
    elif step == "own":
        from ..engine.own import OwnConfig, build_own
        from ..evaluate.retrieval import Evaluator
        from ..llm.loaders import load_model

        model = load_model(out / "stage2" / "model", device=config.device)
        encoder = Evaluator.load(out / "evaluator", device="cpu")
        build_own(model, encoder, data, out / "own", OwnConfig(seed=config.seed), engine=out / "engine",
                  overwrite=True, progress=config.progress)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset folder (HumanML3D layout)")
    parser.add_argument("--out", required=True, help="folder for every step's output")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget-minutes", type=float, default=0.0,
                        help="wall-clock budget split over the training steps (0: their own lengths)")
    parser.add_argument("--stop-after", default="stage3", choices=STEPS)
    parser.add_argument("--set", action="append", default=[], metavar="STAGE.FIELD=VALUE",
                        help="set a field of a stage's config, e.g. vq.width=128 (repeatable)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--table", metavar="FILE", help="afterwards, measure every stage on the test split "
                        "(the model card's table) and write it as JSON here (`irmogen eval --run` does the same later)")


def run(args) -> int:
    config = PipelineConfig(data=args.data, out=args.out, seed=args.seed, device=args.device,
                            budget_minutes=args.budget_minutes, stop_after=args.stop_after, progress=args.progress)
    overrides = parse_overrides(args.set, {k: cls for k, (_, cls) in _stage_modules().items()})
    print(f"model: {run_pipeline(config, overrides)}")
    if args.table:
        from ..evaluate.retrieval import Evaluator
        from ..evaluate.stages import format_stage_table, stage_table, write_table
        table = stage_table(args.out, args.data, Evaluator.load(Path(args.out) / "evaluator"), device=args.device,
                            progress=args.progress, mm_texts=20, mm_repeats=10)
        print(format_stage_table(table))
        write_table(table, args.table)
    return 0

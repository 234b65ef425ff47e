"""The model card's metrics table: every stage of a training run, direct and with IRMoGen rounds.

Rows: real motion; the retrieval baseline (the motion of the training clip whose caption is nearest);
`base` direct generation; every later stage's direct generation and its IRMoGen
rounds, first motion vs final motion (stage-1 models as their chain of separate calls, the others
as one reasoning trace), plus what the rounds did per text (share refined; of those, the share whose
final motion is closer to the text than the first). Every row is measured by the same evaluator on
the held-out split, exactly as `irmogen eval` measures one model. Used by `irmogen eval --run` and
`irmogen train all --table`. Needs torch; never imports bpy.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import IrmogenError
from .measure import evaluate_model
from .table import markdown_rows, rounds_summary

STAGES = ("base", "stage1", "stage2", "stage2_own", "stage3")


def stage_table(run, data, evaluator, stages=STAGES, **options) -> dict:
    """{"rows": {row name: metrics}, "rounds": {stage: rounds summary}} for the stages of `run` that
    have a model (`<run>/<stage>/model`); `options` go to `evaluate_model`."""
    run = Path(run)
    rows: dict[str, dict] = {}
    rounds: dict[str, dict] = {}
    found = [s for s in stages if (run / s / "model" / "config.json").is_file()]
    if not found:
        raise IrmogenError(f"{run}: no <stage>/model folder for any of {', '.join(stages)}",
                           hint="pass the --out folder of `irmogen train all`")
    for stage in found:
        modes = ("real", "direct", "retrieval") if stage == "base" else ("direct", "irmogen")
        style = "manual" if stage.startswith("stage1") else "trace"
        result = evaluate_model(run / stage / "model", data, modes=modes, rounds=style, evaluator=evaluator, **options)
        r = result["rows"]
        if "real" in r:
            rows["real motion"] = r["real"]
        if "retrieval" in r:   # the baseline every model must beat (evaluate/baseline.py)
            rows["retrieval: nearest training caption's motion"] = r["retrieval"]
        rows[f"{stage}, direct"] = r["direct"]
        if "irmogen_first" in r:
            rows[f"{stage} + IRMoGen {'rounds (stage-1 calls)' if style == 'manual' else 'trace'}, first motion"] = r["irmogen_first"]
            rows[f"{stage} + IRMoGen {'rounds (stage-1 calls)' if style == 'manual' else 'trace'}, final motion"] = r["irmogen_final"]
            rounds[stage] = result["rounds"]
    return {"rows": rows, "rounds": rounds, "stages": found}


def format_stage_table(table: dict) -> str:
    lines = markdown_rows(table["rows"]) + [""]
    lines += [f"{stage}: " + rounds_summary(r) for stage, r in table["rounds"].items()]
    return "\n".join(lines)


def write_table(table: dict, out) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")

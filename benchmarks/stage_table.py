"""The model card's metrics table: every stage of a training run, direct and with IRMoGen rounds.

    python benchmarks/stage_table.py --run RUN_DIR --data DATASET [--evaluator DIR] [--out table.json]

RUN_DIR is an `irmogen train all` output (or any folder holding base/model, stage1/model,
stage2/model, stage3/model). Rows: real motion; `base` direct generation; stage-1/2/3 direct
generation; stage-1/2/3 with IRMoGen rounds, first motion vs final motion (stage 1 as its chain of
separate calls, stages 2/3 as one reasoning trace). Every row is measured by the same evaluator
on the held-out split, as `irmogen eval` does. Prints the Markdown table; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from irmogen.evaluate.retrieval import Evaluator
from irmogen.evaluate.run import COLUMNS, evaluate_model

def cell(row: dict, key: str) -> str:
    return f"{row[key]['mean']:.3f} ± {row[key]['interval']:.3f}" if key in row else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--evaluator", help="evaluator folder or .safetensors (default: RUN/evaluator)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--repetitions", type=int, default=20)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--mm-texts", type=int, default=20, help="texts for MModality (the field uses 100)")
    ap.add_argument("--mm-repeats", type=int, default=10, help="generations per text for MModality (field: 30)")
    ap.add_argument("--out")
    a = ap.parse_args()
    run = Path(a.run)
    evaluator = Evaluator.load(a.evaluator or run / "evaluator")
    common = dict(split=a.split, repetitions=a.repetitions, evaluator=evaluator, limit=a.limit, progress=True,
                  mm_texts=a.mm_texts, mm_repeats=a.mm_repeats)
    rows: dict[str, dict] = {}
    rounds: dict[str, dict] = {}
    for stage in ("base", "stage1", "stage2", "stage3"):
        model = run / stage / "model"
        if not (model / "config.json").is_file():
            print(f"{stage}: no model at {model}, skipped")
            continue
        modes = ("real", "direct") if stage == "base" else ("direct", "irmogen")
        result = evaluate_model(model, a.data, modes=modes, rounds="manual" if stage == "stage1" else "trace", **common)
        r = result["rows"]
        if "real" in r:
            rows["real motion"] = r["real"]
        rows[f"{stage} direct"] = r["direct"]
        if "irmogen_first" in r:
            rows[f"{stage} IRMoGen first motion"] = r["irmogen_first"]
            rows[f"{stage} IRMoGen final motion"] = r["irmogen_final"]
            rounds[stage] = result["rounds"]
    lines = ["| row | " + " | ".join(h for _, h in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(row, k) for k, _ in COLUMNS) + " |" for name, row in rows.items()]
    for stage, r in rounds.items():
        lines.append(f"\n{stage}: IRMoGen rounds mean {r['mean']:.2f}, histogram (1..N rounds) {r['histogram']}")
    print("\n".join(lines))
    if a.out:
        Path(a.out).write_text(json.dumps({"rows": rows, "rounds": rounds}, indent=2) + "\n")


if __name__ == "__main__":
    main()

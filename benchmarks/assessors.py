"""Benchmark: first-to-final gain of each assessor ("model", "measured", "checked") on a test split.

For each clip of the split (first `--limit`), one caption drawn with `--seed` or, with `--captions
all`, every caption in draws of one caption per clip (as `irmogen eval`); greedy rounds with each
assessor; the first and the final motion of every trace are embedded by an evaluator that is NOT the
GRPO reward one (`--evaluator`, e.g. a second evaluator trained with another seed) and scored with
the field's R-precision protocol (batches of 32, 20 repetitions, draws combined); the gain is paired
over texts. "checked" writes the same text and motions as "model" (the decoder only marks the
clauses measurements contradict), so its row reuses the model's traces and reports the marks. Also
printed: how many final assessments a measurement contradicts, and the free-text problems (tag
fragments, same-word contrasts, repeated clauses).

Run: `.venv/bin/python benchmarks/assessors.py --model DIR --data DATASET --evaluator EVAL.safetensors
[--limit 64] [--captions one|all] [--max-rounds 3]`. Prints a Markdown table; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from irmogen.evaluate import metrics as M
from irmogen.evaluate.retrieval import Evaluator, read_clips
from irmogen.evaluate.run import caption_draws
from irmogen.llm.loaders import load_model, resolve_model_spec
from irmogen.reasoning import tasks
from irmogen.reasoning.assessors import contradictions, facts_of
from irmogen.reasoning.textguard import problems


def one_trace(model, text: str, assessor: str, max_rounds: int) -> dict:
    done = list(tasks.generate(model, text, max_rounds=max_rounds, assessor=assessor, decode_clips=False))[-1]
    rounds = done.trace.rounds
    marks = [contradictions(r.assessment, text, facts_of(model, r.codes)) if r.assessment else [] for r in rounds]
    texts = [done.trace.analysis or ""] + [t for r in rounds for t in (r.assessment, r.refinement) if t]
    return {"first": rounds[0].codes, "final": rounds[-1].codes, "rounds": len(rounds),
            "final_contradicted": len(marks[-1]), "marked": sum(map(len, marks)),
            "problems": sum(len(problems(t)) for t in texts)}


def run_traces(model, keys: list[tuple[int, str]], assessor: str, max_rounds: int) -> list[dict]:
    """One trace per (clip, caption); a caption several draws share is written once."""
    memo: dict = {}
    for key in keys:
        if key not in memo:
            memo[key] = one_trace(model, key[1], assessor, max_rounds)
    return [memo[key] for key in keys]


def score(evaluator, model, text_emb, real, traces, which: str, seed: int, n: int) -> dict:
    """Each draw (n texts, one per clip) scored by the protocol; draws combined."""
    emb = evaluator.embed_motion([model.decode_codes(t[which]) for t in traces])
    return M.combine_draws([M.evaluate_embeddings(text_emb[d:d + n], emb[d:d + n], real, seed=seed)
                            for d in range(0, len(traces), n)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--evaluator", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=64)
    ap.add_argument("--captions", choices=("one", "all"), default="one")
    ap.add_argument("--max-rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(resolve_model_spec(a.model), device="cpu")
    evaluator = Evaluator.load(a.evaluator)
    clips = read_clips(a.data, a.split, a.limit)
    draws = caption_draws(clips, a.captions, a.seed)
    picked = [(i, c, k) for draw in draws for i, (c, k) in enumerate(zip(clips, draw))]   # draw-major
    keys = [(i, c.captions[k]) for i, c, k in picked]
    text_emb = evaluator.embed_text([t for _, t in keys], tokens=[c.tokens[k] for _, c, k in picked])
    real = evaluator.embed_motion([c.features for c in clips])
    rows = {}
    for assessor in ("model", "measured"):
        t0 = time.perf_counter()
        traces = run_traces(model, keys, assessor, a.max_rounds)
        first, final = (score(evaluator, model, text_emb, real, traces, w, a.seed, len(clips)) for w in ("first", "final"))
        rows[assessor] = {"traces": traces, "first": first, "final": final,
                          "gain": M.paired_top1_gain(first["per_text"], final["per_text"]),
                          "seconds": time.perf_counter() - t0}
    rows["checked"] = rows["model"]
    print(f"{len(keys)} texts of {a.data} ({a.split}, first {len(clips)} clips, {len(draws)} draw(s) of one caption "
          f"per clip, seed {a.seed}); greedy, max {a.max_rounds} rounds; evaluator {a.evaluator}\n")
    print("| assessor | Top-1 first | Top-1 final | gain (paired, 95 %) | mean rounds | final assessments contradicted | clauses marked | text problems |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        t = r["traces"]
        print(f"| {name} | {r['first']['top1']['mean']:.3f} | {r['final']['top1']['mean']:.3f} | "
              f"{r['gain']['mean']:+.3f} ± {r['gain']['interval']:.3f} | {np.mean([x['rounds'] for x in t]):.2f} | "
              f"{sum(x['final_contradicted'] > 0 for x in t)} / {len(t)} | "
              f"{sum(x['marked'] for x in t) if name != 'model' else '-'} | "
              f"{sum(x['problems'] for x in t)} |")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({k: {kk: vv for kk, vv in v.items() if kk != "traces"} | {"traces": v["traces"]}
                       for k, v in rows.items()}, f)


if __name__ == "__main__":
    main()

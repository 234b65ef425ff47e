"""`irmogen engine build`: a dataset folder -> stage-1 records, stage-2 traces and statistics.

For every caption of every clip of the split (train by default): rank the other clips against the
caption (`negatives`), pick negatives at each alignment level, write the goal analyses and, for
the goal itself and every negative, an assessment and a refinement instruction (`annotator`).
Output folder: `stage1.jsonl` (the eight stage-1 tasks), `stage2.jsonl` (traces: 0-4 negatives
ordered worst -> best by the ranking, then the goal with "No refinements needed."), `stats.json`.
Motions are referenced by dataset clip id. Everything is written into a temporary sibling folder
renamed into place at the end. Deterministic for a seed: random choices are seeded per caption by
the clip's take-independent id without its mirror prefix, so a clip and its mirror draw alike.
Imports torch only through a loaded evaluator or LLM annotator; never bpy.
"""
from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.layout import read_split, read_text_lines
from ..errors import IrmogenError
from ..folders import check_output_folder, replaced_folder
from . import negatives as neg
from .annotator import Annotator, RuleAnnotator
from .compare import Facts, caption_terms, differences, measure
from .wording import LEVELS, NO_REFINEMENT, POSITIVE

TASKS = ("caption", "generate", "analyze", "generate_from_analysis", "assess", "instruct", "refine_direct",
         "refine_instructed")
_SIDED = re.compile(r"\b(left|right|clockwise|counterclockwise)\b", re.IGNORECASE)
# Which fact types an instruction mentions, by keyword (annotator-agnostic, so approximate).
FACT_WORDS = {
    "action": r"instead of \w+ing|switch from|start over|replace the motion|discard this motion",
    "direction": r"forward|backward|to the left|to the right|sideways|direction|straight",
    "turning": r"turn\w*|spin\w*|facing|circl\w*",
    "distance": r"metres?|farther|less far|distance",
    "speed": r"speed up|slow down|faster|more slowly|pace|jog|run",
    "height": r"jump\w*|hop\w*|crouch\w*|squat\w*|lie down|lying|floor|bend|upright|upside down|get up",
    "limbs": r"hands?|arms?|legs?|foot|feet|knees?|elbows?",
    "steps": r"steps?",
    "timing": r"seconds|longer|shorter",
}


@dataclass
class EngineConfig:
    seed: int = 0
    split: str = "train"
    captions_per_clip: int = 0          # 0 = every caption of a clip
    analyses: int = 3                   # analysis paraphrases per caption
    per_level: int = 1                  # negatives per alignment level
    levels: tuple[str, ...] = LEVELS
    round_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)  # P(0..4 wrong motions in a trace)
    traces_per_caption: int = 1
    limit: int = 0                      # use only the first N clips of the split (0 = all)

    def check(self) -> None:
        bad = [lv for lv in self.levels if lv not in LEVELS]
        if bad or not self.levels:
            raise IrmogenError(f"engine: levels {bad or '(none)'} not among {', '.join(LEVELS)}")
        w = self.round_weights
        if not 1 <= len(w) <= 5 or min(w) < 0 or sum(w) <= 0:
            raise IrmogenError(f"engine: round weights {list(w)} must be 1-5 non-negative numbers (for 0..4 wrong motions) with a positive sum")
        for name in ("analyses", "per_level", "traces_per_caption"):
            if getattr(self, name) < 1:
                raise IrmogenError(f"engine: {name}={getattr(self, name)} must be >= 1")


@dataclass
class ClipInfo:
    id: str
    base: str                 # id without the mirror prefix: the seed of its random choices
    take: str                 # clips of one take (windows, mirror) never serve as each other's negatives
    action: tuple             # clips of one action never serve as each other's negatives
    captions: list[str]
    facts: Facts
    features: np.ndarray = field(repr=False)


def load_clips(data: Path, split: str, limit: int = 0) -> list[ClipInfo]:
    """The split's clips with captions, measured facts and (T, 263) features."""
    ids = read_split(data, split)
    if not ids:
        raise IrmogenError(f"{data / (split + '.txt')}: no clip ids (is --data a dataset made by `irmogen data prepare`?)")
    ids = ids[:limit] if limit else ids
    mpath = data / "manifest.json"
    meta = json.loads(mpath.read_text(encoding="utf-8")) if mpath.is_file() else {}
    manifest, fps = meta.get("clips", {}), float(meta.get("fps", 20.0))
    known = set(ids)
    clips = []
    for cid in ids:
        paths = [data / "new_joints" / f"{cid}.npy", data / "new_joint_vecs" / f"{cid}.npy", data / "texts" / f"{cid}.txt"]
        for p in paths:
            if not p.is_file():
                raise IrmogenError(f"{p}: missing (clip {cid} of {split}.txt)")
        caps = [row[0] for row in read_text_lines(paths[2])]
        if not caps:
            raise IrmogenError(f"{paths[2]}: no caption lines")
        entry = manifest.get(cid, {})
        mirrored = bool(entry.get("mirrored", cid.startswith("M") and cid[1:] in known))
        base = cid[1:] if mirrored and cid.startswith("M") else cid
        label = entry.get("label") or caps[0].lower()
        sided = any(_SIDED.search(c) for c in caps[:3])
        features = np.load(paths[1]).astype(np.float32)
        clips.append(ClipInfo(cid, base, entry.get("take", base), (label, mirrored if sided else None), caps,
                              measure(np.load(paths[0]), features, fps), features))
    return clips


def _telling(captions: list[str]) -> list[str]:
    """The captions that name a side when any does: a mirrored twin differs only there."""
    return [c for c in captions if _SIDED.search(c)] or captions


def record(task, cid, caption, motion=None, target=None, analysis=None, assessment=None, instruction=None, answer=None) -> dict:
    return {"task": task, "id": cid, "caption": caption, "motion": motion, "target_motion": target,
            "analysis": analysis, "assessment": assessment, "instruction": instruction, "answer": answer}


def goal_captions(clips: list[ClipInfo], per_clip: int, seed: int) -> list[tuple[int, int, str]]:
    """(clip index, caption index, caption) of every goal: each clip's captions, or `per_clip` of
    them drawn with `seed` (the same draw for a clip and its mirror)."""
    goals = []
    for i, c in enumerate(clips):
        idx = list(range(len(c.captions)))
        if per_clip and len(idx) > per_clip:
            idx = sorted(random.Random(f"{seed}:captions:{c.base}").sample(idx, per_clip))
        goals += [(i, k, c.captions[k]) for k in idx]
    return goals


def build_records(clips: list[ClipInfo], config: EngineConfig, annotator: Annotator,
                  encoder: neg.MotionTextEncoder | None = None):
    """(stage-1 records, stage-2 traces, negatives per level) for the clips' captions."""
    config.check()
    goals = goal_captions(clips, config.captions_per_clip, config.seed)
    texts = [g[2] for g in goals]
    if encoder is not None:
        scores = neg.encoder_scores(encoder, texts, [c.features for c in clips])
    else:
        scores = neg.fallback_scores(texts, [g[0] for g in goals], [c.facts for c in clips], [c.captions for c in clips])
    terms = [caption_terms(c.captions[0]) for c in clips]
    takes, actions = np.array([c.take for c in clips]), [c.action for c in clips]
    stage1, stage2, per_level = [], [], Counter()
    worst_first = [lv for lv in LEVELS if lv in config.levels]
    for row, (i, k, caption) in enumerate(goals):
        goal, key = clips[i], f"{config.seed}:{clips[i].base}:{k}"
        rng = random.Random(key)
        gterms = caption_terms(caption)
        allowed = (takes != goal.take) & np.array([a != goal.action for a in actions])
        ranked = neg.rank(scores[row], allowed)
        usable = lambda j: bool(differences(gterms, goal.facts, terms[j], clips[j].facts))
        picks = neg.pick(ranked, worst_first, rng, config.per_level, usable)
        analyses = [annotator.analyse(caption, goal.facts, seed=f"{key}:{n}") for n in range(config.analyses)]
        pos_a, pos_r = annotator.assess(caption, goal.facts, caption, goal.facts, POSITIVE, seed=key)
        rounds = []
        for level, j in picks:
            other = clips[j]
            m_caption = rng.choice(_telling(other.captions[:3]))
            a, r = annotator.assess(caption, goal.facts, m_caption, other.facts, level, seed=f"{key}:{other.id}")
            rounds.append((float(scores[row, j]), other.id, a, r))
            per_level[level] += 1
        stage1 += _stage1(goal.id, caption, analyses, pos_a, rounds, rng)
        stage2 += _traces(goal.id, caption, analyses, pos_a, rounds, config, rng)
    return stage1, stage2, per_level


def _stage1(gid, caption, analyses, pos_a, rounds, rng) -> list[dict]:
    out = [record("caption", gid, caption, motion=gid, answer=caption),
           record("generate", gid, caption, target=gid)]
    out += [record("analyze", gid, caption, analysis=a, answer=a) for a in analyses]
    out.append(record("generate_from_analysis", gid, caption, analysis=rng.choice(analyses), target=gid))
    for mid, a, r in [(gid, pos_a, NO_REFINEMENT)] + [(m, a, r) for _, m, a, r in rounds]:
        out.append(record("assess", gid, caption, motion=mid, assessment=a, answer=a))
        out.append(record("instruct", gid, caption, motion=mid, assessment=a, instruction=r, answer=r))
    for _, mid, _, r in rounds:
        out.append(record("refine_direct", gid, caption, motion=mid, target=gid))
        out.append(record("refine_instructed", gid, caption, motion=mid, instruction=r, target=gid))
    return out


def _traces(gid, caption, analyses, pos_a, rounds, config: EngineConfig, rng) -> list[dict]:
    out = []
    for _ in range(config.traces_per_caption):
        n = rng.choices(range(len(config.round_weights)), weights=config.round_weights)[0]
        wrong = sorted(rng.sample(rounds, min(n, len(rounds))), key=lambda x: (x[0], x[1]))  # worst first
        steps = [{"motion": m, "assessment": a, "refinement": r} for _, m, a, r in wrong]
        steps.append({"motion": gid, "assessment": pos_a, "refinement": NO_REFINEMENT})
        out.append({"id": gid, "caption": caption, "analysis": rng.choice(analyses), "rounds": steps})
    return out


# ---- statistics ------------------------------------------------------------------------------
def statistics(stage1: list[dict], stage2: list[dict], per_level: Counter) -> dict:
    words = lambda t: t.split()
    texts = [r[f] for r in stage1 for f in ("caption", "analysis", "assessment", "instruction") if r[f]]
    instr = [r["instruction"] for r in stage1 if r["task"] == "instruct" and r["instruction"] != NO_REFINEMENT]
    assess = [r["assessment"] for r in stage1 if r["task"] == "assess"]
    captions = {(r["id"], r["caption"]) for r in stage1}
    mean = lambda xs: round(float(np.mean([len(words(x)) for x in xs])), 2) if xs else 0.0
    return {
        "records_per_task": {t: sum(1 for r in stage1 if r["task"] == t) for t in TASKS},
        "traces_by_wrong_motions": dict(sorted(Counter(len(t["rounds"]) - 1 for t in stage2).items())),
        "negatives_per_level": {lv: per_level.get(lv, 0) for lv in LEVELS},
        "goal_captions": len(captions), "goal_clips": len({c for c, _ in captions}),
        "mean_caption_words": mean([c for _, c in captions]),
        "mean_analysis_words": mean([r["analysis"] for r in stage1 if r["task"] == "analyze"]),
        "mean_assessment_words": mean(assess), "mean_instruction_words": mean(instr),
        "vocabulary": len({w.strip(".,;:()").lower() for t in texts for w in words(t)} - {""}),
        "distinct_instructions": len(set(instr)),
        "instructions_mentioning": {k: round(100.0 * sum(bool(re.search(rf"\b(?:{p})\b", x, re.I)) for x in instr) / max(len(instr), 1), 1)
                                    for k, p in FACT_WORDS.items()},
    }


def format_stats(s: dict) -> str:
    lines = [f"engine: {s['goal_captions']} goal captions of {s['goal_clips']} clips; ranking: {s['ranking']}; annotator: {s['annotator']}"]
    lines.append("  stage-1 records: " + ", ".join(f"{k} {v}" for k, v in s["records_per_task"].items()))
    lines.append("  stage-2 traces by wrong motions: " + ", ".join(f"{k}: {v}" for k, v in s["traces_by_wrong_motions"].items()))
    lines.append("  negatives per level: " + ", ".join(f"{k} {v}" for k, v in s["negatives_per_level"].items()))
    lines.append(f"  mean words: caption {s['mean_caption_words']}, analysis {s['mean_analysis_words']}, "
                 f"assessment {s['mean_assessment_words']}, instruction {s['mean_instruction_words']}; "
                 f"vocabulary {s['vocabulary']} words; {s['distinct_instructions']} distinct instructions")
    lines.append("  instructions mentioning (%): " + ", ".join(f"{k} {v}" for k, v in s["instructions_mentioning"].items()))
    if s.get("annotator_fallbacks") is not None:
        lines.append(f"  LLM annotator: {s['annotator_calls']} calls, {s['annotator_fallbacks']} fell back to the rule annotator")
    return "\n".join(lines)


# ---- the command -----------------------------------------------------------------------------
def build_engine(data, out, config: EngineConfig | None = None, annotator: Annotator | None = None,
                 encoder: neg.MotionTextEncoder | None = None, overwrite: bool = False, verbose: bool = True) -> dict:
    """Write stage1.jsonl, stage2.jsonl and stats.json into `out`; returns the statistics."""
    config, annotator = config or EngineConfig(), annotator or RuleAnnotator()
    data, out = Path(data), Path(out)
    config.check()
    check_output_folder(out, overwrite)
    started = time.time()
    clips = load_clips(data, config.split, config.limit)
    stage1, stage2, per_level = build_records(clips, config, annotator, encoder)
    stats = statistics(stage1, stage2, per_level)
    stats.update(ranking="evaluator" if encoder is not None else "measured facts + caption words (no evaluator)",
                 annotator=getattr(annotator, "name", type(annotator).__name__), config=asdict(config),
                 data=str(data), seconds=round(time.time() - started, 1))
    if hasattr(annotator, "fallbacks"):
        stats.update(annotator_calls=annotator.calls, annotator_fallbacks=annotator.fallbacks)
    with replaced_folder(out) as tmp:
        for name, rows in (("stage1.jsonl", stage1), ("stage2.jsonl", stage2)):
            with open(tmp / name, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    if verbose:
        print(format_stats(stats))
    return stats


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="dataset folder made by `irmogen data prepare`")
    parser.add_argument("--evaluator", default="none", help="evaluator folder ranking the negatives, or 'none' "
                        "for the measured-facts ranking")
    parser.add_argument("--out", required=True, help="output folder for stage1.jsonl, stage2.jsonl, stats.json")
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--captions-per-clip", type=int, default=0, help="sample this many captions per clip (0 = all)")
    parser.add_argument("--analyses", type=int, default=3, help="analysis paraphrases per caption")
    parser.add_argument("--per-level", type=int, default=1, help="negatives per alignment level")
    parser.add_argument("--levels", default=",".join(LEVELS), help="comma-separated alignment levels to pick")
    parser.add_argument("--round-weights", default="1,1,1,1,1", help="relative frequency of traces with 0,1,2,3,4 wrong motions")
    parser.add_argument("--traces-per-caption", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N clips of the split")
    parser.add_argument("--annotator", default="rule", help="'rule', or a transformers model folder of an instruction-tuned LLM")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true")


def run(args) -> int:
    try:
        weights = tuple(float(x) for x in args.round_weights.split(","))
    except ValueError:
        raise IrmogenError(f"--round-weights {args.round_weights!r}: expected numbers separated by commas") from None
    config = EngineConfig(seed=args.seed, split=args.split, captions_per_clip=args.captions_per_clip,
                          analyses=args.analyses, per_level=args.per_level,
                          levels=tuple(x.strip() for x in args.levels.split(",") if x.strip()),
                          round_weights=weights, traces_per_caption=args.traces_per_caption, limit=args.limit)
    config.check()
    encoder = None
    if args.evaluator.lower() != "none":
        from ..evaluate.retrieval import Evaluator
        encoder = Evaluator.load(args.evaluator, device=args.device)
    if args.annotator == "rule":
        annotator = RuleAnnotator()
    else:
        if not Path(args.annotator).is_dir():
            raise IrmogenError(f"--annotator {args.annotator}: not 'rule' nor a model folder")
        from .annotator import TransformersAnnotator
        annotator = TransformersAnnotator(args.annotator, device=args.device)
    build_engine(args.data, args.out, config, annotator, encoder, overwrite=args.overwrite)
    return 0

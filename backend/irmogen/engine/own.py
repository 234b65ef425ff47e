"""`irmogen engine own`: the model's OWN first motions as assessment and refinement material.

Why: the engine's traces (`build`) open with real dataset clips picked as negatives, worst first.
A small model trained only on those learns the trace's shape rather than to read the motion in
front of it: at inference it calls its own (good) first motion "completely wrong" because round
one always was, then "refines" it into something worse. The first motion it must judge at
inference is its own, so this step shows it its own: for every goal caption of the split it
writes the first motion (style `trace`: the analysis, then the motion, as the decoder does at
inference; style `manual`: stage 1's generation call), once greedy, as evaluation and the add-on
decode, and `samples - 1` times sampled, and judges that motion against the goal with the same grounded means as the engine:
  * the evaluator's text-motion distance places the motion in the ranking of every real clip of
    the split for the caption (the fraction of clips closer to the caption);
  * the measured facts of the decoded motion (travel, turning, pace, jumps, posture, limbs) are
    compared with the goal's, the action class read from the nearest real clip's caption in the
    evaluator's motion space.
It is a match when it ranks at least as close as the goal clip itself (or within the top
`match_fraction`) and no large measured difference remains; the trace is then that motion with a
positive assessment and "No refinements needed.". Otherwise the alignment level follows its rank,
the rule annotator words the assessment and instruction from the measured differences, and the
trace continues with the goal motion. Stage-1 records (assess, instruct, both refinements) are
written for the own motions too.

Output folder: the input engine's records followed by the own ones (stage1.jsonl, stage2.jsonl),
`codes.npz` with the own motions' codes (ids `own:<clip>:<caption>:<sample>`; the training
stages add it to the codes cache), `stats.json`. Several processes can share the work
(`--shard K/N`, then `irmogen engine merge`). Written into a temporary sibling folder renamed
into place at the end. Needs torch (the model and evaluator); never bpy.
"""
from __future__ import annotations

import json
import random
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import IrmogenError
from ..folders import check_output_folder, replaced_folder
from .annotator import RuleAnnotator
from .build import ClipInfo, _telling, goal_captions, load_clips, record
from .compare import caption_terms, differences, measure
from .negatives import BANDS, minus_distances
from .wording import LEVELS, NO_REFINEMENT, POSITIVE

OWN_CODES = "codes.npz"   # beside stage1/2.jsonl: codes of motions that are not dataset clips
STYLES = ("trace", "manual")
# A measured difference this important rules out a match: a different action, or travel, direction,
# turning, posture the caption itself speaks of (compare.differences adds 1.5 to those). Incidental
# ones (a drift the caption does not mention) do not: refining a motion the evaluator already ranks
# near the top for its text mostly makes it worse (measured: model card).
MAJOR_DIFFERENCE = 4.5


@dataclass
class OwnConfig:
    seed: int = 0
    split: str = "train"
    samples: int = 2                 # first motions per caption: one greedy, the rest sampled
    temperature: float = 1.0
    top_p: float = 0.95
    captions_per_clip: int = 0       # 0 = every caption
    match_fraction: float = 0.09     # a motion ranked within this top fraction of clips can be a match
    limit: int = 0
    shard: int = 0                   # this process writes captions shard, shard + shards, ...
    shards: int = 1
    style: str = "trace"             # whose first motion: a reasoning trace's, or stage 1's generation call

    def check(self) -> None:
        if self.style not in STYLES:
            raise IrmogenError(f"engine own: style {self.style!r} is not one of {', '.join(STYLES)}")
        if self.samples < 1 or not 0 <= self.shard < self.shards:
            raise IrmogenError(f"engine own: samples={self.samples} must be >= 1 and shard={self.shard} in [0, {self.shards})")
        if not 0.0 < self.match_fraction < 1.0:
            raise IrmogenError(f"engine own: match_fraction={self.match_fraction} must lie in (0, 1)")


def level_of(fraction: float) -> str:
    """The alignment level whose band (fraction of clips ranked closer) holds `fraction`: the
    engine's bands, their gaps split at the midpoints."""
    order = [lv for lv in reversed(LEVELS)]        # nearly_right first
    for lv, nxt in zip(order, order[1:]):
        if fraction <= (BANDS[lv][1] + BANDS[nxt][0]) / 2:
            return lv
    return order[-1]


def first_motion(model, caption: str, greedy: bool, seed: int, temperature: float, top_p: float,
                 style: str = "trace") -> list[int]:
    """The first motion the model writes for `caption` (nothing after it is decoded): in a reasoning
    trace after its analysis (`trace`), or by the stage-1 generation call (`manual`)."""
    from ..reasoning import tasks
    run = tasks.generate if style == "trace" else tasks.generate_manual
    events = run(model, caption, max_rounds=5, decode_clips=False, greedy=greedy, seed=seed,
                 temperature=temperature, top_p=top_p)
    try:
        for e in events:
            if e.kind == "motion":
                return list(e.codes)
    finally:
        events.close()
    raise IrmogenError(f"the model wrote no motion for {caption!r}")


class Judge:
    """Places a decoded motion against a goal caption: rank among the split's clips, facts, nearest clip."""

    def __init__(self, clips: list[ClipInfo], evaluator, match_fraction: float):
        self.clips, self.evaluator, self.match_fraction = clips, evaluator, match_fraction
        self.motion = np.asarray(evaluator.embed_motion([c.features for c in clips]), np.float64)
        self._text: tuple[str, np.ndarray] | None = None   # the last caption's embedding (samples share it)

    def text(self, caption: str) -> np.ndarray:
        if self._text is None or self._text[0] != caption:
            self._text = (caption, np.asarray(self.evaluator.embed_text([caption]), np.float64))
        return self._text[1]

    def judge(self, caption: str, gi: int, features: np.ndarray, fps: float) -> dict:
        """The verdict on a motion (unnormalised (T, 263) features) for the caption of clip `gi`."""
        from ..features import features_to_positions
        goal = self.clips[gi]
        text = self.text(caption)
        own = np.asarray(self.evaluator.embed_motion([features]), np.float64)
        real = minus_distances(text, self.motion)[0]
        mine = minus_distances(text, own)[0, 0]
        goal_score = real[gi]
        fraction = float(np.mean(real > mine))
        goal_fraction = float(np.mean(real > goal_score))
        near = int(np.argmin(np.linalg.norm(self.motion - own, axis=1)))
        nearest = self.clips[near]
        m_caption = caption if nearest.take == goal.take else _telling(nearest.captions[:3])[0]
        facts = measure(features_to_positions(features.astype(np.float64)), features, fps)
        diffs = differences(caption_terms(caption), goal.facts, caption_terms(m_caption), facts)
        match = fraction <= max(goal_fraction, self.match_fraction) and all(d.weight < MAJOR_DIFFERENCE for d in diffs)
        return {"fraction": fraction, "goal_fraction": goal_fraction, "nearest": nearest.id, "motion_caption": m_caption,
                "facts": facts, "differences": [d.kind for d in diffs], "match": match,
                "level": POSITIVE if match else level_of(fraction)}


def own_records(model, evaluator, clips: list[ClipInfo], config: OwnConfig, annotator=None, progress=None,
                reuse: dict | None = None):
    """(stage-1 records, stage-2 traces, codes by own id, counts) for the model's own first motions.
    `reuse`: codes by own id from an earlier run; those motions are judged again, not regenerated."""
    config.check()
    annotator = annotator or RuleAnnotator()
    judge = Judge(clips, evaluator, config.match_fraction)
    fps = float(model.config.fps)
    stage1, stage2, codes, counts = [], [], {}, Counter()
    goals = goal_captions(clips, config.captions_per_clip, config.seed)[config.shard::config.shards]
    for i, k, caption in (progress(goals) if progress else goals):
        goal = clips[i]
        key = f"{config.seed}:{goal.base}:{k}"
        rng = random.Random(f"own:{key}")
        pos_a, _ = annotator.assess(caption, goal.facts, caption, goal.facts, POSITIVE, seed=key)
        for s in range(config.samples):
            oid = f"own:{goal.id}:{k}:{s}"
            if reuse is not None and oid in reuse:
                own = [int(c) for c in reuse[oid]]
            else:
                own = first_motion(model, caption, greedy=s == 0, seed=zlib.crc32(f"{key}:{s}".encode()),
                                   temperature=config.temperature, top_p=config.top_p, style=config.style)
            codes[oid] = np.asarray(own, np.int16)
            v = judge.judge(caption, i, model.decode_codes(own), fps)
            counts[v["level"]] += 1
            if v["match"]:
                a, _ = annotator.assess(caption, goal.facts, caption, v["facts"], POSITIVE, seed=f"{key}:{oid}")
                rounds = [{"motion": oid, "assessment": a, "refinement": NO_REFINEMENT}]
                stage1 += [record("assess", goal.id, caption, motion=oid, assessment=a, answer=a),
                           record("instruct", goal.id, caption, motion=oid, assessment=a,
                                  instruction=NO_REFINEMENT, answer=NO_REFINEMENT)]
            else:
                a, r = annotator.assess(caption, goal.facts, v["motion_caption"], v["facts"], v["level"],
                                        seed=f"{key}:{oid}")
                rounds = [{"motion": oid, "assessment": a, "refinement": r},
                          {"motion": goal.id, "assessment": pos_a, "refinement": NO_REFINEMENT}]
                stage1 += [record("assess", goal.id, caption, motion=oid, assessment=a, answer=a),
                           record("instruct", goal.id, caption, motion=oid, assessment=a, instruction=r, answer=r),
                           record("refine_direct", goal.id, caption, motion=oid, target=goal.id),
                           record("refine_instructed", goal.id, caption, motion=oid, instruction=r, target=goal.id)]
            analysis = annotator.analyse(caption, goal.facts, seed=f"{key}:{rng.randrange(3)}")  # one of 3 paraphrases
            stage2.append({"id": goal.id, "caption": caption, "analysis": analysis, "rounds": rounds,
                           "own": {"level": v["level"], "fraction": round(v["fraction"], 4),
                                   "goal_fraction": round(v["goal_fraction"], 4), "nearest": v["nearest"],
                                   "differences": v["differences"], "greedy": s == 0}})
    return stage1, stage2, codes, counts


def merge_shards(parts: list[Path], out: Path, engine: Path | None = None, overwrite: bool = False) -> dict:
    """Join the outputs of several `engine own --shard` runs (and the base engine's records) into one."""
    rows = {"stage1.jsonl": [], "stage2.jsonl": []}
    codes: dict[str, np.ndarray] = {}
    counts, stats = Counter(), []
    for p in ([engine] if engine else []) + list(parts):
        for name, lines in _rows_of(p).items():
            rows[name] += lines
        if (p / OWN_CODES).is_file():
            with np.load(p / OWN_CODES, allow_pickle=False) as z:
                codes.update({k: z[k] for k in z.files})
        if p in parts and (p / "stats.json").is_file():
            s = json.loads((p / "stats.json").read_text(encoding="utf-8"))
            counts.update(s.get("levels", {}))
            stats.append(s)
    summary = {"levels": dict(counts), "own_traces": sum(counts.values()), "parts": [str(p) for p in parts],
               "engine": str(engine) if engine else None, "stage1_records": len(rows["stage1.jsonl"]),
               "stage2_traces": len(rows["stage2.jsonl"])}
    _write(out, rows, codes, summary, overwrite)
    return summary


def _rows_of(folder) -> dict[str, list[str]]:
    """The JSONL lines of an engine folder's stage1.jsonl and stage2.jsonl (none for a missing file)."""
    files = {name: Path(folder) / name for name in ("stage1.jsonl", "stage2.jsonl")}
    return {name: f.read_text(encoding="utf-8").splitlines(keepends=True) if f.is_file() else []
            for name, f in files.items()}


def _write(out: Path, rows: dict[str, list[str]], codes: dict, stats: dict, overwrite: bool) -> None:
    check_output_folder(out, overwrite)
    with replaced_folder(out) as tmp:
        for name, lines in rows.items():
            (tmp / name).write_text("".join(lines), encoding="utf-8")
        np.savez_compressed(tmp / OWN_CODES, **codes)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")


def read_own_codes(folder) -> dict[str, np.ndarray]:
    """The own motions' codes of an earlier `engine own` output folder."""
    path = Path(folder) / OWN_CODES
    if not path.is_file():
        raise IrmogenError(f"--reuse {folder}: no {OWN_CODES} there (not an `engine own` output folder)")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k.startswith("own:")}


def build_own(model, evaluator, data, out, config: OwnConfig | None = None, engine=None,
              overwrite: bool = False, progress: bool = True, reuse=None) -> dict:
    """Write the own-motion records (after `engine`'s, when given) into `out`; returns statistics.
    `reuse`: an earlier output folder whose own motions are judged again instead of regenerated."""
    config = config or OwnConfig()
    config.check()
    data, out = Path(data), Path(out)
    if engine is not None and not (Path(engine) / "stage2.jsonl").is_file():
        raise IrmogenError(f"--engine {engine}: no stage2.jsonl there", hint="run `irmogen engine build` first")
    started = time.time()
    clips = load_clips(data, config.split, config.limit)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = lambda xs: tqdm(xs, desc="own motions", unit="caption", dynamic_ncols=True)
    stage1, stage2, codes, counts = own_records(model, evaluator, clips, config, progress=bar,
                                                reuse=read_own_codes(reuse) if reuse else None)
    rows = _rows_of(engine) if engine is not None else {"stage1.jsonl": [], "stage2.jsonl": []}
    rows["stage1.jsonl"] += [json.dumps(r, ensure_ascii=False) + "\n" for r in stage1]
    rows["stage2.jsonl"] += [json.dumps(r, ensure_ascii=False) + "\n" for r in stage2]
    greedy = [t["own"] for t in stage2 if t["own"]["greedy"]]
    stats = {"levels": dict(counts), "own_traces": len(stage2),
             "greedy_matches": round(float(np.mean([g["level"] == POSITIVE for g in greedy])), 4) if greedy else None,
             "engine": str(engine) if engine else None, "config": asdict(config), "data": str(data),
             "seconds": round(time.time() - started, 1)}
    _write(out, rows, codes, stats, overwrite)
    return stats


def add_merge_arguments(parser) -> None:
    parser.add_argument("parts", nargs="+", help="output folders of `engine own --shard K/N` runs")
    parser.add_argument("--engine", help="engine folder whose records come first")
    parser.add_argument("--out", required=True)
    parser.add_argument("--overwrite", action="store_true")


def run_merge(args) -> int:
    parts = [Path(p) for p in args.parts]
    for p in parts:
        if not (p / "stage2.jsonl").is_file():
            raise IrmogenError(f"{p}: no stage2.jsonl (not an `engine own` output folder)")
    s = merge_shards(parts, Path(args.out), Path(args.engine) if args.engine else None, args.overwrite)
    print(f"merged: {s['stage2_traces']} traces, {s['stage1_records']} stage-1 records; own levels {s['levels']}")
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="the model whose first motions to judge (usually the stage-2 model)")
    parser.add_argument("--data", required=True, help="dataset folder made by `irmogen data prepare`")
    parser.add_argument("--evaluator", required=True, help="evaluator folder or file (irmogen train evaluator)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--engine", help="engine folder whose records come first in the output")
    parser.add_argument("--split", default="train")
    parser.add_argument("--style", default="trace", choices=STYLES, help="the first motion of a reasoning trace "
                        "(stage 2/3 models) or of the stage-1 generation call (stage-1 models)")
    parser.add_argument("--samples", type=int, default=2, help="first motions per caption: one greedy, the rest sampled")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--captions-per-clip", type=int, default=0, help="this many captions per clip (0 = all)")
    parser.add_argument("--match-fraction", type=float, default=0.09, help="a motion that at most this fraction "
                        "of the split's clips beat for the caption (and with no large measured difference) needs no refinement")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N clips of the split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", help="an earlier `engine own` output: judge its motions again (e.g. with "
                        "another --match-fraction) instead of generating them")
    parser.add_argument("--shard", default="0/1", help="K/N: this process does every N-th caption from the K-th "
                        "(run N processes, then `engine merge`)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from ..evaluate.retrieval import Evaluator
    from ..llm.loaders import load_model
    try:
        shard, shards = (int(x) for x in args.shard.split("/"))
    except ValueError:
        raise IrmogenError(f"--shard {args.shard!r}: expected K/N, e.g. 0/2") from None
    config = OwnConfig(seed=args.seed, split=args.split, samples=args.samples, temperature=args.temperature,
                       top_p=args.top_p, captions_per_clip=args.captions_per_clip,
                       match_fraction=args.match_fraction, limit=args.limit, shard=shard, shards=shards,
                       style=args.style)
    config.check()
    model = load_model(args.model, device=args.device)
    evaluator = Evaluator.load(args.evaluator, device=args.device)
    stats = build_own(model, evaluator, args.data, args.out, config, engine=args.engine,
                      overwrite=args.overwrite, progress=not args.no_progress, reuse=args.reuse)
    print("own motions: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["levels"].items()))
          + f"; greedy first motions judged a match: {stats['greedy_matches']}")
    return 0

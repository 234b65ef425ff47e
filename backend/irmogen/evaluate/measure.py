"""The metrics of a MotionLLM on a dataset split, in the field's protocol (`irmogen eval` measures with it).

Rows (evaluate_metrics.py of the papers, with our evaluator by default):
  real           the split's own motions against their captions (the ceiling; FID ~ 0)
  direct         one motion per caption from the stage-1 prompt "Generate a motion that depicts
                 {caption}." (Motion-Agent-style models: their own prompt), no reasoning
  irmogen_first  the FIRST motion of the IRMoGen rounds (`tasks.generate`: one trace; or
                 `rounds="manual"`: the stage-1 chain of separate calls, `tasks.generate_manual`)
  irmogen_final  the FINAL motion of the same rounds; the paper's first finding is final > first
  retrieval      the baseline: the real motion of the training clip whose caption is nearest to
                 the text (frozen MiniLM cosine, `baseline`); it needs no model
`prompts` (caption -> text given to the model and the baseline, e.g. paraphrases) changes only what
the generators read: every row is still scored against the original caption, so a drop measures
how much the wording, not the evaluator, costs.
Each clip of the split gets one caption, drawn once with `seed` and shared by every row, so rows
compare the same texts; `captions="all"` measures every caption instead, in draws of one caption per
clip whose metrics are averaged (a 150-clip split is too small to resolve a Top-1 difference of
0.01 with one draw). Generation is greedy by default (the reference decoder), hence done once;
the repetitions redraw the batches of 32 and the diversity pairs. MModality (sampled generations,
expensive) is measured on the `direct` row only, for `mm_texts` texts x `mm_repeats` generations.
Generated motions are the VQ decoder's features, as in the papers (no position round trip); every
motion is capped at 196 frames. Needs torch; never imports bpy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import IrmogenError
from . import metrics as M
from .retrieval import MAX_FRAMES, WEIGHTS, Evaluator, read_clips

MODES = ("real", "direct", "irmogen", "retrieval")
ROUND_STYLES = ("trace", "manual")
CAPTION_CHOICES = ("one", "all")


def _load_model(model, device, needed: bool):
    """(MotionLLM or None when not needed, its directory or None)."""
    if isinstance(model, (str, Path)):
        from ..llm.model import MotionLLM
        return (MotionLLM.from_pretrained(model, device=device) if needed else None), Path(model)
    return model, None


def _progress(items, what: str, show: bool):
    from tqdm.auto import tqdm
    return tqdm(items, desc=what, disable=not show, dynamic_ncols=True)


def _default_evaluator(model_dir: Path | None):
    if model_dir is None or not (model_dir / WEIGHTS).is_file():
        where = model_dir / WEIGHTS if model_dir is not None else "the model object"
        raise IrmogenError(f"eval: no evaluator ({where} not found)", code="not_found",
                           hint="pass --evaluator FILE (train one with `irmogen train evaluator`)")
    return Evaluator.load(model_dir / WEIGHTS)


def _direct(model, caption: str, sampling: dict) -> list[int]:
    from ..reasoning import tasks
    if model.config.prompt_style == "motion_agent":
        events = tasks.generate(model, caption, decode_clips=False, **sampling)
    else:
        events = tasks.generate_manual(model, caption, max_rounds=1, decode_clips=False, **sampling)
    return [e.codes for e in events if e.kind == "motion"][-1]


def _rounds(model, caption: str, style: str, max_rounds: int, sampling: dict) -> list[list[int]]:
    """The motions of every round, in order."""
    from ..reasoning import tasks
    run = tasks.generate if style == "trace" else tasks.generate_manual
    return [e.codes for e in run(model, caption, max_rounds=max_rounds, decode_clips=False, **sampling)
            if e.kind == "motion"]


def evaluate_model(model, data_dir, split: str = "test", repetitions: int = M.REPETITIONS, evaluator=None,
                   modes=MODES, *, limit: int | None = None, seed: int = 0, max_rounds: int = 5,
                   rounds: str = "trace", greedy: bool = True, temperature: float = 1.0, top_p: float = 1.0,
                   guidance: float | None = None,
                   mm_texts: int = 100, mm_repeats: int = 30, mm_times: int = M.MM_TIMES,
                   captions: str = "one", prompts: dict | None = None, device="cpu", progress: bool = True) -> dict:
    """Metrics of a model directory (or a loaded MotionLLM) on a dataset split -> a JSON-able dict:
    {"rows": {row: {metric: {"mean", "interval"}, "counts": {...}}}, "rounds": {...}, "protocol": {...}}."""
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise IrmogenError(f"eval modes {list(modes)}: each must be one of {', '.join(MODES)}")
    if rounds not in ROUND_STYLES:
        raise IrmogenError(f"eval rounds={rounds!r}: expected one of {', '.join(ROUND_STYLES)}")
    generating = any(m not in ("real", "retrieval") for m in modes)
    llm, model_dir = _load_model(model, device, generating)
    if evaluator is None:
        evaluator = _default_evaluator(model_dir)
    if captions not in CAPTION_CHOICES:
        raise IrmogenError(f"eval captions={captions!r}: expected one of {', '.join(CAPTION_CHOICES)}")
    clips = read_clips(data_dir, split, limit)
    draws = caption_draws(clips, captions, seed)
    n = len(clips)
    pairs = [(i, c, k) for draw in draws for i, (c, k) in enumerate(zip(clips, draw))]   # draw-major
    texts = [c.captions[k] for _, c, k in pairs]
    text = evaluator.embed_text(texts, tokens=[c.tokens[k] for _, c, k in pairs])
    real = evaluator.embed_motion([c.features for c in clips])
    sampling = {"greedy": greedy, "temperature": temperature, "top_p": top_p, "guidance": guidance}
    prompt = (lambda t: prompts.get(t, t)) if prompts else (lambda t: t)

    codes: dict[str, list[list[int]]] = {}   # row -> the codes written for each text
    round_codes: list[list[list[int]]] = []   # text -> the codes of every round
    def bar(items, what):
        return _progress(items, what, progress)

    def per_text(write, what: str) -> list:
        """`write(clip index, caption)` for every text; a caption that several draws share (clips
        with fewer captions than others) is written once."""
        memo: dict = {}
        for (i, _, _), t in zip(pairs, bar(texts, what)):
            if (i, t) not in memo:
                memo[(i, t)] = write(i, prompt(t))
        return [memo[(i, t)] for (i, _, _), t in zip(pairs, texts)]

    if "direct" in modes:
        codes["direct"] = per_text(lambda i, c: _direct(llm, c, {**sampling, "seed": seed + i}), "direct")
    if "irmogen" in modes:
        round_codes = per_text(lambda i, c: _rounds(llm, c, rounds, max_rounds, {**sampling, "seed": seed + i}),
                               f"irmogen ({rounds})")
        codes["irmogen_first"] = [r[0] for r in round_codes]
        codes["irmogen_final"] = [r[-1] for r in round_codes]
    round_counts = [len(r) for r in round_codes]
    retrieved = _retrieve(data_dir, [prompt(t) for t in texts], device) if "retrieval" in modes else None

    kw = dict(repetitions=repetitions, seed=seed)
    def measure(emb, mm=None):
        """Each draw is one text per clip (the field's protocol); several draws are combined."""
        return M.combine_draws([M.evaluate_embeddings(text[d * n:(d + 1) * n], emb[d * n:(d + 1) * n], real,
                                                      mm_embeddings=mm if d == 0 else None, mm_times=mm_times, **kw)
                                for d in range(len(draws))])
    rows = {}
    if "real" in modes:
        rows["real"] = measure(np.concatenate([real] * len(draws)))
    embedded = _embed_codes(llm, evaluator, codes)
    for name, emb in embedded.items():
        mm = None
        if name == "direct" and mm_texts > 0 and mm_repeats >= 2:
            mm = _mm_embeddings(llm, evaluator, texts[:min(mm_texts, n)], mm_repeats, seed, bar,
                                {**sampling, "greedy": False})
        rows[name] = measure(emb, mm)
        # greedy decoding can write one motion for many texts: how many different ones there are
        rows[name]["counts"]["distinct_motions"] = len({tuple(c) for c in codes[name]})
        rows[name]["counts"]["distinct_texts"] = len({prompt(t) for t in texts})
    if retrieved is not None:
        found, ids = retrieved
        once = {c.id: c for c in found}       # a clip retrieved for many texts is embedded once (exact ties)
        emb = dict(zip(once, evaluator.embed_motion([c.features for c in once.values()])))
        rows["retrieval"] = measure(np.stack([emb[i] for i in ids]))
        rows["retrieval"]["counts"].update(distinct_motions=len(set(ids)), distinct_texts=len({prompt(t) for t in texts}))
    result = {
        "data": str(data_dir), "split": split, "clips": len(clips), "texts_measured": len(texts),
        "model": str(model_dir or "object"),
        "evaluator": type(evaluator).__name__,
        "protocol": {"repetitions": repetitions, "seed": seed, "max_frames": MAX_FRAMES,
                     "decoding": "greedy" if greedy else f"sampled (temperature {temperature}, top_p {top_p})",
                     "guidance": "the model's default" if guidance is None else guidance,
                     "rounds": rounds, "max_rounds": max_rounds, "captions": captions, "draws": len(draws)},
        "rows": rows,
        # per caption, what each row wrote (for analyses that need the motions themselves)
        "texts": [{"clip": c.id, "caption": cap, **({"prompt": prompt(cap)} if prompts else {}),
                   **({"direct": codes["direct"][j]} if "direct" in codes else {}),
                   **({"rounds": round_codes[j]} if round_codes else {}),
                   **({"retrieved": retrieved[1][j]} if retrieved is not None else {})}
                  for j, ((_, c, _), cap) in enumerate(zip(pairs, texts))],
    }
    if round_counts:
        counts = np.bincount(round_counts, minlength=max_rounds + 1)[1:]
        result["rounds"] = {"mean": float(np.mean(round_counts)), "histogram": counts.tolist(),
                            "stopped_before_cap": float(np.mean(np.array(round_counts) < max_rounds)),
                            **refinement_effect(text, embedded["irmogen_first"], embedded["irmogen_final"],
                                                round_counts),
                            "top1_gain": M.paired_top1_gain(rows["irmogen_first"]["per_text"],
                                                            rows["irmogen_final"]["per_text"])}
    return result


def _retrieve(data_dir, prompts: list[str], device) -> tuple[list, list[str]]:
    """The baseline's answer per prompt: (training ClipRecords, their ids)."""
    from ..device import resolve_device
    from .baseline import CaptionRetrieval
    base = CaptionRetrieval.from_dataset(data_dir, "train", device=resolve_device(device, None)[0])
    found = [base.clips[i] for i in base.nearest(prompts)]
    return found, [c.id for c in found]


def _embed_codes(llm, evaluator, codes: dict[str, list[list[int]]]) -> dict[str, np.ndarray]:
    """row -> (texts, D) embeddings, each distinct motion decoded and embedded once: greedy decoding
    repeats motions across texts, and a text that was not refined has its first motion as final.
    (One embedding per motion also makes repeated motions tie exactly, as metrics.r_precision_rows expects.)"""
    distinct = list(dict.fromkeys(tuple(c) for row in codes.values() for c in row))
    if not distinct:
        return {}
    emb = evaluator.embed_motion([llm.decode_codes(list(c)) for c in distinct])
    index = {c: i for i, c in enumerate(distinct)}
    return {name: emb[[index[tuple(c)] for c in row]] for name, row in codes.items()}


def caption_draws(clips, captions: str, seed: int) -> list[list[int]]:
    """Which caption of each clip every draw uses. "one": a single draw, picked with `seed`; "all":
    draw j takes caption j of each clip (cycling through clips that have fewer), so that every
    caption is measured, each draw still one text per clip."""
    if captions == "all":
        return [[j % len(c.captions) for c in clips] for j in range(max(len(c.captions) for c in clips))]
    rng = np.random.default_rng(seed)
    return [[int(rng.integers(len(c.captions))) for c in clips]]


def refinement_effect(text: np.ndarray, first: np.ndarray, final: np.ndarray, round_counts) -> dict:
    """What the rounds did, per caption: the share of traces that refined at all, and over those,
    how often the final motion is closer to its caption than the first (evaluator distance), and
    the mean distances of both."""
    refined = np.asarray(round_counts) > 1
    d_first = np.linalg.norm(text - first, axis=1)[refined]
    d_final = np.linalg.norm(text - final, axis=1)[refined]
    out = {"refined": float(refined.mean())}
    if refined.any():
        out.update(refined_closer=float(np.mean(d_final < d_first)), refined_distance_first=float(d_first.mean()),
                   refined_distance_final=float(d_final.mean()))
    return out


def _mm_embeddings(llm, evaluator, captions, repeats, seed, bar, sampling: dict) -> np.ndarray:
    """(texts, repeats, D): `repeats` sampled direct generations per caption."""
    out = []
    for i, c in enumerate(bar(captions, "mmodality")):
        feats = [llm.decode_codes(_direct(llm, c, {**sampling, "seed": seed + 1000 * (i + 1) + r}))
                 for r in range(repeats)]
        out.append(evaluator.embed_motion(feats))
    return np.stack(out)

"""Candidate negative motions for a goal caption: rank real clips, pick them at alignment levels.

Ranking (higher = closer to the goal caption):
  * with a text-motion retrieval model (any object with `embed_text` / `embed_motion`, e.g.
    `evaluate.retrieval.Evaluator`): minus the Euclidean distance between the caption's and each
    clip's embedding, the distance the field's R-Precision ranks by;
  * without one, a measured stand-in: half the similarity of the goal motion's and the clip's
    measured facts (travel, turning, pace, jumps, posture, raised limbs), half the overlap of the
    caption's content words with the clip's captions (Jaccard). Weaker than a trained model, but
    it needs nothing trained.
Excluded from a goal's candidates: clips of the same take (the goal itself, its mirror, its other
windows) and clips of the same action (same source label and, for sided labels, same side), which
would be positives in disguise. Levels are bands of the ranking, from the bottom ("completely
wrong") to the top ("nearly right"). Pure numpy; no torch unless the encoder uses it.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from ..data.layout import pos_tokens
from .compare import PACES, Facts, moving

# Level -> (from, to) fraction of the ranking counted from the best candidate.
BANDS = {"completely_wrong": (0.9, 1.0), "mostly_wrong": (0.45, 0.7), "partly_right": (0.12, 0.35),
         "nearly_right": (0.0, 0.06)}
FUNCTION_TAGS = frozenset("DET PRON ADP CCONJ SCONJ AUX PART NUM".split())
SUBJECT_WORDS = frozenset("person human individual someone man woman figure people body".split())


class MotionTextEncoder(Protocol):
    def embed_text(self, texts: list[str]) -> np.ndarray:
        """(N, D) embeddings of N captions."""
        ...

    def embed_motion(self, motions: list[np.ndarray]) -> np.ndarray:
        """(N, D) embeddings of N motions given as unnormalised (T, 263) features."""
        ...


def encoder_scores(encoder: MotionTextEncoder, captions: Sequence[str], features: Sequence[np.ndarray],
                   batch: int = 256) -> np.ndarray:
    """(C, N) minus Euclidean distances between caption and motion embeddings."""
    text = np.concatenate([np.asarray(encoder.embed_text(list(captions[i:i + batch])), np.float64)
                           for i in range(0, len(captions), batch)])
    motion = np.concatenate([np.asarray(encoder.embed_motion(list(features[i:i + batch])), np.float64)
                             for i in range(0, len(features), batch)])
    return minus_distances(text, motion)


def minus_distances(text: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """(C, D), (N, D) embeddings -> (C, N) minus their Euclidean distances (higher = closer)."""
    text, motion = np.asarray(text, np.float64), np.asarray(motion, np.float64)
    sq = (text**2).sum(1)[:, None] + (motion**2).sum(1)[None] - 2.0 * text @ motion.T
    return -np.sqrt(np.maximum(sq, 0.0))


def fact_vector(f: Facts) -> np.ndarray:
    """A motion's measured facts as numbers of comparable scale (about 0..2 each)."""
    m = f.motion
    side = lambda v, s: float(v in (s, "both"))
    d = m.body_direction if moving(m) else None
    return np.array([
        float(moving(m)), min(m.distance / 3.0, 2.0), float(np.clip(m.turn_degrees / 180.0, -2, 2)),
        min(abs(m.turn_degrees) / 180.0, 2.0), PACES.index(m.pace) / 2.0, min(m.jumps / 2.0, 2.0), float(m.circle),
        float(m.crouches), float(m.bends_down), float(m.lies_down), float(m.gets_up), float(m.lying),
        float(m.upside_down), side(m.hands_up, "left"), side(m.hands_up, "right"), side(m.leg_raised, "left"),
        side(m.leg_raised, "right"), float(m.busiest == "arms"), float(m.busiest == "legs"),
        *(0.7 * float(d == x) for x in ("forward", "backward", "left", "right")),
    ])


def content_words(caption: str) -> set[str]:
    return {lemma for lemma, tag in pos_tokens(caption) if tag not in FUNCTION_TAGS and lemma not in SUBJECT_WORDS}


def fallback_scores(captions: Sequence[str], goal_of: Sequence[int], clip_facts: Sequence[Facts],
                    clip_captions: Sequence[Sequence[str]]) -> np.ndarray:
    """(C, N) ranking without a retrieval model: 0.5 fact similarity + 0.5 word overlap."""
    vec = np.stack([fact_vector(f) for f in clip_facts])
    dist = np.linalg.norm(vec[np.asarray(goal_of)][:, None] - vec[None], axis=-1)
    cap_words = [content_words(c) for c in captions]
    clip_words = [set().union(*(content_words(c) for c in cs)) for cs in clip_captions]
    vocab = {w: i for i, w in enumerate(sorted(set().union(*cap_words, *clip_words)))}
    a, b = np.zeros((len(captions), len(vocab))), np.zeros((len(clip_words), len(vocab)))
    for row, words in zip(a, cap_words):
        row[[vocab[w] for w in words]] = 1.0
    for row, words in zip(b, clip_words):
        row[[vocab[w] for w in words]] = 1.0
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    return 0.5 / (1.0 + dist) + 0.5 * inter / np.maximum(union, 1.0)


def rank(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Indices of allowed candidates, best first (ties by index, so the order is reproducible)."""
    idx = np.flatnonzero(allowed)
    return idx[np.lexsort((idx, -scores[idx]))]


def pick(ranked: np.ndarray, levels: Sequence[str], rng: random.Random, per_level: int = 1,
         usable: Callable[[int], bool] | None = None, bands: dict = BANDS) -> list[tuple[str, int]]:
    """[(level, candidate index)] with `per_level` distinct candidates drawn from each level's band;
    candidates for which `usable` is False (e.g. nothing measurable differs) are taken last."""
    n, chosen, out = len(ranked), set(), []
    for level in levels:
        a, b = bands[level]
        lo = min(int(math.floor(a * n)), n - 1)
        hi = min(max(lo + 1, int(math.ceil(b * n))), n)
        band = [int(j) for j in ranked[lo:hi] if int(j) not in chosen] if n else []
        rng.shuffle(band)
        good, spare = [], []
        for j in band:  # lazily: `usable` may be costly, and the first few usable ones suffice
            (good if usable is None or usable(j) else spare).append(j)
            if len(good) == per_level:
                break
        for j in (good + spare)[:per_level]:
            chosen.add(j)
            out.append((level, j))
    return out

"""Text-to-motion metrics exactly as the field computes them (Guo et al. 2022; reference/model.md,
"Evaluation protocol"), on embeddings from any evaluator.

  * R-Precision top-1/2/3: the samples are shuffled into batches of 32 (last partial batch dropped);
    within a batch, for each text the 32 motions are ranked by Euclidean distance and the text counts
    as a hit at k when its own motion is among the k nearest (Guo's `calculate_R_precision(text,
    motion)`: rows are texts; a motion tied with others counts its expected place under random
    order, see r_precision_rows). Averaged over all batched samples.
  * MM-Dist: mean Euclidean distance between each text and its own motion (over the batched samples).
  * FID: Frechet distance between Gaussians fitted to real and generated motion embeddings.
  * Diversity: mean distance of `diversity_times` (300) random pairs of motion embeddings.
  * MModality: for each of a subset of texts, `mm_times` (10) random pairs among its repeated
    generations (30); mean distance.
  * Repetitions (20): mean and 95% interval 1.96 * std / sqrt(repetitions).
Counts smaller than the field's are allowed for tiny sets (tests); the counts used are returned.
Pure numpy + scipy; never imports torch or bpy.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from ..errors import IrmogenError

BATCH = 32
DIVERSITY_TIMES = 300
MM_TIMES = 10
REPETITIONS = 20
METRICS = ("top1", "top2", "top3", "mm_dist", "fid", "diversity")


def euclidean_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D), (M, D) -> (N, M) distances, computed in float64 (the field's expansion, clamped at 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d2 = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    return np.sqrt(np.maximum(d2, 0.0))


TIE_TOLERANCE = 1e-6   # distances closer than this are one distance (the same motion embedded twice)


def r_precision_rows(text: np.ndarray, motion: np.ndarray, top_k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """One batch -> ((B, top_k) expected hit of each text at k = 1..top_k, (B,) matched distances).

    A motion generated for several texts of a batch (greedy decoding does this) sits at exactly the
    true motion's distance from each of them. Guo's argsort breaks such ties by position, i.e. at
    random in a shuffled batch, so a text scores its EXPECTED hit under random tie order: with
    `nearer` motions strictly closer and `tied` others at the same distance, the true motion's
    place is uniform over nearer .. nearer + tied. (Counting ties as hits would give a model that
    writes one motion for every text a top-1 of 1.)
    """
    dist = euclidean_matrix(text, motion)
    own = np.diag(dist)[:, None]
    nearer = (dist < own - TIE_TOLERANCE).sum(1)
    tied = (np.abs(dist - own) <= TIE_TOLERANCE).sum(1) - 1
    hits = np.stack([np.clip((k - nearer) / (tied + 1), 0.0, 1.0) for k in range(1, top_k + 1)], 1)
    return hits, np.diag(dist).copy()


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance of two Gaussians; sqrtm via scipy, with the usual eps regularisation."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real  # tiny imaginary parts from numerical error
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def statistics(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(embeddings, np.float64)
    return e.mean(0), np.cov(e, rowvar=False)


def fid(real: np.ndarray, generated: np.ndarray) -> float:
    return frechet_distance(*statistics(real), *statistics(generated))


def diversity(embeddings: np.ndarray, times: int, rng: np.random.Generator) -> float:
    """Mean distance of `times` pairs (two draws without replacement, as the field does)."""
    e = np.asarray(embeddings, np.float64)
    if times > len(e):
        raise IrmogenError(f"diversity: {times} pairs from {len(e)} motions; need at least as many motions")
    first = rng.choice(len(e), times, replace=False)
    second = rng.choice(len(e), times, replace=False)
    return float(np.linalg.norm(e[first] - e[second], axis=1).mean())


def multimodality(embeddings: np.ndarray, times: int, rng: np.random.Generator) -> float:
    """(texts, repeats, D) generations of the same text -> mean distance of `times` pairs per text."""
    e = np.asarray(embeddings, np.float64)
    if e.ndim != 3 or times > e.shape[1]:
        raise IrmogenError(f"multimodality: embeddings of shape {e.shape}; need (texts, repeats >= {times}, D)")
    first = rng.choice(e.shape[1], times, replace=False)
    second = rng.choice(e.shape[1], times, replace=False)
    return float(np.linalg.norm(e[:, first] - e[:, second], axis=2).mean())


def combine_draws(results: list[dict]) -> dict:
    """One result from `evaluate_embeddings` results of independent draws of texts: each metric the
    mean of the draws' means with the interval of that mean, counts summed, per-text values joined."""
    if len(results) == 1:
        return results[0]
    out: dict = {}
    for key, first in results[0].items():
        if key == "counts":
            out[key] = {**first, "samples": sum(r[key]["samples"] for r in results),
                        "batches": sum(r[key]["batches"] for r in results), "draws": len(results)}
        elif key == "per_text":
            out[key] = {k: [v for r in results for v in r[key][k]] for k in first}
        else:   # (MModality may be measured on one draw only)
            have = [r[key] for r in results if key in r]
            out[key] = {"mean": float(np.mean([v["mean"] for v in have])),
                        "interval": float(np.sqrt(sum(v["interval"] ** 2 for v in have)) / len(have))}
    return out


def paired_top1_gain(before: dict, after: dict) -> dict:
    """Top-1 of `after` minus `before`, two `evaluate_embeddings` results of the same texts and seed:
    {"mean": exactly the difference of their Top-1, "interval": 95 % half-width over texts (paired)}."""
    a, b = np.asarray(before["top1"], np.float64), np.asarray(after["top1"], np.float64)
    n = np.asarray(before["batched"], np.float64)
    if a.shape != b.shape or not np.array_equal(n, after["batched"]):
        raise IrmogenError("paired top-1: the two rows were not batched alike (different texts or seed)")
    keep = n > 0
    d, w = (b - a)[keep], n[keep]
    return {"mean": float((d * w).sum() / w.sum()), "interval": float(1.96 * d.std() / np.sqrt(len(d)))}


def mean_interval(values) -> dict:
    """{"mean", "interval"}: the 95 % interval half-width 1.96 * std / sqrt(n) (population std)."""
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "interval": float(1.96 * v.std() / np.sqrt(len(v)))}


def one_repetition(text: np.ndarray, motion: np.ndarray, real: np.ndarray, rng: np.random.Generator,
                   batch_size: int = BATCH, diversity_times: int = DIVERSITY_TIMES) -> dict:
    """Metrics of one repetition: shuffle into batches, R-precision + MM-Dist, FID vs `real`, diversity."""
    n = len(motion)
    batches = n // batch_size
    if batches == 0:
        raise IrmogenError(f"metrics: {n} samples, fewer than one batch of {batch_size}")
    order = rng.permutation(n)[:batches * batch_size].reshape(batches, batch_size)
    hits, matched = np.zeros(3), 0.0
    text_top1 = np.full(n, np.nan)   # each batched text's own top-1 hit (NaN: left out this time)
    for idx in order:
        h, m = r_precision_rows(text[idx], motion[idx])
        hits, matched = hits + h.sum(0), matched + m.sum()
        text_top1[idx] = h[:, 0]
    used = batches * batch_size
    return {"top1": hits[0] / used, "top2": hits[1] / used, "top3": hits[2] / used, "mm_dist": matched / used,
            "fid": fid(real, motion), "diversity": diversity(motion, diversity_times, rng), "text_top1": text_top1}


def protocol_counts(n: int, batch_size: int = BATCH, diversity_times: int = DIVERSITY_TIMES) -> tuple[int, int]:
    """(batch size, diversity pairs) for n samples: the field's 32 and 300, or fewer when n is smaller."""
    if n < 2:
        raise IrmogenError(f"metrics: {n} samples; need at least 2")
    return min(batch_size, n), min(diversity_times, n)


def evaluate_embeddings(text: np.ndarray, motion: np.ndarray, real: np.ndarray | None = None, *,
                        repetitions: int = REPETITIONS, batch_size: int = BATCH,
                        diversity_times: int = DIVERSITY_TIMES, mm_embeddings: np.ndarray | None = None,
                        mm_times: int = MM_TIMES, seed: int = 0) -> dict:
    """All metrics over `repetitions` with mean and 95 % interval.

    text, motion: (N, D) paired embeddings (row i of each belong together); real: (M, D) real motion
    embeddings for FID (default: `motion` itself, which gives FID ~ 0 for the real-motion row);
    mm_embeddings: optional (texts, repeats, D) for MModality. Returns {metric: {"mean", "interval"}}
    plus "counts" (the numbers actually used) and "per_text" (each text's mean top-1 hit and how many
    repetitions batched it; the same seed batches two motion sets of the same size identically).
    """
    text, motion = np.asarray(text, np.float64), np.asarray(motion, np.float64)
    if text.shape != motion.shape or text.ndim != 2:
        raise IrmogenError(f"metrics: text {text.shape} and motion {motion.shape} embeddings must be equal (N, D)")
    real = motion if real is None else np.asarray(real, np.float64)
    batch_size, diversity_times = protocol_counts(len(motion), batch_size, diversity_times)
    rng = np.random.default_rng(seed)
    runs = [one_repetition(text, motion, real, rng, batch_size, diversity_times) for _ in range(repetitions)]
    out = {k: mean_interval([r[k] for r in runs]) for k in METRICS}
    per_text = np.stack([r["text_top1"] for r in runs])
    batched = np.isfinite(per_text).sum(0)
    # per text: its mean top-1 hit over the repetitions that batched it (for paired comparisons)
    # (None: never batched, which JSON can hold and NaN cannot)
    mean_hit = np.nansum(per_text, 0) / np.maximum(batched, 1)
    out["per_text"] = {"top1": [float(h) if b else None for h, b in zip(mean_hit, batched)], "batched": batched.tolist()}
    counts = {"samples": len(motion), "batch_size": batch_size, "batches": len(motion) // batch_size,
              "repetitions": repetitions, "diversity_times": diversity_times}
    if mm_embeddings is not None and len(mm_embeddings):
        mm = np.asarray(mm_embeddings, np.float64)
        times = min(mm_times, mm.shape[1])
        out["mmodality"] = mean_interval([multimodality(mm, times, rng) for _ in range(repetitions)])
        counts.update(mm_texts=mm.shape[0], mm_repeats=mm.shape[1], mm_times=times)
    out["counts"] = counts
    return out

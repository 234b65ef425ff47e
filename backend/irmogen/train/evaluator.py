"""`irmogen train evaluator`: contrastive training of the text-motion retrieval Evaluator.

Each step takes `batch_size` training clips (train/common's endless shuffled stream), one random
caption of each and a random window of each motion (75-100 % of its length, whole 4-frame steps,
at most 196 frames), and minimises the symmetric InfoNCE loss over the batch with a learnable
temperature (CLIP style). A pair of rows with the SAME caption text (common: "a person walks.") or
the same clip is not a negative: those logits are masked. Mirrored clips are ordinary samples with
their own mirrored captions. The text encoder is frozen; every caption's MiniLM embedding is
computed once and cached in `<out>/text_cache.npz` for resumed runs.

Validation: R-Precision on the val split in the field's protocol (batches of 32, a random caption
per clip per repetition); the best weights by mean R-Precision top-1..3 are written to
`<out>/evaluator.safetensors` (+ `evaluator.json`, `best.json`). Checkpoints, resume, accelerate,
tqdm and the config file come from train.common. Needs torch; never imports bpy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..errors import IrmogenError
from ..evaluate.metrics import mean_interval, one_repetition, protocol_counts
from ..evaluate.motion import UNIT
from ..evaluate.retrieval import MAX_FRAMES, Evaluator, EvaluatorConfig, read_clips
from ..evaluate.text import shared_encoder
from .common import (Hooks, Run, RunConfig, add_config_arguments, config_from_args, fit, optimizer_for)

TEXT_CACHE = "text_cache.npz"
BEST = "best.json"
MODEL_FIELDS = tuple(f.name for f in fields(EvaluatorConfig))


@dataclass
class EvaluatorTrainConfig(RunConfig):
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 20
    epochs: float = 60.0
    eval_every: int = 50
    checkpoint_every: int = 100
    min_crop: float = 0.75           # shortest random window, as a fraction of the clip
    val_repetitions: int = 10
    # the model (EvaluatorConfig fields)
    embed_dim: int = 256
    width: int = 192
    hidden: int = 192
    text_hidden: int = 512
    dropout: float = 0.1
    use_contacts: bool = False
    text_model: str = "all-MiniLM-L6-v2"
    max_frames: int = MAX_FRAMES

    def model_config(self) -> EvaluatorConfig:
        return EvaluatorConfig.from_dict({k: getattr(self, k) for k in MODEL_FIELDS}, where="evaluator flags")

    def check(self) -> None:
        super().check()
        if not self.data:
            raise IrmogenError("--data is required: a dataset folder built by `irmogen data prepare`")
        if not 0 < self.min_crop <= 1:
            raise IrmogenError(f"--min-crop {self.min_crop}: must be in (0, 1]")


# ---- data ------------------------------------------------------------------------------------------
def caption_table(clips) -> tuple[list[str], list[np.ndarray]]:
    """(distinct captions, per clip the int indices of its captions into that list)."""
    texts = sorted({c for clip in clips for c in clip.captions})
    index = {t: i for i, t in enumerate(texts)}
    return texts, [np.array([index[c] for c in clip.captions]) for clip in clips]


def cached_text_embeddings(texts: list[str], out: Path, write: bool) -> np.ndarray:
    """(N, 384) MiniLM embeddings of `texts`, reusing `<out>/text_cache.npz`."""
    encoder = shared_encoder("cpu")
    cache = out / TEXT_CACHE
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            encoder.add_cache(z["texts"].tolist(), z["vectors"])
    vectors = encoder.encode(texts)
    if write:
        out.mkdir(parents=True, exist_ok=True)
        np.savez(cache, texts=np.array(texts, dtype=str), vectors=vectors)
    return vectors


def random_window(features: np.ndarray, rng: np.random.Generator, min_crop: float, max_frames: int) -> np.ndarray:
    """A random crop of 4-frame steps: min_crop..100 % of the clip, at most max_frames frames."""
    steps = min(len(features), max_frames) // UNIT
    lo = max(1, int(np.ceil(steps * min_crop)))
    keep = int(rng.integers(lo, steps + 1)) * UNIT
    start = int(rng.integers(0, len(features) - keep + 1))
    return features[start:start + keep]


def info_nce(text: torch.Tensor, motion: torch.Tensor, scale: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over unit vectors; `same` (B, B) bool marks off-diagonal pairs that are not negatives."""
    logits = scale * text @ motion.T
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(text), device=text.device)
    return 0.5 * (torch.nn.functional.cross_entropy(logits, target) +
                  torch.nn.functional.cross_entropy(logits.T, target))


# ---- validation -------------------------------------------------------------------------------------
def retrieval_metrics(evaluator: Evaluator, clips, repetitions: int = 20, seed: int = 0) -> dict:
    """R-Precision top-1/2/3 and MM-Dist of real motions vs their captions, the field's protocol:
    every repetition draws one caption per clip and reshuffles the batches of 32."""
    flat = [c for clip in clips for c in clip.captions]
    owner = np.repeat(np.arange(len(clips)), [len(clip.captions) for clip in clips])
    text = evaluator.embed_text(flat)
    motion = evaluator.embed_motion([clip.features for clip in clips])
    batch, times = protocol_counts(len(clips))
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(repetitions):
        pick = np.array([rng.choice(np.flatnonzero(owner == i)) for i in range(len(clips))])
        runs.append(one_repetition(text[pick], motion, motion, rng, batch, times))
    out = {k: mean_interval([r[k] for r in runs]) for k in ("top1", "top2", "top3", "mm_dist", "diversity")}
    out["counts"] = {"clips": len(clips), "batch_size": batch, "repetitions": repetitions}
    return out


# ---- the stage -----------------------------------------------------------------------------------
def train(config: EvaluatorTrainConfig) -> dict:
    run = Run(config, "evaluator")
    out = Path(config.out)
    train_clips = read_clips(config.data, "train")
    val_clips = read_clips(config.data, "val")
    texts, caption_ids = caption_table(train_clips)
    sentence = torch.from_numpy(cached_text_embeddings(texts, out, run.is_main))       # (captions, 384)
    mean = np.load(Path(config.data) / "Mean.npy", allow_pickle=False)
    std = np.load(Path(config.data) / "Std.npy", allow_pickle=False)

    model = Evaluator(config.model_config(), mean, std)
    optimizer = optimizer_for(model, config)
    model, optimizer = run.accelerator.prepare(model, optimizer)
    run.restore(model, optimizer)
    core = run.accelerator.unwrap_model(model)
    best_file = out / BEST
    best = json.loads(best_file.read_text())["score"] if config.resume and best_file.is_file() else -1.0

    def loss_at(step: int) -> dict:
        rng = run.rng(step)
        idx = run.batch(step, len(train_clips))
        caps = np.array([rng.choice(caption_ids[i]) for i in idx])
        windows = [random_window(train_clips[i].features, rng, config.min_crop, config.max_frames) for i in idx]
        lengths = torch.tensor([len(w) for w in windows])
        feats = torch.zeros(len(windows), int(lengths.max()), windows[0].shape[1])
        for j, w in enumerate(windows):
            feats[j, :len(w)] = torch.from_numpy(w)
        dev = run.device
        text, motion, scale = model(feats.to(dev), lengths.to(dev), sentence[caps].to(dev))
        c, i = torch.from_numpy(caps), torch.from_numpy(idx)
        same = ((c[:, None] == c[None, :]) | (i[:, None] == i[None, :])) & ~torch.eye(len(idx), dtype=torch.bool)
        loss = info_nce(text, motion, scale, same.to(dev))
        return {"total": loss, "temperature": 1.0 / scale.detach()}

    def evaluate() -> dict:
        nonlocal best
        m = retrieval_metrics(core, val_clips, config.val_repetitions, seed=config.seed)
        flat = {k: m[k]["mean"] for k in ("top1", "top2", "top3", "mm_dist")}
        score = (flat["top1"] + flat["top2"] + flat["top3"]) / 3
        if score > best:
            best = score
            if run.is_main:
                core.save(out)
                best_file.write_text(json.dumps({"score": score, "step": run.step, **flat}, indent=1) + "\n")
        return {**flat, "best": best}

    total = run.total_steps(len(train_clips))
    metrics = fit(run, model, optimizer, Hooks(loss_at=loss_at, evaluate=evaluate), total)
    run.accelerator.wait_for_everyone()
    if run.is_main and not (out / "evaluator.safetensors").is_file():
        core.save(out)   # a run too short to validate still leaves an evaluator
    return metrics


HELP = {"data": "dataset folder (HumanML3D layout)", "out": "output folder", "min_crop": "shortest random "
        "window as a fraction of the clip", "val_repetitions": "repetitions of the validation R-Precision",
        "embed_dim": "shared embedding size", "use_contacts": "feed the 4 foot-contact features too"}


def add_arguments(parser) -> None:
    add_config_arguments(parser, EvaluatorTrainConfig, HELP)


def run(args) -> int:
    config = config_from_args(EvaluatorTrainConfig, args)
    metrics = train(config)
    best = Path(config.out) / BEST
    summary = json.loads(best.read_text()) if best.is_file() else metrics
    print(f"evaluator: {Path(config.out) / 'evaluator.safetensors'}; best validation "
          + ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if isinstance(v, float)))
    return 0

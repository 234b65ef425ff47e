"""`irmogen train vq`: the motion tokenizer (T2M-GPT's VQ-VAE, `irmogen.vq.MotionVQ`).

Data: a HumanML3D-layout dataset's `new_joint_vecs/` of the train split, normalised with the
dataset's own `Mean.npy`/`Std.npy` (train split statistics). Those two files are copied into the
output folder as `mean.npy`/`std.npy`: they are the pair the tokenizer was trained with, and every
later stage (and the shipped model directory) carries this very pair.
Training as T2M-GPT: random windows of `window` (64) frames, AdamW (betas 0.9, 0.99) at lr 2e-4
with linear warm-up and a x0.05 milestone late in the run, losses of `irmogen.vq.training_loss`
(smooth-L1 reconstruction + position term + commitment), EMA codebook with dead-code reset.
Our clips can be shorter than a window (HDM05 repetitions are 2 s): a batch's window is the
shortest of its clips (at most `window`), cut to a multiple of 4 frames.
Validation: the whole val clips (<= 196 frames) through encode -> decode, compared in joint
positions after `features_to_positions`: MPJPE in mm (global, root path integrated) and
root-aligned, plus the share of the codebook in use. Output: `vq.safetensors`, `mean.npy`,
`std.npy`, `metrics.json`, beside `config.json`, `checkpoints/` and `log.jsonl`.
Must not import bpy.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..data.layout import read_split
from ..errors import IrmogenError
from ..features import features_to_positions
from ..vq import MotionVQ, VQConfig, training_loss
from .common import Hooks, Run, RunConfig, add_config_arguments, config_from_args, fit, optimizer_for

MAX_FRAMES = 196


@dataclass
class VQTrainConfig(RunConfig):
    # the tokenizer (irmogen.vq.VQConfig fields)
    width: int = 128
    code_dim: int = 128
    codebook_size: int = 512
    down_t: int = 2
    depth: int = 3
    dilation_growth_rate: int = 3
    activation: str = "relu"
    mu: float = 0.99
    commit: float = 0.02
    vel_weight: float = 0.5
    # the data
    window: int = 64                  # frames per training window (T2M-GPT)
    val_clips: int = 0                # 0: every val clip
    # the run (T2M-GPT's recipe, scaled to the run's length)
    batch_size: int = 64
    lr: float = 2e-4
    warmup_steps: int = 1000
    schedule: str = "milestones"
    milestones: tuple[float, ...] = (0.7,)
    gamma: float = 0.05
    grad_clip: float = 0.0
    max_steps: int = 20000
    eval_every: int = 1000
    checkpoint_every: int = 1000

    def vq_config(self) -> VQConfig:
        names = {f.name for f in fields(VQConfig)}
        return VQConfig(**{k: getattr(self, k) for k in names if hasattr(self, k) and k != "input_dim"})


HELP = {"data": "dataset folder (HumanML3D layout)", "window": "frames per training window",
        "val_clips": "validate on at most this many val clips (0: all)"}


# ---- data ------------------------------------------------------------------------------------------
def read_features(data: Path, split: str, limit: int = 0) -> tuple[list[str], list[np.ndarray]]:
    """(ids, [(T, 263) float32 unnormalised features]) of a split, clips of fewer than 4 frames
    skipped; at most `limit` clips when limit > 0."""
    data = Path(data)
    ids = read_split(data, split)
    if not ids and split == "train":
        raise IrmogenError(f"{data}: no train split (train.txt missing or empty)",
                           hint="build a dataset with `irmogen data prepare`")
    out_ids, feats = [], []
    for cid in ids[:limit] if limit else ids:
        path = data / "new_joint_vecs" / f"{cid}.npy"
        if not path.is_file():
            raise IrmogenError(f"{path}: listed in {split}.txt but missing")
        f = np.load(path, allow_pickle=False).astype(np.float32)
        if f.ndim != 2 or f.shape[1] != 263:
            raise IrmogenError(f"{path}: shape {f.shape}, expected (frames, 263)")
        if len(f) >= 4:
            out_ids.append(cid)
            feats.append(f[:MAX_FRAMES])
    return out_ids, feats


def read_normalisation(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's (Mean.npy, Std.npy), each (263,) float32."""
    pair = []
    for name in ("Mean.npy", "Std.npy"):
        path = Path(data) / name
        if not path.is_file():
            raise IrmogenError(f"{path}: missing", hint="a dataset from `irmogen data prepare` has it")
        pair.append(np.load(path, allow_pickle=False).astype(np.float32).reshape(-1))
    mean, std = pair
    if mean.shape != (263,) or std.shape != (263,) or np.any(std <= 0):
        raise IrmogenError(f"{data}: Mean/Std must be (263,) with a positive Std")
    return mean, std


def window_batch(feats: list[np.ndarray], idx: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    """(B, W, 263): one random window per chosen clip; W = min(window, shortest clip) // 4 * 4."""
    w = min(window, min(len(feats[i]) for i in idx)) // 4 * 4
    starts = [int(rng.integers(0, len(feats[i]) - w + 1)) for i in idx]
    return np.stack([feats[i][s:s + w] for i, s in zip(idx, starts)])


def mpjpe_mm(recon: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(global, root-aligned) mean per-joint position error in mm of two (T, 263) feature arrays."""
    a, b = features_to_positions(recon), features_to_positions(target)
    glob = np.linalg.norm(a - b, axis=-1).mean()
    rel = np.linalg.norm((a - a[:, :1]) - (b - b[:, :1]), axis=-1).mean()
    return float(glob * 1000), float(rel * 1000)


# ---- the stage -------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, VQTrainConfig, HELP)


def run(args) -> int:
    train(config_from_args(VQTrainConfig, args))
    return 0


def train(config: VQTrainConfig) -> dict:
    """Train (or resume) a tokenizer; returns the final validation metrics."""
    run_ = Run(config, "vq")
    data = Path(config.data)
    mean, std = read_normalisation(data)
    _, train_feats = read_features(data, "train")
    _, val_feats = read_features(data, "val", config.val_clips)
    if not train_feats:
        raise IrmogenError(f"{data}: the train split has no clip of at least 4 frames")
    norm = lambda f: (f - mean) / std
    train_feats = [norm(f) for f in train_feats]
    val_feats = [norm(f) for f in val_feats] or train_feats[:8]   # no val split: watch a few train clips

    vq_cfg = config.vq_config()
    torch.manual_seed(config.seed)
    model = MotionVQ(vq_cfg)
    optimizer = optimizer_for(model, config, betas=(0.9, 0.99))
    model, optimizer = run_.accelerator.prepare(model, optimizer)
    core = lambda: run_.accelerator.unwrap_model(model)
    _, extra = run_.restore(model, optimizer)
    if extra:
        _load_ema(core().quantizer, extra)

    def loss_at(step: int) -> dict:
        x = window_batch(train_feats, run_.batch(step, len(train_feats)), config.window, run_.rng(step))
        x = torch.from_numpy(x).to(run_.device)
        recon, commit, perplexity = model(x)
        losses = training_loss(recon, x, commit, vq_cfg)
        return {**losses, "perplexity": perplexity.detach()}

    def evaluate() -> dict:
        return validate(core(), val_feats[run_.rank::run_.world], mean, std, run_.accelerator)

    hooks = Hooks(loss_at, evaluate, extra=lambda: _ema_state(core().quantizer),
                  load_extra=lambda t: _load_ema(core().quantizer, t))
    metrics = fit(run_, model, optimizer, hooks, run_.total_steps(len(train_feats)))
    if run_.is_main:
        core().save(run_.out)
        np.save(run_.out / "mean.npy", mean)
        np.save(run_.out / "std.npy", std)
        (run_.out / "metrics.json").write_text(json.dumps({"step": run_.step, **metrics}, indent=2) + "\n")
    run_.accelerator.wait_for_everyone()
    return metrics


@torch.no_grad()
def validate(vq: MotionVQ, feats: list[np.ndarray], mean, std, accelerator=None) -> dict:
    """Reconstruction of whole clips (normalised features): smooth-L1 loss, MPJPE (mm), code usage.
    With an accelerator, each process passes its share and the sums are combined."""
    vq.eval()
    device = vq.quantizer.codebook.device
    sums = torch.zeros(4, dtype=torch.float64, device=device)   # frames, loss*frames, mpjpe*frames, rel*frames
    used = torch.zeros(vq.config.codebook_size, device=device)
    for f in feats:
        x = torch.from_numpy(f).to(device)[None]
        codes = vq.encode(x)
        recon = vq.decode(codes)
        n = recon.shape[1]
        loss = training_loss(recon, x, torch.zeros((), device=device), vq.config)["recon"]
        glob, rel = mpjpe_mm(recon[0].float().cpu().numpy() * std + mean, f[:n] * std + mean)
        sums += torch.tensor([n, float(loss) * n, glob * n, rel * n], dtype=torch.float64, device=device)
        used[codes.reshape(-1)] = 1
    if accelerator is not None:
        sums = accelerator.reduce(sums, reduction="sum")
        used = accelerator.reduce(used, reduction="sum")
    frames = max(float(sums[0]), 1.0)
    return {"recon": float(sums[1]) / frames, "mpjpe_mm": float(sums[2]) / frames,
            "mpjpe_root_aligned_mm": float(sums[3]) / frames,
            "codebook_used": float((used > 0).float().mean())}


def _ema_state(quantizer) -> dict:
    return {"code_sum": quantizer.code_sum, "code_count": quantizer.code_count}


def _load_ema(quantizer, tensors: dict) -> None:
    """Continue the EMA exactly where the checkpoint left it (the weights file holds only the codebook)."""
    quantizer.code_sum.copy_(tensors["code_sum"])
    quantizer.code_count.copy_(tensors["code_count"])
    quantizer.initialised.fill_(True)

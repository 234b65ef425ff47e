"""The VQ codes cache: every dataset clip encoded once by the trained tokenizer -> `codes.npz`.

Keys are clip ids; `<id>` holds the codes of the whole clip (its first 196 frames cut to a multiple
of 4), and `<id>#<k>` (k = 1..variants) hold augmented encodings, T2M-GPT style: the clip shifted
by 1-3 frames (the encoder's x4 downsampling then sees other frame groupings) and a random crop of
at least `min_crop` of its length. The LM stages draw a random variant per use (`CodesCache.draw`).
Features are normalised with the mean/std stored beside the VQ (the pair it was trained with).
Arrays are int16, saved without pickle. Must not import bpy.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..device import resolve_device
from ..errors import IrmogenError
from ..vq import MotionVQ
from .vq import MAX_FRAMES, read_features

CODES_NAME = "codes.npz"
SEP = "#"


def load_vq_dir(vq_dir) -> tuple[MotionVQ, np.ndarray, np.ndarray]:
    """(VQ, mean, std) from a `train vq` output folder (or a model directory)."""
    d = Path(vq_dir)
    for name in ("vq.safetensors", "mean.npy", "std.npy"):
        if not (d / name).is_file():
            raise IrmogenError(f"{d}: missing {name}", hint="train the tokenizer first: irmogen train vq")
    vq = MotionVQ.load(d)
    return vq, np.load(d / "mean.npy", allow_pickle=False), np.load(d / "std.npy", allow_pickle=False)


def variants_of(features: np.ndarray, count: int, rng: np.random.Generator, min_crop: float = 0.75) -> list[np.ndarray]:
    """`count` augmented copies of a (T, 263) clip: alternately a 1-3 frame shift and a random crop."""
    out, n = [], len(features)
    for k in range(count):
        if k % 2 == 0 and n >= 8:
            out.append(features[int(rng.integers(1, 4)):])
        else:
            length = int(rng.integers(max(4, int(np.ceil(min_crop * n))), n + 1))
            start = int(rng.integers(0, n - length + 1))
            out.append(features[start:start + length])
    return [v for v in out if len(v) >= 4]


@torch.no_grad()
def build_codes(vq_dir, data, out=None, variants: int = 3, seed: int = 0, device: str = "auto",
                splits=("train", "val", "test")) -> Path:
    """Encode every clip of `splits` (and `variants` augmentations of each train clip) -> codes.npz."""
    vq, mean, std = load_vq_dir(vq_dir)
    dev, _ = resolve_device(device)
    vq = vq.to(dev).eval()
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for split in splits:
        ids, feats = read_features(Path(data), split)
        for cid, f in zip(ids, feats):
            if SEP in cid:
                raise IrmogenError(f"clip id {cid!r} contains {SEP!r}, which the codes cache reserves")
            copies = [f] + (variants_of(f, variants, rng) if split == "train" else [])
            for k, g in enumerate(copies):
                x = torch.from_numpy((g[:MAX_FRAMES] - mean) / std).float().to(dev)[None]
                codes = vq.encode(x)[0].cpu().numpy().astype(np.int16)
                arrays[cid if k == 0 else f"{cid}{SEP}{k}"] = codes
    out = Path(out) if out is not None else Path(vq_dir) / CODES_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


class CodesCache:
    """Read access to codes.npz: `codes(id)` the clip's own encoding, `draw(id, rng)` any variant."""

    def __init__(self, path, engine=None):
        """`engine`: a data engine folder; its own codes.npz (motions that are not dataset clips,
        e.g. `engine own`'s model-written ones) joins the cache when present."""
        path = Path(path)
        if not path.is_file():
            raise IrmogenError(f"{path}: codes cache not found", hint="run the codes step (irmogen train all does)")
        self.arrays: dict[str, np.ndarray] = {}
        extra = Path(engine) / CODES_NAME if engine else None
        for p in [path] + ([extra] if extra is not None and extra.is_file() else []):
            with np.load(p, allow_pickle=False) as z:
                self.arrays.update({k: z[k].astype(np.int64) for k in z.files})
        self.variants: dict[str, list[str]] = {}
        for key in sorted(self.arrays):
            self.variants.setdefault(key.split(SEP)[0], []).append(key)
        self.path = path

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.arrays

    def ids(self) -> list[str]:
        return sorted(self.variants)

    def codes(self, clip_id: str) -> list[int]:
        if clip_id not in self.arrays:
            raise IrmogenError(f"{self.path}: no codes for clip {clip_id!r}",
                               hint="rebuild the codes cache for this dataset")
        return self.arrays[clip_id].tolist()

    def draw(self, clip_id: str, rng: np.random.Generator | None) -> list[int]:
        """A random encoding of the clip (its own or an augmented one); the own one without rng."""
        keys = self.variants.get(clip_id)
        if not keys:
            return self.codes(clip_id)
        return self.arrays[keys[int(rng.integers(len(keys)))] if rng is not None else clip_id].tolist()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vq", required=True, help="folder of a trained tokenizer (train vq output)")
    parser.add_argument("--data", required=True, help="dataset folder (HumanML3D layout)")
    parser.add_argument("--out", help=f"codes file to write (default: <vq>/{CODES_NAME})")
    parser.add_argument("--variants", type=int, default=3, help="augmented encodings per train clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")


def run(args) -> int:
    path = build_codes(args.vq, args.data, args.out, args.variants, args.seed, args.device)
    print(f"codes: {path}")
    return 0

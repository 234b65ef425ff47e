"""Our motion encoder: normalised HumanML3D features -> one embedding per clip.

Shape of the network (small enough to train on CPU in minutes, a few MB of weights):
  (B, T, 259) normalised features, foot contacts dropped as in Guo et al.'s evaluator (contacts are
  binary, noisy on generated motion, and add nothing a retrieval model needs)
  -> two Conv1d(k4, s2, p1) + LeakyReLU stages: time downsampled x4, like the VQ and Guo's encoder
  -> bi-GRU over the T // 4 steps (padding handled by packing)
  -> mean of the GRU outputs over the real steps (masked) -> Linear -> (B, out_dim).
Lengths are in frames and must be multiples of 4 (callers crop); padding frames are ignored.
Needs torch; never imports bpy.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

UNIT = 4  # frames per GRU step (two stride-2 convolutions)


class MotionEncoder(nn.Module):
    def __init__(self, in_dim: int = 259, width: int = 192, hidden: int = 192, out_dim: int = 256,
                 dropout: float = 0.1):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(in_dim, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Conv1d(width, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Dropout(dropout))
        self.gru = nn.GRU(width, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.LayerNorm(2 * hidden), nn.Linear(2 * hidden, out_dim))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, in_dim) normalised, zero-padded; lengths (B,) frames (multiples of 4) -> (B, out_dim)."""
        h = self.conv[:3](x.transpose(1, 2))                                 # (B, width, T // 2)
        # zero the half-rate steps past each clip's end, so that the second convolution sees the
        # same zeros at the boundary as an unpadded clip: embeddings do not depend on the batch
        half = (lengths // 2).to(h.device)
        h = h * (torch.arange(h.shape[2], device=h.device)[None, :] < half[:, None]).unsqueeze(1)
        h = self.conv[3:](h).transpose(1, 2)                                 # (B, T // 4, width)
        steps = (lengths // UNIT).clamp(min=1, max=h.shape[1]).cpu()
        packed = pack_padded_sequence(h, steps, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])  # (B, T // 4, 2 hidden)
        mask = (torch.arange(h.shape[1])[None, :] < steps[:, None]).to(out.device, out.dtype)
        pooled = (out * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return self.head(pooled)


class TextHead(nn.Module):
    """The trainable part of the text side: frozen sentence embedding (384) -> shared space."""

    def __init__(self, in_dim: int = 384, hidden: int = 512, out_dim: int = 256, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

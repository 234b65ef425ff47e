"""The prompt encoder: the user's text, read by a frozen sentence encoder, as soft prefix tokens.

Our LM's own text tokenizer is trained on the dataset's captions, so a word it never saw carries
no meaning. The prompt encoder lets the LM condition on what a pretrained encoder understands of
the text (T2M-GPT and MoMask condition on a frozen CLIP text embedding the same way):

  text -> frozen all-MiniLM-L6-v2 token states (L, 384)
       -> `prefix_tokens` learned queries attend over them (one head) -> (P, 384)
       -> linear to the LM's hidden size                              -> (P, hidden)

The P vectors go in as input embeddings BEFORE the LM's prompt (which keeps its own text tokens
for the reasoning it writes). Training: `ConditionedLM` (the LM + this module) takes input ids
plus the condition texts ("" for a task without one, e.g. captioning a motion); decoding:
`MotionLLM.prefix_cache` feeds the prefix once and hands the KV cache to the decoder, so the prompt and the response continue after it exactly as if the
whole sequence had been fed in one call. Only the projection is trained and saved
(`prompt_encoder.safetensors`); MiniLM is the installed package (`evaluate.text`), never stored.
A model without the `prompt_encoder` config field (Motion-Agent, IRG, our v1 models) has none.
Needs torch; never imports bpy.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from ..errors import IrmogenError
from ..protocol import MAX_GUIDANCE

WEIGHTS = "prompt_encoder.safetensors"
ENCODERS = ("all-MiniLM-L6-v2",)
TEXT_DIM = 384          # MiniLM-L6 hidden size
MAX_TOKENS = 64         # prompts are one or two sentences


@dataclass
class PromptEncoderConfig:
    name: str = "all-MiniLM-L6-v2"
    prefix_tokens: int = 8
    # Decoding default: classifier-free guidance scale on motion codes (1: none). The codes' logits
    # become u + s * (c - u), c with the text's prefix and u with the empty text's (reasoning/decoder.py).
    guidance: float = 1.0

    def __post_init__(self):
        if self.name not in ENCODERS:
            raise IrmogenError(f"prompt_encoder.name {self.name!r}: known encoders are {', '.join(ENCODERS)}")
        if not (isinstance(self.prefix_tokens, int) and 1 <= self.prefix_tokens <= 64):
            raise IrmogenError(f"prompt_encoder.prefix_tokens {self.prefix_tokens!r}: expected an integer in 1..64")
        check_guidance(self.guidance, "prompt_encoder.guidance")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "config.json") -> "PromptEncoderConfig":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise IrmogenError(f"{where}: prompt_encoder has an unknown field {unknown[0]!r}")
        return cls(**data)


def check_guidance(value, where: str = "guidance") -> float:
    """A guidance scale: a number in [1, MAX_GUIDANCE] (1 means no guidance)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1.0 <= value <= MAX_GUIDANCE:
        raise IrmogenError(f"{where} {value!r}: expected a number from 1 (no guidance) to {MAX_GUIDANCE:g}")
    return float(value)


class TokenStates:
    """texts -> frozen MiniLM last hidden states, cached per text (float16 on the CPU)."""

    def __init__(self):
        from ..evaluate.text import shared_encoder

        self.encoder = shared_encoder("cpu")
        self._cache: dict[str, torch.Tensor] = {}

    @torch.inference_mode()
    def _encode(self, texts: list[str]) -> None:
        enc = self.encoder
        batch = enc.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        hidden = enc.model(**{k: v.to(enc.device) for k, v in batch.items()}).last_hidden_state.cpu()
        for t, h, m in zip(texts, hidden, batch["attention_mask"]):
            self._cache[t] = h[: int(m.sum())].to(torch.float16).clone()

    def __call__(self, texts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, 384) float32 states and (B, L) bool mask of real tokens."""
        todo = sorted({t for t in texts if t not in self._cache})
        for i in range(0, len(todo), 64):
            self._encode(todo[i:i + 64])
        rows = [self._cache[t] for t in texts]
        width = max(len(r) for r in rows)
        states = torch.zeros(len(rows), width, TEXT_DIM)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, r in enumerate(rows):
            states[i, :len(r)] = r.float()
            mask[i, :len(r)] = True
        return states.to(device), mask.to(device)


_STATES: list[TokenStates] = []


def token_states() -> TokenStates:
    """One MiniLM reader per process (loading it takes a second and 90 MB)."""
    if not _STATES:
        _STATES.append(TokenStates())
    return _STATES[0]


class PromptEncoder(nn.Module):
    """Trainable part: P queries attending over MiniLM token states, projected to the LM's width."""

    def __init__(self, config: PromptEncoderConfig, hidden_size: int):
        super().__init__()
        self.config = config
        p = config.prefix_tokens
        self.queries = nn.Parameter(torch.randn(p, TEXT_DIM) / math.sqrt(TEXT_DIM))
        self.key = nn.Linear(TEXT_DIM, TEXT_DIM)
        self.value = nn.Linear(TEXT_DIM, TEXT_DIM)
        self.out = nn.Linear(TEXT_DIM, hidden_size)
        self.position = nn.Parameter(torch.zeros(p, TEXT_DIM))   # tells the P slots apart after pooling

    @property
    def prefix_tokens(self) -> int:
        return self.config.prefix_tokens

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, 384) states, (B, L) bool mask -> (B, P, hidden)."""
        scores = torch.einsum("pd,bld->bpl", self.queries, self.key(states)) / math.sqrt(TEXT_DIM)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        pooled = torch.einsum("bpl,bld->bpd", scores.softmax(-1), self.value(states))
        return self.out(pooled + self.position)

    def prefix(self, texts: list[str], device, dtype) -> torch.Tensor:
        """The soft tokens of each text: (B, P, hidden)."""
        states, mask = token_states()(list(texts), device)
        return self(states, mask).to(dtype)


class ConditionedLM(nn.Module):
    """The LM with its prompt encoder, for training: logits of the token positions only."""

    def __init__(self, lm, encoder: PromptEncoder):
        super().__init__()
        self.lm, self.encoder = lm, encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, conditions: list[str]) -> torch.Tensor:
        """(B, L) right-padded ids and mask, B condition texts -> (B, L, V) logits of the tokens.

        A task without a text to condition on (captioning a motion) has the condition "": every
        sequence has a prefix, at training and at decoding alike."""
        tokens = self.lm.get_input_embeddings()(input_ids)
        prefix = self.encoder.prefix(list(conditions), tokens.device, tokens.dtype)
        ones = torch.ones(prefix.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device)
        out = self.lm(inputs_embeds=torch.cat([prefix, tokens], 1), attention_mask=torch.cat([ones, attention_mask], 1))
        return out.logits[:, prefix.shape[1]:]

"""Training sequences for the MotionLLM stages: prompt + response tokens, and which ones are learned.

A sequence is a list of segments `(ids, learned)`; prompt segments are not learned (label -100).
Token boundaries mirror `irmogen.reasoning.decoder`: the prompt is encoded on its own, every
forced stretch of the grammar on its own, a sampled free-text piece together with the closing
tag that ends it, motion as its exact code ids. So teacher forcing sees the very token sequences
the decoder feeds at inference. Text answers (stage-1 tasks) start with a space and end with eos;
motion answers are `<Motion>` (in the prompt) + codes + `</Motion>` + eos.
Also: batching (right padding). Needs torch; must not import bpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..llm.tokens import MOTION_START
from ..reasoning import template as T
from ..reasoning.parser import Trace, render_trace

IGNORE = -100


@dataclass
class Sequence:
    ids: list[int]
    labels: list[int]                 # IGNORE where not learned
    condition: str | None = None      # the prompt encoder's text ("" for none); None: the model has no encoder

    @classmethod
    def of(cls, segments: list[tuple[list[int], bool]], condition: str | None = None) -> "Sequence":
        ids, labels = [], []
        for seg, learned in segments:
            ids += seg
            labels += seg if learned else [IGNORE] * len(seg)
        return cls(ids, labels, condition)


class Renderer:
    """Turns prompts and answers into segments with one model's tokenizer and motion-token layout."""

    def __init__(self, tokenizer, layout, conditioned: bool = False, caption_noise: float = 0.0):
        self.tokenizer, self.layout = tokenizer, layout
        self.eos = tokenizer.eos_token_id
        self.bos = tokenizer.bos_token or ""
        self.conditioned = conditioned    # the model has a prompt encoder: sequences carry their text
        self.caption_noise = caption_noise if conditioned else 0.0

    def shown(self, caption: str, rng: np.random.Generator | None) -> str:
        """The caption as the LM's own text tokens show it in a training prompt. With a prompt
        encoder and `caption_noise` > 0, a share `caption_noise` of the examples get words swapped
        for random English words (each word with a probability drawn uniformly in [0, 1]) while the
        encoder still reads the true caption: the model learns to take the meaning from the encoder
        when the words are ones its tokenizer never saw, as a user's paraphrase is."""
        if rng is None or not self.caption_noise or rng.random() >= self.caption_noise:
            return caption
        words, rate = caption.split(), rng.random()
        pool = english_words()
        return " ".join(pool[rng.integers(len(pool))] if rng.random() < rate else w for w in words)

    def condition(self, text: str | None) -> str | None:
        """What the prompt encoder reads for a task about `text` (as the decoder's `condition`)."""
        return (text or "") if self.conditioned else None

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def motion_ids(self, codes) -> list[int]:
        return [int(i) for i in self.layout.code_to_id(list(codes))]

    def text_answer(self, prompt: str, answer: str, condition: str | None = None) -> Sequence:
        """A stage-1 text task: the model writes ' answer' then eos (decoder.respond_text).
        `condition`: the user's text the task is about (None for captioning a motion)."""
        return Sequence.of([(self.encode(prompt), False), (self.encode(" " + answer.strip()) + [self.eos], True)],
                           self.condition(condition))

    def motion_answer(self, prompt: str, codes, condition: str | None = None) -> Sequence:
        """A stage-1 motion task: `<Motion>` ends the prompt, the model writes codes, `</Motion>`, eos."""
        head = self.encode(prompt) + [self.layout.start_id]
        return Sequence.of([(head, False), (self.motion_ids(codes) + [self.layout.end_id, self.eos], True)],
                           self.condition(condition))

    def trace(self, caption: str, trace: Trace, learn_intermediate: bool = False, rng=None) -> Sequence:
        """The IRMoGen-CoT prompt + the whole response of a finished trace. The motions of every round
        but the last are learned only with `learn_intermediate` (stage 2 keeps them out: "ignore
        incorrect"); all text, tags and the final motion are learned."""
        segs: list[tuple[list[int], bool]] = [(self.encode(T.build_prompt(self.shown(caption, rng), self.bos, self.tokenizer)), False)]
        text = lambda s: segs.append((self.encode(s), True))
        text(T.RESPONSE_OPEN)
        text((trace.analysis or "") + T.ANALYZE_CLOSE)
        text(T.AFTER_ANALYSIS[len(T.ANALYZE_CLOSE):] + MOTION_START)
        last = len(trace.rounds) - 1
        refine_tag = T.REFINEMENT_PREFIX[:-len(T.LEAD)]
        for k, r in enumerate(trace.rounds):
            segs.append((self.motion_ids(r.codes) + [self.layout.end_id], k == last or learn_intermediate))
            text(T.AFTER_MOTION[:-len(T.LEAD)])
            text(T.LEAD + (r.assessment or "") + refine_tag)
            text(T.LEAD + (r.refinement or "") + T.ASSESS_CLOSE)
            text(T.NEWLINE + (T.FINISH if k == last else T.NEXT_ROUND + MOTION_START))
        segs.append(([self.eos], True))
        seq = Sequence.of(segs, self.condition(caption))
        assert self.tokenizer.decode(seq.ids[len(segs[0][0]):-1], clean_up_tokenization_spaces=False) == \
            render_trace(trace), "trace segments must spell render_trace's text"
        return seq


@lru_cache(maxsize=1)
def english_words() -> list[str]:
    """Whole lower-case words of MiniLM's WordPiece vocabulary (about 20k): the pool `Renderer.shown`
    draws from (from the installed encoder package, so no word list is shipped)."""
    from ..evaluate.text import minilm_dir

    vocab = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8").split()
    return [w for w in vocab if len(w) >= 3 and w.isascii() and w.isalpha() and w.islower()]


def collate(seqs: list[Sequence], pad_id: int, max_length: int, device) -> dict:
    """Right-padded (B, L) input_ids / attention_mask / labels; sequences cut to max_length; plus
    `conditions` (B texts) when the sequences carry them (a model with a prompt encoder)."""
    conditions = [s.condition for s in seqs]
    seqs = [Sequence(s.ids[:max_length], s.labels[:max_length]) for s in seqs]
    width = max(len(s.ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s.ids)] = torch.tensor(s.ids)
        labels[i, :len(s.labels)] = torch.tensor(s.labels)
        mask[i, :len(s.ids)] = 1
    batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}
    if any(c is not None for c in conditions):
        batch["conditions"] = [c or "" for c in conditions]
    return batch


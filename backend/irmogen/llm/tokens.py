"""Motion tokens in the language model's vocabulary: names, ids and text form.

Published layout (Motion-Agent, IRG-MotionLLM): after the text tokenizer's N tokens come
`<Motion>` (id N), `</Motion>` (N + 1), then `<Motion_0>` ... `<Motion_{K-1}>` (N + 2 ... N + 1 + K),
added as plain (not special) tokens in that order; code c <-> id N + 2 + c. A motion written as
text is `<Motion><Motion_12><Motion_407>...</Motion>` with no spaces.

Imports nothing heavy: no torch at import time (the id helpers accept numpy or torch integers).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import IrmogenError

MOTION_START = "<Motion>"
MOTION_END = "</Motion>"
CODEBOOK_SIZE = 512  # the T2M-GPT codebook every published checkpoint uses

_CODE_RE = re.compile(r"<Motion_(\d+)>")


def code_token(code: int) -> str:
    return f"<Motion_{int(code)}>"


def motion_token_strings(codebook_size: int = CODEBOOK_SIZE) -> list[str]:
    """The K + 2 token strings in the published order: start, end, then codes 0..K-1."""
    return [MOTION_START, MOTION_END] + [code_token(c) for c in range(codebook_size)]


@dataclass(frozen=True)
class MotionTokenLayout:
    """Where the motion tokens sit in the vocabulary. `text_vocab` is N, the text tokenizer's length."""

    text_vocab: int
    codebook_size: int = CODEBOOK_SIZE

    def __post_init__(self):
        if self.text_vocab < 1 or self.codebook_size < 1:
            raise IrmogenError(f"MotionTokenLayout: text_vocab={self.text_vocab} and "
                               f"codebook_size={self.codebook_size} must both be positive")

    @property
    def start_id(self) -> int:
        return self.text_vocab

    @property
    def end_id(self) -> int:
        return self.text_vocab + 1

    @property
    def first_code_id(self) -> int:
        return self.text_vocab + 2

    @property
    def vocab_size(self) -> int:
        """Rows of the resized embedding matrix: N + K + 2."""
        return self.text_vocab + 2 + self.codebook_size

    @property
    def code_ids(self) -> range:
        return range(self.first_code_id, self.vocab_size)

    def code_to_id(self, codes):
        """Codes (int, list, numpy or torch ints in [0, K)) -> token ids of the same kind."""
        codes = _as_ints(codes)
        if _any(codes < 0) or _any(codes >= self.codebook_size):
            raise IrmogenError(f"motion code out of range [0, {self.codebook_size}): "
                               f"{_bad(codes, 0, self.codebook_size)}")
        return codes + self.first_code_id

    def id_to_code(self, ids):
        """Token ids of motion codes -> codes; any other id is an error naming it."""
        ids = _as_ints(ids)
        if not _all(self.is_code(ids)):
            raise IrmogenError(f"token id is not a motion code (codes are ids {self.first_code_id}.."
                               f"{self.vocab_size - 1}): {_bad(ids, self.first_code_id, self.vocab_size)}")
        return ids - self.first_code_id

    def is_code(self, ids):
        """Elementwise: is this id a motion code token? (bool, or a bool array/tensor)."""
        ids = _as_ints(ids)
        return (ids >= self.first_code_id) & (ids < self.vocab_size)

    def is_motion(self, ids):
        """Elementwise: any of the K + 2 motion tokens, including `<Motion>` and `</Motion>`."""
        ids = _as_ints(ids)
        return (ids >= self.start_id) & (ids < self.vocab_size)


def add_motion_tokens(tokenizer, codebook_size: int = CODEBOOK_SIZE) -> MotionTokenLayout:
    """Append the motion tokens to a (fast) tokenizer in the published order; return the layout.

    N is `len(tokenizer)` before the additions (as in the published code), so the embedding matrix
    must then be resized to exactly `layout.vocab_size` rows.
    """
    layout = MotionTokenLayout(text_vocab=len(tokenizer), codebook_size=codebook_size)
    present = [t for t in (MOTION_START, MOTION_END, code_token(0)) if t in tokenizer.get_vocab()]
    if present:
        raise IrmogenError(f"tokenizer already contains motion token {present[0]!r}",
                           hint="load it with check_motion_tokens instead of adding the tokens again")
    tokenizer.add_tokens(motion_token_strings(codebook_size), special_tokens=False)
    check_motion_tokens(tokenizer, layout)
    return layout


def check_motion_tokens(tokenizer, layout: MotionTokenLayout) -> None:
    """Raise IrmogenError unless every motion token sits at its published id."""
    if len(tokenizer) != layout.vocab_size:
        raise IrmogenError(f"tokenizer has {len(tokenizer)} tokens, expected {layout.vocab_size} "
                           f"({layout.text_vocab} text + {layout.codebook_size + 2} motion)")
    expected = np.arange(layout.start_id, layout.vocab_size)
    got = np.asarray(tokenizer.convert_tokens_to_ids(motion_token_strings(layout.codebook_size)))
    wrong = np.flatnonzero(got != expected)
    if wrong.size:
        i = int(wrong[0])
        raise IrmogenError(f"tokenizer: motion token {motion_token_strings(layout.codebook_size)[i]!r} "
                           f"has id {got[i]}, expected {expected[i]}")


def codes_to_text(codes) -> str:
    """[12, 407] -> '<Motion><Motion_12><Motion_407></Motion>'."""
    return MOTION_START + "".join(code_token(c) for c in np.asarray(codes, dtype=np.int64).reshape(-1)) + MOTION_END


def text_to_codes(text: str) -> list[int]:
    """The codes of the first `<Motion>...</Motion>` span (or of the whole text when it has no span).

    A span missing its `</Motion>` (a truncated trace) yields the codes written so far.
    """
    start = text.find(MOTION_START)
    body = text[start + len(MOTION_START):] if start >= 0 else text
    end = body.find(MOTION_END)
    if end >= 0:
        body = body[:end]
    return [int(m) for m in _CODE_RE.findall(body)]


def _as_ints(x):
    """Keep numpy arrays and torch tensors as they are; lift Python ints/lists to int64 arrays."""
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        return x
    return np.asarray(x, dtype=np.int64)


def _any(mask) -> bool:
    return bool(mask.any())


def _all(mask) -> bool:
    return bool(mask.all())


def _bad(values, lo: int, hi: int) -> int:
    flat = values.reshape(-1)
    bad = flat[(flat < lo) | (flat >= hi)]
    return int(bad[0])

"""Clean free text by construction: what a token may add inside an analysis, assessment or refinement.

The decoder asks `TextGuard.verdict(body, token, stop)` for each candidate token of a free-text
span, best candidate first, and takes the first one that is not banned. A token is
  * "close" when its first markup character starts the span's closing string (`[` of
    `[/assess]`, the newline of `\\nRefinement:`): the span ends there and the closing is forced;
  * banned when it would put markup inside the text: `[`, `]`, `<`, `>`, a newline, a new
    "Assessment:" / "Refinement:" label, or "..";
  * banned when the text would end in a same-word contrast: "X instead of X", "X rather than X",
    "from X to X" (X up to four words, compared by crude stems, so "walking ... walk" counts);
  * banned when the text would end with a four-word sequence it already holds, or complete a
    clause (text between , ; : . ! ?) it already holds.
So a span never holds a tag fragment, a same-word contrast or a repeated clause, whatever the
model's logits say; the closing is only allowed after some text and not on a repeated clause.

Token texts are decoded once per tokenizer, each after an anchor token (SentencePiece tokenizers
drop a leading space when a token is decoded alone). Needs torch (masks); must not import bpy.
"""
from __future__ import annotations

import re
import weakref

import torch

MARKUP = "[]<>\n"
LABELS = ("Assessment:", "Refinement:")
CONTRASTS = (" instead of ", " rather than ")
NGRAM = 4                  # words: a four-word sequence may appear once per text
MAX_WORDS = 4              # words of X in a same-word contrast
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_CLAUSE_END = re.compile(r"[.;:,!?]")

OK, CLOSE, BAN = "ok", "close", "ban"


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[:-len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word[-1] == word[-2] else word   # "squatt" -> "squat"


def _stems(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower())]


def same_word_contrast(text: str) -> bool:
    """Does `text` end with "X instead of X", "X rather than X" or "from X to X" (same stems)?"""
    t = text.rstrip(" .,;:!?").lower()
    for marker in CONTRASTS:
        i = t.rfind(marker)
        if i >= 0:
            after = _stems(t[i + len(marker):])
            tail = t[i + len(marker):]
            if after and len(after) <= MAX_WORDS and not _CLAUSE_END.search(tail):
                before = _stems(t[:i])
                if before[-len(after):] == after:
                    return True
    i = t.rfind(" to ")
    if i >= 0 and not _CLAUSE_END.search(t[i:]):
        after, before = _stems(t[i + 4:]), t[:i]
        j = before.rfind("from ")
        if after and len(after) <= MAX_WORDS and j >= 0 and (j == 0 or not before[j - 1].isalnum()):
            between = before[j + 5:]
            if not _CLAUSE_END.search(between) and _stems(between) == after:
                return True
    return False


def repeated_ngram(text: str, n: int = NGRAM) -> bool:
    """Does `text` end with an n-word sequence that already occurs earlier in it?"""
    words = _WORD.findall(text.lower())
    if len(words) <= n:
        return False
    last = words[-n:]
    return any(words[k:k + n] == last for k in range(len(words) - n))


def clauses(text: str) -> list[str]:
    """The completed clauses of `text` (each followed by , ; : . ! or ?), normalised."""
    parts = _CLAUSE_END.split(text.lower())[:-1]
    return [" ".join(_WORD.findall(p)) for p in parts]


def repeated_clause(text: str) -> bool:
    seen = [c for c in clauses(text) if c]
    return len(seen) != len(set(seen))


def problems(text: str) -> list[str]:
    """What is wrong with a finished free text (used by tests and the transcript check)."""
    out = []
    if any(c in text for c in MARKUP) or any(label in text for label in LABELS) or ".." in text:
        out.append("tag fragment")
    words = text.split()
    if any(same_word_contrast(" ".join(words[:k])) for k in range(1, len(words) + 1)):
        out.append("same-word contrast")
    if repeated_clause(text + "."):
        out.append("repeated clause")
    return out


class TextGuard:
    """Per-tokenizer token texts and the span rules above."""

    def __init__(self, tokenizer, vocab: int):
        self.texts = token_texts(tokenizer)
        self.vocab = vocab
        self._closing: dict[str | None, torch.Tensor] = {}

    def text(self, token: int) -> str:
        return self.texts[token] if token < len(self.texts) else ""

    def static_mask(self, stop: str | None, device) -> torch.Tensor:
        """(vocab,) bool: tokens allowed at all inside a span closed by `stop` (markup only if it closes)."""
        if stop not in self._closing:
            keep = torch.ones(self.vocab, dtype=torch.bool)
            for i, t in enumerate(self.texts):
                m = _first_markup(t)
                if m >= 0 and not (stop is not None and _starts_closing(t[m:], stop)):
                    keep[i] = False
            self._closing[stop] = keep
        return self._closing[stop].to(device)

    def verdict(self, body: str, token: int, stop: str | None) -> tuple[str, str]:
        """(OK | CLOSE | BAN, text the token adds to the body)."""
        t = self.text(token)
        m = _first_markup(t)
        if m >= 0:
            if stop is None or not _starts_closing(t[m:], stop):
                return BAN, ""
            end = body + t[:m]
            if not end.strip() or not clean_end(end):
                return BAN, ""
            return CLOSE, t[:m]
        new = body + t
        if any(label in new for label in LABELS) or ".." in new[-len(t) - 1:]:
            return BAN, ""
        if same_word_contrast(new) or repeated_ngram(new):
            return BAN, ""
        if _CLAUSE_END.search(t) and repeated_clause(new):
            return BAN, ""
        return OK, t


def clean_end(body: str) -> bool:
    """May a span end after `body`? Not when its last, unfinished clause repeats an earlier one."""
    return not repeated_clause(body.rstrip() + ".") or repeated_clause(body)


def _first_markup(text: str) -> int:
    idx = [text.find(c) for c in MARKUP if c in text]
    return min(idx) if idx else -1


def _starts_closing(rest: str, stop: str) -> bool:
    return stop.startswith(rest) or rest.startswith(stop)


_TEXTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def token_texts(tokenizer) -> list[str]:
    """The text each token id adds after another token (leading spaces kept)."""
    if tokenizer not in _TEXTS:
        anchor = tokenizer("a", add_special_tokens=False)["input_ids"][:1]
        prefix = tokenizer.decode(anchor, clean_up_tokenization_spaces=False)
        texts = tokenizer.batch_decode([anchor + [i] for i in range(len(tokenizer))],
                                       skip_special_tokens=True, clean_up_tokenization_spaces=False)
        _TEXTS[tokenizer] = [t[len(prefix):] for t in texts]
    return _TEXTS[tokenizer]

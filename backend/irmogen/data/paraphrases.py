"""The paraphrase set: test captions rewritten with words no training caption uses.

`paraphrases.tsv` (beside this module) has one `caption<TAB>paraphrase` per line, written by hand
for the test split of the dataset built from the shared data: same meaning, every content word new
to the training captions (only FUNCTION_WORDS may repeat), so a model that merely memorised its
training wording loses on them. `irmogen eval --paraphrases` gives the paraphrase to the generators
and scores against the original caption. Pure Python.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import IrmogenError

DEFAULT = Path(__file__).with_name("paraphrases.tsv")
# Words a paraphrase may share with the training captions: grammar, plus left/right (a side has
# no other ordinary English word, and mirroring needs it).
FUNCTION_WORDS = frozenset("""
a an the this that these those his her their its some each every another all no any both one
he she it they them him himself herself themselves someone somebody person
is are was were be been being has have had does do did will would can could
and or but nor then while as before after if until when because so than
on in with to from at of over under into onto about around across through behind toward towards
along above below by for near beside between off against upon up down out back
not very too also again once twice left right
""".split())
WORD = re.compile(r"[a-z]+")


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def read_paraphrases(path=DEFAULT) -> dict[str, str]:
    """caption -> paraphrase. Malformed lines are errors naming the line."""
    path = Path(path)
    if not path.is_file():
        raise IrmogenError(f"{path}: no paraphrase file", code="not_found")
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise IrmogenError(f"{path}:{n}: expected `caption<TAB>paraphrase`")
        out[parts[0].strip()] = parts[1].strip()
    return out


def reused_words(paraphrases: dict[str, str], training_captions) -> dict[str, set[str]]:
    """paraphrase -> its words (outside FUNCTION_WORDS) that occur in the training captions."""
    seen = set().union(*(words(c) for c in training_captions)) if training_captions else set()
    out = {}
    for p in paraphrases.values():
        bad = (words(p) - FUNCTION_WORDS) & seen
        if bad:
            out[p] = bad
    return out

"""The shipped paraphrase set against the dataset it was written for, built here from the real data.

A paraphrase must say the same thing in words no training caption uses (only grammar words and
left/right may repeat), so that `irmogen eval --paraphrases` measures understanding of new words.
"""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from irmogen.data import layout, prepare_dataset
from irmogen.data.paraphrases import DEFAULT, FUNCTION_WORDS, read_paraphrases, reused_words, words
from irmogen.errors import IrmogenError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("v2") / "ds"
    prepare_dataset(out, cmu=data_dir / "cmu", hdm05=data_dir / "hdm05", deepmimic=data_dir / "deepmimic",
                    progress=False)
    return out


def captions(root, split) -> list[list[str]]:
    return [[c for c, *_ in layout.read_text_lines(root / "texts" / f"{cid}.txt")] for cid in layout.read_split(root, split)]


@pytest.mark.realdata
@pytest.mark.slow
def test_paraphrases_use_no_training_word_and_cover_every_test_caption(dataset):
    table = read_paraphrases()
    training = [c for caps in captions(dataset, "train") + captions(dataset, "val") for c in caps]
    assert reused_words(table, training) == {}
    test = {c for caps in captions(dataset, "test") for c in caps}
    assert set(table) <= test                                       # written for this test split
    # Every caption of every test clip, rule-made and human-written, so `--captions all` runs too.
    assert sorted(test - set(table)) == []
    manifest = json.loads((dataset / "manifest.json").read_text())["clips"]
    assert any(manifest[cid].get("captions_by") == "human" for cid in layout.read_split(dataset, "test"))
    assert all(words(p) != words(c) for c, p in table.items())


def sides(text: str) -> Counter:
    """Each left/right a text names (clockwise counts as right, seen from above), as a multiset."""
    text = re.sub(r"counter-?clockwise", "left", text.lower()).replace("clockwise", "right")
    return Counter(re.findall(r"\b(left|right)(?:ward)?\b", text))


def test_paraphrases_keep_every_left_and_right():
    # A mirrored clip's caption differs from its original only in its sides: losing one would let
    # the two score alike, so the paraphrase names the same sides as many times.
    table = read_paraphrases()
    assert not {c: p for c, p in table.items() if sides(c) != sides(p)}
    assert sides("walks clockwise, then to the left, lifting the left leg") == Counter(right=1, left=2)


def test_reused_words_and_a_malformed_file_are_named(tmp_path):
    assert reused_words({"a": "someone ambles onward"}, ["a person walks forward"]) == {}
    assert reused_words({"a": "someone walks onward"}, ["a person walks forward"]) == {"someone walks onward": {"walks"}}
    assert {"left", "right", "the"} <= FUNCTION_WORDS
    bad = tmp_path / "p.tsv"
    bad.write_text("# comment\na caption without a tab\n")
    with pytest.raises(IrmogenError, match=r"p.tsv:2"):
        read_paraphrases(bad)
    assert DEFAULT.name == "paraphrases.tsv" and DEFAULT.is_file()

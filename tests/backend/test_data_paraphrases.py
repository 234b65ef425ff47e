"""The shipped paraphrase set against the dataset it was written for, built here from the real data.

A paraphrase must say the same thing in words no training caption uses (only grammar words and
left/right may repeat), so that `irmogen eval --paraphrases` measures understanding of new words.
"""
from __future__ import annotations

import json

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
def test_paraphrases_use_no_training_word_and_cover_the_measured_and_human_test_captions(dataset):
    import numpy as np

    table = read_paraphrases()
    training = [c for caps in captions(dataset, "train") + captions(dataset, "val") for c in caps]
    assert reused_words(table, training) == {}
    test = captions(dataset, "test")
    assert set(table) <= {c for caps in test for c in caps}        # written for this test split
    rng = np.random.default_rng(0)                                  # the draw of `irmogen eval --seed 0`
    drawn = [caps[int(rng.integers(len(caps)))] for caps in test]
    assert not [c for c in drawn if c not in table]
    manifest = json.loads((dataset / "manifest.json").read_text())["clips"]
    human = [c for cid in layout.read_split(dataset, "test") if manifest[cid].get("captions_by") == "human"
             for c, *_ in layout.read_text_lines(dataset / "texts" / f"{cid}.txt")]
    assert human and not [c for c in human if c not in table]     # every human-written test caption
    assert all(words(p) != words(c) for c, p in table.items())


def test_reused_words_and_a_malformed_file_are_named(tmp_path):
    assert reused_words({"a": "someone ambles onward"}, ["a person walks forward"]) == {}
    assert reused_words({"a": "someone walks onward"}, ["a person walks forward"]) == {"someone walks onward": {"walks"}}
    assert {"left", "right", "the"} <= FUNCTION_WORDS
    bad = tmp_path / "p.tsv"
    bad.write_text("# comment\na caption without a tab\n")
    with pytest.raises(IrmogenError, match=r"p.tsv:2"):
        read_paraphrases(bad)
    assert DEFAULT.name == "paraphrases.tsv" and DEFAULT.is_file()

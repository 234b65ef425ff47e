"""Motion tokens: published order and ids, single-token encoding, codes <-> ids <-> text."""
import numpy as np
import pytest
import torch

from irmogen.errors import IrmogenError
from irmogen.llm.tokenizer import build_text_tokenizer
from irmogen.llm.tokens import (MOTION_END, MOTION_START, MotionTokenLayout, add_motion_tokens,
                                check_motion_tokens, code_token, codes_to_text, text_to_codes)
from irmogen.llm.testing import TEXTS, tiny_tokenizer


@pytest.fixture(scope="module")
def extended():
    tok = tiny_tokenizer()
    n = len(tok)
    return tok, n, add_motion_tokens(tok)


def test_published_order_and_ids(extended):
    tok, n, layout = extended
    assert layout.text_vocab == n and layout.vocab_size == n + 514 == len(tok)
    assert tok.convert_tokens_to_ids(MOTION_START) == n
    assert tok.convert_tokens_to_ids(MOTION_END) == n + 1
    assert tok.convert_tokens_to_ids(code_token(0)) == n + 2
    assert tok.convert_tokens_to_ids(code_token(511)) == n + 513
    assert list(layout.code_ids) == list(range(n + 2, n + 514))


def test_motion_text_encodes_to_one_token_per_code(extended):
    tok, n, layout = extended
    codes = [3, 12, 1, 511, 0, 51, 5, 407]   # prefixes of each other ("<Motion_5>" vs "<Motion_51>")
    text = "Goal Text: a man jogs." + codes_to_text(codes) + "[/generate]"
    ids = tok.encode(text, add_special_tokens=False)
    start = ids.index(layout.start_id)
    assert ids[start:start + len(codes) + 2] == [n] + [n + 2 + c for c in codes] + [n + 1]
    assert tok.decode(ids[start:start + len(codes) + 2]) == codes_to_text(codes)
    assert not layout.is_motion(np.array(ids[:start])).any()


def test_motion_tokens_are_plain_not_special(extended):
    tok, _, layout = extended
    ids = tok.encode(codes_to_text([7]), add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "<Motion><Motion_7></Motion>"


def test_code_id_round_trip_numpy_and_torch():
    layout = MotionTokenLayout(text_vocab=1000, codebook_size=512)
    codes = np.array([[0, 5], [511, 42]])
    ids = layout.code_to_id(codes)
    assert ids.tolist() == [[1002, 1007], [1513, 1044]]
    assert np.array_equal(layout.id_to_code(ids), codes)
    t = torch.tensor([999, 1000, 1001, 1002, 1513, 1514])
    assert layout.is_code(t).tolist() == [False, False, False, True, True, False]
    assert layout.is_motion(t).tolist() == [False, True, True, True, True, False]
    assert layout.id_to_code(torch.tensor([1002, 1513])).tolist() == [0, 511]


def test_out_of_range_codes_and_ids_are_named():
    layout = MotionTokenLayout(text_vocab=1000)
    with pytest.raises(IrmogenError, match="512"):
        layout.code_to_id([3, 512])
    with pytest.raises(IrmogenError, match="1001"):
        layout.id_to_code([1002, 1001])


def test_text_to_codes_full_truncated_and_first_span():
    assert text_to_codes("x <Motion><Motion_1><Motion_22></Motion> y <Motion><Motion_9></Motion>") == [1, 22]
    assert text_to_codes("[generate]<Motion><Motion_4><Motion_40") == [4]
    assert text_to_codes(codes_to_text(np.arange(10))) == list(range(10))
    assert text_to_codes("no motion here") == []


def test_adding_twice_and_wrong_layout_are_errors(extended):
    tok, n, layout = extended
    with pytest.raises(IrmogenError, match="already contains"):
        add_motion_tokens(tok)
    with pytest.raises(IrmogenError, match="expected"):
        check_motion_tokens(tok, MotionTokenLayout(text_vocab=n + 1))


def test_smaller_codebook_layout():
    tok = build_text_tokenizer(TEXTS, 300)
    layout = add_motion_tokens(tok, codebook_size=16)
    assert len(tok) == layout.vocab_size == layout.text_vocab + 18
    assert tok.convert_tokens_to_ids(code_token(15)) == layout.vocab_size - 1


def test_tokenizer_is_deterministic_and_has_gemma_special_ids():
    a, b = tiny_tokenizer(), tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    assert (a.pad_token_id, a.eos_token_id, a.bos_token_id) == (0, 1, 2)
    text = "a person walks forward slowly then turns left and stops."
    ids = a.encode(text, add_special_tokens=False)
    assert a.decode(ids) == text and len(ids) < len(text) / 2

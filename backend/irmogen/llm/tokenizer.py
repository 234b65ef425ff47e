"""A small byte-level BPE text tokenizer trained offline, for our own small MotionLLM and for tests.

The paper's model uses Gemma-2's tokenizer (loaded from the user's Gemma folder); our shipped
model uses a tokenizer trained here on the project's captions and reasoning texts. Special tokens
copy Gemma's ids so prompts read alike: <pad> 0, <eos> 1, <bos> 2, <unk> 3. Nothing is added
automatically on encode: prompts write <bos> themselves.

Must not import torch.
"""
from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..errors import IrmogenError

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")
_BYTE_ALPHABET = 256  # byte-level BPE always holds the 256 byte symbols


def build_text_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer of at most `vocab_size` tokens on `texts` (deterministic)."""
    minimum = _BYTE_ALPHABET + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise IrmogenError(f"vocab_size={vocab_size} is too small: byte-level BPE needs at least {minimum}")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return wrap_tokenizer(tok)


def wrap_tokenizer(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """A transformers tokenizer around a `tokenizers.Tokenizer` with our special tokens."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
    )

"""Tiny random MotionLLMs for tests and benchmarks: real transformers classes, seconds to build.

`tiny_motionllm(seed)` is deterministic for a seed (it does not disturb the global torch RNG):
a 2-layer LM of hidden size 64 (Llama-style, or Gemma-2 with its softcaps and alternating sliding
attention), a small byte-level BPE tokenizer trained on the fixed texts below, the 514 motion
tokens, and a narrow VQ. Its outputs are random but its shapes and vocabulary layout are real.
`tokenizer="gemma"` gives it a SentencePiece-style tokenizer instead (`gemma_style_tokenizer`):
words carry their leading space as "▁", and merges run across newlines and brackets ("]\n[",
"w.\n"), as in Gemma's vocabulary, so piece-by-piece and whole-stretch encodings differ.
Must not import bpy.
"""
from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModelForCausalLM, Gemma2Config, LlamaConfig

from ..errors import IrmogenError
from ..vq import MotionVQ, VQConfig
from .model import FEATURE_DIM, MotionLLM
from .tokenizer import SPECIAL_TOKENS, build_text_tokenizer, wrap_tokenizer

TEXT_VOCAB = 512
HIDDEN = 64

# Words the prompts, plans and captions use, so the tiny tokenizer writes them in few tokens.
TEXTS = (
    "You are an assistant who helps users understand or generate 3D human motion representations.",
    "User: Given a text outlining a human motion objective, employ a step-by-step thought process "
    "to realize the motion: (1) analyze the text, providing a clear explanation of the reasoning to "
    "identify essential elements; (2) conduct several rounds of motion generation and self-assessment "
    "until the motion is satisfactory. Wrap all responses in <think> and </think> tags, and formulate "
    "a plan before each step.\nGoal Text: Response:",
    "[plan] [/plan] [analyze] [/analyze] [generate] [/generate] [assess] [/assess] <think> </think>",
    "I need to analyze the goal and identify the critical aspects to generate the motion.",
    "I need to generate a motion according to the previous analysis.",
    "I need to assess the alignment between the generated motion and the goal text, then provide "
    "specific refinement instructions for improvement.",
    "I need to refine the motion according to the instruction.",
    "I need to finish thinking as the satisfactory motion is generated.",
    "Assessment: Refinement: No refinements needed.",
    "Generate a motion that depicts Motion: Goal text: Determine how to refine the generated motion "
    "for better alignment. Refine the motion according to the instruction:",
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
    "### Input:\n Generate a caption matching the following input human motion token sequence.",
    "a person walks forward slowly then turns left and stops.",
    "a man jogs in a circle, then waves with his right hand.",
    "someone jumps up and down twice, raising both arms above the head.",
    "the person kicks with the left leg, steps back and sits down on a chair.",
    "a figure crouches, picks something up from the floor and throws it.",
    "the motion is too fast; the arms should be raised higher and the steps should be longer.",
    "the generated motion misses the turn and the wave; keep the jog but add the wave at the end.",
)


def tiny_tokenizer(vocab_size: int = TEXT_VOCAB):
    """The tiny model's text tokenizer (before the motion tokens are added)."""
    return build_text_tokenizer(list(TEXTS) * 4, vocab_size)


def gemma_style_tokenizer(vocab_size: int = TEXT_VOCAB, max_token_length: int = 6):
    """A SentencePiece-style BPE (Gemma's kind) trained on the fixed texts and two IRMoGen traces.

    Split only at spaces, each word keeping its space as a leading "▁" (as Gemma's model never
    merges across a space); newlines, brackets and full stops merge freely with their neighbours.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  max_token_length=max_token_length, show_progress=False)
    tok.train_from_iterator((list(TEXTS) + list(_TRACES)) * 4, trainer=trainer)
    return wrap_tokenizer(tok)


# Response texts in the IRMoGen grammar (reasoning/template.py), so "]\n[", "[/plan]" and the like
# become tokens of the Gemma-style tokenizer, as they are of Gemma's.
_TRACES = (
    "<think>[plan]I need to analyze the goal.[/plan]\n[analyze]The goal asks for a walk.[/analyze]\n"
    "[plan]I need to generate a motion.[/plan]\n[generate]<Motion></Motion>[/generate]\n"
    "[plan]I need to assess the alignment.[/plan]\n[assess]Assessment: The motion is too slow.\n"
    "Refinement: Walk faster.[/assess]\n[plan]I need to refine the motion.[/plan]\n",
    "[generate]<Motion></Motion>[/generate]\n[plan]I need to assess.[/plan]\n[assess]Assessment: "
    "It matches the goal.\nRefinement: No refinements needed.[/assess]\n[plan]I need to finish thinking."
    "[/plan]\n</think>",
)


def tiny_llm_config(arch: str, vocab_size: int, hidden: int = HIDDEN, layers: int = 2):
    """A transformers config for a tiny causal LM; ids follow Gemma (pad 0, eos 1, bos 2)."""
    common = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                  num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=4096, pad_token_id=0, eos_token_id=1, bos_token_id=2,
                  initializer_range=0.2)  # larger than usual so random logits are not near-uniform
    if arch == "llama":
        return LlamaConfig(tie_word_embeddings=False, **common)
    if arch == "gemma2":
        return Gemma2Config(head_dim=hidden // 4, query_pre_attn_scalar=hidden // 4, sliding_window=4096,
                            attn_implementation="eager", **common)
    raise IrmogenError(f"tiny model arch {arch!r} is not one of 'llama', 'gemma2'")


def tiny_vq_config(codebook_size: int = 512) -> VQConfig:
    return VQConfig(width=32, code_dim=32, codebook_size=codebook_size)


def tiny_motionllm(seed: int = 0, arch: str = "llama", codebook_size: int = 512,
                   device="cpu", dtype=None, tokenizer: str = "bpe") -> MotionLLM:
    """A random tiny MotionLLM, identical for identical arguments (`tokenizer`: "bpe" or "gemma")."""
    if tokenizer not in ("bpe", "gemma"):
        raise IrmogenError(f"tiny model tokenizer {tokenizer!r} is not one of 'bpe', 'gemma'")
    tokenizer = tiny_tokenizer() if tokenizer == "bpe" else gemma_style_tokenizer()
    config = tiny_llm_config(arch, len(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        vq = MotionVQ(tiny_vq_config(codebook_size))
        model = MotionLLM.from_text_lm(lm, tokenizer, vq, *_normalisation(seed), mean_resizing=False,
                                       device=device, dtype=dtype)
    return model


def _normalisation(seed: int):
    """A plausible (mean, std) pair: (263,) each, std in [0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0.0, 0.1, FEATURE_DIM).astype(np.float32),
            rng.uniform(0.5, 1.5, FEATURE_DIM).astype(np.float32))

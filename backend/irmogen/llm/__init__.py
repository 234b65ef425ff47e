"""MotionLLM: a transformers causal LM with the published motion tokens, and its loaders.

Rooms: `tokens` (ids and text form of motion tokens), `tokenizer` (our small BPE tokenizer),
`model` (MotionLLM and our model directory), `loaders` (Motion-Agent and IRG checkpoints),
`testing` (tiny random models). Must not import bpy.
"""
from .model import MotionLLM, MotionLLMConfig
from .tokens import (MOTION_END, MOTION_START, MotionTokenLayout, add_motion_tokens, codes_to_text,
                     text_to_codes)

__all__ = ["MotionLLM", "MotionLLMConfig", "MotionTokenLayout", "MOTION_START", "MOTION_END",
           "add_motion_tokens", "codes_to_text", "text_to_codes"]

"""The LLM annotator through transformers: prompts, parsing, and falling back to the rules on
unparsable output (a tiny random LM writes garbage, which is what the fallback is for)."""
from __future__ import annotations

import re

import pytest
import torch
from test_engine_data import clips
from transformers import AutoModelForCausalLM

from irmogen.engine.annotator import (RuleAnnotator, TransformersAnnotator, assessment_prompt, parse_analysis,
                                      parse_assessment)
from irmogen.engine.compare import measure
from irmogen.engine.wording import NO_REFINEMENT, POSITIVE
from irmogen.llm.testing import tiny_llm_config, tiny_tokenizer

GOAL, NEG = "a person turns around to the left.", "a person walks forward."


@pytest.fixture(scope="module")
def facts():
    c = clips()
    return measure(c["turn_left"][3]), measure(c["walk_fwd"][3])


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_lm")
    tok = tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(tiny_llm_config("llama", len(tok))).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_prompt_carries_captions_facts_and_measured_differences(facts):
    goal, walk = facts
    p = assessment_prompt(GOAL, goal, NEG, walk, "partly_right")
    assert GOAL in p and NEG in p and "Alignment level: partly right." in p
    assert re.search(r"turning: 1[78]\d degrees to the left", p)  # the goal's measured turn
    assert "turn to the left is missing" in p or "does not turn" in p  # the measured difference
    assert p.rstrip().endswith("Assessment: <text>\nRefinement: <instruction>")
    assert "No refinements needed" in assessment_prompt(GOAL, goal, GOAL, goal, POSITIVE)


def test_parsing_accepts_plain_answers_and_rejects_garbage():
    a, r = parse_assessment("Sure!\nAssessment: The motion walks forward instead of turning.\nRefinement: Turn around to the left")
    assert a == "The motion walks forward instead of turning." and r == "Turn around to the left."
    assert parse_assessment("Assessment: ok\nRefinement: turn") == (None, None)  # too short to be a sentence
    assert parse_assessment("<Motion_3><Motion_9> Assessment:: ##") == (None, None)
    assert parse_analysis("Analysis: The key action is a turn to the left on the spot.") == \
        "The key action is a turn to the left on the spot."
    assert parse_analysis("random ĠĠ tokens") is None


def test_tiny_random_lm_falls_back_to_the_rules(tiny_lm, facts):
    goal, walk = facts
    ann = TransformersAnnotator(tiny_lm, max_new_tokens=12)
    rules = RuleAnnotator()
    assert ann.assess(GOAL, goal, NEG, walk, "mostly_wrong", seed=5) == rules.assess(GOAL, goal, NEG, walk, "mostly_wrong", seed=5)
    assert ann.analyse(GOAL, goal, seed=2) == rules.analyse(GOAL, goal, seed=2)
    a, r = ann.assess(GOAL, goal, GOAL, goal, POSITIVE, seed=1)
    assert r == NO_REFINEMENT and a
    assert ann.calls == 3 and ann.fallbacks == 3
    # Without a chat template the request goes in as plain text; with one, through the template.
    assert ann.render("hello") == "hello\n"
    ann.tokenizer.chat_template = "{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}<|assistant|>"
    assert ann.render("hello") == "<|user|>hello<|end|><|assistant|>"
    assert ann.complete("hello", seed=0) == ann.complete("hello", seed=0)  # greedy and seeded: reproducible

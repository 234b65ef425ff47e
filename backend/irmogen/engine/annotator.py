"""Who writes the engine's texts: the pluggable `Annotator` interface and two annotators.

`RuleAnnotator` writes analyses, assessments and refinement instructions from measured facts with
`wording` (fast, deterministic for a seed, grounded by construction). `TransformersAnnotator`
prompts a local instruction-tuned causal LM (any transformers checkpoint folder; its chat template
when it has one) with the captions, the measured facts and the measured differences, and parses
its answer; whatever it writes that does not parse falls back to the rule annotator, and the
fallbacks are counted. Imports torch/transformers only inside TransformersAnnotator; never bpy.
"""
from __future__ import annotations

import random
import re
from typing import Protocol

from . import wording
from .compare import Facts, agreements, caption_terms, differences


class Annotator(Protocol):
    name: str

    def analyse(self, caption: str, facts: Facts, seed: int | str = 0) -> str:
        """One paraphrase of the goal analysis of `caption` (its motion measured as `facts`)."""
        ...

    def assess(self, goal_caption: str, goal_facts: Facts, motion_caption: str, motion_facts: Facts,
               level: str, seed: int | str = 0) -> tuple[str, str]:
        """(assessment, refinement) of a motion against the goal. `level` is one of
        wording.LEVELS, or wording.POSITIVE for the goal motion itself, whose refinement must be
        exactly "No refinements needed."."""
        ...


class RuleAnnotator:
    """Sentences from measured facts and caption words, varied by the seed."""

    name = "rule"

    def analyse(self, caption: str, facts: Facts, seed: int | str = 0) -> str:
        return wording.analysis(caption, caption_terms(caption), facts, random.Random(f"analyse:{seed}"))

    def assess(self, goal_caption: str, goal_facts: Facts, motion_caption: str, motion_facts: Facts,
               level: str, seed: int | str = 0) -> tuple[str, str]:
        rng = random.Random(f"assess:{seed}")
        gt = caption_terms(goal_caption)
        if level == wording.POSITIVE:
            return wording.assess_positive(gt, goal_facts, rng)
        mt = caption_terms(motion_caption)
        diffs = differences(gt, goal_facts, mt, motion_facts)
        return wording.assess(gt, goal_facts, mt, motion_facts, diffs,
                              agreements(gt, goal_facts, mt, motion_facts, diffs), level, rng)


# ---- an LLM through transformers -------------------------------------------------------------
INSTRUCTIONS = ("You write training data for a text-to-motion model. Be factual: use only what the "
                "measurements say, in plain English, one or two sentences per field.")
_ASSESS = re.compile(r"Assessment:\s*(?P<a>[^\n]+?)\s*\n+\s*Refinement:\s*(?P<r>[^\n]+)", re.IGNORECASE)
_ANALYSIS = re.compile(r"Analysis:\s*(?P<a>[^\n]+)", re.IGNORECASE)
_PLAIN = re.compile(r"^[A-Za-z0-9 ,.;:'()\-/%]+$")
MIN_WORDS, MAX_WORDS = 4, 80


def _clean(text: str) -> str | None:
    """A parsed field when it reads like a sentence of plain words, else None."""
    text = " ".join(text.split()).strip()
    n = len(text.split())
    if not MIN_WORDS <= n <= MAX_WORDS or not _PLAIN.match(text) or not re.search(r"[a-z]{3}", text):
        return None
    return text if text.endswith(".") else text + "."


def parse_analysis(answer: str) -> str | None:
    m = _ANALYSIS.search(answer)
    return _clean(m.group("a")) if m else None


def parse_assessment(answer: str) -> tuple[str | None, str | None]:
    """(assessment, refinement) from 'Assessment: ...\nRefinement: ...'; None for a field that
    is missing or does not read as plain sentences."""
    m = _ASSESS.search(answer)
    return (_clean(m.group("a")), _clean(m.group("r"))) if m else (None, None)


def analysis_prompt(caption: str, facts: Facts) -> str:
    return (f"{INSTRUCTIONS}\nGoal text: {caption}\nMeasured on the goal motion:\n{wording.facts_text(facts)}\n"
            "Write the essential elements of the goal (action, body parts, direction, speed, repetitions, "
            "spatial path) as one paragraph, in this format:\nAnalysis: <text>")


def assessment_prompt(goal_caption: str, goal_facts: Facts, motion_caption: str, motion_facts: Facts, level: str) -> str:
    gt, mt = caption_terms(goal_caption), caption_terms(motion_caption)
    diffs = differences(gt, goal_facts, mt, motion_facts)
    rng = random.Random(0)
    measured = "\n".join(f"- {wording.clause(d, rng, gt, mt)[0]}" for d in diffs[:4]) or "- no measurable difference"
    tone = ("it matches the goal; the refinement must be exactly: No refinements needed." if level == wording.POSITIVE
            else f"alignment level: {level.replace('_', ' ')}")
    return (f"{INSTRUCTIONS}\nGoal text: {goal_caption}\nGoal motion, measured:\n{wording.facts_text(goal_facts)}\n"
            f"Generated motion (it shows: {motion_caption}), measured:\n{wording.facts_text(motion_facts)}\n"
            f"Measured differences of the generated motion:\n{measured}\n{cap_first(tone)}.\n"
            "Assess how well the generated motion matches the goal text, then say how to refine it, in this "
            "format:\nAssessment: <text>\nRefinement: <instruction>")


def cap_first(text: str) -> str:
    return text[:1].upper() + text[1:]


class TransformersAnnotator:
    """A local instruction-tuned causal LM (a transformers folder) writes the texts; greedy by
    default, sampled with a per-call seed when `temperature` > 0."""

    name = "transformers"

    def __init__(self, model_dir, device: str = "cpu", max_new_tokens: int = 160, temperature: float = 0.0,
                 fallback: Annotator | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
        self.device, self.max_new_tokens, self.temperature = device, max_new_tokens, temperature
        self.fallback = fallback or RuleAnnotator()
        self.calls = self.fallbacks = 0

    def render(self, request: str) -> str:
        """The text the model reads: its chat template around the request when it has one."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template([{"role": "user", "content": request}], tokenize=False,
                                                      add_generation_prompt=True)
        return request + "\n"

    def complete(self, request: str, seed: int | str = 0) -> str:
        import torch

        text = self.render(request)
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=not getattr(self.tokenizer, "chat_template", None))
        ids = {k: v.to(self.device) for k, v in ids.items()}
        sample = self.temperature > 0
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(random.Random(str(seed)).randrange(2**31))
            out = self.model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=sample,
                                      temperature=self.temperature if sample else None, top_p=None, top_k=None,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        self.calls += 1
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)

    def analyse(self, caption: str, facts: Facts, seed: int | str = 0) -> str:
        text = parse_analysis(self.complete(analysis_prompt(caption, facts), seed))
        if text is None:
            self.fallbacks += 1
            return self.fallback.analyse(caption, facts, seed)
        return text

    def assess(self, goal_caption: str, goal_facts: Facts, motion_caption: str, motion_facts: Facts,
               level: str, seed: int | str = 0) -> tuple[str, str]:
        answer = self.complete(assessment_prompt(goal_caption, goal_facts, motion_caption, motion_facts, level), seed)
        a, r = parse_assessment(answer)
        positive = level == wording.POSITIVE
        if positive and r is not None:
            r = wording.NO_REFINEMENT  # the stop signal is a fixed string, whatever the model wrote
        if a is None or r is None or (not positive and r == wording.NO_REFINEMENT):
            self.fallbacks += 1
            return self.fallback.assess(goal_caption, goal_facts, motion_caption, motion_facts, level, seed)
        return a, r

"""Measured differences and the rule annotator's wording: grounded, varied, mirror-consistent."""
from __future__ import annotations

import re

import pytest
from test_engine_data import clips

from irmogen.data.captions import mirror_text
from irmogen.engine.annotator import RuleAnnotator
from irmogen.engine.compare import caption_terms, differences, measure, mirror_facts
from irmogen.engine.wording import LEVELS, NO_REFINEMENT, POSITIVE


@pytest.fixture(scope="module")
def facts():
    return {k: measure(v[3]) for k, v in clips().items()}


def test_caption_terms_read_actions_parts_counts_and_predicates():
    t = caption_terms("while dancing salsa, a person jogs four steps in a circle to the left with the right foot.")
    assert t.actions == ("dance", "jog") and ("right", "foot") in t.parts and t.count == 4
    assert t.pred_s == "jogs four steps in a circle to the left with the right foot while dancing salsa"
    assert t.pred_base == "jog four steps in a circle to the left with the right foot while dancing salsa"
    assert caption_terms("someone is rotating both arms backward.").actions == ("circle",)  # arm circles, not a turn
    assert caption_terms("a person stands in one spot.").actions == ()  # standing is not getting up


def test_walking_negative_of_a_left_turn_is_told_to_turn_left(facts):
    goal_cap, neg_cap = "a person turns around to the left.", "a person walks forward."
    diffs = differences(caption_terms(goal_cap), facts["turn_left"], caption_terms(neg_cap), facts["walk_fwd"])
    kinds = [d.kind for d in diffs]
    assert {"action", "turn", "travel"} <= set(kinds)
    turn = next(d for d in diffs if d.kind == "turn")
    assert turn.goal > 150 and abs(turn.motion) < 5
    ann = RuleAnnotator()
    for level in LEVELS:
        for seed in range(4):
            a, r = ann.assess(goal_cap, facts["turn_left"], neg_cap, facts["walk_fwd"], level, seed=seed)
            assert re.search(r"\bturn", r, re.I) and "left" in r and "right" not in r, (level, r)
            assert r != NO_REFINEMENT and a.endswith(".")
    far = ann.assess(goal_cap, facts["turn_left"], neg_cap, facts["walk_fwd"], "completely_wrong", seed=1)[0]
    near = ann.assess(goal_cap, facts["turn_left"], neg_cap, facts["walk_fwd"], "nearly_right", seed=1)[0]
    assert "not match" in far or "nothing to do" in far or "fails" in far
    assert far != near


def test_grounding_other_facts(facts):
    ann = RuleAnnotator()
    cases = [  # (goal clip, goal caption, motion clip, motion caption, words the instruction must hold)
        ("run", "a person runs forward.", "walk_fwd", "a person walks forward.", ("speed up|faster", "run")),
        ("jump", "a person jumps twice.", "still", "a person stands still.", ("jump",)),
        ("wave_r", "a person raises the right hand above the head.", "Mwave_r", "a person raises the left hand above the head.",
         ("right hand",)),
        ("still", "a person stands still.", "walk_fwd", "a person walks forward.", ("stay in place|one spot|stay",)),
    ]
    for g, gc, m, mc, words in cases:
        for level in ("mostly_wrong", "nearly_right"):
            _, r = ann.assess(gc, facts[g], mc, facts[m], level, seed=3)
            assert all(re.search(w, r, re.I) for w in words), (g, m, level, r)


def test_positive_gets_no_refinement_and_wording_varies(facts):
    ann = RuleAnnotator()
    outs = {ann.assess("a person walks forward.", facts["walk_fwd"], "a person walks forward.", facts["walk_fwd"],
                       POSITIVE, seed=s) for s in range(12)}
    assert {r for _, r in outs} == {NO_REFINEMENT} and len({a for a, _ in outs}) >= 3
    analyses = {ann.analyse("a person turns around to the left.", facts["turn_left"], seed=s) for s in range(12)}
    assert len(analyses) >= 4
    assert all("left" in a and "right" not in a and re.search(r"turn", a) for a in analyses)
    assert any("about half a turn" in a or "180" in a for a in analyses)  # measured, not only the caption's words


def test_mirrored_goal_gets_the_mirrored_text(facts):
    ann = RuleAnnotator()
    pairs = [("turn_left", "a person turns around to the left.", "walk_fwd", "a person walks forward."),
             ("wave_r", "a person raises the right hand above the head.", "turn_left", "someone turns left on the spot."),
             ("jump", "a person jumps twice, landing on the right foot.", "wave_r", "a person raises the right hand.")]
    for g, gc, m, mc in pairs:
        gf, mf = facts[g], facts[m]
        for seed in range(5):
            assert ann.analyse(mirror_text(gc), mirror_facts(gf), seed) == mirror_text(ann.analyse(gc, gf, seed))
            for level in LEVELS + (POSITIVE,):
                got = ann.assess(mirror_text(gc), mirror_facts(gf), mirror_text(mc), mirror_facts(mf), level, seed)
                want = ann.assess(gc, gf, mc, mf, level, seed)
                assert got == tuple(mirror_text(x) for x in want), (g, m, level)
    # The measured facts of a mirrored motion are the mirrored facts.
    assert facts["Mturn_left"].motion.turn_degrees == pytest.approx(-facts["turn_left"].motion.turn_degrees, abs=1e-6)
    assert facts["Mwave_r"] == mirror_facts(facts["wave_r"])

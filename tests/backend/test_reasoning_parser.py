"""The trace parser: exact round trips, and never an exception on truncated or damaged traces."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irmogen.errors import IrmogenError
from irmogen.reasoning import template as T
from irmogen.reasoning.parser import Round, Trace, parse_trace, render_trace

EXAMPLE = Trace("a jog then a wave", [Round([12, 407, 3], "the arms stay low", "raise the right arm"),
                                      Round([5, 5], "aligned", "No refinements needed.")], finished=True)


def test_render_matches_the_published_grammar():
    text = render_trace(EXAMPLE)
    plan = lambda s: "[plan]" + s + "[/plan]\n"  # noqa: E731
    expected = ("<think>" + plan(T.P_ANALYZE) + "[analyze]a jog then a wave[/analyze]\n" + plan(T.P_GENERATE)
                + "[generate]<Motion><Motion_12><Motion_407><Motion_3></Motion>[/generate]\n" + plan(T.P_ASSESS)
                + "[assess]Assessment: the arms stay low\nRefinement: raise the right arm[/assess]\n"
                + plan(T.P_REFINE)
                + "[generate]<Motion><Motion_5><Motion_5></Motion>[/generate]\n" + plan(T.P_ASSESS)
                + "[assess]Assessment: aligned\nRefinement: No refinements needed.[/assess]\n"
                + plan(T.P_FINISH) + "</think>")
    assert text == expected
    trace = parse_trace(text)
    assert trace == EXAMPLE and trace.satisfied and trace.final_codes == [5, 5]


def test_prompt_before_the_response_is_skipped():
    assert parse_trace(T.build_prompt("a jog") + render_trace(EXAMPLE)) == EXAMPLE


def test_malformed_pieces_are_reported():
    text = render_trace(EXAMPLE).replace("<Motion_407>", "<Motion_407>oops", 1)
    trace = parse_trace(text)
    assert trace.rounds[0].codes == [12, 407, 3] and any("other than motion codes" in e for e in trace.errors)
    unfinished = parse_trace(render_trace(EXAMPLE)[:-len("</think>")])
    assert not unfinished.finished and unfinished.errors
    assert parse_trace("").errors and parse_trace("").rounds == []


def test_truncated_motion_span_is_dropped_not_used():
    text = render_trace(EXAMPLE)
    cut = text[:text.rindex("<Motion_5>")]
    trace = parse_trace(cut)
    assert [r.codes for r in trace.rounds] == [[12, 407, 3]]
    assert trace.final_codes == [12, 407, 3] and not trace.finished


def test_json_round_trip_and_errors():
    again = Trace.from_json(EXAMPLE.to_json())
    assert again == EXAMPLE
    data = json.loads(EXAMPLE.to_json())
    assert set(data) >= {"analysis", "rounds", "finished"} and data["rounds"][1]["codes"] == [5, 5]
    data["rounds"][0]["codes"] = [1, "x"]
    with pytest.raises(IrmogenError, match=r"rounds\[0\]\.codes"):
        Trace.from_json(data)
    with pytest.raises(IrmogenError, match="not valid JSON"):
        Trace.from_json("{")


# ---- properties ------------------------------------------------------------------------------
_ALPHABET = "abcdefgh ,.:;!?\n[]/<>_0123456789ReA"
_free = st.text(_ALPHABET, max_size=40)


@st.composite
def traces(draw):
    analysis = draw(_free.filter(lambda s: T.ANALYZE_CLOSE not in s))
    n = draw(st.integers(1, 4))
    rounds = []
    for k in range(n):
        assessment = draw(_free.filter(lambda s: T.REFINEMENT_PREFIX not in s))
        refinement = T.NO_REFINEMENT if k == n - 1 else draw(
            _free.filter(lambda s: T.ASSESS_CLOSE not in s and s.strip() != T.NO_REFINEMENT))
        rounds.append(Round(draw(st.lists(st.integers(0, 511), min_size=1, max_size=8)), assessment, refinement))
    return Trace(analysis, rounds, finished=draw(st.booleans()))


def _round_ends(text: str) -> list[int]:
    """Character offset just after each round's `[/assess]` in a rendered trace."""
    ends, pos = [], text.find(T.AFTER_ANALYSIS)
    while (i := text.find(T.ASSESS_CLOSE + "\n", pos)) >= 0:
        ends.append(i + len(T.ASSESS_CLOSE))
        pos = ends[-1]
    return ends


@settings(max_examples=200, deadline=None)
@given(traces())
def test_render_then_parse_is_identity(trace):
    assert parse_trace(render_trace(trace)) == trace


@settings(max_examples=300, deadline=None)
@given(traces(), st.data())
def test_truncation_keeps_the_complete_rounds(trace, data):
    text = render_trace(trace)
    cut = data.draw(st.integers(0, len(text)))
    parsed = parse_trace(text[:cut])
    done = sum(end <= cut for end in _round_ends(text))
    assert parsed.rounds[:done] == trace.rounds[:done]
    assert parsed.finished == (trace.finished and cut == len(text))


@settings(max_examples=300, deadline=None)
@given(traces(), st.data())
def test_garbage_insertion_never_raises_and_keeps_earlier_rounds(trace, data):
    text = render_trace(trace)
    at = data.draw(st.integers(0, len(text)))
    pieces = st.sampled_from(["<Motion>", "</Motion>", "[/assess]", "[plan]", "</think>", "\nRefinement: ",
                              "<Motion_7>", "[generate]", "xyz", "\n"])
    garbage = "".join(data.draw(st.lists(pieces | st.text(_ALPHABET, max_size=5), min_size=1, max_size=5)))
    parsed = parse_trace(text[:at] + garbage + text[at:])
    done = sum(end <= at for end in _round_ends(text))
    assert parsed.rounds[:done] == trace.rounds[:done]
    assert isinstance(parsed.errors, list)

"""Assessors: who writes a round's assessment ("model", "measured", "checked"), on real mocap and on
the shipped default model. With "measured" no assessment is contradicted by the motion's measured
facts and the rounds stop only when nothing the text asks for is missing (or at the round cap)."""
import pytest

from irmogen.engine.compare import measure
from irmogen.errors import IrmogenError
from irmogen.io import load_motion
from irmogen.llm.testing import tiny_motionllm
from irmogen.reasoning import tasks
from irmogen.reasoning import template as T
from irmogen.reasoning.assessors import contradictions, facts_of, measured_assessment, missing
from irmogen.reasoning.decoder import LAST_ROUND_NOTE
from irmogen.reasoning.textguard import problems
from irmogen.resample import resample_clip


def _facts(data_dir, name):
    clip = resample_clip(load_motion(data_dir / "deepmimic" / name), 20.0)
    return measure(clip.positions, None, 20.0)


@pytest.mark.realdata
def test_measured_assessment_of_real_motion(data_dir):
    jump, walk = _facts(data_dir, "humanoid3d_jump.txt"), _facts(data_dir, "humanoid3d_walk.txt")
    assert measured_assessment("a person jumps", jump) == (
        "The motion matches what the goal asks for: it jumps once.", T.NO_REFINEMENT)
    assessment, refinement = measured_assessment("a man jumps twice", walk)
    assert assessment == "The motion misses part of the goal: both feet stay on the ground."
    assert refinement == "Jump twice."
    assessment, refinement = measured_assessment("a person walks backward", walk)
    assert "it moves forward" in assessment and refinement == "Walk backward."


@pytest.mark.realdata
def test_checked_marks_only_what_the_measurements_contradict(data_dir):
    jump, walk = _facts(data_dir, "humanoid3d_jump.txt"), _facts(data_dir, "humanoid3d_walk.txt")
    marks = contradictions("The person never leaves the ground; the arms swing freely.", "a person jumps", jump)
    assert marks == [{"clause": "The person never leaves the ground", "fact": "measured: it jumps once"}]
    marks = contradictions("The motion matches the goal. It jumps twice.", "a man jumps twice", walk)
    assert [m["clause"] for m in marks] == ["The motion matches the goal", "It jumps twice"]
    assert all(m["fact"] == "measured: both feet stay on the ground" for m in marks)
    # What the rules cannot read, or what the measurements confirm, is never marked.
    assert contradictions("The elbows are bent and the mood is cheerful.", "a person waves", walk) == []
    assert contradictions("The person walks forward.", "a person walks forward", walk) == []


def test_an_unknown_assessor_is_one_clear_error():
    with pytest.raises(IrmogenError, match="assessor 'judge' is not one of model, measured, checked"):
        list(tasks.generate(tiny_motionllm(0), "a man walks", assessor="judge"))


PROMPTS = ["a person walks forward", "a man jumps twice", "someone jogs in a circle", "a person turns around",
           "a woman squats down and stands up", "a person walks backward slowly", "a person runs forward",
           "a person raises both arms above the head", "a person turns to the left", "a man hops on one foot",
           "a knight swings a heavy sword overhead", "a person salutes, then marches in place"]


@pytest.fixture(scope="module")
def shipped():
    from irmogen.llm.loaders import load_model, resolve_model_spec
    return load_model(resolve_model_spec(None), device="cpu")


@pytest.mark.slow
def test_measured_assessments_are_never_contradicted_and_stop_only_when_nothing_is_missing(shipped):
    refined = 0
    for prompt in PROMPTS:
        events = list(tasks.generate(shipped, prompt, max_rounds=3, assessor="measured", decode_clips=False))
        done = events[-1]
        assessed = [e for e in events if e.kind == "assessment"]
        assert [e.author for e in assessed] == ["measured"] * len(done.trace.rounds)
        for k, r in enumerate(done.trace.rounds, 1):
            facts = facts_of(shipped, r.codes)
            assert contradictions(r.assessment, prompt, facts) == [], (prompt, k, r.assessment)
            assert problems(r.assessment) == [] and problems(r.refinement) == []
            gaps = missing(prompt, facts)
            if r.refinement == T.NO_REFINEMENT:   # stops: nothing missing, or the cap says so
                assert not gaps or (k == 3 and r.assessment.endswith(LAST_ROUND_NOTE)), (prompt, r.assessment)
            else:                                  # refines: asks for exactly what is missing
                assert gaps and all(e.asked.lower() in r.refinement.lower() for e in gaps), (prompt, r.refinement)
                refined += 1
    assert refined > 0


@pytest.mark.slow
def test_checked_writes_the_model_trace_and_marks_what_measurements_contradict(shipped):
    marked = 0
    for prompt in PROMPTS:
        model = list(tasks.generate(shipped, prompt, max_rounds=3, assessor="model", decode_clips=False))[-1]
        events = list(tasks.generate(shipped, prompt, max_rounds=3, assessor="checked", decode_clips=False))
        checked = events[-1]
        assert checked.trace == model.trace and checked.trace_text == model.trace_text
        for e, r in zip([e for e in events if e.kind == "assessment"], checked.trace.rounds):
            expected = contradictions(r.assessment, prompt, facts_of(shipped, r.codes))
            assert e.author == "model" and e.contradicted == r.contradicted == expected
            assert all(m["clause"] in r.assessment for m in expected)
            marked += len(expected)
    assert marked > 0   # the shipped model's own assessments do get contradicted

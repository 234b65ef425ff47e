"""The one-call tasks on a tiny random model: manual loop, refinement, assessment, captioning."""
import threading

import pytest

from irmogen.errors import IrmogenError
from irmogen.llm.testing import tiny_motionllm
from irmogen.reasoning import tasks
from irmogen.reasoning import template as T


@pytest.fixture(scope="module")
def model():
    return tiny_motionllm(0)


def test_generate_streams_a_finished_trace(model):
    events = list(tasks.generate(model, "a man waves", max_rounds=2, max_text_tokens=4, seconds=2))
    assert events[-1].kind == "done" and events[-1].trace.finished
    assert events[-1].final_clip.num_frames == 4 * len(events[-1].trace.final_codes) + 1


def test_motion_agent_style_writes_one_motion(model):
    model.config.prompt_style = "motion_agent"
    try:
        events = list(tasks.generate(model, "a man waves", seconds=2))
    finally:
        model.config.prompt_style = "irmogen"
    assert [e.kind for e in events] == ["motion", "done"]
    assert 9 <= len(events[0].codes) <= 11 and events[1].trace.rounds[0].codes == events[0].codes


def test_manual_loop_follows_stage1(model):
    events = list(tasks.generate_manual(model, "a man jumps", max_rounds=3, seconds=1, max_text_tokens=6,
                                        decode_clips=False))
    done = events[-1]
    assert done.kind == "done" and 1 <= len(done.trace.rounds) <= 3 and done.trace.finished
    motions = [e for e in events if e.kind == "motion"]
    assert [m.round for m in motions] == list(range(1, len(motions) + 1))
    assert all(4 <= len(m.codes) <= 6 for m in motions)
    refinements = [r.refinement for r in done.trace.rounds]
    assert T.NO_REFINEMENT not in refinements[:-1] or refinements[-1] == T.NO_REFINEMENT


def test_clip_codes_round_trip_through_features(model):
    clip = model.codes_to_clip([1, 2, 3, 4, 5, 6])
    assert len(tasks.motion_codes(model, clip)) == 6
    with pytest.raises(IrmogenError, match="frames"):
        tasks.motion_codes(model, clip.with_(positions=clip.positions.repeat(10, axis=0)))
    with pytest.raises(IrmogenError, match="codes"):
        tasks.motion_codes(model, [600])


def test_refine_assess_caption(model):
    clip = model.codes_to_clip([7, 8, 9, 10])
    codes, out = tasks.refine_instructed(model, clip, "raise the arms higher", goal="a man waves", seconds=2)
    assert 9 <= len(codes) <= 11 and out.num_frames == 4 * len(codes) + 1
    codes, out = tasks.refine_direct(model, [7, 8, 9], "a man jumps", decode_clip=False)
    assert 1 <= len(codes) <= 49 and out is None
    assessment, refinement = tasks.assess(model, [7, 8, 9], "a man waves", max_text_tokens=5)
    assert isinstance(assessment, str) and isinstance(refinement, str)
    assert isinstance(tasks.caption(model, clip, max_text_tokens=5), str)
    with pytest.raises(IrmogenError, match="caption"):
        tasks.refine_instructed(model, [1, 2], "   ")


def test_cancel_raises_a_cancelled_error(model):
    stop = threading.Event()
    stop.set()
    with pytest.raises(IrmogenError) as e:
        tasks.caption(model, [1, 2, 3], cancel=stop)
    assert e.value.code == "cancelled"

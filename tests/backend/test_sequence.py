"""Prompts of several actions and motions longer than one model motion.

Splitting and planning are pure text/arithmetic; the runs use the shipped default model (trained on
real mocap) so each part's action is measured in its own window of the clip.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from irmogen import splice
from irmogen.errors import IrmogenError
from irmogen.feet import cleanup_if
from irmogen.partcheck import check_parts
from irmogen.reasoning.parser import Trace
from irmogen.reasoning.sequence import SequenceDone, is_plain, plan, split_prompt, transcript
from irmogen.rotations import forward_kinematics


@pytest.mark.parametrize("text, captions", [
    ("a person walks forward, then jumps", ["a person walks forward", "a person jumps"]),
    ("jog then stop and wave", ["a person jogs", "a person stops and waves with the right hand"]),
    ("a person waves with the left hand, then crouches, then turns around",
     ["a person waves with the left hand", "a person crouches down", "a person turns around to the left"]),
    ("crouch, then stand up and kick", ["a person crouches down", "a person stands up and kicks"]),
    ("a man walks forward, turning left, after that he sits down",
     ["a man walks forward, turning left", "a man sits down"]),
    ("a person walks forward followed by a jump", ["a person walks forward", "a person does a jump"]),
    ("a person runs. Finally she waves", ["a person runs", "a person waves with the right hand"]),
    ("a person jumps, spins, and waves", ["a person jumps", "a person spins", "a person waves with the right hand"]),
    ("a person walks in a circle", ["a person walks in a circle to the left"]),
    ("a person jogs in a circle to the right, then waves", ["a person jogs in a circle to the right",
                                                            "a person waves with the right hand"]),
])
def test_split_prompt_gives_standalone_captions_in_order(text, captions):
    assert [p.caption for p in split_prompt(text)] == captions


def test_plan_is_exact_to_the_frame_and_shares_follow_the_actions():
    for seconds in (3.0, 6.55, 15.0, 33.33, 60.0):
        parts = plan(split_prompt("a person walks forward, then jumps, then waves"), seconds)
        assert sum(p.frames for p in parts) == round(seconds * 20)
        assert [p.start for p in parts] == [0, parts[0].frames, parts[0].frames + parts[1].frames]
        assert parts[0].frames > parts[1].frames  # walking takes longer than a jump
    fixed = plan(split_prompt("a person walks for 3 seconds, then jumps"), 5)
    assert [p.frames for p in fixed] == [60, 40]
    assert fixed[0].caption == "a person walks"


def test_plan_refuses_impossible_lengths():
    with pytest.raises(IrmogenError, match=r"seconds: 61 must be a number in \(0, 60\]"):
        plan(split_prompt("a person walks"), 61)
    with pytest.raises(IrmogenError, match="too short for parts fixed"):
        plan(split_prompt("a person walks for 4 seconds, then jumps"), 3)
    with pytest.raises(IrmogenError, match="the prompt is empty"):
        split_prompt("   ")
    assert is_plain("a person walks", 9.8) and not is_plain("a person walks", 9.85)
    assert not is_plain("a person walks, then jumps", None)


@pytest.fixture(scope="module")
def default_model():
    import torch

    from irmogen.llm.loaders import load_model, resolve_model_spec

    torch.set_num_threads(1)
    return load_model(resolve_model_spec(None), device="cpu")


def run(model, text, seconds=None):
    events = list(__import__("irmogen.reasoning.sequence", fromlist=["run_sequence"]).run_sequence(
        model, text, seconds=seconds, max_rounds=2))
    done = events[-1]
    assert isinstance(done, SequenceDone)
    return done, events[:-1]


PROMPTS = [line.strip() for line in
           (Path(__file__).parents[2] / "benchmarks" / "sequence_prompts.txt").read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.startswith("#")]
# What the shipped model cannot make (measured: benchmarks/seams.py). Strict: a model that learns
# one of them turns its test red until it is taken off this list.
_NO_SPIN = "the shipped model does not spin: heading changes about 10 degrees for 'spins' (spins are rare in its data)"
MODEL_MISSES = {
    "a person crouches, then stands up and kicks": "its 'crouches down' rises again within the part, and 'stands "
                                                    "up' in its captions means from lying: no rise, no kick",
    "a person steps to the side, then spins": "it walks ahead for 'steps to the side'; " + _NO_SPIN,
    "a person jumps, then spins, finally waves": _NO_SPIN,
    "a person spins, then walks forward": _NO_SPIN,
    "a person walks backward, then jumps": "it walks forward for 'walks backward' (rare in its data)",
}


def test_the_acceptance_has_twenty_prompts_of_two_or_three_parts():
    assert len(PROMPTS) >= 20 and all(len(split_prompt(t)) in (2, 3) for t in PROMPTS)
    assert set(MODEL_MISSES) <= set(PROMPTS)


@pytest.mark.parametrize("text", [pytest.param(t, marks=pytest.mark.xfail(strict=True, reason=MODEL_MISSES[t]))
                                  if t in MODEL_MISSES else t for t in PROMPTS])
def test_every_part_is_measurably_there_in_its_window(default_model, text):
    done, events = run(default_model, text)
    clip = cleanup_if(done.clip, True)   # as generate delivers it
    assert clip.num_frames == sum(p["frames"] for p in done.parts)
    assert {e.part for e in events} == set(range(len(done.parts)))  # every part streamed its own rounds
    checks = check_parts(clip, done.parts)
    assert all(c["ok"] for c in checks), json.dumps(checks)
    assert np.allclose(forward_kinematics(clip.offsets, clip.rotations, clip.root_translation), clip.positions,
                       atol=1e-4)


@pytest.mark.parametrize("text, seconds", [("a person walks forward", 15.0), ("a person jogs, then jumps", 15.0),
                                           ("a person walks forward", 60.0)])
def test_long_requests_are_exact_and_seams_do_not_jump(default_model, text, seconds):
    done, _ = run(default_model, text, seconds)
    clip = done.clip
    assert clip.num_frames == round(seconds * 20)
    assert len(done.seams) >= 1
    r = splice.seam_report(clip, done.seams)
    assert r["seam_max"] <= r["within_max"], r


def test_sequence_transcript_reads_as_a_trace_and_lists_parts(default_model):
    done, _ = run(default_model, "a person walks forward, then jumps", 6)
    t = transcript("a person walks forward, then jumps", done.parts, done.seams)
    trace = Trace.from_json(json.loads(json.dumps(t)))
    assert trace.finished and len(trace.rounds) == sum(p["rounds"] for p in done.parts)
    assert [p["caption"] for p in t["parts"]] == ["a person walks forward", "a person jumps"]
    assert {r["part"] for r in t["rounds"]} == {0, 1}

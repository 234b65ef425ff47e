"""Sequences, long motions, exact length, extend and range refine through the real `irmogen serve`
process (BackendClient), with the shipped default model (trained on real mocap) so the parts'
actions can be measured in their windows; cancelling between parts with a tiny model.
"""
import json

import numpy as np
import pytest

from irmogen import protocol as P
from irmogen import splice
from irmogen.client import BackendClient
from irmogen.clip import Clip
from irmogen.llm.loaders import resolve_model_spec
from irmogen.llm.testing import tiny_motionllm
from irmogen.partcheck import check_parts
from irmogen.reasoning import sequence

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FIELDS = ("rotations", "root_translation", "positions")


@pytest.fixture(scope="module")
def backend():
    client = BackendClient(model=resolve_model_spec(None), device="cpu", env=ENV)
    yield client
    assert client.close() == 0, client.stderr_tail()


def to_clip(payload, text="") -> Clip:
    c = P.decode_clip(payload)
    return Clip(c.fps, c.offsets.to_numpy().astype(np.float64), c.rotations.to_numpy().astype(np.float64),
                c.root_translation.to_numpy().astype(np.float64), c.positions.to_numpy().astype(np.float64),
                text=text or c.text)


def payload(clip: Clip) -> dict:
    return P.encode_clip(clip.fps, clip.offsets, clip.rotations, clip.root_translation, clip.positions, clip.text)


def run(backend, method, params, timeout=300):
    events = list(backend.events(backend.request(method, params), timeout=timeout))
    assert events[-1]["event"] == "result", events[-1]
    return events[:-1], events[-1]["data"]


def test_demo_prompt_has_both_parts_with_their_own_rounds_and_its_jump(backend):
    text = "a person walks forward, then jumps"
    events, result = run(backend, "generate", {"text": text, "seconds": 6, "max_rounds": 2})
    clip = to_clip(result["clip"])
    assert clip.num_frames == 120                       # 6 s at 20 fps, to the frame
    rounds = [e["data"] for e in events if e["event"] == "round"]
    assert {r["part"] for r in rounds} == {0, 1} and all(r["parts"] == 2 for r in rounds)
    assert {r["caption"] for r in rounds} == {"a person walks forward", "a person jumps"}
    for k in (0, 1):  # every part streams its own analysis, motion and assessment
        assert {r["kind"] for r in rounds if r["part"] == k} == {"analysis", "motion", "assessment"}
    parts = result["parts"]
    assert [p["caption"] for p in parts] == ["a person walks forward", "a person jumps"]
    assert sum(p["frames"] for p in parts) == 120 and parts[1]["start"] == parts[0]["frames"]
    assert result["rounds"] == sum(p["rounds"] for p in parts) and result["codes"] is None
    transcript = json.loads(result["transcript"])
    assert [p["caption"] for p in transcript["parts"]] == [p["caption"] for p in parts]
    assert {r["part"] for r in transcript["rounds"]} == {0, 1}
    checks = check_parts(clip, parts)
    assert all(c["ok"] for c in checks), json.dumps(checks)   # the walk travels and the jump leaves the floor


@pytest.mark.parametrize("seconds", [3.0, 15.0, 60.0])
def test_asked_lengths_hold_to_the_frame_without_seam_jumps(backend, seconds):
    events, result = run(backend, "generate", {"text": "a person walks forward", "seconds": seconds,
                                               "max_rounds": 1, "payload": "json"})
    clip = to_clip(result["clip"])
    assert clip.num_frames == round(seconds * 20)
    if seconds > P.MAX_SECONDS:     # continued in pieces: no seam moves a joint more than a normal frame does
        assert len(result["seams"]) >= 1
        r = splice.seam_report(clip, result["seams"])
        assert r["seam_max"] <= r["within_max"], r
        assert {e["data"]["piece"] for e in events if e["event"] == "round"} == set(range(len(result["seams"]) + 1))


def test_extend_continues_from_the_last_frame_and_keeps_the_take(backend):
    _, first = run(backend, "generate", {"text": "a person walks forward", "seconds": 3, "max_rounds": 1})
    take = to_clip(first["clip"], "a person walks forward")
    events, result = run(backend, "extend", {"clip": payload(take), "text": "then he waves", "seconds": 3,
                                             "max_rounds": 2})
    out = to_clip(result["clip"])
    n = take.num_frames
    assert out.num_frames == n + 60 and result["take_frames"] == n
    for name in FIELDS:   # the take's own frames come back unchanged
        assert np.array_equal(getattr(out, name)[:n].astype(np.float32), getattr(take, name).astype(np.float32))
    # the new motion starts where the take ends: its first frame is one ordinary step away
    step = splice.frame_jumps(out)
    assert step[n - 1] <= step[:n - 1].max()
    assert result["parts"][0]["start"] == n and result["seams"] == [n]
    checks = check_parts(out, result["parts"])
    assert checks[0]["caption"] == "a person waves with the right hand" and checks[0]["ok"], json.dumps(checks)


@pytest.mark.parametrize("part", ["arms", "lower", "whole"])
def test_range_refine_leaves_every_other_value_bit_identical(backend, part):
    _, first = run(backend, "generate", {"text": "a person walks forward", "seconds": 5, "max_rounds": 1})
    take = to_clip(first["clip"])
    _, result = run(backend, "refine", {"clip": first["clip"], "instruction": "raise the arms higher",
                                        "frames": [30, 80], "part": part})
    out = to_clip(result["clip"])
    assert out.num_frames == take.num_frames and result["frames"] == [30, 80] and result["part"] == part
    outside = np.r_[0:30, 80:take.num_frames]
    for name in FIELDS:
        assert np.array_equal(getattr(out, name)[outside], getattr(take, name)[outside]), name
    joints, owns_root = splice.PARTS[part]
    others = [j for j in range(22) if j not in joints]
    assert np.array_equal(out.rotations[:, others], take.rotations[:, others])
    assert owns_root or np.array_equal(out.root_translation, take.root_translation)
    still = [j for j in range(22) if j not in splice.moved_joints(joints, owns_root)]   # e.g. the legs for arms
    assert np.array_equal(out.positions[:, still], take.positions[:, still])
    assert part != "arms" or still == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15]
    assert not np.array_equal(out.rotations[30:80, list(joints)], take.rotations[30:80, list(joints)])


def test_the_protocol_names_the_body_parts_splice_knows():
    assert P.BODY_PARTS == tuple(splice.PARTS)
    assert P.MAX_SEQUENCE_SECONDS == sequence.MAX_SECONDS


@pytest.mark.parametrize("method, params, message", [
    ("generate", {"text": "a person walks", "seconds": 61}, "params.seconds: expected a number between 1 and 60"),
    ("refine", {"codes": [1, 2, 3], "instruction": "raise the arms", "frames": [0, 10]},
     "params.frames / params.part: a range or body part is refined on a clip"),
    ("refine", {"codes": [1, 2], "instruction": "x", "part": "head"}, "params.part: expected one of whole, upper"),
    ("refine", {"codes": [1, 2], "instruction": "x", "frames": [10, 12]}, "params.frames: expected [A, B]"),
    ("extend", {"text": "then he waves"}, "params.clip: missing"),
])
def test_bad_timeline_requests_are_one_clear_error(backend, method, params, message):
    final = backend.call(method, params, timeout=30)
    assert final["event"] == "error" and final["data"]["code"] == P.INVALID_PARAMS
    assert message in final["data"]["message"], final["data"]


def test_too_little_time_for_the_parts_is_refused_before_any_round(backend):
    events = list(backend.events(backend.request("generate", {"text": "a person walks, then jumps, then waves",
                                                               "seconds": 1}), timeout=60))
    assert [e["event"] for e in events] == ["error"] and events[0]["data"]["code"] == "bad_input"
    assert "seconds: 1 s leaves a part under 0.5 s" in events[0]["data"]["message"]


def test_a_range_beyond_the_take_is_refused_naming_it(backend):
    _, first = run(backend, "generate", {"text": "a person walks forward", "seconds": 2, "max_rounds": 1})
    final = backend.call("refine", {"clip": first["clip"], "instruction": "raise the arms", "frames": [20, 60]},
                         timeout=60)
    assert final["event"] == "error" and "frames: 20:60 is not a range" in final["data"]["message"]


def test_cancel_between_parts_stops_the_later_parts(tmp_path):
    model = tiny_motionllm(0).save_pretrained(tmp_path / "tiny")
    with BackendClient(model=model, device="cpu", env=ENV) as client:
        rid = client.request("generate", {"text": "a person walks, then jumps, then waves, then sits down",
                                          "max_rounds": 10, "max_text_tokens": 8})
        seen = []
        for ev in client.events(rid, timeout=120):
            seen.append(ev)
            if ev["event"] == "round" and ev["data"]["part"] == 1:
                client.cancel(rid)
                break
        rest = list(client.events(rid, timeout=60))
        assert rest[-1]["event"] == "cancelled", rest[-1]
        assert not any(e["event"] == "result" for e in rest)
        assert all(e["data"].get("part", 0) <= 1 for e in rest if e["event"] in ("round", "progress"))
        assert rest[-1]["data"]["part"] == 1

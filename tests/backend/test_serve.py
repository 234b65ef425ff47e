"""The backend service end to end: a real server process with a tiny model saved to disk, driven
through BackendClient. Streams every round, cancels midway, queues, survives a failing model,
cleans prompts, switches models, and exits cleanly on shutdown, end of input and SIGTERM."""
import json
import os
import signal
import time

import numpy as np
import pytest
import torch

from irmogen import protocol as P
from irmogen.client import BackendClient
from irmogen.errors import IrmogenError
from irmogen.llm.testing import tiny_motionllm
from irmogen.reasoning.parser import Trace
from irmogen.rotations import forward_kinematics

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
QUICK = {"seconds": 1, "max_rounds": 1, "max_text_tokens": 4}
LONG = {"text": "a man jogs in a circle, then waves", "seconds": 9.8, "max_rounds": 10}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_motionllm(0).save_pretrained(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def nan_model_dir(tmp_path_factory):
    """A model whose weights went NaN (as after diverged training): sampling from it fails inside torch."""
    model = tiny_motionllm(0)
    with torch.no_grad():
        model.lm.model.norm.weight.fill_(float("nan"))
    return model.save_pretrained(tmp_path_factory.mktemp("models") / "nan")


@pytest.fixture(scope="module")
def backend(model_dir):
    client = BackendClient(model=model_dir, device="cpu", env=ENV)
    yield client
    assert client.close() == 0, client.stderr_tail()


def clip_arrays(payload) -> dict:
    clip = P.decode_clip(payload)
    return {k: getattr(clip, k).to_numpy() for k in ("offsets", "rotations", "root_translation", "positions")}


def first_round(backend, rid) -> list[dict]:
    """Events of `rid` up to and including its first motion round."""
    seen = []
    for ev in backend.events(rid, timeout=60):
        seen.append(ev)
        assert ev["event"] not in P.FINAL_EVENTS, ev
        if ev["event"] == "round" and ev["data"]["kind"] == "motion":
            return seen


def test_hello_says_versions_device_and_model(backend, model_dir):
    h = backend.hello
    assert h["protocol"] == P.PROTOCOL_VERSION and h["pid"] == backend.pid
    assert h["torch"] == torch.__version__ and h["device"] == "cpu" and h["dtype"] == "float32"
    assert h["model"]["id"] == "tiny" and h["model"]["path"] == str(model_dir.resolve())
    assert h["model"]["kind"] == "irmogen" and h["model_error"] is None
    assert set(h["methods"]) == set(P.METHODS) and h["limits"]["max_rounds"] == P.MAX_ROUNDS


def test_generate_streams_every_round_then_the_result(backend):
    rid = backend.request("generate", {"text": "a man waves", "seconds": 2, "max_rounds": 3, "max_text_tokens": 8})
    events = list(backend.events(rid, timeout=60))
    result = events[-1]
    assert result["event"] == "result" and all(e["id"] == rid for e in events)
    rounds = [e["data"] for e in events if e["event"] == "round"]
    n = result["data"]["rounds"]
    expected = [("analysis", 0)] + [(kind, k) for k in range(1, n + 1) for kind in ("motion", "assessment")]
    assert [(r["kind"], r["round"]) for r in rounds] == expected
    tokens = [e["data"]["tokens"] for e in events if e["event"] in ("progress", "round")]
    assert tokens == sorted(tokens)

    trace = Trace.from_json(result["data"]["transcript"])
    motions = [r for r in rounds if r["kind"] == "motion"]
    assert [r.codes for r in trace.rounds] == [m["codes"] for m in motions]
    assert [r.refinement for r in trace.rounds] == [r["refinement"] for r in rounds if r["kind"] == "assessment"]
    assert trace.finished and result["data"]["finished"] and result["data"]["codes"] == motions[-1]["codes"]
    for m in motions:
        assert 9 <= len(m["codes"]) <= 11  # 2 s = 10 codes, +-1
        arrays = clip_arrays(m["clip"])
        assert arrays["positions"].shape == (4 * len(m["codes"]) + 1, 22, 3)
        assert arrays["rotations"].shape == (4 * len(m["codes"]) + 1, 22, 4)
        np.testing.assert_allclose(forward_kinematics(arrays["offsets"], arrays["rotations"],
                                                      arrays["root_translation"]), arrays["positions"], atol=1e-4)
    assert clip_arrays(result["data"]["clip"])["positions"].shape == (40, 22, 3)  # the final motion, 2 s exactly
    assert result["data"]["warnings"] == [] and result["data"]["timings"]["total_s"] > 0


def test_refine_assess_and_caption_take_clips_and_codes(backend):
    done = backend.call("generate", {"text": "a person jumps", "payload": "json", **QUICK}, timeout=60)["data"]
    clip, codes = done["clip"], done["codes"]
    assert isinstance(clip["positions"], list)  # the json form: nested lists
    instructed = backend.call("refine", {"clip": clip, "instruction": "jump higher", "text": "a person jumps"},
                              timeout=60)
    assert instructed["event"] == "result" and instructed["data"]["mode"] == "instructed"
    assert clip_arrays(instructed["data"]["clip"])["positions"].shape[0] == 4 * len(instructed["data"]["codes"]) + 1
    direct = backend.call("refine", {"codes": codes, "text": "a person sits down", "seconds": 2,
                                     "greedy": False, "seed": 3}, timeout=60)
    assert direct["data"]["mode"] == "direct" and direct["data"]["seed"] == 3 and 9 <= len(direct["data"]["codes"]) <= 11
    assessed = backend.call("assess", {"clip": instructed["data"]["clip"], "text": "a person jumps",
                                       "max_text_tokens": 6}, timeout=60)
    assert assessed["event"] == "result" and isinstance(assessed["data"]["assessment"], str)
    assert assessed["data"]["satisfied"] == (assessed["data"]["refinement"] == "No refinements needed.")
    caption = backend.call("caption", {"codes": codes, "max_text_tokens": 6}, timeout=60)
    assert caption["event"] == "result" and isinstance(caption["data"]["caption"], str)
    positions_only = {"fps": 30, "positions": clip["positions"]}  # resampled and re-solved by the server
    assert backend.call("caption", {"clip": positions_only, "max_text_tokens": 3}, timeout=60)["event"] == "result"


def test_a_second_job_queues_and_a_running_one_cancels_midway(backend):
    a = backend.request("generate", LONG)
    b = backend.request("generate", {"text": "a man bows", **QUICK})
    c = backend.request("caption", {"codes": [1, 2, 3]})
    seen_a = first_round(backend, a)
    status = backend.call("status", timeout=10)
    assert status["event"] == "status" and status["data"]["state"] == "busy"
    assert status["data"]["running"]["id"] == a and [q["id"] for q in status["data"]["queued"]] == [b, c]
    assert next(backend.events(c, timeout=10)) == {"id": c, "event": "queued", "data": {"position": 2}}
    assert backend.cancel(c)["data"] == {"cancelled": c, "state": "queued"}
    assert backend.wait(c, timeout=10)["event"] == "cancelled"
    assert backend.cancel(a)["data"] == {"cancelled": a, "state": "running"}
    rest_a = list(backend.events(a, timeout=60))
    assert rest_a[-1]["event"] == "cancelled" and not any(e["event"] == "result" for e in seen_a + rest_a)
    assert Trace.from_json(rest_a[-1]["data"]["transcript"]).finished is False
    events_b = list(backend.events(b, timeout=60))
    assert events_b[0] == {"id": b, "event": "queued", "data": {"position": 1}}
    assert events_b[-1]["event"] == "result"
    unknown = backend.cancel(a)
    assert unknown["event"] == "error" and unknown["data"]["code"] == P.UNKNOWN_JOB


@pytest.mark.parametrize("text, code", [("", P.INVALID_PARAMS), ("  \n\t  ", P.INVALID_PARAMS),
                                        ("\x00\x07\x1b", P.INVALID_PARAMS)])
def test_empty_prompts_are_clear_errors(backend, text, code):
    reply = backend.call("generate", {"text": text, **QUICK}, timeout=30)
    assert reply["event"] == "error" and reply["data"]["code"] == code
    assert reply["data"]["message"].startswith("params.text: empty") and reply["data"]["hint"]


def test_guidance_the_model_cannot_apply_is_a_clear_error(backend):
    reply = backend.call("generate", {"text": "a man waves", "guidance": 2.5, **QUICK}, timeout=30)
    assert reply["event"] == "error" and "guidance 2.5: this model has no prompt encoder" in reply["data"]["message"]
    assert backend.call("generate", {"text": "a man waves", "guidance": 1, **QUICK}, timeout=60)["event"] == "result"


@pytest.mark.parametrize("text, expected", [
    ("a man\x00 waves\x07 his\nright\thand\x1b", "a man waves his right hand"),
    ("一个人向前走然后挥手", "一个人向前走然后挥手"),
    ("رجل يركض ثم يلوح 👋", "رجل يركض ثم يلوح 👋"),
])
def test_control_characters_and_other_scripts(backend, text, expected):
    reply = backend.call("generate", {"text": text, **QUICK}, timeout=60)
    assert reply["event"] == "result" and reply["data"]["text"] == expected and reply["data"]["warnings"] == []


def test_a_10000_character_prompt_is_truncated_with_a_warning(backend):
    reply = backend.call("generate", {"text": "walk forward " * 770, **QUICK}, timeout=60)  # 10,010 characters
    assert reply["event"] == "result" and len(reply["data"]["text"]) <= P.MAX_PROMPT_CHARS
    assert reply["data"]["warnings"] and "cut to the first" in reply["data"]["warnings"][0]


def test_a_failing_model_answers_error_and_the_server_keeps_serving(backend, model_dir, nan_model_dir, tmp_path):
    missing = backend.call("load_model", {"model": str(tmp_path / "nowhere")}, timeout=60)
    assert missing["event"] == "error" and missing["data"]["code"] == "not_found"
    assert str(tmp_path / "nowhere") in missing["data"]["message"]
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "config.json").write_text('{"llm": {')
    bad = backend.call("load_model", {"model": str(broken)}, timeout=60)
    assert bad["event"] == "error" and "config.json" in bad["data"]["message"]
    assert backend.call("status", timeout=10)["data"]["model"]["id"] == "tiny"  # the old model stays

    assert backend.call("load_model", {"model": str(nan_model_dir)}, timeout=60)["data"]["model"]["id"] == "nan"
    failed = backend.call("generate", {"text": "a man waves", "greedy": False, **QUICK}, timeout=60)
    assert failed["event"] == "error" and failed["data"]["code"] == P.INTERNAL
    assert "RuntimeError" in failed["data"]["message"] and "\n" not in failed["data"]["message"]
    # the traceback goes to the log (stderr), read by another thread than the answer: allow it to land
    deadline = time.monotonic() + 10
    while not any("Traceback" in line for line in backend.stderr_tail(100)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any("Traceback" in line for line in backend.stderr_tail(100))
    assert backend.alive and backend.call("status", timeout=10)["data"]["state"] == "idle"

    assert backend.call("load_model", {"model": str(model_dir)}, timeout=60)["data"]["model"]["id"] == "tiny"
    assert backend.call("generate", {"text": "a man waves", **QUICK}, timeout=60)["event"] == "result"


def test_a_duplicate_id_gets_an_error_and_the_first_job_runs_on(backend):
    def raw(obj):
        backend.send_raw(json.dumps(obj).encode() + b"\n")

    def unrouted_until(predicate) -> list[dict]:
        seen = [backend.next_unrouted(60)]
        while not predicate(seen[-1]):
            seen.append(backend.next_unrouted(60))
        return seen

    raw({"id": "dup", "method": "generate", "params": LONG})
    raw({"id": "dup", "method": "caption", "params": {"codes": [1]}})
    seen = unrouted_until(lambda e: e["event"] == "error")
    assert seen[-1] == {"id": "dup", "event": "error", "data": {
        "code": P.DUPLICATE_ID, "message": 'id: "dup" is already used by a running or queued job',
        "hint": "give every request its own id"}}
    seen += unrouted_until(lambda e: e["event"] == "round")
    assert backend.cancel("dup")["data"]["state"] == "running"
    assert unrouted_until(lambda e: e["event"] in P.FINAL_EVENTS)[-1]["event"] == "cancelled"
    with pytest.raises(IrmogenError, match="already pending"):
        backend.request("generate", LONG, id="x1") and backend.request("status", id="x1")
    backend.cancel("x1")
    assert backend.wait("x1", timeout=60)["event"] == "cancelled"


def test_without_a_model_the_server_says_why_and_exits_on_end_of_input(model_dir, tmp_path):
    client = BackendClient(model=tmp_path / "missing", device="cpu", env=ENV)
    assert client.hello["model"] is None and client.hello["model_error"]["code"] == "not_found"
    reply = client.call("generate", {"text": "a man waves", **QUICK}, timeout=30)
    assert reply["event"] == "error" and reply["data"]["code"] == P.NO_MODEL and "load_model" in reply["data"]["hint"]
    assert client.call("load_model", {"model": str(model_dir)}, timeout=60)["event"] == "result"
    job = client.request("generate", {"text": "a man waves", **QUICK})
    client.end_input()  # the server cancels or finishes the job, then exits 0
    assert client.wait(job, timeout=60)["event"] in ("result", "cancelled")
    assert client.wait_exit(30) == 0


def test_sigterm_cancels_the_running_job_and_exits_cleanly(model_dir):
    client = BackendClient(model=model_dir, device="cpu", env=ENV)
    job = client.request("generate", LONG)
    first_round(client, job)
    os.kill(client.pid, signal.SIGTERM)
    assert client.wait(job, timeout=60)["event"] == "cancelled"
    assert client.wait_exit(30) == 0
    assert client.close() == 0


def test_split_lines_bounds_memory_and_keeps_line_order_across_chunks():
    from irmogen.serve.server import split_lines

    data = b"ab\ncdefghij\n\nklmnopqrstuvwxyz0123\nend"
    for size in (1, 3, 7, 64):
        chunks = iter([data[i:i + size] for i in range(0, len(data), size)])
        assert list(split_lines(lambda: next(chunks, b""), limit=10)) == [b"ab", b"cdefghij", b"", None, b"end"]
    chunks = iter([b"x" * 25])
    assert list(split_lines(lambda: next(chunks, b""), limit=10)) == [None]

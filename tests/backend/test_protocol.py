"""The protocol module: request validation names the field at fault, prompts are cleaned as
documented, the motion payload round-trips in both forms, and the file stands alone (the add-on
ships a copy of it without numpy or irmogen)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from irmogen import protocol as P
from irmogen import skeleton


def parse(obj):
    return P.parse_line(json.dumps(obj).encode(), 7)


def error_of(line) -> P.ProtocolError:
    with pytest.raises(P.ProtocolError) as info:
        P.parse_line(line if isinstance(line, bytes) else json.dumps(line).encode(), 7)
    return info.value


def gen(**params):
    return {"id": 5, "method": "generate", "params": {"text": "a man waves", **params}}


def test_a_valid_generate_becomes_typed_params():
    r = parse(gen(seconds=4, max_rounds=3, seed=11, greedy=False, temperature=0.8, top_p=0.9, payload="json",
                  guidance=2.5))
    assert (r.id, r.method) == (5, "generate")
    p = r.params
    assert (p.text, p.seconds, p.max_rounds, p.payload) == ("a man waves", 4.0, 3, "json")
    assert p.sampling == P.Sampling(greedy=False, temperature=0.8, top_p=0.9, seed=11, guidance=2.5)
    assert parse(gen()).params.sampling.guidance is None   # the model's own default
    assert p.max_text_tokens == P.MAX_TEXT_TOKENS and p.warnings == []


@pytest.mark.parametrize("params, message", [
    ({"seconds": "abc"}, 'params.seconds: expected a number between 1 and 60, got "abc"'),
    ({"seconds": 61}, "params.seconds: expected a number between 1 and 60, got 61"),
    ({"seconds": True}, "params.seconds: expected a number between 1 and 60, got true"),
    ({"max_rounds": 2.5}, "params.max_rounds: expected an integer between 1 and 10, got 2.5"),
    ({"seed": 10 ** 30}, "params.seed: expected an integer between 0 and 9223372036854775807, got 1000000000"),
    ({"temperature": 0}, "params.temperature: expected a number above 0 and at most 10, got 0"),
    ({"guidance": 0.5}, "params.guidance: expected a number between 1 and 10, got 0.5"),
    ({"greedy": 1}, "params.greedy: expected true or false, got 1"),
    ({"payload": "pickle"}, 'params.payload: expected one of base64, json, got "pickle"'),
    ({"sed": 1}, "params.sed: unknown parameter (generate takes"),
    ({"text": 42}, "params.text: expected text, got 42"),
])
def test_bad_params_are_named_with_the_request_id(params, message):
    e = error_of(gen(**params))
    assert e.message.startswith(message) and e.code == P.INVALID_PARAMS and e.id == 5


@pytest.mark.parametrize("line, code, message", [
    (b"\xff\xfe{}", P.PARSE_ERROR, "line 7: not UTF-8 (byte 0xff at position 0)"),
    (b'{"id": 1, "method": ', P.PARSE_ERROR, "line 7: not valid JSON"),
    (b'{"id": 1, "method": "status", "params": {"x": NaN}}', P.PARSE_ERROR, "line 7: not valid JSON (NaN"),
    (b"[" * 50000, P.PARSE_ERROR, "line 7: JSON nested too deeply"),
    (b'{"id": ' + b"9" * 5000 + b"}", P.PARSE_ERROR, "line 7: not valid JSON (Exceeds the limit"),
    (b"[1, 2]", P.INVALID_REQUEST, "request: expected a JSON object, got an array"),
    (b'{"method": "status"}', P.INVALID_REQUEST, "id: missing"),
    (b'{"id": 1.5, "method": "status"}', P.INVALID_REQUEST, "id: expected a string"),
    (b'{"id": true, "method": "status"}', P.INVALID_REQUEST, "id: expected a string"),
    (b'{"id": 1e999, "method": "status"}', P.INVALID_REQUEST, "id: expected a string"),
    (b'{"id": 99999999999999999999, "method": "status"}', P.INVALID_REQUEST, "id: expected a string"),
])
def test_lines_without_a_usable_id_get_errors_without_one(line, code, message):
    e = error_of(line)
    assert e.id is None and e.code == code and e.message.startswith(message), e.message


@pytest.mark.parametrize("obj, code, message", [
    ({"id": "x", "method": "gen"}, P.UNKNOWN_METHOD, 'method: unknown method "gen" (known: generate,'),
    ({"id": "x"}, P.INVALID_REQUEST, "method: expected a string, got null"),
    ({"id": "x", "method": "status", "param": {}}, P.INVALID_REQUEST, '"param": unknown field'),
    ({"id": "x", "method": "status", "params": []}, P.INVALID_PARAMS, "params: expected an object, got an array"),
    ({"id": "x", "method": "generate"}, P.INVALID_PARAMS, "params.text: missing"),
    ({"id": "x", "method": "cancel", "params": {}}, P.INVALID_PARAMS, "params.id: missing"),
    ({"id": "x", "method": "cancel", "params": {"id": [1]}}, P.INVALID_PARAMS, "params.id: expected the id"),
    ({"id": "x", "method": "load_model", "params": {"model": ""}}, P.INVALID_PARAMS, "params.model: expected"),
    ({"id": "x", "method": "caption", "params": {}}, P.INVALID_PARAMS, "params.clip / params.codes"),
    ({"id": "x", "method": "caption", "params": {"codes": [1], "clip": {}}}, P.INVALID_PARAMS, "params.clip / params.codes"),
    ({"id": "x", "method": "caption", "params": {"codes": [-1]}}, P.INVALID_PARAMS, "params.codes: expected a list"),
    ({"id": "x", "method": "caption", "params": {"codes": list(range(50))}}, P.INVALID_PARAMS, "params.codes"),
    ({"id": "x", "method": "refine", "params": {"codes": [1, 2]}}, P.INVALID_PARAMS, "params.text: missing"),
    ({"id": "x", "method": "assess", "params": {"codes": [1], "text": " \t "}}, P.INVALID_PARAMS, "params.text: empty"),
    ({"id": "x", "method": "status", "params": {"verbose": True}}, P.INVALID_PARAMS, "params.verbose: unknown"),
])
def test_requests_with_an_id_carry_it_in_their_error(obj, code, message):
    e = error_of(obj)
    assert e.id == "x" and e.code == code and e.message.startswith(message), e.message


def test_refine_modes_and_control_requests_parse():
    instructed = parse({"id": 1, "method": "refine", "params": {"codes": [3, 4], "instruction": "raise the arms"}}).params
    direct = parse({"id": 2, "method": "refine", "params": {"codes": [3, 4], "text": "a man jumps"}}).params
    assert (instructed.instruction, instructed.text, instructed.motion.codes) == ("raise the arms", None, [3, 4])
    assert (direct.instruction, direct.text) == (None, "a man jumps")
    assert parse({"id": 3, "method": "cancel", "params": {"id": "job-1"}}).params.target == "job-1"
    assert parse({"id": 4, "method": "status"}).params is None
    spec = {"format": "irg", "gemma_dir": "g"}
    assert parse({"id": 5, "method": "load_model", "params": {"model": spec}}).params.model == spec


def test_prompts_are_cleaned_as_documented():
    assert P.clean_prompt("  a man\x00 walks\n\tforward\x1b ") == ("a man walks forward", None)
    assert P.clean_prompt("un homme marche \ud800vite") == ("un homme marche vite", None)
    for text in ("一个人在跳舞", "رجل يمشي ثم يلوح", "человек машет рукой 👋"):
        assert P.clean_prompt(text) == (text, None)
    with pytest.raises(P.ProtocolError, match="empty"):
        P.clean_prompt(" \n\x07\t ")
    long = " ".join(["walk"] * 2500)  # 12,499 characters
    cut, warning = P.clean_prompt(long, "params.text")
    assert len(cut) <= P.MAX_PROMPT_CHARS and long.startswith(cut) and not cut.endswith(" ")
    assert warning.startswith(f"params.text: {len(long)} characters cut to the first {len(cut)}")
    r = parse(gen(text="x" * 10_000))
    assert len(r.params.text) == P.MAX_PROMPT_CHARS and "cut" in r.params.warnings[0]


def test_arrays_round_trip_in_both_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 22, 4)).astype(np.float32)
    for encoded in (P.encode_array(a), P.encode_array(a, "json"), P.encode_array(a.tolist()),
                    P.encode_array(a.tolist(), "json")):
        decoded = P.decode_array(json.loads(json.dumps(encoded)), "x", (None, 22, 4))
        assert decoded.shape == (6, 22, 4)
        np.testing.assert_array_equal(decoded.to_numpy(), a)
        assert decoded.tolist() == a.tolist()
    b64 = P.encode_array(a)
    assert b64["dtype"] == "float32" and b64["shape"] == [6, 22, 4]
    assert np.frombuffer(__import__("base64").b64decode(b64["data"]), "<f4").reshape(6, 22, 4).tolist() == a.tolist()


@pytest.mark.parametrize("obj, message", [
    ({"dtype": "float32", "shape": [1, 22, 4], "data": "!!"}, "x.data: not valid base64"),
    ({"dtype": "float32", "shape": [2, 22, 4], "data": "AAAA"}, "x.data: 3 bytes, shape [2, 22, 4] needs 704"),
    ({"dtype": "float64", "shape": [1, 22, 4], "data": ""}, "x: expected {"),
    ({"dtype": "float32", "shape": [1, 21, 4], "data": ""}, "x: shape [1, 21, 4], expected (T, 22, 4)"),
    ({"dtype": "float32", "shape": "1,22,4", "data": ""}, "x.shape: expected a list"),
    ([[[0.0] * 4] * 22, [[0.0] * 4] * 21], "x: ragged"),
    ([[[0.0] * 3] * 22], "x: shape [1, 22, 3], expected (T, 22, 4)"),
    ([[[0.0] * 4] * 21 + [[0.0] * 3]], "x: ragged"),
    ([[["a"] * 4] * 22], "x: expected numbers"),
    ([[[1e39] * 4] * 22], "x: contains NaN, infinite or out-of-range values"),
    ([], "x: shape [0], expected (T, 22, 4)"),
])
def test_bad_arrays_are_refused_naming_the_field(obj, message):
    with pytest.raises(P.ProtocolError) as info:
        P.decode_array(obj, "x", (None, 22, 4))
    assert info.value.message.startswith(message), info.value.message


def test_nan_in_base64_is_refused():
    a = np.zeros((2, 22, 3), np.float32)
    a[1, 5, 2] = np.nan
    with pytest.raises(P.ProtocolError, match="NaN"):
        P.decode_array(P.encode_array(a), "x", (None, 22, 3))


def test_clip_payload_round_trip_and_checks():
    rng = np.random.default_rng(1)
    t = 9
    arrays = dict(offsets=rng.normal(size=(22, 3)), rotations=rng.normal(size=(t, 22, 4)),
                  root_translation=rng.normal(size=(t, 3)), positions=rng.normal(size=(t, 22, 3)))
    for form in P.PAYLOAD_FORMS:
        payload = json.loads(json.dumps(P.encode_clip(20, text="a jump", form=form, **arrays)))
        assert payload["joint_names"] == list(skeleton.JOINT_NAMES) and payload["parents"] == list(skeleton.PARENTS)
        clip = P.decode_clip(payload, "params.clip")
        assert (clip.fps, clip.num_frames, clip.text) == (20.0, t, "a jump")
        for name, value in arrays.items():
            np.testing.assert_allclose(getattr(clip, name).to_numpy(), value.astype(np.float32))
    payload = P.encode_clip(20, **arrays)
    with pytest.raises(P.ProtocolError, match=r"params.clip.rotations: 8 frames, positions have 9"):
        P.decode_clip({**payload, "rotations": P.encode_array(arrays["rotations"][:8])}, "params.clip")
    with pytest.raises(P.ProtocolError, match="params.clip.joint_names: not the SMPL-22"):
        P.decode_clip({**payload, "joint_names": ["hips"] * 22}, "params.clip")
    with pytest.raises(P.ProtocolError, match="params.clip.fps: expected a number"):
        P.decode_clip({**payload, "fps": "20"}, "params.clip")
    with pytest.raises(P.ProtocolError, match="params.clip.bones: unknown clip field"):
        P.decode_clip({**payload, "bones": 1}, "params.clip")
    minimal = P.decode_clip({"fps": 30, "positions": P.encode_array(arrays["positions"])})
    assert minimal.rotations is None and minimal.num_frames == t


def test_lines_are_one_ascii_line_whatever_the_text():
    line = P.encode_event("j", "round", {"text": "bras levés\nвыше 高く \ud800", "n": 1})
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
    assert P.decode_event(line)["data"]["n"] == 1
    with pytest.raises(ValueError):
        P.encode_event("j", "round", {"x": float("nan")})
    with pytest.raises(P.ProtocolError):
        P.decode_event(b'{"id": 1, "event": "surprise", "data": {}}')


def test_skeleton_copy_matches_the_backend():
    assert P.JOINT_NAMES == skeleton.JOINT_NAMES and P.PARENTS == skeleton.PARENTS


def test_protocol_file_stands_alone_without_numpy_or_irmogen():
    code = (
        "import importlib.util, json, sys\n"
        "sys.modules['numpy'] = None\n"  # any numpy import now fails
        f"spec = importlib.util.spec_from_file_location('protocol_copy', {P.__file__!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['protocol_copy'] = m; spec.loader.exec_module(m)\n"
        "assert not [k for k in sys.modules if k.startswith(('irmogen', 'torch'))]\n"
        "r = m.parse_line(b'{\"id\": 1, \"method\": \"generate\", \"params\": {\"text\": \"hi\"}}')\n"
        "rows = [[[0.5, 1.0, 2.0]] * 22] * 3\n"
        "clip = m.decode_clip(json.loads(json.dumps({'fps': 20, 'positions': m.encode_array(rows)})))\n"
        "assert clip.positions.tolist() == rows and r.params.text == 'hi'\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr

"""Property-based robustness of the server: well over 1,000 malformed lines (invalid JSON, non-UTF-8
bytes, wrong types, huge numbers, missing fields, unknown methods, 10 MB lines) go into ONE running
server process. Every line gets exactly one structured `error`, in order, carrying the request's id
whenever the line had a usable one; afterwards the same process still serves a real generate."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irmogen import protocol as P
from irmogen.client import BackendClient
from irmogen.llm.testing import tiny_motionllm

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MIN_LINES = 1000
BIG = 10 * 1024 * 1024

VALID_ID = st.one_of(st.integers(-2 ** 63, 2 ** 63 - 1), st.text(min_size=1, max_size=12))
BAD_ID = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(), st.just(""),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(min_size=P.MAX_ID_CHARS + 1, max_size=P.MAX_ID_CHARS + 5),
    st.integers(min_value=2 ** 63), st.integers(max_value=-2 ** 63 - 1))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=8))
ANY = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                        max_size=3), max_leaves=6)
HUGE = st.one_of(st.integers(min_value=10 ** 19, max_value=10 ** 300), st.integers(max_value=-10 ** 19),
                 st.floats(min_value=1e15, allow_infinity=False), st.floats(max_value=-1e15, allow_infinity=False))


def _number(lo, hi, integer=False, lo_open=False, none_ok=False):
    def valid(v):
        if v is None:
            return none_ok
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
            return False
        return (lo < v if lo_open else lo <= v) and v <= hi
    return valid


VALID_GENERATE_FIELD = {
    "seconds": _number(P.MIN_SECONDS, P.MAX_SECONDS, none_ok=True),
    "max_rounds": _number(1, P.MAX_ROUNDS, integer=True),
    "max_text_tokens": _number(1, P.MAX_TEXT_TOKENS, integer=True),
    "seed": _number(0, P.MAX_SEED, integer=True, none_ok=True),
    "temperature": _number(0, P.MAX_TEMPERATURE, lo_open=True),
    "top_p": _number(0, 1, lo_open=True),
    "greedy": lambda v: isinstance(v, bool),
    "payload": lambda v: v in P.PAYLOAD_FORMS,
}
BLANK_TEXT = st.text(alphabet=" \t\n\r\x00\x07\x1b\x0b\x85\u2028", max_size=8)


def line_of(obj) -> bytes:
    return json.dumps(obj).encode()


def case(line: bytes, rid=None, codes=(P.INVALID_PARAMS,)):
    return line, rid, frozenset(codes)


def _not_json_object(b: bytes) -> bool:
    try:
        return not isinstance(json.loads(b), dict)
    except (ValueError, RecursionError):
        return True


def _invalid_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@st.composite
def bad_field_generate(draw):
    field = draw(st.sampled_from(sorted(VALID_GENERATE_FIELD)))
    value = draw(st.one_of(ANY, HUGE).filter(lambda v: not VALID_GENERATE_FIELD[field](v)))
    rid = draw(VALID_ID)
    return case(line_of({"id": rid, "method": "generate", "params": {"text": "a man waves", field: value}}), rid)


@st.composite
def bad_motion(draw):
    """caption/assess/refine whose motion is missing, doubled, or not a clip or codes."""
    rid, method = draw(VALID_ID), draw(st.sampled_from(["caption", "assess", "refine"]))
    params = {"text": "a man waves"} if method != "caption" else {}
    which = draw(st.sampled_from(["none", "both", "codes", "clip"]))
    if which == "both":
        params.update(codes=[1, 2], clip={})
    elif which == "codes":
        params["codes"] = draw(ANY.filter(lambda v: not (isinstance(v, list) and 1 <= len(v) <= P.MAX_MOTION_CODES and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= P.MAX_CODE for c in v))))
    elif which == "clip":  # ANY's lists hold at most 3 items: never a (T, 22, 3) array
        params["clip"] = draw(st.one_of(ANY, st.fixed_dictionaries({"fps": st.just(20), "positions": ANY})))
    return case(line_of({"id": rid, "method": method, "params": params}), rid)


@st.composite
def malformed(draw):
    kind = draw(st.integers(0, 13))
    rid = draw(VALID_ID)
    if kind == 0:   # not JSON at all
        text = draw(st.text(min_size=1, max_size=40).filter(lambda t: "\n" not in t and "\r" not in t))
        b = text.encode()
        return case(draw(st.just(b).filter(lambda x: x.strip() and _not_json_object(x))), None,
                    (P.PARSE_ERROR, P.INVALID_REQUEST))
    if kind == 1:   # a request cut short
        full = line_of({"id": rid, "method": "generate", "params": {"text": "a man waves", "seconds": 4}})
        return case(full[:draw(st.integers(1, len(full) - 1))], None, (P.PARSE_ERROR,))
    if kind == 2:   # not UTF-8
        b = draw(st.binary(min_size=1, max_size=40).filter(lambda x: b"\n" not in x and _invalid_utf8(x)))
        return case(b, None, (P.PARSE_ERROR,))
    if kind == 3:   # JSON, but not an object
        return case(line_of(draw(ANY.filter(lambda v: not isinstance(v, dict)))), None, (P.INVALID_REQUEST,))
    if kind == 4:   # unusable or missing id
        obj = {"method": draw(st.sampled_from(P.METHODS))}
        if draw(st.booleans()):
            obj["id"] = draw(BAD_ID)
        return case(line_of(obj), None, (P.INVALID_REQUEST,))
    if kind == 5:   # unknown method
        method = draw(st.one_of(st.text(max_size=12).filter(lambda m: m not in P.METHODS), ANY))
        return case(line_of({"id": rid, "method": method}), rid, (P.UNKNOWN_METHOD, P.INVALID_REQUEST))
    if kind == 6:
        return draw(bad_field_generate())
    if kind == 7:   # text of the wrong type, or nothing but whitespace and control characters
        text = draw(st.one_of(ANY.filter(lambda v: not isinstance(v, str)), BLANK_TEXT))
        return case(line_of({"id": rid, "method": "generate", "params": {"text": text}}), rid)
    if kind == 8:   # missing fields
        method, params = draw(st.sampled_from([("generate", {"seconds": 2}), ("refine", {"instruction": "x"}),
                                               ("assess", {"codes": [1]}), ("cancel", {}), ("load_model", {}),
                                               ("refine", {"codes": [1]})]))
        return case(line_of({"id": rid, "method": method, "params": params}), rid)
    if kind == 9:   # params of the wrong type, unknown parameters, unknown top-level fields
        which = draw(st.sampled_from(["params", "unknown", "top"]))
        method = draw(st.sampled_from(P.METHODS))
        if which == "params":
            obj = {"id": rid, "method": method, "params": draw(ANY.filter(lambda v: not isinstance(v, dict)))}
        elif which == "unknown":
            obj = {"id": rid, "method": method, "params": {"zz_" + draw(st.text(max_size=5)): draw(ANY)}}
        else:
            obj = {"id": rid, "method": method, "extra": draw(ANY)}
        return case(line_of(obj), rid, (P.INVALID_PARAMS, P.INVALID_REQUEST))
    if kind == 10:  # huge numbers written as JSON text
        digits = draw(st.integers(20, 4000))
        field = draw(st.sampled_from(["seconds", "seed", "max_rounds", "temperature"]))
        number = draw(st.sampled_from([b"1e999", b"-1e999", b"9" * digits, b"-" + b"9" * digits]))
        head = line_of({"id": rid, "method": "generate", "params": {"text": "a man waves"}})[:-2]
        return case(head + b', "' + field.encode() + b'": ' + number + b"}}", rid)
    if kind == 11:
        return draw(bad_motion())
    if kind == 12:  # cancel of a job that does not exist (nothing runs during the fuzz)
        return case(line_of({"id": rid, "method": "cancel", "params": {"id": draw(VALID_ID)}}), rid, (P.UNKNOWN_JOB,))
    model = draw(ANY.filter(lambda v: not ((isinstance(v, str) and v.strip()) or
                                           (isinstance(v, dict) and isinstance(v.get("format"), str)))))
    return case(line_of({"id": rid, "method": "load_model", "params": {"model": model}}), rid)


def big_cases() -> list:
    pad = "x" * BIG
    return [
        case(line_of({"id": "big-1", "method": "generate", "params": {"text": 7, "pad": pad}}), "big-1"),
        case(line_of({"id": "big-2", "method": "status", "params": {"pad": pad}}), "big-2"),
        case(b'{"id": "big-3", "method": "generate", "params": {"text": "' + b"a" * BIG, None, (P.PARSE_ERROR,)),
        case(b"\xff" * BIG, None, (P.PARSE_ERROR,)),
        case(line_of({"id": "big-4", "method": "caption", "params": {"clip": {"fps": 20, "positions": [
            [[0.5] * 3] * 21] * (BIG // 400)}}}), "big-4"),  # about 10 MB of numbers, one joint short
        case(b"[" * (P.MAX_LINE_BYTES + 10), None, (P.LINE_TOO_LONG,)),
        case(b'{"id": 1, "method": "generate", "params": ' + b'{"a": ' * 200_000, None, (P.PARSE_ERROR,)),
        case(b"[" * 1_000_000 + b"]" * 1_000_000, None, (P.PARSE_ERROR,)),
    ]


def send_and_check(client: BackendClient, cases) -> int:
    client.send_raw(b"".join(line + b"\n" for line, _, _ in cases))
    for k, (line, rid, codes) in enumerate(cases):
        reply = client.next_unrouted(60)
        where = f"case {k}: {line[:120]!r} -> {reply}"
        assert reply["event"] == "error", where
        assert type(reply["id"]) is type(rid) and reply["id"] == rid, where
        data = reply["data"]
        assert data["code"] in codes and set(data) == {"code", "message", "hint"}, where
        assert isinstance(data["message"], str) and data["message"] and "\n" not in data["message"], where
    return len(cases)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    model_dir = tiny_motionllm(0).save_pretrained(tmp_path_factory.mktemp("models") / "tiny")
    client = BackendClient(model=model_dir, device="cpu", env=ENV)
    yield client
    assert client.close() == 0, client.stderr_tail()


def test_malformed_lines_get_errors_and_the_server_keeps_serving(backend):
    sent = []

    @settings(max_examples=25, deadline=None, database=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(st.lists(malformed(), min_size=45, max_size=60))
    def batch(cases):
        sent.append(send_and_check(backend, cases))

    batch()
    sent.append(send_and_check(backend, big_cases()))
    assert sum(sent) >= MIN_LINES
    assert backend.alive
    status = backend.call("status", timeout=10)
    assert status["event"] == "status" and status["data"]["state"] == "idle"
    result = backend.call("generate", {"text": "a man waves", "seconds": 2, "max_rounds": 2, "max_text_tokens": 8},
                          timeout=60)
    assert result["event"] == "result" and result["data"]["rounds"] >= 1
    assert 9 <= len(result["data"]["codes"]) <= 11


@pytest.mark.parametrize("rid", ["refine-1", 42])
def test_an_over_long_request_gets_an_error_with_its_id(backend, rid):
    """The client can end that request instead of waiting for a reply that never comes."""
    rid = backend.request("refine", {"instruction": "x" * (P.MAX_LINE_BYTES + 1)}, id=rid)
    reply = backend.wait(rid, timeout=120)
    assert reply["event"] == "error" and reply["id"] == rid and reply["data"]["code"] == P.LINE_TOO_LONG
    assert backend.call("status", timeout=30)["event"] == "status"      # and the server keeps serving


def test_peek_id_reads_only_an_id_written_first():
    assert P.peek_id(b'{"id": "j3", "method": "refine", "params": {"clip": {"fps"') == "j3"
    assert P.peek_id(b' {"id":7,"method"') == 7
    assert P.peek_id(b'{"method": "refine", "id": "j3"') is None
    assert P.peek_id(b'{"id": "j3 cut off') is None and P.peek_id(b"[[[[") is None

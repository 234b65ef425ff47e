"""The backend protocol: message shapes, limits, request validation and the motion payload codec.

Newline-delimited JSON over the server's stdin/stdout (DESIGN.md, "Backend protocol"):
    request  {"id": <str or int>, "method": <name>, "params": {...}}
    reply    {"id": <the request's id>, "event": <name>, "data": {...}}   (`hello`: id null)
Every request ends with exactly one FINAL event (result, error, cancelled, or status for `status`);
jobs may first send queued / progress / round. An error's data is {code, message, hint}; a line
with no usable id is answered with id null. Blank lines are ignored; everything else gets a reply.

Methods (params; what comes back). Sampling params of every model call: greedy (default true),
temperature, top_p, seed (a sampled job without one reports the seed it drew), guidance (the
classifier-free guidance scale of motion codes, 1-10; default the model's own, 1 means none).
  generate   text, seconds?, max_rounds?, max_text_tokens?, payload?, cleanup?, assessor?  -> `progress` {tokens, round};
             `round` {kind: analysis | motion (codes, clip) | assessment (assessment, refinement,
             satisfied), round, tokens}; `result` {clip, codes, transcript (JSON), rounds, finished,
             satisfied, text, seed, tokens, warnings, timings}. The clip is exactly round(seconds * fps)
             frames when seconds is given. A prompt of several parts ("walks, then jumps") or seconds
             above one motion (9.8 s, up to 60 s) runs as a sequence: progress and round events also
             carry part, piece (of a long part), parts (count) and caption; the result adds parts
             [{caption, words, start, frames, seconds, rounds, satisfied}] and seams (frame indices).
  extend     clip, text, seconds? and generate's other params  -> as a sequence generate; the result's
             clip is the given clip (its frames unchanged) followed by the new motion, which starts
             from its last frame; result.take_frames = the given clip's frame count
  refine     clip | codes, instruction and/or text, seconds?, payload?, cleanup?, frames? [A, B],
             part? (BODY_PARTS)  -> `round` (motion), `result` {clip, codes, mode: instructed | direct,
             seed, warnings, timings}; with seconds the clip is exactly round(seconds * fps) frames (a
             client keeps a take's length by sending it); with frames or part (clip only): only frames
             A..B-1 of that body part change, every other value of the clip is returned bit-identical
             (result.frames, part)
  assess     clip | codes, text  -> `round` (assessment), `result` {assessment, refinement, satisfied}
  caption    clip | codes  -> `result` {caption}
  load_model model (directory, .json spec path, or spec object)  -> `result` {model}
  clean      clip, payload?  -> `result` {clip, report}: foot contact cleanup (no model needed)
  cancel     id (a running or queued job)  -> `result` {cancelled, state}; the job ends `cancelled`
  status     -> `status` {state, running, queued, model, device, dtype}, answered at once
  shutdown   -> queued and running jobs end `cancelled`, then `result`, then the server exits 0
Jobs (generate, extend, refine, assess, caption, load_model, clean) run one at a time; a waiting job gets
`queued` {position} (1 = next), again whenever it moves up.

Motion payload: a clip as {fps, joint_names, parents, offsets, rotations, root_translation,
positions, text}; each array is nested lists of numbers OR {"dtype": "float32"|"int32", "shape": [...],
"data": base64 of little-endian values}. Never pickle.

Standard library only: the Blender add-on ships a copy of this file. Must not import numpy, torch,
bpy or irmogen (numpy arrays are handled by duck typing; `Array.to_numpy` imports numpy lazily).
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import sys
import unicodedata
from array import array
from dataclasses import dataclass, field

PROTOCOL_VERSION = 1

# ---- limits ------------------------------------------------------------------------------------
MAX_LINE_BYTES = 16 * 1024 * 1024   # one request line; longer lines are skipped with an error
MAX_ID_CHARS = 200
MAX_INT_ID = 2 ** 63 - 1            # integer ids are signed 64-bit
MAX_PROMPT_CHARS = 1000             # longer prompts are cut at a word boundary (a warning says so);
                                    # the model itself reads at most 256 tokens of a caption
MIN_SECONDS, MAX_SECONDS = 1.0, 9.8  # 9.8 s = 49 motion codes x 4 frames at 20 fps
MAX_SEQUENCE_SECONDS = 60.0         # generate / extend: longer motions are continued part by part
BODY_PARTS = ("whole", "upper", "lower", "arms", "legs")  # what refine's `part` may name (irmogen.splice)
MIN_RANGE_FRAMES = 5                # the model reads no motion from fewer frames
MAX_ROUNDS, DEFAULT_MAX_ROUNDS = 10, 5
# Who writes a round's assessment (reasoning/assessors.py); the default is the one the model card
# measures best ("Who writes the assessments": the larger first-to-final gain, and no final
# assessment contradicted by the motion). Assessment rounds carry `assessed_by` and `contradicted`.
ASSESSORS, DEFAULT_ASSESSOR = ("model", "measured", "checked"), "measured"
MAX_TEXT_TOKENS = 256               # per free-text segment (analysis, assessment, refinement)
MAX_TEMPERATURE = 10.0
MAX_GUIDANCE = 10.0                 # classifier-free guidance scale of motion codes (1: none)
MAX_SEED = 2 ** 63 - 1
MAX_MOTION_CODES = 49               # the longest motion every published model was trained on
MAX_CODE = 65535
MAX_CLIP_FRAMES = 20000
MAX_QUEUE = 32                      # waiting jobs; more are refused with `queue_full`

# ---- names -------------------------------------------------------------------------------------
EVENTS = ("hello", "queued", "progress", "round", "result", "error", "cancelled", "status")
FINAL_EVENTS = frozenset({"result", "error", "cancelled", "status"})
JOB_METHODS = ("generate", "extend", "refine", "assess", "caption", "load_model", "clean")  # one at a time, queue
CONTROL_METHODS = ("cancel", "status", "shutdown")                     # answered at once
METHODS = JOB_METHODS + CONTROL_METHODS
PAYLOAD_FORMS = ("base64", "json")
# error codes of the protocol itself (the backend adds its own IrmogenError codes)
PARSE_ERROR, INVALID_REQUEST, UNKNOWN_METHOD, INVALID_PARAMS = (
    "parse_error", "invalid_request", "unknown_method", "invalid_params")
LINE_TOO_LONG, DUPLICATE_ID, UNKNOWN_JOB, QUEUE_FULL = "line_too_long", "duplicate_id", "unknown_job", "queue_full"
SHUTTING_DOWN, NO_MODEL, INTERNAL, BACKEND_EXITED, TIMEOUT = (
    "shutting_down", "no_model", "internal", "backend_exited", "timeout")

# The SMPL-22 skeleton of every clip (a copy of irmogen.skeleton, which this file may not import).
JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
_DTYPES = {"float32": ("f", "<f4"), "int32": ("i", "<i4")}  # name -> (array typecode, numpy dtype)
_F32_MAX = 3.4028234663852886e38


def limits() -> dict:
    """The limits a client may want to show or enforce before sending (the server's hello carries them)."""
    return {"max_line_bytes": MAX_LINE_BYTES, "max_prompt_chars": MAX_PROMPT_CHARS,
            "seconds": [MIN_SECONDS, MAX_SECONDS], "sequence_seconds": [MIN_SECONDS, MAX_SEQUENCE_SECONDS],
            "body_parts": list(BODY_PARTS), "max_rounds": MAX_ROUNDS,
            "max_text_tokens": MAX_TEXT_TOKENS, "max_motion_codes": MAX_MOTION_CODES, "max_queue": MAX_QUEUE}


class ProtocolError(Exception):
    """A request the server cannot accept; `id` is the request's id when it could be read."""

    def __init__(self, message: str, code: str = INVALID_PARAMS, hint: str | None = None, id=None):
        super().__init__(message)
        self.message, self.code, self.hint, self.id = " ".join(str(message).split()), code, hint, id

    def __str__(self) -> str:
        return self.message

    def data(self) -> dict:
        return error_data(self.code, self.message, self.hint)


def error_data(code: str, message: str, hint: str | None = None) -> dict:
    return {"code": code, "message": " ".join(str(message).split()), "hint": hint}


# ---- typed requests --------------------------------------------------------------------------
@dataclass(frozen=True)
class Sampling:
    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    guidance: float | None = None   # None: the model's default


@dataclass
class Motion:
    """A motion argument: a decoded clip payload or the model's own codes (exactly one is set)."""
    clip: "ClipData | None" = None
    codes: list[int] | None = None


@dataclass
class GenerateParams:
    text: str
    seconds: float | None = None
    max_rounds: int = DEFAULT_MAX_ROUNDS
    max_text_tokens: int = MAX_TEXT_TOKENS
    sampling: Sampling = field(default_factory=Sampling)
    payload: str = "base64"
    warnings: list[str] = field(default_factory=list)
    cleanup: bool = True               # foot contact cleanup of the final motion
    assessor: str = "model"            # who writes assessments: ASSESSORS (reasoning/assessors.py)
    start: "ClipData | None" = None    # extend: the clip the new motion continues


@dataclass
class RefineParams:
    """With `instruction`: instructed refinement (toward `text` when given); without: direct
    refinement of the motion into one matching `text`."""
    motion: Motion
    instruction: str | None = None
    text: str | None = None
    seconds: float | None = None
    sampling: Sampling = field(default_factory=Sampling)
    payload: str = "base64"
    warnings: list[str] = field(default_factory=list)
    cleanup: bool = True               # foot contact cleanup of the refined motion
    frames: tuple[int, int] | None = None  # refine only frames A..B-1 (0-based) ...
    part: str = "whole"                # ... and/or only this body part; the rest stays bit-identical


@dataclass
class AssessParams:
    motion: Motion
    text: str
    max_text_tokens: int = MAX_TEXT_TOKENS
    sampling: Sampling = field(default_factory=Sampling)
    warnings: list[str] = field(default_factory=list)


@dataclass
class CaptionParams:
    motion: Motion
    max_text_tokens: int = MAX_TEXT_TOKENS
    sampling: Sampling = field(default_factory=Sampling)


@dataclass
class CleanParams:
    """Foot contact cleanup of a clip (no model needed)."""
    clip: "ClipData"
    payload: str = "base64"


@dataclass
class CancelParams:
    target: str | int


@dataclass
class LoadModelParams:
    model: str | dict   # our model directory or a .json spec path, or a spec object {"format": ...}


@dataclass
class Request:
    id: str | int
    method: str
    params: object      # one of the *Params classes above (None for status and shutdown)


# ---- parsing ---------------------------------------------------------------------------------
def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_line(line: bytes | str, line_no: int | None = None) -> Request:
    """One request line -> Request, or ProtocolError (with the request's id once it is known)."""
    where = f"line {line_no}" if line_no is not None else "request"
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"{where}: not UTF-8 (byte 0x{line[e.start]:02x} at position {e.start})",
                                PARSE_ERROR, "encode requests as UTF-8 JSON") from None
    try:
        obj = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ProtocolError(f"{where}: not valid JSON ({e.msg} at column {e.colno})", PARSE_ERROR) from None
    except RecursionError:
        raise ProtocolError(f"{where}: JSON nested too deeply", PARSE_ERROR) from None
    except ValueError as e:  # NaN/Infinity, integers of more than 4300 digits
        raise ProtocolError(f"{where}: not valid JSON ({str(e)[:80]})", PARSE_ERROR) from None
    return parse_request(obj)


def parse_request(obj) -> Request:
    """Parsed JSON -> Request; every error names the field at fault and carries the id when valid."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"request: expected a JSON object, got {_kind(obj)}", INVALID_REQUEST)
    if "id" not in obj:
        raise ProtocolError("id: missing", INVALID_REQUEST, "every request needs an id (string or integer)")
    rid = obj["id"]
    if not _valid_id(rid):
        raise ProtocolError(f"id: expected a string of 1..{MAX_ID_CHARS} characters or a 64-bit integer, "
                            f"got {show_value(rid)}", INVALID_REQUEST)
    extra = sorted(set(obj) - {"id", "method", "params"})
    if extra:
        raise ProtocolError(f"{show_value(extra[0])}: unknown field (a request has id, method, params)",
                            INVALID_REQUEST, id=rid)
    method = obj.get("method")
    if not isinstance(method, str):
        raise ProtocolError(f"method: expected a string, got {show_value(method)}", INVALID_REQUEST, id=rid)
    if method not in METHODS:
        raise ProtocolError(f"method: unknown method {show_value(method)} (known: {', '.join(METHODS)})",
                            UNKNOWN_METHOD, id=rid)
    params = obj.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError(f"params: expected an object, got {_kind(params)}", INVALID_PARAMS, id=rid)
    try:
        return Request(rid, method, _PARSERS[method](_Params(params, method)))
    except ProtocolError as e:
        e.id = rid
        raise


def _valid_id(rid) -> bool:
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return -MAX_INT_ID - 1 <= rid <= MAX_INT_ID
    return isinstance(rid, str) and 1 <= len(rid) <= MAX_ID_CHARS


class _Params:
    """Reads one params object; every failure names `params.<key>` and what was expected."""

    def __init__(self, params: dict, method: str):
        self.params, self.method, self.seen = params, method, set()

    def get(self, key: str, default=None, required=False):
        self.seen.add(key)
        if key not in self.params:
            if required:
                raise ProtocolError(f"params.{key}: missing", hint=f"{self.method} needs params.{key}")
            return default
        return self.params[key]

    def done(self) -> None:
        unknown = sorted(set(self.params) - self.seen)
        if unknown:
            raise ProtocolError(f"params.{unknown[0]}: unknown parameter ({self.method} takes "
                                f"{', '.join(sorted(self.seen)) or 'none'})")

    def number(self, key, lo, hi, default=None, integer=False, lo_open=False):
        v = self.get(key, default)
        if v is None and default is None:
            return None
        ok = (isinstance(v, int) if integer else isinstance(v, (int, float))) and not isinstance(v, bool)
        ok = ok and (lo < v if lo_open else lo <= v) and v <= hi  # exact for huge ints; NaN compares False
        if not ok:
            what = "an integer" if integer else "a number"
            lo, hi = (lo, hi) if integer else (f"{lo:g}", f"{hi:g}")
            rng = f"above {lo} and at most {hi}" if lo_open else f"between {lo} and {hi}"
            raise ProtocolError(f"params.{key}: expected {what} {rng}, got {show_value(v)}")
        return int(v) if integer else float(v)

    def flag(self, key, default):
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise ProtocolError(f"params.{key}: expected true or false, got {show_value(v)}")
        return v

    def choice(self, key, options, default):
        v = self.get(key, default)
        if v not in options or not isinstance(v, str):
            raise ProtocolError(f"params.{key}: expected one of {', '.join(options)}, got {show_value(v)}")
        return v

    def text(self, key, warnings: list, required=True):
        v = self.get(key, required=required)
        if v is None and not required:
            return None
        cleaned, note = clean_prompt(v, f"params.{key}")
        if note:
            warnings.append(note)
        return cleaned

    def sampling(self) -> Sampling:
        greedy = self.flag("greedy", True)
        seed = self.number("seed", 0, MAX_SEED, integer=True)
        return Sampling(greedy, self.number("temperature", 0, MAX_TEMPERATURE, 1.0, lo_open=True),
                        self.number("top_p", 0, 1, 1.0, lo_open=True), seed,
                        self.number("guidance", 1, MAX_GUIDANCE))

    def motion(self) -> Motion:
        has_clip, has_codes = "clip" in self.params, "codes" in self.params
        self.seen.update(("clip", "codes"))
        if has_clip == has_codes:
            raise ProtocolError("params.clip / params.codes: give exactly one of them",
                                hint=f"{self.method} needs the motion as a clip payload or as its codes")
        if has_clip:
            return Motion(clip=decode_clip(self.params["clip"], "params.clip"))
        codes = self.params["codes"]
        if (not isinstance(codes, list) or not 1 <= len(codes) <= MAX_MOTION_CODES
                or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= MAX_CODE for c in codes)):
            raise ProtocolError(f"params.codes: expected a list of 1..{MAX_MOTION_CODES} integers in "
                                f"0..{MAX_CODE}, got {show_value(codes)}")
        return Motion(codes=list(codes))


def clean_prompt(value, where: str = "text") -> tuple[str, str | None]:
    """A user's text -> (cleaned text, warning or None). Control characters (Unicode Cc) become spaces
    and lone surrogates are dropped, runs of whitespace collapse to one space; empty -> ProtocolError;
    longer than MAX_PROMPT_CHARS -> cut at the last space before the limit (a warning says so)."""
    if not isinstance(value, str):
        raise ProtocolError(f"{where}: expected text, got {show_value(value)}")
    kept = (" " if unicodedata.category(ch) == "Cc" else ch
            for ch in value if unicodedata.category(ch) != "Cs")
    text = " ".join("".join(kept).split())
    if not text:
        raise ProtocolError(f"{where}: empty (nothing left after removing whitespace and control characters)",
                            hint="describe the motion, e.g. 'a person waves with the right hand'")
    if len(text) <= MAX_PROMPT_CHARS:
        return text, None
    cut = text[:MAX_PROMPT_CHARS + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space >= MAX_PROMPT_CHARS // 2 else cut[:MAX_PROMPT_CHARS]
    return cut, (f"{where}: {len(text)} characters cut to the first {len(cut)} "
                 f"(limit {MAX_PROMPT_CHARS}; the model reads at most 256 tokens)")


def _generate(p: _Params) -> GenerateParams:
    out = GenerateParams(text="")
    out.text = p.text("text", out.warnings)
    out.seconds = p.number("seconds", MIN_SECONDS, MAX_SEQUENCE_SECONDS)
    out.max_rounds = p.number("max_rounds", 1, MAX_ROUNDS, DEFAULT_MAX_ROUNDS, integer=True)
    out.max_text_tokens = p.number("max_text_tokens", 1, MAX_TEXT_TOKENS, MAX_TEXT_TOKENS, integer=True)
    out.sampling, out.payload = p.sampling(), p.choice("payload", PAYLOAD_FORMS, "base64")
    out.cleanup = p.flag("cleanup", True)
    out.assessor = p.choice("assessor", ASSESSORS, DEFAULT_ASSESSOR)
    if p.method == "extend":
        out.start = decode_clip(p.get("clip", required=True), "params.clip")
        if out.start.num_frames < 2:
            raise ProtocolError(f"params.clip: {out.start.num_frames} frame(s); a clip to extend needs at least 2")
    p.done()
    return out


def _frame_range(p: _Params):
    """refine's `frames`: [A, B], whole numbers, 0 <= A, B - A >= MIN_RANGE_FRAMES (B is checked
    against the clip's length by the handler)."""
    v = p.get("frames")
    if v is None:
        return None
    ok = (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
          and 0 <= v[0] and v[1] - v[0] >= MIN_RANGE_FRAMES and v[1] <= MAX_CLIP_FRAMES)
    if not ok:
        raise ProtocolError(f"params.frames: expected [A, B], whole numbers with 0 <= A and B - A >= "
                            f"{MIN_RANGE_FRAMES} (frames A up to, not including, B), got {show_value(v)}")
    return v[0], v[1]


def _refine(p: _Params) -> RefineParams:
    out = RefineParams(motion=p.motion())
    out.instruction = p.text("instruction", out.warnings, required=False)
    out.text = p.text("text", out.warnings, required=out.instruction is None)
    out.seconds = p.number("seconds", MIN_SECONDS, MAX_SECONDS)
    out.sampling, out.payload = p.sampling(), p.choice("payload", PAYLOAD_FORMS, "base64")
    out.cleanup = p.flag("cleanup", True)
    out.frames, out.part = _frame_range(p), p.choice("part", BODY_PARTS, "whole")
    if (out.frames is not None or out.part != "whole") and out.motion.clip is None:
        raise ProtocolError("params.frames / params.part: a range or body part is refined on a clip, not on codes",
                            hint="send the take as params.clip")
    p.done()
    return out


def _assess(p: _Params) -> AssessParams:
    out = AssessParams(motion=p.motion(), text="")
    out.text = p.text("text", out.warnings)
    out.max_text_tokens = p.number("max_text_tokens", 1, MAX_TEXT_TOKENS, MAX_TEXT_TOKENS, integer=True)
    out.sampling = p.sampling()
    p.done()
    return out


def _caption(p: _Params) -> CaptionParams:
    out = CaptionParams(motion=p.motion())
    out.max_text_tokens = p.number("max_text_tokens", 1, MAX_TEXT_TOKENS, MAX_TEXT_TOKENS, integer=True)
    out.sampling = p.sampling()
    p.done()
    return out


def _clean(p: _Params) -> CleanParams:
    out = CleanParams(decode_clip(p.get("clip", required=True), "params.clip"))
    out.payload = p.choice("payload", PAYLOAD_FORMS, "base64")
    p.done()
    return out


def _cancel(p: _Params) -> CancelParams:
    target = p.get("id", required=True)
    if not _valid_id(target):
        raise ProtocolError(f"params.id: expected the id of a job (string or integer), got {show_value(target)}")
    p.done()
    return CancelParams(target)


def _load_model(p: _Params) -> LoadModelParams:
    model = p.get("model", required=True)
    ok = (isinstance(model, str) and model.strip() and "\x00" not in model) or \
        (isinstance(model, dict) and isinstance(model.get("format"), str))
    if not ok:
        raise ProtocolError(f"params.model: expected a model directory or .json spec path, or a spec object "
                            f"with a format, got {show_value(model)}")
    p.done()
    return LoadModelParams(model)


def _no_params(p: _Params) -> None:
    p.done()


_PARSERS = {"generate": _generate, "extend": _generate, "refine": _refine, "assess": _assess, "caption": _caption, "clean": _clean,
            "cancel": _cancel, "load_model": _load_model, "status": _no_params, "shutdown": _no_params}


# ---- writing and reading lines -----------------------------------------------------------------
def peek_id(head: bytes):
    """The id of a request line from its first bytes alone (a line too long to parse), or None.
    Clients write "id" first, as encode_request does: {"id": <string or integer>, ...}."""
    start = head.lstrip()
    if not start.startswith(b"{"):
        return None
    start = start[1:].lstrip()
    if not start.startswith(b'"id"'):
        return None
    rest = start[4:].lstrip()
    if not rest.startswith(b":"):
        return None
    try:
        rid, _ = json.JSONDecoder().raw_decode(rest[1:].lstrip().decode("utf-8", "replace"))
    except ValueError:
        return None
    return rid if _valid_id(rid) else None


def encode_message(obj: dict) -> bytes:
    """One JSON line, pure ASCII (\\u escapes), no NaN: what both sides write."""
    return json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii") + b"\n"


def encode_request(rid, method: str, params: dict | None = None) -> bytes:
    return encode_message({"id": rid, "method": method, "params": params or {}})


def encode_event(rid, event: str, data: dict) -> bytes:
    return encode_message({"id": rid, "event": event, "data": data})


def decode_event(line: bytes | str) -> dict:
    """A reply line -> {"id", "event", "data"}; ProtocolError when it is not one (client side)."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"reply: not valid JSON ({str(e)[:80]})", PARSE_ERROR) from None
    if (not isinstance(obj, dict) or obj.get("event") not in EVENTS or not isinstance(obj.get("data"), dict)
            or "id" not in obj):
        raise ProtocolError(f"reply: not an event line: {show_value(obj)}", INVALID_REQUEST)
    return obj


# ---- motion payload --------------------------------------------------------------------------
@dataclass
class Array:
    """A decoded array: its dtype name, shape and values in C order (a flat sequence)."""
    dtype: str
    shape: tuple[int, ...]
    flat: object   # array.array or list of numbers

    def tolist(self):
        return _nest(list(self.flat), self.shape)

    def to_numpy(self):
        import numpy as np  # lazily: this module must import without numpy
        return np.asarray(self.flat, dtype=_DTYPES[self.dtype][1]).reshape(self.shape)


@dataclass
class ClipData:
    fps: float
    positions: Array                    # (T, 22, 3)
    rotations: Array | None = None      # (T, 22, 4) wxyz
    root_translation: Array | None = None  # (T, 3)
    offsets: Array | None = None        # (22, 3)
    text: str = ""

    @property
    def num_frames(self) -> int:
        return self.positions.shape[0]


def encode_array(values, form: str = "base64", dtype: str = "float32"):
    """A numpy array (duck-typed) or nested lists -> nested lists ("json") or the base64 object."""
    if form not in PAYLOAD_FORMS or dtype not in _DTYPES:
        raise ValueError(f"encode_array: form {form!r} / dtype {dtype!r} not supported")
    code, np_dtype = _DTYPES[dtype]
    if hasattr(values, "shape") and hasattr(values, "astype"):  # numpy fast path without importing numpy
        values = values.astype(np_dtype)
        if form == "json":
            return values.tolist()
        shape, raw = list(values.shape), values.tobytes()
    else:
        shape, flat = _flatten(values, None, "array")
        if form == "json":
            return _nest([float(v) if code == "f" else int(v) for v in flat], shape)
        packed = array(code, flat)
        if sys.byteorder == "big":
            packed.byteswap()
        raw = packed.tobytes()
    return {"dtype": dtype, "shape": shape, "data": base64.b64encode(raw).decode("ascii")}


def decode_array(obj, where: str, shape: tuple, dtype: str = "float32") -> Array:
    """Either payload form -> Array; `shape` may hold None for a free dimension (frames, >= 1)."""
    code, _ = _DTYPES[dtype]
    if isinstance(obj, dict):
        got_shape = obj.get("shape")
        if set(obj) != {"dtype", "shape", "data"} or obj.get("dtype") != dtype or not isinstance(obj["data"], str):
            raise ProtocolError(f"{where}: expected {{\"dtype\": \"{dtype}\", \"shape\": [...], \"data\": base64}} "
                                f"or nested lists, got keys {sorted(obj)} dtype {show_value(obj.get('dtype'))}")
        if not (isinstance(got_shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                     for n in got_shape)):
            raise ProtocolError(f"{where}.shape: expected a list of non-negative integers, got {show_value(got_shape)}")
        _check_shape(tuple(got_shape), shape, where)
        try:
            raw = base64.b64decode(obj["data"], validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(f"{where}.data: not valid base64") from None
        count = math.prod(got_shape)
        if len(raw) != 4 * count:
            raise ProtocolError(f"{where}.data: {len(raw)} bytes, shape {got_shape} needs {4 * count}")
        flat = array(code)
        flat.frombytes(raw)
        if sys.byteorder == "big":
            flat.byteswap()
        got = tuple(got_shape)
    else:
        got, flat = _flatten(obj, len(shape), where)
        got = tuple(got)
        _check_shape(got, shape, where)
        if code == "i" and not all(isinstance(v, int) for v in flat):
            raise ProtocolError(f"{where}: expected integers")
    bound = _F32_MAX if code == "f" else 2 ** 31 - 1
    if not all(-bound <= v <= bound for v in flat):  # NaN compares False
        raise ProtocolError(f"{where}: contains NaN, infinite or out-of-range values")
    return Array(dtype, got, flat)


def _check_shape(got: tuple, want: tuple, where: str) -> None:
    ok = len(got) == len(want) and all(w == g if w is not None else 1 <= g <= MAX_CLIP_FRAMES
                                       for g, w in zip(got, want))
    if not ok:
        spec = "(" + ", ".join("T" if w is None else str(w) for w in want) + ")"
        raise ProtocolError(f"{where}: shape {list(got)}, expected {spec} with 1 <= T <= {MAX_CLIP_FRAMES}")


def _flatten(obj, ndim: int | None, where: str) -> tuple[list[int], list]:
    """Rectangular nested lists of numbers -> (shape, flat values); `ndim` None accepts any depth."""
    shape, level = [], obj
    while isinstance(level, list) and (ndim is None or len(shape) < ndim):
        shape.append(len(level))
        if not level:
            break
        level = level[0]
    flat = [obj]
    for depth, n in enumerate(shape):
        nxt = []
        for item in flat:
            if not isinstance(item, list) or len(item) != n:
                raise ProtocolError(f"{where}: ragged or not a list at depth {depth} (expected {n} items)")
            nxt.extend(item)
        flat = nxt
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise ProtocolError(f"{where}: expected numbers nested {len(shape)} deep")
    return shape, flat


def _nest(flat: list, shape) -> list:
    for n in reversed(list(shape)[1:]):
        flat = [flat[i:i + n] for i in range(0, len(flat), n)] if n else []
    return flat


def encode_clip(fps: float, offsets, rotations, root_translation, positions, text: str = "",
                form: str = "base64") -> dict:
    """The clip payload (DESIGN.md clip contract); arrays as numpy arrays or nested lists."""
    return {"fps": float(fps), "joint_names": list(JOINT_NAMES), "parents": list(PARENTS),
            "offsets": encode_array(offsets, form), "rotations": encode_array(rotations, form),
            "root_translation": encode_array(root_translation, form),
            "positions": encode_array(positions, form), "text": text}


def decode_clip(obj, where: str = "clip") -> ClipData:
    """A clip payload -> ClipData. `fps` and `positions` are required; the other arrays are optional
    but checked (shapes agree on T frames); joint names and parents must be the SMPL-22 ones."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"{where}: expected a clip object, got {_kind(obj)}")
    known = {"fps", "joint_names", "parents", "offsets", "rotations", "root_translation", "positions", "text"}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ProtocolError(f"{where}.{unknown[0]}: unknown clip field (known: {', '.join(sorted(known))})")
    fps = obj.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 1 <= fps <= 1000:
        raise ProtocolError(f"{where}.fps: expected a number between 1 and 1000, got {show_value(fps)}")
    if "positions" not in obj:
        raise ProtocolError(f"{where}.positions: missing")
    for key, want in (("joint_names", list(JOINT_NAMES)), ("parents", list(PARENTS))):
        if key in obj and obj[key] != want:
            raise ProtocolError(f"{where}.{key}: not the SMPL-22 {key.replace('_', ' ')} (got {show_value(obj[key])})")
    text = obj.get("text", "")
    if not isinstance(text, str):
        raise ProtocolError(f"{where}.text: expected text, got {show_value(text)}")
    clip = ClipData(float(fps), decode_array(obj["positions"], f"{where}.positions", (None, 22, 3)), text=text)
    for key, shape in (("rotations", (None, 22, 4)), ("root_translation", (None, 3)), ("offsets", (22, 3))):
        if key in obj:
            arr = decode_array(obj[key], f"{where}.{key}", shape)
            if shape[0] is None and arr.shape[0] != clip.num_frames:
                raise ProtocolError(f"{where}.{key}: {arr.shape[0]} frames, positions have {clip.num_frames}")
            setattr(clip, key, arr)
    return clip


# ---- messages ------------------------------------------------------------------------------
def _kind(v) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(v), "a number")


def show_value(v) -> str:
    """A short JSON rendering of a value for error messages."""
    try:
        s = json.dumps(v, ensure_ascii=False)
    except (ValueError, TypeError):
        s = f"<{_kind(v)}>"
    return s if len(s) <= 40 else s[:37] + "..."

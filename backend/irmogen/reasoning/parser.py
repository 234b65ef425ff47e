"""Reading and writing IRMoGen traces: text <-> Trace (analysis, rounds, finished), and JSON.

`parse_trace` follows the response grammar of template.py left to right, with the decoder's rules
for free text (a segment runs to ITS closing tag, whatever else it contains), so what the decoder
streamed and what the parser reads agree. It never raises: a truncated or malformed trace yields the
rounds it could read plus `errors` saying what was wrong, and a round only depends on the text
before its end, so damage late in a trace never changes the rounds before it.
`render_trace` writes the text of a Trace; `parse_trace(render_trace(t)) == t` for well-formed t.
`Trace.to_json`/`from_json` is the transcript format the CLI writes and a clip stores.

Pure Python: no torch, no transformers, no bpy.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..errors import IrmogenError
from ..llm.tokens import MOTION_END, MOTION_START, codes_to_text
from . import template as T

TRANSCRIPT_FORMAT = "irmogen-trace"
TRANSCRIPT_VERSION = 1
_CODES_RE = re.compile(r"(?:<Motion_\d+>)*")
_CODE_RE = re.compile(r"<Motion_(\d+)>")


@dataclass
class Round:
    codes: list[int]
    assessment: str | None = None
    refinement: str | None = None
    # Who wrote the assessment ("model" or "measured", reasoning/assessors.py) and the clauses of a
    # model's assessment that measurements contradict ([{"clause", "fact"}]); not part of the text.
    author: str = field(default="model", compare=False)
    contradicted: list = field(default_factory=list, compare=False)


@dataclass
class Trace:
    analysis: str | None = None
    rounds: list[Round] = field(default_factory=list)
    finished: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def satisfied(self) -> bool:
        """The model's last refinement is exactly "No refinements needed." (ignoring outer spaces)."""
        return bool(self.rounds) and (self.rounds[-1].refinement or "").strip() == T.NO_REFINEMENT

    @property
    def final_codes(self) -> list[int] | None:
        """The last motion span's codes (the motion the trace settles on), None without a motion."""
        return list(self.rounds[-1].codes) if self.rounds else None

    def to_dict(self) -> dict:
        return {"format": TRANSCRIPT_FORMAT, "version": TRANSCRIPT_VERSION, "analysis": self.analysis,
                "rounds": [{"codes": [int(c) for c in r.codes], "assessment": r.assessment,
                            "refinement": r.refinement, "assessed_by": r.author,
                            "contradicted": list(r.contradicted)} for r in self.rounds],
                "finished": self.finished}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | dict, where: str = "transcript") -> "Trace":
        """Read a transcript (JSON text or the decoded dict); IrmogenError names the bad field."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as e:
                raise IrmogenError(f"{where}:{e.lineno}: not valid JSON ({e.msg})") from e
        if not isinstance(data, dict) or data.get("format", TRANSCRIPT_FORMAT) != TRANSCRIPT_FORMAT:
            raise IrmogenError(f"{where}: not an {TRANSCRIPT_FORMAT} transcript")
        rounds = data.get("rounds", [])
        if not isinstance(rounds, list):
            raise IrmogenError(f"{where}: field 'rounds' must be a list")
        out = cls(analysis=_opt_str(data.get("analysis"), f"{where}: field 'analysis'"),
                  finished=bool(data.get("finished", False)))
        for k, r in enumerate(rounds):
            at = f"{where}: rounds[{k}]"
            codes = r.get("codes") if isinstance(r, dict) else None
            if not isinstance(codes, list) or not all(isinstance(c, int) and c >= 0 for c in codes):
                raise IrmogenError(f"{at}.codes must be a list of non-negative integers")
            contradicted = r.get("contradicted") or []
            if not isinstance(contradicted, list) or not all(isinstance(c, dict) for c in contradicted):
                raise IrmogenError(f"{at}.contradicted must be a list of objects")
            out.rounds.append(Round(codes, _opt_str(r.get("assessment"), f"{at}.assessment"),
                                    _opt_str(r.get("refinement"), f"{at}.refinement"),
                                    _opt_str(r.get("assessed_by"), f"{at}.assessed_by") or "model", contradicted))
        return out


def _opt_str(value, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise IrmogenError(f"{where} must be text or null, got {type(value).__name__}")
    return value


# ---- writing ---------------------------------------------------------------------------------
def render_trace(trace: Trace) -> str:
    """The response text of a trace (from `<think>`; no prompt, no eos).

    An unfinished trace ends after its last round's `[/assess]\\n`; missing texts render as "".
    """
    parts = [T.RESPONSE_OPEN, trace.analysis or "", T.AFTER_ANALYSIS]
    for k, r in enumerate(trace.rounds):
        if k:
            parts.append(T.NEXT_ROUND)
        parts += [codes_to_text(r.codes), T.AFTER_MOTION, r.assessment or "", T.REFINEMENT_PREFIX,
                  r.refinement or "", T.AFTER_REFINEMENT]
    if trace.finished:
        parts.append(T.FINISH)
    return "".join(parts)


# ---- reading ---------------------------------------------------------------------------------
class _Reader:
    """A cursor over the text that records an error instead of raising."""

    def __init__(self, text: str):
        self.text, self.pos, self.errors = text, 0, []

    def expect(self, literal: str, what: str, skip: bool = True) -> bool:
        """Consume `literal` at the cursor; else (if `skip`) jump past its next occurrence, an error."""
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        i = self.text.find(literal, self.pos) if skip else -1
        if i < 0:
            self.errors.append(f"missing {what} at character {self.pos}")
            return False
        self.errors.append(f"unexpected text {_clip(self.text[self.pos:i])!r} before {what} at character {self.pos}")
        self.pos = i + len(literal)
        return True

    def until(self, stop: str, what: str) -> tuple[str, bool]:
        """Free text up to `stop` (consumed); at the end of the text: the rest and False."""
        i = self.text.find(stop, self.pos)
        if i < 0:
            rest, self.pos = self.text[self.pos:], len(self.text)
            self.errors.append(f"{what} not closed by {stop!r} (truncated?)")
            return rest, False
        out, self.pos = self.text[self.pos:i], i + len(stop)
        return out, True

    def at_end(self) -> bool:
        return not self.text[self.pos:].strip()


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[:n] + "..."


def parse_trace(text: str) -> Trace:
    """Read a response (optionally preceded by its prompt) into a Trace; never raises."""
    r = _Reader(text if isinstance(text, str) else "")
    trace = Trace(errors=r.errors)
    think = r.text.find(T.THINK_OPEN + T.PLAN_OPEN)  # the prompt itself mentions "<think>"
    think = think if think >= 0 else r.text.find(T.THINK_OPEN)
    if think < 0:
        r.errors.append("missing <think>")
    else:
        r.pos = think + len(T.THINK_OPEN)
    r.expect(T.plan(T.P_ANALYZE), "the analysis plan")
    if r.expect(T.ANALYZE_OPEN, "[analyze]"):
        trace.analysis, ok = r.until(T.ANALYZE_CLOSE, "the analysis")
        if not ok:
            return trace
        r.expect(T.NEWLINE + T.plan(T.P_GENERATE) + T.GENERATE_OPEN, "the generation plan")
    while _read_round(r, trace):
        pass
    return trace


def _read_round(r: _Reader, trace: Trace) -> bool:
    """Read one round onto `trace`; True when another round should follow."""
    if not r.expect(MOTION_START, "<Motion>"):
        return False
    k = len(trace.rounds) + 1
    body, ok = r.until(MOTION_END, f"the motion of round {k}")
    if not ok:
        return False  # an unclosed span is not a motion: it is dropped (the error says so)
    if not _CODES_RE.fullmatch(body):
        r.errors.append(f"round {k}: motion span holds text other than motion codes")
    rnd = Round([int(c) for c in _CODE_RE.findall(body)])
    trace.rounds.append(rnd)
    if not r.expect(T.AFTER_MOTION, f"the assessment opening of round {k}"):
        return False
    rnd.assessment, ok = r.until(T.REFINEMENT_PREFIX, f"the assessment of round {k}")
    if not ok:
        return False
    rnd.refinement, ok = r.until(T.ASSESS_CLOSE, f"the refinement of round {k}")
    if not ok:
        return False
    r.expect(T.NEWLINE, f"the newline after round {k}", skip=False)
    nxt, fin = r.text.find(T.NEXT_ROUND, r.pos), r.text.find(T.FINISH, r.pos)
    if fin >= 0 and (nxt < 0 or fin < nxt):
        r.expect(T.FINISH, "the finish plan")
        trace.finished = True
        if not r.at_end():
            r.errors.append(f"text after </think>: {_clip(r.text[r.pos:].strip())!r}")
        if not trace.satisfied:
            r.errors.append(f"finished although round {k}'s refinement is not {T.NO_REFINEMENT!r}")
        return False
    if nxt < 0:
        if not r.at_end():
            r.errors.append(f"round {k} is followed by neither the refine nor the finish plan")
        return False
    if trace.satisfied:
        r.errors.append(f"round {k} says {T.NO_REFINEMENT!r} but the trace goes on")
    r.expect(T.NEXT_ROUND, "the refine plan")
    return True


def parse_ids(ids, tokenizer) -> Trace:
    """Parse token ids (the response part) with the tokenizer that produced them."""
    return parse_trace(tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False))

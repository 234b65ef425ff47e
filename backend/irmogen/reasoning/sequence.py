"""Prompts of several actions in order, and motions longer than one model motion.

`split_prompt` turns "a person walks forward, then jumps" into standalone captions the model knows
("a person walks forward", "a person jumps"); `plan` gives each part its exact frame count (shares
follow what a part asks: travelling takes longer than a jump, unless the text says "for 3 seconds"),
cutting any part longer than one motion (9.8 s) into continued pieces of the same caption;
`run_sequence` generates the pieces in order, each in its own reasoning rounds, and places each on
the previous one's last frame (splice.continue_from), so one clip of exactly the asked length comes out.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..clip import MODEL_FPS
from ..errors import IrmogenError
from .. import splice

MAX_SECONDS = 60.0          # the longest clip a request may ask for
PIECE_SECONDS = 8.0         # a long part is cut into pieces this long at most (one motion: 9.8 s)
ONE_MOTION_SECONDS = 9.8    # 49 codes * 4 frames at 20 fps
MIN_PART_SECONDS = 1.0      # shorter parts cannot show an action and are refused

_SEPARATORS = re.compile(r"\s*(?:,|;|\.)?\s*\b(?:and then|after that|afterwards|followed by|finally|then)\b\s*,?\s*"
                         r"|\s*[;.]\s+|\s*,\s*(?:and\s+)?", re.I)
_SUBJECT = re.compile(r"^(?:a|the|this|one)\s+(?:person|man|woman|figure|character|human|guy|girl|boy|dancer)\b"
                      r"|^(?:someone|somebody|he|she|they)\b", re.I)
_PRONOUN = re.compile(r"^(?:he|she|they)\b\s*", re.I)
_SECONDS = re.compile(r"\s*(?:\(\s*(\d+(?:\.\d+)?)\s*s(?:ec(?:ond)?s?)?\s*\)|\bfor\s+(\d+(?:\.\d+)?)\s*"
                      r"(?:s|secs?|seconds?)\b)", re.I)
# Words that mean the part travels (it gets a longer share) or is a brief action (a shorter one).
_LONG = re.compile(r"\b(walk|jog|run|sprint|stroll|march|circle|travel|sneak|skip|hop|dance|crawl|swim|"
                   r"step|steps|pace|wander|climb)", re.I)
_SHORT = re.compile(r"\b(jump|kick|punch|wave|stop|turn|spin|stand|sit|bow|clap|throw|crouch|squat|"
                    r"nod|raise|lift|point|reach|fall|leap|duck)", re.I)
_BRIEF_SECONDS, _DEFAULT_SECONDS, _LONG_SECONDS = 2.5, 3.0, 4.0


# A bare action at the end of a caption -> the fuller wording training captions use for it (and
# the only wording the shipped model acts on: "a person waves" raises no hand, "waves with the
# right hand" does; "turns around" alone does not turn). A side the user names is never replaced.
_FULLER = [
    (re.compile(r"\bwaves$"), "waves with the right hand"),
    (re.compile(r"\bcrouches$"), "crouches down"),
    (re.compile(r"\bturns around$"), "turns around to the left"),
    (re.compile(r"\bin a circle$"), "in a circle to the left"),   # training captions always name the side
]


def fuller(caption: str) -> str:
    for bare, full in _FULLER:
        caption = bare.sub(full, caption)
    return caption


@dataclass
class Part:
    caption: str              # standalone caption the model is given
    words: str                # the prompt's own words for this part
    seconds: float | None     # fixed by the text ("for 3 seconds"), else None
    frames: int = 0           # planned length
    start: int = 0            # first frame of the part in the output clip


def _third_person(verb: str) -> str:
    v = verb.lower()
    if v.endswith("s") and not v.endswith("ss") or v in ("is", "does"):
        return verb
    if v.endswith(("ch", "sh", "x", "o", "ss", "z")):
        return verb + "es"
    if v.endswith("y") and len(v) > 2 and v[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _standalone(words: str, subject: str) -> str:
    """A part's words as a caption with a subject: "then jumps" -> "a person jumps"."""
    w = words.strip(" ,.;").strip()
    if _SUBJECT.match(w):
        return _PRONOUN.sub(subject + " ", w) if _PRONOUN.match(w) else w
    lower = w[0].lower() + w[1:]
    if re.match(r"^(?:a|an)\s", lower):          # "followed by a jump"
        return f"{subject} does {lower}"
    first, _, rest = lower.partition(" ")
    if first.endswith("ly") and rest:            # "slowly walk ..." keeps the adverb first
        verb, _, tail = rest.partition(" ")
        return f"{subject} {first} {_third_person(verb)} {tail}".strip()
    if first.endswith("ing"):                    # "walking forward" reads as a caption too
        return f"{subject} is {lower}"
    # An imperative ("stop and wave"): every verb after "and" agrees with the subject too.
    rest = re.sub(r"\band (\w+)", lambda m: "and " + (m.group(1) if m.group(1).endswith(("s", "ing"))
                                                      else _third_person(m.group(1))), rest)
    return f"{subject} {_third_person(first)} {rest}".strip()


def split_prompt(text: str) -> list[Part]:
    """Ordered parts of a prompt. Splits on "then", "and then", "after that", "followed by",
    "finally", sentence ends and commas in a sequence; a piece that starts with "-ing" or "while"
    stays with the one before it (it describes the same action)."""
    text = " ".join(str(text).split())
    if not text:
        raise IrmogenError("text: the prompt is empty")
    pieces = [p for p in _SEPARATORS.split(text) if p and p.strip(" ,.;")]
    merged: list[str] = []
    for p in pieces:
        first = p.strip().split(" ")[0].lower()
        if merged and (first.endswith("ing") or first in ("while", "with", "without", "as", "slowly", "quickly")
                       and len(p.split()) < 3):
            merged[-1] = f"{merged[-1]}, {p.strip()}"
        else:
            merged.append(p.strip())
    m = _SUBJECT.match(merged[0])
    subject = m.group(0).lower() if m and not _PRONOUN.match(merged[0]) else "a person"
    parts = []
    for words in merged:
        secs = None
        found = _SECONDS.search(words)
        if found:
            secs = float(found.group(1) or found.group(2))
            words = _SECONDS.sub("", words).strip()
        if words:
            parts.append(Part(fuller(_standalone(words, subject)), words, secs))
    if not parts:
        raise IrmogenError(f"text: no action found in {text!r}")
    return parts


def nominal_seconds(part: Part) -> float:
    """How long a part would like to be: travelling longer than a brief action."""
    if part.seconds is not None:
        return part.seconds
    if _LONG.search(part.words):
        return _LONG_SECONDS
    return _BRIEF_SECONDS if _SHORT.search(part.words) else _DEFAULT_SECONDS


def plan(parts: list[Part], seconds: float | None, fps: float = MODEL_FPS) -> list[Part]:
    """Give every part its frame count so the whole is exactly round(seconds * fps) frames (or the
    sum of the parts' own lengths when no total is asked). Fixed parts keep their seconds; the
    others share the rest in proportion to what they ask."""
    if seconds is not None:
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
            raise IrmogenError(f"seconds: {seconds!r} must be a number in (0, {MAX_SECONDS:g}]")
    wants = [nominal_seconds(p) for p in parts]
    total = float(seconds) if seconds is not None else sum(wants)
    if total > MAX_SECONDS:
        raise IrmogenError(f"seconds: the parts ask for {total:g} s in all; at most {MAX_SECONDS:g} s")
    fixed = sum(p.seconds for p in parts if p.seconds is not None)
    free = sum(w for p, w in zip(parts, wants) if p.seconds is None)
    rest = total - fixed
    if rest < -1e-9 or (free and rest < MIN_PART_SECONDS * 0.5):
        raise IrmogenError(f"seconds: {total:g} s is too short for parts fixed at {fixed:g} s")
    shares = [p.seconds if p.seconds is not None else rest * w / free for p, w in zip(parts, wants)]
    if min(shares) * fps < 2 or (len(parts) > 1 and min(shares) < MIN_PART_SECONDS * 0.5):
        raise IrmogenError(f"seconds: {total:g} s leaves a part under {MIN_PART_SECONDS * 0.5:g} s",
                           hint="ask for more seconds or fewer actions")
    # Whole frames per part whose sum is exactly the total: cumulative rounding.
    n_total = splice.frames_for(total, fps)
    edges = [0]
    acc = 0.0
    for s in shares:
        acc += s
        edges.append(int(round(acc / total * n_total)))
    edges[-1] = n_total
    for p, a, b in zip(parts, edges, edges[1:]):
        p.start, p.frames = a, b - a
    return parts


def pieces(part: Part, fps: float = MODEL_FPS) -> list[int]:
    """Frame counts of the continued pieces a part is generated in (one unless it is long)."""
    n = math.ceil(part.frames / (PIECE_SECONDS * fps))
    base, extra = divmod(part.frames, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


@dataclass
class PartEvent:
    """A reasoning event of one part (piece) of a sequence."""
    part: int                 # 0-based index of the part
    piece: int                # 0-based piece of a long part
    caption: str
    event: object             # the reasoning.decoder event
    kind: str = "part"


@dataclass
class SequenceDone:
    clip: object              # the whole clip (irmogen.clip.Clip)
    parts: list[dict]         # per part: caption, words, start, frames, rounds, satisfied
    seams: list[int]          # frame indices where one piece follows another
    kind: str = "sequence_done"


def run_sequence(model, text: str, *, seconds: float | None = None, start_clip=None, generate=None,
                 **opts) -> Iterator:
    """Generate every part in order and yield PartEvents, then one SequenceDone.

    `generate(model, caption, seconds=..., **opts)` is the per-piece task (reasoning.tasks.generate
    by default); every piece after the first (or every piece, with `start_clip`) continues from the
    clip so far. The output has exactly the planned frames (plus `start_clip`'s, which are kept).
    """
    from .decoder import CancelledEvent, DoneEvent
    from . import tasks

    generate = generate or tasks.generate
    fps = float(model.config.fps)
    parts = plan(split_prompt(text), seconds, fps)
    so_far, seams, report = start_clip, [], []
    for i, part in enumerate(parts):
        traces = []
        for k, n in enumerate(pieces(part, fps)):
            joined = so_far is not None
            want = n + 1 if joined else n   # a continued piece's first frame lands on the previous end
            done = None
            for ev in generate(model, part.caption, seconds=min(want / fps, ONE_MOTION_SECONDS), **opts):
                if isinstance(ev, CancelledEvent):
                    yield PartEvent(i, k, part.caption, ev)
                    return
                if isinstance(ev, DoneEvent):
                    done = ev
                else:
                    yield PartEvent(i, k, part.caption, ev)
            if done is None or done.final_clip is None:
                raise IrmogenError(f"part {i + 1} ({part.caption!r}): the model produced no motion", code="internal")
            traces.append(done.trace)
            piece = splice.fit_length(done.final_clip, want)
            if joined:
                seams.append(so_far.num_frames)
                so_far = splice.extend(so_far, piece)
            else:
                so_far = piece
        report.append({"caption": part.caption, "words": part.words, "start": part.start + (
            start_clip.num_frames if start_clip is not None else 0), "frames": part.frames,
            "seconds": round(part.frames / fps, 3), "rounds": sum(len(t.rounds) for t in traces),
            "satisfied": all(t.satisfied for t in traces), "traces": [t.to_dict() for t in traces]})
    yield SequenceDone(so_far.with_(text=text), report, seams)


def transcript(text: str, parts: list[dict], seams: list[int]) -> dict:
    """One transcript for a whole sequence: the usual trace fields (every round, tagged with its part,
    so readers of single-motion transcripts still work) plus the parts and where the seams are."""
    analysis, rounds = [], []
    for i, p in enumerate(parts):
        for t in p["traces"]:
            if t.get("analysis"):
                analysis.append(f"part {i + 1} ({p['caption']}): {t['analysis']}")
            rounds += [{**r, "part": i} for r in t["rounds"]]
    first = parts[0]["traces"][0]
    return {"format": first.get("format"), "version": first.get("version"), "text": text,
            "analysis": " ".join(analysis) or None, "rounds": rounds,
            "finished": all(t.get("finished") for p in parts for t in p["traces"]),
            "parts": parts, "seams": seams}


def is_plain(text: str, seconds: float | None) -> bool:
    """One part that fits one motion: the ordinary single-motion path applies."""
    return len(split_prompt(text)) == 1 and (seconds is None or seconds <= ONE_MOTION_SECONDS)

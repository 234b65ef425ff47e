"""Who writes a round's assessment: the model, the measurements, or the model checked by them.

  * "model": the paper's IRMoGen; the LM writes its own assessment and refinement instruction.
  * "measured": the motion just generated is measured (the data engine's facts: travel,
    direction, circle, turning, pace, jumps, posture, raised hands) and compared with what the
    goal text asks for; the assessment states the measured facts and the refinement asks for the
    missing ones ("No refinements needed." when nothing the text asks for is missing). The LM then
    refines from that text. Every sentence is a measured fact, so no measurement contradicts it.
  * "checked": the LM writes; each clause of its assessment that a measurement contradicts is
    returned with the measured fact (the transcript and the panel mark it).

A user's prompt has no goal motion, so the goal is what its words ask for (`expectations`), and
only what the words state is checked: a prompt the rules cannot read is never contradicted.
Needs numpy and the model's VQ decoder (through `facts_of`); must not import bpy.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..engine.compare import Facts, caption_terms, measure
from ..engine.wording import NO_REFINEMENT, degrees, metres, sentence, side_of, times
from ..protocol import ASSESSORS, DEFAULT_ASSESSOR  # noqa: F401  (one home for the names)

TURN_DEG = 45.0           # a heading change at least this large is "a turn"
GAITS = {"walk", "jog", "run", "sneak", "crawl", "hop", "dribble"}


@dataclass(frozen=True)
class Expectation:
    kind: str             # travel still direction circle turn jumps crouch lie hands pace
    asked: str            # what the text asks, as an instruction ("jump", "walk backward")
    met: object           # Facts -> bool


@dataclass
class Verdict:
    author: str                           # "model" or "measured"
    assessment: str | None = None
    refinement: str | None = None
    contradicted: list[dict] = field(default_factory=list)   # [{"clause", "fact"}]


def check_name(name: str) -> str:
    if name not in ASSESSORS:
        from ..errors import IrmogenError
        raise IrmogenError(f"assessor {name!r} is not one of {', '.join(ASSESSORS)}")
    return name


def facts_of(model, codes) -> Facts:
    """Measured facts of the motion the codes decode to."""
    from ..features import features_to_positions
    f = model.decode_codes(codes).astype("float64")
    return measure(features_to_positions(f), f, float(model.config.fps))


# ---- what the words ask for ------------------------------------------------------------------------
def expectations(caption: str) -> list[Expectation]:
    terms = caption_terms(caption)
    w, text = terms.words, " " + caption.lower() + " "
    acts = set(terms.actions)
    out: list[Expectation] = []
    moving = lambda f: f.motion.pace != "still" and f.motion.body_direction is not None
    gait = sorted(acts & GAITS)
    if re.search(r"\b(in place|on the spot|in one spot|stands? still)\b", text):
        out.append(Expectation("still", "stay in place", lambda f: not moving(f)))
    elif gait or w & {"forward", "backward", "backwards", "travel"}:
        verb = gait[0] if gait else "move"
        out.append(Expectation("travel", f"{verb} {'forward' if 'backward' not in text else 'backward'}", moving))
        if "backward" in text:
            out.append(Expectation("direction", f"{verb} backward", lambda f: f.motion.body_direction == "backward"))
        if "circle" in w and gait:
            out.append(Expectation("circle", f"{verb} in a circle", lambda f: f.motion.circle))
    if "turn" in acts and "circle" not in w:
        side = re.search(r"\bturns?\b(?:\s+\w+){0,3}?\s+(?:to the )?(left|right)\b", text)
        around = re.search(r"\bturns? around\b", text)
        least = 135.0 if around else TURN_DEG
        if side:
            sign = 1 if side.group(1) == "left" else -1
            out.append(Expectation("turn", f"turn to the {side.group(1)}",
                                   lambda f, s=sign: s * f.motion.turn_degrees >= least))
        else:
            out.append(Expectation("turn", "turn around" if around else "turn",
                                   lambda f: abs(f.motion.turn_degrees) >= least))
    if acts & {"jump", "hop"} or w & {"leap"}:
        n = terms.count if terms.count and w & {"jump", "hop", "leap", "twice", "once"} else None
        out.append(Expectation("jumps", f"jump {times(n)}" if n else "jump",
                               (lambda f, n=n: abs(f.motion.jumps - n) <= 1 and f.motion.jumps > 0) if n
                               else (lambda f: f.motion.jumps > 0)))
    if acts & {"squat"}:
        out.append(Expectation("crouch", "crouch down", lambda f: f.motion.crouches))
    if "lie" in acts:
        out.append(Expectation("lie", "lie down on the floor", lambda f: f.motion.lying or f.motion.lies_down))
    if acts & {"raise"} and w & {"hand", "arm"} or "above the head" in text or "overhead" in text:
        out.append(Expectation("hands", "raise the hands above the head", lambda f: f.motion.hands_up is not None))
    if "run" in acts:
        out.append(Expectation("pace", "run faster", lambda f: f.motion.pace in ("fast", "very fast")))
    elif re.search(r"\bslowly\b", text):
        out.append(Expectation("pace", "move more slowly", lambda f: f.motion.pace in ("still", "slow", "normal")))
    return out


def missing(caption: str, facts: Facts) -> list[Expectation]:
    return [e for e in expectations(caption) if not e.met(facts)]


# ---- measured facts as words -----------------------------------------------------------------------
def fact_of(kind: str, f: Facts) -> str:
    """The measured fact behind one kind of expectation, as a clause about the motion."""
    m = f.motion
    if kind in ("travel", "still", "direction", "circle", "pace"):
        if m.pace == "still" or m.body_direction is None:
            return "it stays in place"
        way = "in a circle" if m.circle else (m.body_direction or "")
        return f"it moves {way} {metres(m.distance if m.distance > 0.5 else m.path_length)} at a {m.pace} pace"
    if kind == "turn":
        return "it does not turn" if abs(m.turn_degrees) < TURN_DEG else \
            f"it turns {degrees(m.turn_degrees)} to the {side_of(m.turn_degrees)}"
    if kind == "jumps":
        return "both feet stay on the ground" if not m.jumps else f"it jumps {times(m.jumps)}"
    if kind == "crouch":
        return "it crouches" if m.crouches else "the legs stay straight"
    if kind == "lie":
        return "it lies on the floor" if m.lying or m.lies_down else "it stays upright"
    if kind == "hands":
        return "the hands stay below the head" if m.hands_up is None else f"it raises the {m.hands_up} hand above the head"
    raise ValueError(kind)


def measured_assessment(caption: str, facts: Facts) -> tuple[str, str]:
    """(assessment, refinement) written from the measurements of the motion against the text."""
    wanted, gaps = expectations(caption), missing(caption, facts)
    if not gaps:
        shown = list(dict.fromkeys(fact_of(e.kind, facts) for e in wanted)) or [fact_of("travel", facts)]
        head = "The motion matches what the goal asks for" if wanted else "Nothing measured contradicts the goal"
        return f"{head}: {'; '.join(shown)}.", NO_REFINEMENT
    said = list(dict.fromkeys(fact_of(e.kind, facts) for e in gaps))
    asks = list(dict.fromkeys(e.asked for e in gaps))
    return f"The motion misses part of the goal: {'; '.join(said)}.", sentence("; ".join(asks))


# ---- checking the model's own assessment -------------------------------------------------------------
# (pattern on one clause, kind of fact, does the clause claim the fact is present?)
_CLAIMS = (
    (r"\b(no jumps?|never leaves the ground|does not jump|doesn't jump|without jumping)\b", "jumps", False),
    (r"\b(it|person|motion) (jumps|hops|leaps)\b|\bthe jumps are there\b", "jumps", True),
    (r"\b(stays? in place|never travels|does not (travel|move)|in one spot|stays? on the spot)\b", "travel", False),
    (r"\b(walks|jogs|runs|moves|travels|goes) (forward|backward|in a circle|around)\b", "travel", True),
    (r"\b(does not turn|no turn|turn\b.*\bis missing|keeps facing the same)\b", "turn", False),
    (r"\b(it|person) (turns|spins)\b", "turn", True),
    (r"\b(does not crouch|never crouches)\b", "crouch", False),
    (r"\b(it|person) (crouches|squats)\b", "crouch", True),
    (r"\b(never lies|does not lie)\b", "lie", False),
    (r"\b(hands?|arms?) (never goes?|stay) (above|low|below)|never goes? above the head\b", "hands", False),
    (r"\b(raises|lifts) (the|both) (\w+ )?(hands?|arms?)\b", "hands", True),
)
_MATCH = re.compile(r"\b(matches the goal|aligns? well|well aligned|fulfils the goal|almost correct|nearly matches|is close to the goal)\b")


def _present(kind: str, f: Facts) -> bool:
    m = f.motion
    return {"jumps": m.jumps > 0, "travel": m.pace != "still" and m.body_direction is not None,
            "turn": abs(m.turn_degrees) >= TURN_DEG, "crouch": m.crouches, "lie": m.lying or m.lies_down,
            "hands": m.hands_up is not None}[kind]


def contradictions(assessment: str, caption: str, facts: Facts) -> list[dict]:
    """Clauses of a model's assessment that the measured facts contradict, each with the fact."""
    out = []
    for clause in re.split(r"[.;:]|, but |, while ", assessment or ""):
        c = clause.strip().lower()
        if not c:
            continue
        for pattern, kind, claims in _CLAIMS:
            if re.search(pattern, c) and _present(kind, facts) != claims:
                out.append({"clause": clause.strip(), "fact": "measured: " + fact_of(kind, facts)})
                break
        else:
            gaps = missing(caption, facts) if _MATCH.search(c) else []
            if gaps:
                out.append({"clause": clause.strip(), "fact": "measured: " + fact_of(gaps[0].kind, facts)})
    return out

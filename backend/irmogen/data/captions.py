"""Captions for a clip: paraphrases of its source label plus sentences built from measured facts.

A label arrives as one or more base-form verb phrases ("bend down and put something on the floor
with the right hand"), written by `sources`. This module conjugates them ("bends down and puts"),
fills a few sentence templates with neutral subjects, adds sentences made of what `describe`
measured on the motion (direction, distance, turning, pace, jumps, posture, raised limbs), and
swaps left/right words for mirrored clips. Choices are random but seeded by the clip id, so a
rebuild writes the same text. Pure Python; imports only `describe` from the package.
"""
from __future__ import annotations

import random
import re

from .describe import MotionFacts

SUBJECTS = ("a person", "someone", "the person", "a human", "an individual")

# Verbs the conjugator knows; a phrase's first word and any word after "and", "then", "or" or a
# comma is conjugated when it is one of these.
VERBS = frozenset("""
walk run jog jump hop climb hang swing sit dangle descend rock lower drop go hold lean pull push
bend scoop rise lift raise balance punch strike wash dribble shoot turn stretch spin flip kick
dance stride stand step crawl roll get put reach touch throw squat sneak lie circle rotate move
make do perform play fence wave fall land bounce twist cross shuffle sway take crouch stroll march
leap somersault cartwheel pick grab carry travel stay keep cover come spar fight clap look bow skip
tumble pivot glide slide fold extend bring shift start end finish swap trot tiptoe hunch kneel
creep place set
""".split())
IRREGULAR_S = {"be": "is", "have": "has", "do": "does", "go": "goes"}
IRREGULAR_ING = {"lie": "lying", "be": "being", "see": "seeing"}
DOUBLE_FINAL = frozenset("run jog hop sit drop step swim spin get put squat skip stop grab flip dip tap trot cut set".split())
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def third_person(verb: str) -> str:
    if verb in IRREGULAR_S:
        return IRREGULAR_S[verb]
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if len(verb) > 1 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def gerund(verb: str) -> str:
    if verb in IRREGULAR_ING:
        return IRREGULAR_ING[verb]
    if verb in DOUBLE_FINAL:
        return verb + verb[-1] + "ing"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        return verb[:-1] + "ing"
    return verb + "ing"


def conjugate(phrase: str, form: str) -> str:
    """Base-form verb phrase -> third person ("s") or gerund ("ing") form."""
    change = third_person if form == "s" else gerund
    words = phrase.split()
    out = []
    for i, w in enumerate(words):
        core = w.rstrip(",;")
        after_joint = i == 0 or words[i - 1] in ("and", "then", "or") or words[i - 1].endswith(",")
        out.append(change(core) + w[len(core):] if after_joint and core in VERBS else w)
    return " ".join(out)


def join_phrases(items: list[str]) -> str:
    """['a', 'b', 'c'] -> 'a, b and c'."""
    items = [i for i in items if i]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


# ---- mirroring -------------------------------------------------------------------------------
_LR = re.compile(r"\b(left|right)(?=(?:ward|wards|most|hand|handed|side|s)?\b)", re.IGNORECASE)
_CLOCK = re.compile(r"\b(counter-?|anti-?)?clockwise\b", re.IGNORECASE)


def _keep_case(src: str, word: str) -> str:
    return word.capitalize() if src[:1].isupper() else word


def mirror_text(text: str) -> str:
    """Swap left/right (also inside "leftward", "right-hand") and clockwise/counterclockwise."""
    text = _LR.sub(lambda m: _keep_case(m.group(1), "right" if m.group(1).lower() == "left" else "left"), text)
    return _CLOCK.sub(lambda m: _keep_case(m.group(0), "clockwise" if m.group(1) else "counterclockwise"), text)


# ---- measured facts as verb phrases ----------------------------------------------------------
def _amount(metres: float) -> str:
    if metres < 1.25:
        return "about one metre" if metres >= 0.75 else "a short distance"
    n = int(round(metres))
    return "about one metre" if n == 1 else f"about {NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else n} metres"


def _times(n: int) -> str:
    return "" if n == 1 else " twice" if n == 2 else f" {NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else n} times"


def travel_phrase(f: MotionFacts, rng: random.Random, verb: str = "move") -> str | None:
    """'walk forward about three metres slowly'-like base-form phrase, or None when in place."""
    if f.pace == "still" or f.body_direction is None:
        return None
    turn_side = "left" if f.turn_degrees > 0 else "right"
    if f.circle:
        where = rng.choice([f"in a circle to the {turn_side}", f"around in a circle to the {turn_side}"])
    else:
        d = f.body_direction
        where = d if d in ("forward", "backward") else rng.choice([f"to the {d}", f"sideways to the {d}"])
        where += " " + _amount(f.distance if f.distance > 0.5 else f.path_length)
    adverb = {"slow": " slowly", "fast": " quickly", "very fast": " quickly"}.get(f.pace, "")
    if verb in ("jog", "run"):
        adverb = ""
    return f"{verb} {where}{adverb}"


def gait_verb(f: MotionFacts) -> str:
    """The verb a plain description of the travel would use, from pace and jumps."""
    if f.jumps >= 2:
        return "hop"
    return {"fast": "jog", "very fast": "run"}.get(f.pace, "walk")


def turn_phrase(f: MotionFacts, rng: random.Random) -> str | None:
    a, side = abs(f.turn_degrees), "left" if f.turn_degrees > 0 else "right"
    clock = "counterclockwise" if side == "left" else "clockwise"
    if a < 40 or f.circle or f.upside_down:  # facing is meaningless while inverted (cartwheels, flips)
        return None
    if a < 70:
        return f"turn slightly to the {side}"
    if a < 135:
        return rng.choice([f"turn {side}", f"turn to the {side}", f"turn about 90 degrees to the {side}"])
    if a < 225:
        return rng.choice(["turn around", f"turn around to the {side}", f"turn around {clock}"])
    if a < 300:
        return f"turn about {int(round(a / 45) * 45)} degrees to the {side}"
    if a < 450:
        return rng.choice([f"spin a full circle to the {side}", f"turn all the way around {clock}"])
    return f"spin around{_times(int(round(a / 360)))} to the {side}"


def fact_phrases(f: MotionFacts, rng: random.Random, verb: str = "move") -> list[str]:
    """Every measured fact worth saying, as base-form verb phrases, most telling first."""
    out = []
    if f.gets_up:
        out.append("get up from the floor")
    if f.lies_down:
        out.append(rng.choice(["lie down on the floor", "lie down on the ground"]))
    elif f.lying and not f.gets_up:
        out.append("lie on the floor")
    travel = travel_phrase(f, rng, verb)
    if f.jumps:
        where = f" {f.body_direction}" if travel and f.body_direction in ("forward", "backward") else ""
        out.append(f"jump{where}{_times(f.jumps)}")
        travel = None if where else travel
    if travel:
        out.append(travel)
    turn = turn_phrase(f, rng)
    if turn:
        out.append(turn)
    if f.upside_down:
        out.append(rng.choice(["go upside down", "turn upside down"]))
    if f.hands_up:
        what = "both hands" if f.hands_up == "both" else f"the {f.hands_up} hand"
        out.append(rng.choice([f"raise {what} above the head", f"lift {what} over the head"]))
    if f.leg_raised:
        what = "each leg" if f.leg_raised == "both" else f"the {f.leg_raised} leg"
        out.append(f"lift {what} high")
    if f.crouches:
        out.append(rng.choice(["crouch down", "squat down low"]))
    if f.bends_down:
        out.append(rng.choice(["bend down", "bend over"]))
    if not out and f.pace == "still":
        out.append(rng.choice(["stay in place", "stand in one spot", "stay on the spot"]))
    if f.busiest and len(out) < 3:
        out.append(f"move mostly the {f.busiest}")
    elif f.busier_hand and len(out) < 3:
        out.append(f"move mostly the {f.busier_hand} hand")
    return out


# Verbs that say the same thing: a measured fact is not repeated when the label already uses one.
_SAME = [set("get stand rise".split()), set("lie".split()), set("jump hop leap".split()),
         set("turn spin rotate pivot".split()), set("crouch squat".split()), set("bend reach".split()),
         set("raise lift grab reach".split())]
GAIT = frozenset("walk run jog sneak creep crawl dribble stroll march tiptoe shuffle".split())


def _label_verbs(phrase: str) -> set[str]:
    words = phrase.replace(",", " ").split()
    return {w for w in words if w in VERBS}


def not_in_label(facts: list[str], phrase: str) -> list[str]:
    """Drop facts whose verb (or a verb of the same meaning) the label already has; travel stays."""
    used = _label_verbs(phrase)
    keep = []
    for fact in facts:
        verb = fact.split()[0]
        same = set().union(*[g for g in _SAME if verb in g]) | {verb}
        if verb in GAIT or not (same & used):
            keep.append(fact)
    return keep


# ---- sentences -------------------------------------------------------------------------------
def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith(".") else text + "."


def label_captions(phrasings: list[str], rng: random.Random, facts: MotionFacts | None, n: int) -> list[str]:
    """`n` distinct paraphrases of the label (base-form phrasings) in varied templates."""
    adverb = {"slow": " slowly", "fast": " quickly"}.get(facts.pace if facts else "", "")

    def with_pace(p: str) -> str:  # speed words only for travel, and only when the label has none
        gait = bool(_label_verbs(p) & GAIT) and not re.search(r"slow|quick|fast|brisk", p)
        return conjugate(p, "s") + (adverb if gait else "")

    templates = [
        lambda s, p: f"{s} {conjugate(p, 's')}",
        lambda s, p: f"{s} is {conjugate(p, 'ing')}",
        lambda s, p: f"{s} {conjugate(p, 'ing')}",
        lambda s, p: f"{s} {with_pace(p)}",
    ]
    out: list[str] = []
    for attempt in range(8 * n):
        text = _sentence(rng.choice(templates)(rng.choice(SUBJECTS), phrasings[attempt % len(phrasings)]))
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out


def measured_captions(phrasings: list[str], facts: MotionFacts, rng: random.Random, pure: bool) -> list[str]:
    """One or two sentences joining the label with measured facts; plus one made of facts alone
    when `pure` (vague labels, windows of long takes)."""
    label = rng.choice(phrasings)
    facts_lab = not_in_label(fact_phrases(facts, rng, "move"), label)[:2]
    out = []
    if facts_lab:
        s = rng.choice(SUBJECTS)
        out.append(_sentence(f"{s} {conjugate(label, 's')}, {join_phrases([conjugate(p, 'ing') for p in facts_lab])}"))
        if len(facts_lab) > 1 or rng.random() < 0.5:
            s = rng.choice(SUBJECTS)
            out.append(_sentence(f"while {conjugate(label, 'ing')}, {s} {join_phrases([conjugate(p, 's') for p in facts_lab])}"))
    if pure or not out:
        facts_only = fact_phrases(facts, rng, gait_verb(facts))[:3]
        if facts_only:
            out.append(_sentence(f"{rng.choice(SUBJECTS)} {join_phrases([conjugate(p, 's') for p in facts_only])}"))
    return out


def make_captions(phrasings: list[str], facts: MotionFacts, seed: str, vague: bool = False,
                  windowed: bool = False) -> list[str]:
    """All captions of one clip: >= 3 label paraphrases plus measured ones; deterministic in `seed`."""
    if not phrasings:
        raise ValueError("make_captions: a clip needs at least one label phrasing")
    rng = random.Random(seed)
    caps = label_captions(phrasings, rng, facts, 3)
    for c in measured_captions(phrasings, facts, rng, pure=vague or windowed):
        if c not in caps:
            caps.append(c)
    return caps

"""What a motion does and what a caption asks for, measured, and how two of them differ.

`measure` adds what the data engine needs on top of `data.describe` (the step count from the foot
contacts of the 263-d features). `caption_terms` reads a caption: its action classes (from the
verbs), the body parts it names with their sides, repetition counts and its predicate ("jogs in a
circle to the left") in three verb forms. `differences(goal, motion)` lists what the motion does
differently from the goal as structured `Difference`s, most important first; `agreements` lists
what it already gets right. No sentences are written here (that is `wording`).
Pure Python + numpy; imports nothing heavier than `data` from the package.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from ..data.captions import conjugate, gerund
from ..data.describe import MotionFacts, describe
from ..data.layout import pos_tokens

PACES = ("still", "slow", "normal", "fast", "very fast")
CONTACT_SLICE = slice(259, 263)   # HumanML3D foot contacts: left (ankle, toe), right (ankle, toe)
TURN_DIFF_DEG = 60.0              # heading changes differing by less are the same turn
TURN_NONE_DEG = 30.0              # below this a motion "does not turn"
DISTANCE_RATIO, DISTANCE_MIN = 1.6, 0.75   # travel distances differ by this ratio and this many metres
SPEED_RATIO = 1.35
DURATION_RATIO = 1.8

# Verb lemma -> action class. Verbs that say nothing about the action ("move", "do") are absent.
_CLASSES = {
    "walk": "walk stroll march step shuffle", "jog": "jog trot", "run": "run", "sneak": "sneak tiptoe creep",
    "jump": "jump leap bounce skip", "hop": "hop", "turn": "turn spin pivot rotate twist", "kick": "kick",
    "punch": "punch strike", "fight": "fight spar", "throw": "throw shoot", "squat": "squat crouch kneel",
    "lie": "lie fall", "get up": "rise stand get", "bend": "bend scoop pick put place set deposit",
    "reach": "reach grab", "raise": "raise lift stretch", "wave": "wave", "dance": "dance",
    "cartwheel": "cartwheel flip somersault tumble", "roll": "roll", "crawl": "crawl", "climb": "climb",
    "dribble": "dribble", "wash": "wash", "fence": "fence", "clap": "clap", "sit": "sit",
    "balance": "balance", "swing": "swing", "circle": "circle", "touch": "touch bring",
}
ACTION_OF = {verb: cls for cls, verbs in _CLASSES.items() for verb in verbs.split()}
GENERIC = frozenset("move do perform make be have start end finish keep take come go stay look hold".split())
ACTION_GERUND = {"get up": "getting up", "lie": "lying down", "bend": "bending down", "circle": "circling the arms",
                 "fence": "sword fighting", "crunch": "doing cross-body crunches"}
GAITS = ("walk", "jog", "run", "sneak", "hop", "crawl", "dribble")
PARTS = {"hand": "hand", "hands": "hand", "arm": "arm", "arms": "arm", "leg": "leg", "legs": "leg",
         "foot": "foot", "feet": "foot", "knee": "knee", "knees": "knee", "elbow": "elbow", "elbows": "elbow",
         "head": "head", "shoulder": "shoulder", "shoulders": "shoulder", "hip": "hip", "hips": "hip"}
COUNT_WORDS = {"once": 1, "twice": 2, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
               "seven": 7, "eight": 8, "nine": 9, "ten": 10}
TRAVEL_WORDS = ("walk", "jog", "run", "sneak", "crawl", "forward", "backward", "sideways", "metre", "meter",
                "circle", "around", "step", "travel", "stay", "place", "spot")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")   # the tokenisation `layout.pos_tokens` uses


@dataclass(frozen=True)
class Facts:
    motion: MotionFacts
    steps: int          # foot-contact onsets of both feet over the clip


@dataclass(frozen=True)
class Terms:
    """What a caption says, as far as words tell."""
    actions: tuple[str, ...]                 # action classes in caption order (first = main)
    parts: tuple[tuple[str | None, str], ...]  # (side or None, body part) named in the caption
    count: int | None                        # repetitions/steps the caption states
    words: frozenset[str]                    # lemmas of the caption
    pred_s: str | None                       # "jogs in a circle to the left" (third person)
    pred_base: str | None                    # "jog in a circle to the left"


@dataclass(frozen=True)
class Difference:
    kind: str        # action travel direction circle distance turn pace jumps crouch bend lie getup
    #                  lying inverted hands legs side limbs steps duration
    goal: object     # the goal's value (kind-specific: degrees, pace name, side, Terms...)
    motion: object   # the motion's value
    weight: float    # importance; larger first


def count_steps(features: np.ndarray) -> int:
    """Foot-contact onsets (either foot) in (T, 263) features; contacts held >= 2 frames count."""
    c = np.asarray(features)[:, CONTACT_SLICE] > 0.5
    steps = 0
    for foot in (c[:, :2].any(axis=1), c[:, 2:].any(axis=1)):
        m = np.concatenate([[False], foot, [False]]).astype(np.int8)
        starts, ends = np.flatnonzero(np.diff(m) == 1), np.flatnonzero(np.diff(m) == -1)
        steps += int(np.sum(ends - starts >= 2)) - int(bool(foot[0]))  # a contact held from frame 0 is no step
    return max(steps, 0)


def measure(positions: np.ndarray, features: np.ndarray | None = None, fps: float = 20.0) -> Facts:
    """(T, 22, 3) positions (metres, Y up) and optionally their (T', 263) features -> Facts."""
    if features is None:
        from ..features import positions_to_features
        features = positions_to_features(np.asarray(positions, np.float64))
    return Facts(describe(positions, fps), count_steps(features))


# ---- captions --------------------------------------------------------------------------------
_WHILE = re.compile(r"^(while .+?), ((?:a|an|the) [a-z]+ [a-z]+.*|someone .+|somebody .+)$", re.IGNORECASE)


def _predicate(caption: str, tagged: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """('jogs in a circle', 'jog in a circle') from 'A person jogs in a circle.'; (None, None) when
    the caption does not start with a short subject followed by its verb. A leading "while ...,"
    clause moves to the end: "while X, a person Ys" -> ("Ys while X", "Y while X")."""
    text = caption.strip().rstrip(".").strip()
    lead = _WHILE.match(text)
    if lead:
        s, b = _predicate(lead.group(2), pos_tokens(lead.group(2)))
        tail = " " + lead.group(1)[:1].lower() + lead.group(1)[1:]
        return (s + tail if s else None), (b + tail if b else None)
    spans = list(_WORD.finditer(text.lower()))
    if len(spans) != len(tagged):
        return None, None
    head = next((i for i, (_, tag) in enumerate(tagged) if tag in ("VERB", "AUX")), None)
    if head is None or not 1 <= head <= 3 or any(t in ("SCONJ", "ADP", "VERB") for _, t in tagged[:head]):
        return None, None
    pred_s = text[spans[head].start():]
    if tagged[head][1] == "VERB" and spans[head].group().endswith("ing"):
        pred_s = "is " + pred_s  # "someone getting down" -> "is getting down"
    # Base form: drop "is" before a gerund, lemmatise the head verb and verbs joined to it by and/then/or.
    out, i = [], head
    if tagged[head] == ("be", "AUX") and head + 1 < len(tagged) and tagged[head + 1][1] == "VERB":
        i = head + 1
    pos = spans[i].start()
    form = spans[i].group().endswith("ing")
    for j in range(i, len(spans)):
        word, (lemma, tag) = spans[j].group(), tagged[j]
        joined = j == i or spans[j - 1].group() in ("and", "then", "or")
        if tag == "VERB" and joined and (word.endswith("ing") == form) and word != lemma:
            out.append(text[pos:spans[j].start()] + lemma)
            pos = spans[j].end()
    out.append(text[pos:])
    base = "".join(out)
    if tagged[head] == ("be", "AUX") and i == head:
        return pred_s, None  # "is on the floor": no verb to lemmatise
    return pred_s, base


def caption_terms(caption: str) -> Terms:
    tagged = pos_tokens(caption)
    words = [w for w in _WORD.findall(caption.lower())]
    actions = []
    for i, (lemma, tag) in enumerate(tagged):
        if tag == "VERB" and lemma not in GENERIC:
            cls = ACTION_OF.get(lemma, lemma)
            if cls == "get up" and lemma in ("get", "stand") and "up" not in words:
                continue  # "stands in one spot", "gets down": not getting up
            if lemma in ("rotate", "swing", "circle") and "arm" in {l for l, _ in tagged[i + 1:i + 4]}:
                cls = "circle"  # "rotates both arms": arm circles, not a turn of the body
            if cls not in actions and not (cls == "turn" and "cartwheel" in words):
                actions.append(cls)
    for noun, cls in (("salsa", "dance"), ("pirouette", "dance"), ("squat", "squat"), ("kick", "kick"),
                      ("cartwheel", "cartwheel"), ("jump", "jump"), ("swordplay", "fence"), ("crunch", "crunch")):
        if noun in words and cls not in actions:
            actions.append(cls)
    parts, count = [], None
    for k, w in enumerate(words):
        if w in PARTS:
            side = words[k - 1] if k and words[k - 1] in ("left", "right") else None
            side = side or ("both" if k and words[k - 1] == "both" else None)
            if (side, PARTS[w]) not in parts:
                parts.append((side, PARTS[w]))
        if w in COUNT_WORDS and count is None and (w in ("once", "twice") or
                                                   (k + 1 < len(words) and words[k + 1] in ("steps", "times", "hops", "jumps", "squats", "kicks"))):
            count = COUNT_WORDS[w]
    pred_s, pred_base = _predicate(caption, tagged)
    return Terms(tuple(actions), tuple(parts), count, frozenset(l for l, _ in tagged), pred_s, pred_base)


def action_gerund(cls: str) -> str:
    return ACTION_GERUND.get(cls, gerund(cls) if " " not in cls else cls)


def gait(terms: Terms | None, f: Facts) -> str:
    """The verb for a motion's travel: the caption's gait, 'move' under another action, else measured."""
    if terms is not None:
        named = [a for a in terms.actions if a in GAITS]
        if named:
            return named[0]
        if terms.actions:
            return "move"
    return "hop" if f.motion.jumps >= 2 else {"fast": "jog", "very fast": "run"}.get(f.motion.pace, "walk")


def predicate_gerund(terms: Terms) -> str | None:
    return conjugate(terms.pred_base, "ing") if terms.pred_base else None


# ---- mirroring (left <-> right), for checks and symmetric data -------------------------------
_SWAP = {"left": "right", "right": "left"}


def mirror_facts(f: Facts) -> Facts:
    m = f.motion
    sw = lambda v: _SWAP.get(v, v)
    return replace(f, motion=replace(m, turn_degrees=-m.turn_degrees, direction=sw(m.direction),
                                     body_direction=sw(m.body_direction), hands_up=sw(m.hands_up),
                                     leg_raised=sw(m.leg_raised), busier_hand=sw(m.busier_hand)))


# ---- differences -----------------------------------------------------------------------------
def moving(m: MotionFacts) -> bool:
    return m.pace != "still" and m.body_direction is not None


def _mentions(terms: Terms, *lemmas: str) -> bool:
    return bool(terms.words & set(lemmas))


def differences(goal_terms: Terms, goal: Facts, motion_terms: Terms, motion: Facts) -> list[Difference]:
    """What `motion` does differently from the goal, most important first. `goal` facts are
    measured on the goal's own motion, so every difference is one a real motion shows."""
    g, m, out = goal.motion, motion.motion, []

    def add(kind, gv, mv, weight, *related):
        # Facts the goal caption speaks of come first; incidental ones (a measured half-metre
        # drift under "a person throws a ball") last.
        if related:
            weight = weight + 1.5 if _mentions(goal_terms, *related) else 0.6 * weight
        out.append(Difference(kind, gv, mv, weight))

    ga, ma = goal_terms.actions, motion_terms.actions
    if ga and ma and not (set(ga) & set(ma)):
        add("action", goal_terms, motion_terms, 5.0)
    if moving(g) != moving(m):
        far = max(g.distance, g.path_length / 2, m.distance, m.path_length / 2) >= 1.5
        add("travel", g, m, 4.0, *(() if far else TRAVEL_WORDS))
    elif moving(g) and moving(m):
        if g.circle != m.circle:
            add("circle", g, m, 3.5, "circle", "around", "curve")
        elif g.body_direction != m.body_direction and not g.circle:
            add("direction", g.body_direction, m.body_direction, 3.5, "forward", "backward", "left", "right", "sideways")
        elif max(g.distance, m.distance) > DISTANCE_RATIO * max(min(g.distance, m.distance), 1e-3) \
                and abs(g.distance - m.distance) > DISTANCE_MIN and not g.circle:
            add("distance", g.distance, m.distance, 1.5, "far", "metre", "meter")
        if abs(np.log(max(g.speed, 1e-3) / max(m.speed, 1e-3))) > np.log(SPEED_RATIO) and g.pace != m.pace:
            add("pace", g, m, 2.0, "slowly", "quickly", "fast", "slow", "jog", "run", "walk")
        if 1 <= (goal_terms.count or goal.steps) <= 12 and abs(goal.steps - motion.steps) >= 2:
            add("steps", goal_terms.count if goal_terms.count and _mentions(goal_terms, "step") else goal.steps,
                motion.steps, 1.0, "step")
    if not (g.upside_down or m.upside_down or (g.circle and m.circle)):
        gt, mt = g.turn_degrees, m.turn_degrees
        if abs(gt - mt) >= TURN_DIFF_DEG and max(abs(gt), abs(mt)) >= 45:
            add("turn", gt, mt, 3.0, "turn", "spin", "around", "pivot", "rotate")
    if g.jumps != m.jumps and (g.jumps == 0 or m.jumps == 0 or abs(g.jumps - m.jumps) >= 2):
        add("jumps", g.jumps, m.jumps, 2.5, "jump", "hop", "leap")
    for kind, field, weight, related in (("lie", "lies_down", 3.0, ("lie", "floor", "ground")),
                                         ("getup", "gets_up", 3.0, ("get", "rise", "stand")),
                                         ("inverted", "upside_down", 3.0, ("cartwheel", "flip", "handstand")),
                                         ("crouch", "crouches", 2.0, ("squat", "crouch", "kneel")),
                                         ("bend", "bends_down", 2.0, ("bend", "pick", "floor", "put", "deposit"))):
        if getattr(g, field) != getattr(m, field):
            add(kind, getattr(g, field), getattr(m, field), weight, *related)
    if g.lying != m.lying and not (g.lies_down or m.lies_down or g.gets_up or m.gets_up):
        add("lying", g.lying, m.lying, 2.5, "lie", "floor", "ground")
    if g.hands_up != m.hands_up:
        add("hands", g.hands_up, m.hands_up, 2.0, "hand", "arm", "reach", "raise", "grab")
    if g.leg_raised != m.leg_raised:
        add("legs", g.leg_raised, m.leg_raised, 1.5, "leg", "kick", "knee", "foot")
    side = _side_swap(goal_terms, motion_terms)
    if side and not any(d.kind in ("hands", "legs") for d in out):
        add("side", side[0], side[1], 2.5)
    if g.busiest != m.busiest and (g.busiest or m.busiest):
        add("limbs", g.busiest, m.busiest, 1.0, "arm", "leg")
    elif g.busier_hand and m.busier_hand and g.busier_hand != m.busier_hand:
        add("limbs", f"{g.busier_hand} hand", f"{m.busier_hand} hand", 1.0, "hand")
    if max(g.seconds, m.seconds) > DURATION_RATIO * min(g.seconds, m.seconds):
        add("duration", g.seconds, m.seconds, 0.5)
    return sorted(out, key=lambda d: -d.weight)


def _side_swap(goal_terms: Terms, motion_terms: Terms) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """((side, part) wanted, (side, part) used) when the captions name a part on opposite sides."""
    for side, part in goal_terms.parts:
        if side in _SWAP and (_SWAP[side], part) in motion_terms.parts and (side, part) not in motion_terms.parts:
            return (side, part), (_SWAP[side], part)
    return None


def agreements(goal_terms: Terms, goal: Facts, motion_terms: Terms, motion: Facts,
               diffs: list[Difference]) -> list[str]:
    """Aspects the motion already shares with the goal, among: action, direction, circle, turn,
    pace, jumps, posture, hands."""
    g, m, kinds = goal.motion, motion.motion, {d.kind for d in diffs}
    out = []
    if goal_terms.actions and set(goal_terms.actions) & set(motion_terms.actions):
        out.append("action")
    if moving(g) and moving(m) and not kinds & {"direction", "circle", "travel"}:
        out.append("circle" if g.circle else "direction")
    elif not moving(g) and not moving(m):
        out.append("in place")
    if abs(g.turn_degrees) >= 45 and "turn" not in kinds and np.sign(g.turn_degrees) == np.sign(m.turn_degrees):
        out.append("turn")
    if moving(g) and "pace" not in kinds and "travel" not in kinds:
        out.append("pace")
    if g.jumps and "jumps" not in kinds:
        out.append("jumps")
    if (g.crouches or g.lies_down or g.bends_down) and not kinds & {"crouch", "lie", "bend"}:
        out.append("posture")
    if g.hands_up and "hands" not in kinds:
        out.append("hands")
    return out

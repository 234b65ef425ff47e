"""Varied natural sentences for goal analyses, assessments and refinement instructions.

Every sentence is built from measured facts (`compare.Facts`), caption terms (`compare.Terms`) and
the structured differences of `compare.differences`; choices between phrasings come from the
`random.Random` passed in, so a seed reproduces the text. The number of random draws never
depends on left versus right, so a mirrored goal gets exactly the mirrored sentence; "right"
is only ever a side here (never "correct"), so mirroring a text swaps nothing but sides.
Pure Python; imports only `compare` and `data.captions` from the package.
"""
from __future__ import annotations

import random

from ..data.captions import conjugate, join_phrases
from .compare import TRAVEL_WORDS, Difference, Facts, Terms, action_gerund, gait, moving, predicate_gerund

NO_REFINEMENT = "No refinements needed."   # == reasoning.template.NO_REFINEMENT (kept torch-free)
LEVELS = ("completely_wrong", "mostly_wrong", "partly_right", "nearly_right")
POSITIVE = "match"
_NUM = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
GAIT = {"slow": "a slow walk", "normal": "a walk", "fast": "a jog", "very fast": "a run"}
PACE = {"still": "no travel", "slow": "a slow pace", "normal": "a normal walking pace", "fast": "a quick, jogging pace",
        "very fast": "a fast running pace"}
IMPERATIVE = {"get up": "get up", "lie": "lie down", "bend": "bend down", "circle": "circle the arms",
              "fence": "fence with a sword", "crunch": "do cross-body crunches"}
SPEED_OF_GAIT = {"jog": "a jogging pace", "run": "a running pace", "sneak": "a slow, careful pace"}


def number(n: int) -> str:
    return _NUM[n] if 0 <= n < len(_NUM) else str(n)


def metres(x: float) -> str:
    if x < 0.75:
        return "less than a metre"
    n = int(round(x))
    return "about one metre" if n <= 1 else f"about {number(n)} metres"


def degrees(a: float) -> str:
    a = abs(a)
    if 150 <= a < 215:
        return "about half a turn"
    if 330 <= a < 400:
        return "a full turn"
    if a >= 400:
        return f"about {number(int(round(a / 360)))} full turns"
    return f"about {int(round(a / 45.0) * 45)} degrees"


def times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{number(n)} times"


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def sentence(text: str) -> str:
    text = " ".join(text.split()).rstrip(",;")
    return cap(text) if text.endswith((".", "!", "?")) else cap(text) + "."


def side_of(turn: float) -> str:
    return "left" if turn > 0 else "right"


def direction(d: str | None) -> str:
    return {"left": "to the left", "right": "to the right"}.get(d or "", d or "")


def travel(f: Facts, form: str = "s", terms: Terms | None = None) -> str:
    """'walks forward about three metres' (form 's'), base form ('b') or gerund ('ing'); the verb
    is the caption's gait when `terms` name one."""
    m = f.motion
    if not moving(m):
        phrase = "stay in place"
    else:
        verb = gait(terms, f)
        where = (f"in a circle to the {side_of(m.turn_degrees)}" if m.circle
                 else f"{direction(m.body_direction)} {metres(m.distance if m.distance > 0.5 else m.path_length)}")
        phrase = f"{verb} {where}"
    return phrase if form == "b" else conjugate(phrase, form)


def action_of(terms: Terms, f: Facts) -> str:
    """Gerund naming the caption's actions ('jogging and turning'), else the measured gait."""
    if terms.actions:
        return join_phrases([action_gerund(a) for a in terms.actions[:2]])
    if terms.pred_base:
        return predicate_gerund(terms).split(",")[0]
    return travel(f, "ing", terms) if moving(f.motion) else "the movement described"


def goal_predicate(terms: Terms, f: Facts, form: str) -> str:
    """The goal as a verb phrase: from the caption when it parses, else from the facts."""
    if form == "s" and terms.pred_s:
        return terms.pred_s
    if form == "b" and terms.pred_base:
        return terms.pred_base
    if form == "ing" and terms.pred_base:
        return predicate_gerund(terms)
    return travel(f, form, terms)


# ---- analysis --------------------------------------------------------------------------------
def _elements(terms: Terms, f: Facts) -> dict[str, str]:
    """Essential elements of the goal: the caption's words made concrete by the measured motion.
    Measured facts the caption gives no hint of are left out (the model sees only the caption)."""
    m, out = f.motion, {"action": action_of(terms, f)}
    plural = lambda p: "feet" if p == "foot" else p + "s"
    parts = [f"the {s} {p}" if s in ("left", "right") else f"both {plural(p)}" if s == "both"
             else f"the {p}" if p == "head" else f"the {plural(p)}" for s, p in terms.parts[:2]]
    if m.hands_up and terms.words & {"hand", "arm", "reach", "grab", "raise", "lift"}:
        parts.append("both hands raised above the head" if m.hands_up == "both" else f"the {m.hands_up} hand raised above the head")
    if m.leg_raised and terms.words & {"leg", "kick", "knee", "foot"}:
        parts.append("both legs lifted high" if m.leg_raised == "both" else f"the {m.leg_raised} leg lifted high")
    if not parts and m.busiest:
        parts.append(f"mainly the {m.busiest}")
    if parts:
        out["body parts"] = join_phrases(list(dict.fromkeys(parts)))
    turns = abs(m.turn_degrees) >= 45 and not m.upside_down and terms.words & {"turn", "spin", "around", "circle", "pivot", "rotate", "curve"}
    if moving(m):
        out["direction"] = (f"in a circle to the {side_of(m.turn_degrees)}" if m.circle else direction(m.body_direction))
        out["speed"] = SPEED_OF_GAIT.get(gait(terms, f), PACE[m.pace])
        out["spatial path"] = (f"a circle to the {side_of(m.turn_degrees)}, about {metres(m.path_length)[6:]} in all"
                               if m.circle else f"a {'curving' if abs(m.turn_degrees) >= 45 else 'straight'} path of {metres(m.distance)}")
    else:
        out["spatial path"] = "staying in one place"
    if turns and not m.circle:
        out["direction"] = ", ".join(x for x in (out.get("direction"), f"turning {degrees(m.turn_degrees)} to the {side_of(m.turn_degrees)}") if x)
    reps = terms.count or (m.jumps if m.jumps and terms.words & {"jump", "hop", "leap"} else None)
    if reps:
        out["repetitions"] = times(reps) if not terms.words & {"step"} else f"{number(reps)} steps"
    elif moving(m) and f.steps and terms.words & {"step"}:
        out["repetitions"] = f"about {number(f.steps)} steps"
    return out


def analysis(caption: str, terms: Terms, f: Facts, rng: random.Random) -> str:
    """One paraphrase of the goal analysis: the essential elements of the caption."""
    el = _elements(terms, f)
    style = rng.randrange(4)
    opener = rng.choice(["The goal describes a person who {p}.", "The text asks for someone who {p}.",
                         "The goal is a motion in which the person {p}."]).format(p=goal_predicate(terms, f, "s"))
    order = ["action", "body parts", "direction", "speed", "repetitions", "spatial path"]
    if style == 0:
        items = "; ".join(f"{k}: {el[k]}" for k in order if k in el)
        return f"{opener} Essential elements are the {items}."
    if style == 1:
        items = "; ".join(f"{k} - {el[k]}" for k in order if k in el)
        return f"{opener} Key aspects: {items}."
    parts = [f"The essential action is {el['action']}" + (f", involving {el['body parts']}" if "body parts" in el else "") + "."]
    if "speed" in el:
        parts.append(f"It travels {el['direction']} at {el['speed']}.")
    elif "direction" in el:
        parts.append(f"The body keeps its place while {el['direction']}.")
    parts.append(f"Its path is {el['spatial path']}.")
    if "repetitions" in el:
        parts.append(f"It happens {el['repetitions']}." if "step" not in el["repetitions"] else f"It takes {el['repetitions']}.")
    if style == 2:
        return opener + " " + " ".join(parts)
    return " ".join(parts) + " " + rng.choice(["These elements define the goal.", "A matching motion must show all of them.",
                                               "Getting these correct is what matters."])


# ---- differences as clauses: (what is wrong, how to fix it) ----------------------------------
def _hand(side: str | None, part: str = "hand") -> str:
    return f"both {part}s" if side == "both" else f"the {side} {part}"


def clause(d: Difference, rng: random.Random, goal_terms: Terms | None = None,
           motion_terms: Terms | None = None) -> tuple[str, str]:
    """(what is wrong, how to fix it) for one difference; the terms pick the gait verbs."""
    k, g, m = d.kind, d.goal, d.motion
    pick = rng.randrange(2)   # one draw per clause whatever the kind, so mirrored text stays in step
    if k == "action":
        gg, mg = action_gerund(g.actions[0]), (predicate_gerund(m) or action_gerund(m.actions[0]))
        wrong = [f"it shows someone {mg} rather than {gg}", f"the person is {mg} instead of {gg}"][pick]
        short = g.pred_base and len(g.pred_base.split()) <= 10 and "," not in g.pred_base
        what = g.pred_base if short else IMPERATIVE.get(g.actions[0], g.actions[0])
        fix = [f"{what} instead of {action_gerund(m.actions[0])}", f"switch from {action_gerund(m.actions[0])} to {gg}"][pick]
    elif k == "travel":
        gf, mf = Facts(g, 0), Facts(m, 0)
        if moving(g):
            gt = travel(gf, "s", goal_terms)
            wrong = [f"it stays in place, but the goal {gt}", f"the person never travels, while the goal {gt}"][pick]
            fix = travel(gf, "b", goal_terms)
        else:
            mt = travel(mf, "s", motion_terms)
            wrong = [f"it {mt} although the goal stays in place", f"the person {mt} instead of staying in one spot"][pick]
            fix = ["stay in place instead of travelling", "keep the feet in one spot rather than moving around"][pick]
    elif k == "circle":
        side = side_of(g.turn_degrees if g.circle else m.turn_degrees)
        if g.circle:
            wrong = [f"it goes {direction(m.body_direction)} in a straight line instead of in a circle to the {side}",
                     f"the path is straight, not a circle to the {side}"][pick]
            fix = [f"curve the path into a circle to the {side}", f"travel around in a circle to the {side}"][pick]
        else:
            wrong = [f"it circles to the {side} while the goal goes {direction(g.body_direction)}",
                     f"the path bends into a circle to the {side} instead of going {direction(g.body_direction)}"][pick]
            fix = [f"go straight {direction(g.body_direction)} instead of circling", f"straighten the path and move {direction(g.body_direction)}"][pick]
    elif k == "direction":
        wrong = [f"it moves {direction(m)} while the goal moves {direction(g)}", f"the direction is wrong: {direction(m)} instead of {direction(g)}"][pick]
        fix = [f"move {direction(g)} instead of {direction(m)}", f"change the direction so that it goes {direction(g)}"][pick]
    elif k == "distance":
        more = g > m
        wrong = [f"it covers {metres(m)}, the goal {metres(g)}", f"the distance is too {'short' if more else 'long'} ({metres(m)} instead of {metres(g)})"][pick]
        fix = [f"travel {'farther' if more else 'less far'}, {metres(g)}", f"cover {metres(g)} rather than {metres(m)}"][pick]
    elif k == "pace":
        faster = g.speed > m.speed
        gv = gait(goal_terms, Facts(g, 0))
        gp = SPEED_OF_GAIT.get(gv, PACE[g.pace])
        mp = SPEED_OF_GAIT.get(gait(motion_terms, Facts(m, 0)), PACE[m.pace])
        mp = PACE[m.pace] if mp == gp else mp
        wrong = [f"the pace is too {'slow' if faster else 'fast'}: {mp} instead of {gp}",
                 f"it moves at {mp} where the goal needs {gp}"][pick]
        to = {"jog": "a jog", "run": "a run"}.get(gv, GAIT[g.pace])
        fix = [f"{'speed up' if faster else 'slow down'} to {to}", f"move {'faster' if faster else 'more slowly'}, at {gp}"][pick]
    elif k == "steps":
        wrong = [f"it takes about {number(m)} steps instead of {number(g)}", f"the step count is off ({number(m)} rather than {number(g)})"][pick]
        fix = [f"take about {number(g)} steps", f"use {number(g)} steps instead of {number(m)}"][pick]
    elif k == "turn":
        gs, ms = side_of(g), side_of(m)
        if abs(m) < 30:
            wrong = [f"it does not turn, but the goal turns {degrees(g)} to the {gs}", f"the turn to the {gs} is missing"][pick]
            fix = [f"turn {degrees(g)} to the {gs}", f"add a turn of {degrees(g)} to the {gs}"][pick]
        elif abs(g) < 30:
            wrong = [f"it turns {degrees(m)} to the {ms}, while the goal keeps facing the same way", f"it has an extra turn to the {ms}"][pick]
            fix = ["keep facing the same direction without turning", f"remove the turn to the {ms}"][pick]
        elif gs != ms:
            wrong = [f"it turns to the {ms} instead of the {gs}", f"the turn goes the wrong way, to the {ms}"][pick]
            fix = [f"turn to the {gs}, not to the {ms}", f"reverse the turn so it goes {degrees(g)} to the {gs}"][pick]
        else:
            more = abs(g) > abs(m)
            wrong = [f"it turns {degrees(m)} instead of {degrees(g)}", f"the turn to the {gs} is too {'small' if more else 'large'}"][pick]
            fix = [f"turn {'further' if more else 'less'}, {degrees(g)} to the {gs}", f"make the turn {degrees(g)} to the {gs}"][pick]
    elif k == "jumps":
        if m == 0:
            wrong = ["it has no jump", "the person never leaves the ground"][pick]
            fix = [f"jump {times(g)}", f"add {'a jump' if g == 1 else number(g) + ' jumps'}"][pick]
        elif g == 0:
            wrong = [f"it jumps {times(m)}, which the goal does not", "it contains jumps the goal does not ask for"][pick]
            fix = ["keep both feet on the ground instead of jumping", "remove the jumps"][pick]
        else:
            wrong = [f"it jumps {times(m)} instead of {times(g)}", f"the number of jumps is off ({number(m)} rather than {number(g)})"][pick]
            fix = [f"jump {times(g)}", f"make it {number(g)} jumps"][pick]
    else:
        wrong, fix = _posture_clause(k, g, m, pick)
    return wrong, fix


_FILLER = frozenset("the a an to and about in around travel move walk go".split())
_POSTURE = {  # kind: ((wrong when the goal has it, fix), (wrong when only the motion has it, fix))
    "lie": (("it never lies down", "lie down on the floor"), ("it lies down on the floor, which the goal does not", "stay on the feet instead of lying down")),
    "getup": (("it does not get up from the floor", "start on the floor and get up"), ("it gets up from the floor, which the goal does not", "do not start on the floor")),
    "lying": (("it never lies on the floor", "lie on the floor"), ("it spends time lying on the floor", "stay upright instead of lying on the floor")),
    "inverted": (("it never goes upside down", "go upside down, with the hands on the floor"), ("it goes upside down", "stay upright")),
    "crouch": (("it does not crouch", "crouch down low"), ("it crouches, which the goal does not", "keep the legs straight instead of crouching")),
    "bend": (("it does not bend down", "bend forward at the waist"), ("it bends over", "keep the torso upright")),
}


def _posture_clause(k: str, g, m, pick: int) -> tuple[str, str]:
    if k in _POSTURE:
        return _POSTURE[k][0 if g else 1]
    if k in ("hands", "legs"):
        part, verb, where = ("hand", "raise", " above the head") if k == "hands" else ("leg", "lift", " high")
        if g and m:
            return (f"it {verb}s {_hand(m, part)} instead of {_hand(g, part)}",
                    [f"{verb} {_hand(g, part)}{where} instead of {_hand(m, part)}", f"use {_hand(g, part)} instead"][pick])
        if g:
            return (f"{_hand(g, part)} never goes{where}" if g != "both" else f"the {part}s never go{where}",
                    f"{verb} {_hand(g, part)}{where}")
        return (f"it {verb}s {_hand(m, part)}{where}, which the goal does not",
                [f"keep the {part}s {'below the head' if k == 'hands' else 'low'}", f"do not {verb} {_hand(m, part)}{where}"][pick])
    if k == "side":
        (gs, part), (ms, _) = g, m
        return (f"it uses the {ms} {part} rather than the {gs} {part}", f"use the {gs} {part} instead of the {ms} {part}")
    if k == "limbs":
        if g and m:
            return f"it moves mostly the {m}, where the goal moves mostly the {g}", f"move the {g} more than the {m}"
        if g:
            return f"it does not use the {g} enough", f"move the {g} more"
        return f"it moves mostly the {m}", "move the whole body more evenly"
    if k == "duration":
        return (f"it lasts about {number(round(m))} seconds instead of about {number(round(g))}",
                f"make it {'longer' if g > m else 'shorter'}, about {number(round(g))} seconds")
    raise ValueError(f"unknown difference kind {k!r}")


_AGREE = {"action": ("the action itself is correct", "keep the {a}"), "direction": ("the direction of travel is correct", "keep the direction"),
          "circle": ("it does follow a circular path", "keep the circular path"), "in place": ("it stays in place as it should", "stay in place"),
          "turn": ("the turn goes the correct way", "keep the turn"), "pace": ("the pace is correct", "keep the pace"),
          "jumps": ("the jumps are there", "keep the jumps"), "posture": ("the change of posture is correct", "keep the posture change"),
          "hands": ("the raised hand is correct", "keep the hands as they are")}


def assess(goal_terms: Terms, goal: Facts, motion_terms: Terms, motion: Facts, diffs: list[Difference],
           agree: list[str], level: str, rng: random.Random) -> tuple[str, str]:
    """(assessment, refinement instruction) of a wrong motion; `level` in LEVELS sets the tone."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {LEVELS}")
    lvl = LEVELS.index(level)
    # The tone cannot claim closeness the measurements contradict: a different action or nothing
    # in common moves "nearly/partly right" down a step.
    if lvl >= 2 and (not agree or any(d.kind == "action" for d in diffs)):
        lvl = max(lvl - 1 - (lvl == 3 and not agree), 1)
    limit = (2, 3, 2, 1)[lvl]
    clauses = [clause(d, rng, goal_terms, motion_terms) for d in diffs[:limit]]
    wrongs, fixes = [w for w, _ in clauses], [f for _, f in clauses]
    goal_s, goal_b = goal_predicate(goal_terms, goal, "s"), goal_predicate(goal_terms, goal, "b")
    if not clauses:  # nothing measurable differs: fall back to the captions themselves
        wrongs = [rng.choice(["the details of the movement differ from the goal", "the movement does not follow the goal closely"])]
        fixes = [f"follow the goal more closely: {goal_b}"]
    agree_text = _AGREE[agree[0]] if agree else None
    action = action_gerund(goal_terms.actions[0]) if goal_terms.actions else "movement"
    if lvl == 0:
        head = rng.choice(["The motion does not match the goal at all.", "This motion has nothing to do with the goal.",
                           "The motion fails the goal entirely."])
        what = (f" The person {motion_terms.pred_s}, whereas the goal asks for someone who {goal_s}." if motion_terms.pred_s
                else f" The goal asks for someone who {goal_s}.")
        # The headline already names both actions: the details add the other measured differences.
        said = set(goal_b.lower().replace(",", " ").split()) | _FILLER
        rest = [(w, f) for d, (w, f) in zip(diffs, clauses) if d.kind != "action" and not set(f.split()) <= said] or \
            ([] if motion_terms.pred_s else list(zip(wrongs, fixes)))
        a = head + what + (" " + sentence(f"in particular, {join_phrases([w for w, _ in rest])}") if rest else "")
        r = rng.choice(["Start over and {g}.", "Replace the motion entirely: {g}.", "Discard this motion; instead, {g}."]).format(g=goal_b)
        return a, r + (" " + sentence(join_phrases([f for _, f in rest])) if rest else "")
    if lvl == 1:
        head = rng.choice(["The motion largely misses the goal:", "The motion matches the goal poorly:",
                           "Most of the goal is missing from this motion:"])
        return f"{head} {'; '.join(wrongs)}.", sentence(join_phrases(fixes))
    if lvl == 2:
        head = rng.choice(["The motion partly matches the goal:", "The motion is on a good track:"])
        keep = agree_text[1].format(a=action)
        return (f"{head} {agree_text[0]}, but {join_phrases(wrongs)}.",
                sentence(rng.choice([f"{keep}, but {join_phrases(fixes)}", f"{join_phrases(fixes)}; {keep}"])))
    head = rng.choice(["The motion is close to the goal", "The motion nearly matches the goal", "The motion is almost correct"])
    return (f"{head}: {agree_text[0]}, only {wrongs[0]}.",
            sentence(rng.choice([f"only a small correction is needed: {fixes[0]}", f"{fixes[0]}; everything else can stay"])))


def assess_positive(goal_terms: Terms, goal: Facts, rng: random.Random) -> tuple[str, str]:
    """(assessment, "No refinements needed.") for the goal motion itself."""
    goal_s = goal_predicate(goal_terms, goal, "s")
    told = goal_terms.words & set(TRAVEL_WORDS)  # the caption already says where it goes
    extra = ("" if told else ", " + travel(goal, "ing", goal_terms)) if moving(goal.motion) else ", staying in place"
    a = rng.choice([f"The motion matches the goal: the person {goal_s}.",
                    f"The motion aligns well with the goal text; the person {goal_s}{extra}.",
                    f"This motion fulfils the goal, showing {action_of(goal_terms, goal)} as described.",
                    f"The motion is well aligned with the goal: it shows {action_of(goal_terms, goal)}{extra}."])
    return a, NO_REFINEMENT


def facts_text(f: Facts) -> str:
    """The measured facts of a motion as short lines, for an LLM annotator's prompt."""
    m = f.motion
    lines = [f"duration: {m.seconds:.1f} s", f"travel: {travel(f)} (path {m.path_length:.1f} m, speed {m.speed:.1f} m/s, {PACE[m.pace]})"]
    if abs(m.turn_degrees) >= 30:
        lines.append(f"turning: {abs(m.turn_degrees):.0f} degrees to the {side_of(m.turn_degrees)}")
    flags = [name for name, on in (("jumps " + times(m.jumps), m.jumps), ("crouches", m.crouches), ("bends down", m.bends_down),
                                   ("lies down", m.lies_down), ("gets up from the floor", m.gets_up), ("lies on the floor", m.lying),
                                   ("goes upside down", m.upside_down)) if on]
    if m.hands_up:
        flags.append(f"raises {_hand(m.hands_up)} above the head")
    if m.leg_raised:
        flags.append(f"lifts {_hand(m.leg_raised, 'leg')} high")
    if m.busiest:
        flags.append(f"moves mostly the {m.busiest}")
    if moving(m) and f.steps:
        flags.append(f"about {number(f.steps)} steps")
    return "\n".join(lines + ([f"also: {', '.join(flags)}"] if flags else []))

"""What each motion-capture source holds: its files, subjects/actors, licence and labels.

`find_takes(cmu=, hdm05=, deepmimic=, human=)` lists every take of the given source folders (laid
out as in the shared data README) as `Take` records, with the HumanML3D windows of its trial when
`human` holds them; nothing is read beyond file names and the CMU description CSV. Labels become base-form verb phrases ("bend down and put something on the floor
with the right hand") that `captions` conjugates; each label has several phrasings so captions
vary. Pure Python; imports only `captions` (its verb list) and `errors` from the package.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import IrmogenError
from .captions import VERBS

CMU_LICENCE = "CMU Graphics Lab Motion Capture Database terms (free for research and products; no resale of the data)"
HDM05_LICENCE = "CC BY-SA 3.0 (HDM05)"
DEEPMIMIC_LICENCE = "zlib (bullet3 / pybullet_data DeepMimic motions)"
CMU_STAND_IN_ASF = "08.asf"  # the skeletons of subjects 05, 88 and 90 are missing; 08's stands in


@dataclass(frozen=True)
class Take:
    source: str                  # "cmu", "hdm05", "deepmimic"
    path: Path
    key: str                     # unique, file-name safe: "cmu_002_01", "hdm05_bd_squat1Reps_001"
    subject: str                 # performer: the unit splits keep apart ("cmu_02", "hdm05_mm")
    label: str                   # the source's own label, as given
    phrasings: tuple[str, ...]   # base-form verb phrases describing the label
    licence: str
    asf: Path | None = None
    vague: bool = False          # the label says little about the movement itself
    fixed_split: str | None = None  # the source's own split, when it has one
    cyclic: bool = False         # a locomotion loop that may be repeated to lengthen it
    notes: tuple[str, ...] = field(default=())
    folder: str = ""             # the source's sub-folder ("bvh_cgspeed"), for per-folder checks
    fps: float | None = None     # the motion's true frame rate where the file header is wrong
    human: tuple = ()            # HumanWindow records: human-written captions of time windows


# ---- HDM05 -----------------------------------------------------------------------------------
HDM05_CLASSES = {
    "depositFloorR": ("bend down and put something on the floor with the right hand",
                      "place an object on the ground with the right hand",
                      "reach down and set something down on the floor using the right hand"),
    "elbowToKnee1RepsLelbowStart": ("touch the right knee with the left elbow, then the left knee with the right elbow",
                                    "bring the left elbow to the right knee and then the right elbow to the left knee",
                                    "do a cross-body crunch, left elbow to right knee first, then the other side"),
    "grabHighR": ("reach up high with the right hand",
                  "stretch the right arm up to grab something high",
                  "grab something above the head with the right hand"),
    "hopBothLegs1hops": ("hop once on both feet", "do a small jump with both feet together",
                         "jump once with the feet together"),
    "jogLeftCircle4StepsRstart": ("jog four steps in a circle to the left, starting with the right foot",
                                  "jog around a small circle to the left",
                                  "jog in a curve to the left"),
    "kickLFront1Reps": ("kick forward with the left leg", "do a front kick with the left foot",
                        "kick the left leg out in front"),
    "lieDownFloor": ("lie down on the floor", "get down and lie on the ground",
                     "lower the body to the floor and lie down"),
    "rotateArmsBothBackward1Reps": ("circle both arms backwards", "rotate both arms backward once",
                                    "swing both arms around in a backward circle"),
    "sneak2StepsLStart": ("sneak forward two steps, left foot first", "tiptoe two steps forward quietly",
                          "creep forward two steps starting with the left foot"),
    "squat1Reps": ("squat down once and stand back up", "do one squat", "bend the knees into a squat and rise again"),
    "throwBasketball": ("throw a basketball", "throw a ball with both hands", "take a basketball shot"),
}
HDM05_NAME = re.compile(r"HDM_([a-z]{2})_([A-Za-z0-9]+)_(\d+)_(\d+)\.amc$")


def _hdm05_takes(root: Path) -> list[Take]:
    takes = []
    for part in ("train", "test"):
        for amc in sorted((root / part).glob("*/*.amc")):
            m = HDM05_NAME.match(amc.name)
            if not m or m.group(2) not in HDM05_CLASSES:
                raise IrmogenError(f"{amc}: not an HDM05 clip name HDM_<actor>_<class>_<n>_<fps>.amc of a known class")
            actor, cls, num = m.group(1), m.group(2), m.group(3)
            asf = amc.parent / f"HDM_{actor}.asf"
            takes.append(Take(
                source="hdm05", path=amc, key=f"hdm05_{actor}_{cls}_{num}", subject=f"hdm05_{actor}",
                label=cls, phrasings=HDM05_CLASSES[cls], licence=HDM05_LICENCE,
                asf=asf if asf.is_file() else None, fixed_split="test" if part == "test" else None,
            ))
    return takes


# ---- DeepMimic -------------------------------------------------------------------------------
DEEPMIMIC_LABELS = {
    "walk": ("walk forward", "walk ahead at a steady pace", "take a few steps forward"),
    "run": ("run forward", "run ahead", "jog forward quickly"),
    "jump": ("jump forward", "leap forward with both feet", "do a jump"),
    "backflip": ("do a backflip", "flip over backwards", "jump and somersault backwards"),
    "cartwheel": ("do a cartwheel", "cartwheel to the side", "turn a cartwheel"),
    "crawl": ("crawl on hands and knees", "crawl forward on all fours", "move forward on the hands and knees"),
    "dance_a": ("dance", "dance in place", "perform a short dance"),
    "dance_b": ("dance", "dance with lively steps", "perform a dance move"),
    "getup_facedown": ("get up from lying face down", "stand up from the floor after lying on the stomach",
                       "push up off the ground and stand"),
    "getup_faceup": ("get up from lying on the back", "stand up from lying face up",
                     "rise from the floor to a standing position"),
    "kick": ("kick", "do a high kick", "kick a leg out in front"),
    "punch": ("punch", "throw a punch", "punch forward with a fist"),
    "roll": ("roll on the ground", "do a forward roll", "tumble over on the floor"),
    "spin": ("spin around", "turn around on the spot", "do a full spin"),
    "spinkick": ("do a spinning kick", "spin and kick", "turn around and kick"),
    "walk_forward": ("walk forward", "walk straight ahead", "stroll forward"),
    "turn_left": ("walk and turn left", "walk forward and turn to the left", "walk in a curve to the left"),
    "turn_right": ("walk and turn right", "walk forward and turn to the right", "walk in a curve to the right"),
}
VAGUE_DEEPMIMIC = {"dance_a", "dance_b", "kick", "punch"}
CYCLIC_DEEPMIMIC = {"walk", "run", "walk_forward", "turn_left", "turn_right"}  # gait loops: repeatable


def _deepmimic_name(path: Path) -> str:
    stem = path.stem.removeprefix("humanoid3d_")
    return re.sub(r"^\d+|\d+$", "", stem)  # "0walk_forward" -> "walk_forward", "turn_left1" -> "turn_left"


def _deepmimic_takes(root: Path) -> list[Take]:
    takes = []
    for txt in sorted(root.glob("*.txt")) + sorted(root.glob("walker/*.txt")):
        name = _deepmimic_name(txt)
        phr = DEEPMIMIC_LABELS.get(name, (name.replace("_", " "),))
        rel = txt.relative_to(root).with_suffix("").as_posix().replace("/", "_")
        takes.append(Take(
            source="deepmimic", path=txt, key=f"dm_{rel.removeprefix('humanoid3d_')}", subject=f"deepmimic_{name}",
            label=name.replace("_", " "), phrasings=phr, licence=DEEPMIMIC_LICENCE, vague=name in VAGUE_DEEPMIMIC,
            cyclic=name in CYCLIC_DEEPMIMIC,
        ))
    return takes


# ---- CMU -------------------------------------------------------------------------------------
CMU_CONTEXT = {"playground": " on a playground", "basketball": " with a basketball", "dance": " while dancing"}
CMU_PHRASES = {  # whole actions the general rules would turn into bad English
    "bkwd summersult": "do a backward somersault", "wash self": "wash themselves",
    "swordplay": "fight with a sword", "hand spring": "do a handspring", "side flip": "do a side flip",
    "jump kick": "do a jump kick", "cartwheel": "do a cartwheel", "backflip": "do a backflip",
    "backflips": "do backflips", "motorcycle pose": "hold a motorcycle pose", "salsa dance": "dance salsa",
    "forward dribble": "dribble forward", "backward dribble": "dribble backward",
    "sideways dribble": "dribble sideways", "90-degree left turns": "make 90-degree turns to the left",
    "90-degree right turns": "make 90-degree turns to the right", "turn step": "take a turning step",
    "expressive arms": "move the arms expressively", "legs push off against": "push off with the legs",
    "upper body rotation": "rotate the upper body", "arms held high": "hold the arms up high",
    "sideways steps": "step sideways", "cartwheel into backflip": "do a cartwheel into a backflip",
    "jump and spin kick": "jump and do a spin kick", "lift arm": "lift an arm",
    "raised leg above hip-height": "raise a leg above hip height", "cartwheel-like start": "start with a cartwheel-like move",
    "lower self to ground": "lower themselves to the ground", "walk on uneven terrain": "walk on uneven ground",
    "jump onto platform": "jump onto a platform", "dangle legs": "dangle the legs",
    "folding arms": "fold the arms", "bending back": "bend backward", "coupe dessous": "do a coupe dessous",
}
CMU_ADVERB = {"slow": "slowly", "brisk": "briskly", "fast": "quickly", "quick": "quickly"}
VAGUE_CMU = {"swordplay", "wash self", "salsa dance", "motorcycle pose"}


def _base_verb(word: str, verbs: frozenset) -> str | None:
    """'jumps' / 'jumping' / 'jump' -> 'jump' when it is a known verb."""
    for cand in (word, word[:-1] if word.endswith("s") else "", word[:-2] if word.endswith("es") else "",
                 word[:-3] if word.endswith("ing") else "", word[:-3] + "e" if word.endswith("ing") else ""):
        if cand and cand in verbs:
            return cand
    return None


def cmu_action(action: str) -> str:
    """One comma-separated CMU action ("forward jumps", "bend over") -> a base-form verb phrase."""
    a = " ".join(action.lower().split()).removeprefix("and ")
    if a in CMU_PHRASES:
        return CMU_PHRASES[a]
    words = a.split()
    first = _base_verb(words[0], VERBS)
    if first:  # "stretches and jumps" -> "stretch and jump"
        words = [(_base_verb(w, VERBS) or w) if i == 0 or words[i - 1] == "and" else w for i, w in enumerate(words)]
        return " ".join(words).replace(" self", " themselves")
    if len(words) == 2 and words[0] in CMU_ADVERB and _base_verb(words[1], VERBS):
        return f"{_base_verb(words[1], VERBS)} {CMU_ADVERB[words[0]]}"  # "slow walk" -> "walk slowly"
    last = _base_verb(words[-1], VERBS)
    if last and len(words) == 2 and words[0] in ("forward", "backward", "sideways", "around"):
        return f"{last} {words[0]}"  # "forward jumps" -> "jump forward"
    article = "" if a.endswith("s") else "an " if a[0] in "aeiou" else "a "
    return f"do {article}{a}"


def cmu_phrasings(description: str) -> tuple[tuple[str, ...], bool]:
    """A CMU 'Motion Description' -> (base-form phrasings, vague?).

    'playground - climb, hang, swing' -> ('climb, hang and swing on a playground', ...); a '/'
    between alternatives ('run/jog') gives one phrasing per alternative.
    """
    text = " ".join(description.strip().lower().split())
    context, _, body = text.rpartition(" - ")
    suffix = CMU_CONTEXT.get(context, f" as part of a {context} session" if context else "")
    if body in CMU_PHRASES or "," not in body:
        actions = [body]
    else:
        actions = [a.strip() for a in body.split(",") if a.strip()]
    alternatives = [a.split("/") if "/" in a and a not in CMU_PHRASES else [a] for a in actions]
    n = max(len(alt) for alt in alternatives)
    phrasings = []
    for k in range(n):
        parts = [cmu_action(alt[k % len(alt)]) for alt in alternatives]
        head = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
        phrasings.append(head + suffix)
    vague = body in VAGUE_CMU or context == "dance" or len(actions) >= 3
    return tuple(dict.fromkeys(phrasings)), vague


def read_cmu_descriptions(csv_path: Path, column: str = "Motion Description") -> dict[tuple[int, int], str]:
    """The CMU listing: (subject, trial) -> the given column ('Motion Description', 'framerate')."""
    out = {}
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            try:
                out[(int(row["Subject"]), int(row["Trial #"]))] = row[column].strip()
            except (KeyError, ValueError, AttributeError):
                continue
    return out


# The bvh_daz files declare 120 fps but hold the trials at the CMU listing's 60 fps: played at 120
# the salsa runs twice as fast, and the HumanML3D windows end at twice our copies' lengths
# (61_10: 1197 frames, window 13.05-19.95 s = 1197 / 60). Their rate is taken from the listing.
LISTING_RATE_FOLDERS = {"bvh_daz"}


def _listed_fps(rates: dict, subject: int, trial: int, folder: str) -> float | None:
    try:
        return float(rates[(subject, trial)]) if folder in LISTING_RATE_FOLDERS else None
    except (KeyError, ValueError):
        return None


CMU_NAME = re.compile(r"^0*(\d+)_0*(\d+)")
DANCE_PARTNERS = {60: "cmu_60_61", 61: "cmu_60_61"}  # the two partners of the same salsa takes


def _cmu_takes(root: Path, human: dict) -> list[Take]:
    csv_path = root / "cmu_descriptions.csv"
    if not csv_path.is_file():
        raise IrmogenError(f"{csv_path}: the CMU description listing is missing", hint="pass the folder that holds cmu_descriptions.csv")
    desc = read_cmu_descriptions(csv_path)
    rates = read_cmu_descriptions(csv_path, "framerate")
    files = [(p, None) for p in sorted((root / "bvh_cc").glob("*.bvh.gz")) + sorted((root / "bvh_daz").glob("*.bvh.gz"))]
    for amc in sorted((root / "amc").glob("*.amc")):
        own = root / "amc" / f"{amc.name.split('_')[0]}.asf"
        files.append((amc, own if own.is_file() else root / "amc" / CMU_STAND_IN_ASF))
    # cgspeed last: a trial also held in bvh_cc or amc is taken from there (its own skeleton).
    files += [(p, None) for p in sorted((root / "bvh_cgspeed").glob("*.bvh.gz"))]
    takes, seen = [], set()
    for path, asf in files:
        m = CMU_NAME.match(path.name)
        if not m:
            raise IrmogenError(f"{path}: CMU file name must start with <subject>_<trial>")
        subject, trial = int(m.group(1)), int(m.group(2))
        if (subject, trial) in seen:  # the same trial as BVH and as AMC: keep the BVH (its own skeleton)
            continue
        seen.add((subject, trial))
        label = desc.get((subject, trial), "")
        phr, vague = cmu_phrasings(label) if label else (("move",), True)
        notes = ()
        if asf is not None and asf.name == CMU_STAND_IN_ASF and not path.name.startswith("08_"):
            notes = (f"skeleton {CMU_STAND_IN_ASF} stands in for the missing subject {subject:02d} skeleton",)
        takes.append(Take(
            source="cmu", path=path, key=f"cmu_{subject:02d}_{trial:02d}",
            subject=DANCE_PARTNERS.get(subject, f"cmu_{subject:02d}"),
            label=label, phrasings=phr, licence=CMU_LICENCE, asf=asf, vague=vague, notes=notes,
            folder=path.parent.name,
            fps=_listed_fps(rates, subject, trial, path.parent.name),
            human=tuple(human.get((subject, trial), ())),
        ))
    return takes


def find_takes(cmu=None, hdm05=None, deepmimic=None, human=None) -> list[Take]:
    """Every take under the given source folders (None = source not used), in a stable order.

    `human`: (subject, trial) -> HumanML3D windows of CMU trials (`human_captions`), or None.
    """
    takes: list[Take] = []
    cmu_finder = lambda root: _cmu_takes(root, human or {})
    for folder, finder in ((cmu, cmu_finder), (hdm05, _hdm05_takes), (deepmimic, _deepmimic_takes)):
        if folder is None:
            continue
        folder = Path(folder)
        if not folder.is_dir():
            raise IrmogenError(f"{folder}: no such source folder")
        found = finder(folder)
        if not found:
            raise IrmogenError(f"{folder}: no motion files found", hint="see the data README for the expected layout")
        takes.extend(found)
    return takes

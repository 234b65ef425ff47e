"""The files of a dataset in the HumanML3D layout, and the statistics written beside them.

  new_joints/<id>.npy      (T, 22, 3) float32 joint positions, metres, Y up, canonicalised, 20 fps
  new_joint_vecs/<id>.npy  (T, 263) float32 features (HumanML3D: as many rows as new_joints)
  texts/<id>.txt           one caption per line: `caption#word/POS word/POS ...#start#end`
  train.txt val.txt test.txt all.txt   ids, one a line
  Mean.npy Std.npy         (263,) over the train split, std averaged within each feature group

The token field holds lower-case lemmas with universal POS tags, as HumanML3D's annotation pipeline
wrote them; ours come from the small rule-based tagger below (no language-model download).
Pure numpy; imports only `captions` (its verb list) from the package.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .captions import VERBS

SPLITS = ("train", "val", "test")
FEATURE_DIM = 263
# HumanML3D feature groups (root yaw velocity, root xz velocity, root height, joint positions,
# 6-D rotations, joint velocities, foot contacts); each group's std is replaced by its mean.
FEATURE_GROUPS = ((0, 1), (1, 3), (3, 4), (4, 67), (67, 193), (193, 259), (259, 263))
# HumanML3D divides every group's averaged std by 1.0 for the dataset's Std.npy (the evaluator's
# copy divides the root and foot groups by a feature bias instead; that is not this file).
GROUP_WEIGHTS = (1.0,) * len(FEATURE_GROUPS)

# ---- rule-based POS tagger ------------------------------------------------------------------
_CLOSED = {
    "DET": "a an the this that these those his her their its some each every another all no any both",
    "PRON": "someone somebody something it they them themselves themself he she him himself herself one "
            "i you we us itself",
    "ADP": "on in with to from at of over under into onto about around across through behind toward "
           "towards along above below by for near beside between like off against upon",
    "CCONJ": "and or but nor",
    "SCONJ": "while as before after if until because whilst",
    "AUX": "is are was were be been being has have had can could will would should may might",
    "ADV": "forward forwards backward backwards slowly quickly then again once twice up down away back "
           "sideways there here still also very too slightly high low ahead quietly together first "
           "briskly expressively around upside straight",
    "ADJ": "small big large full uneven slow fast quick short long other same lively single steady "
           "low-level higher lower",
}
_TAG_OF = {w: tag for tag, words in _CLOSED.items() for w in words.split()}
_NUMBERS = set("zero one two three four five six seven eight nine ten eleven twelve twenty hundred".split())
_NOUN_LEMMA = {"feet": "foot", "people": "person", "knees": "knee", "metres": "metre", "meters": "meter"}
_AUX_LEMMA = {"is": "be", "are": "be", "was": "be", "were": "be", "been": "be", "being": "be", "has": "have",
              "had": "have"}
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def _verb_lemma(word: str) -> str | None:
    """Inflected form of a known verb -> its base form, else None."""
    if word in VERBS:
        return word
    cands = []
    if word.endswith("ies"):
        cands.append(word[:-3] + "y")
    if word.endswith("es"):
        cands.append(word[:-2])
    if word.endswith("s"):
        cands.append(word[:-1])
    if word.endswith("ing"):
        stem = word[:-3]
        cands += [stem, stem + "e", stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else "",
                  stem[:-1] + "ie" if stem.endswith("y") else ""]
    if word.endswith("ed"):
        cands += [word[:-2], word[:-1], word[:-3] if len(word) > 4 and word[-3] == word[-4] else ""]
    return next((c for c in cands if c and c in VERBS), None)


def _noun_lemma(word: str) -> str:
    if word in _NOUN_LEMMA:
        return _NOUN_LEMMA[word]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def pos_tokens(caption: str) -> list[tuple[str, str]]:
    """Caption -> [(lemma, universal POS tag)], punctuation dropped."""
    words = _WORD.findall(caption.lower())
    out: list[tuple[str, str]] = []
    for i, w in enumerate(words):
        prev = out[-1][1] if out else None
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w == "to":
            tag, lemma = ("PART" if _verb_lemma(nxt) and nxt not in _TAG_OF else "ADP"), w
        elif w in ("left", "right"):
            noun_next = nxt and nxt not in _TAG_OF and not _verb_lemma(nxt)
            tag = "ADJ" if noun_next else "NOUN" if prev == "DET" else "ADV"
            lemma = w
        elif w in _TAG_OF and not (prev == "DET" and w in ("back", "up", "down")):
            tag = _TAG_OF[w]
            lemma = _AUX_LEMMA.get(w, w)
        elif w.isdigit() or w in _NUMBERS or re.fullmatch(r"\d+(?:-\w+)?", w):
            tag, lemma = ("NUM", w) if not w.endswith("-degree") else ("ADJ", w)
        elif w.endswith("ly") and len(w) > 4:
            tag, lemma = "ADV", w
        elif _verb_lemma(w) and prev not in ("DET", "ADJ", "NUM"):
            tag, lemma = "VERB", _verb_lemma(w)
        else:
            tag, lemma = "NOUN", _noun_lemma(w)
        out.append((lemma, tag))
    return out


def caption_line(caption: str, start: float = 0.0, end: float = 0.0) -> str:
    """One HumanML3D text line; start/end 0.0 mean 'the whole clip'."""
    caption = " ".join(caption.replace("#", " ").split())
    tokens = " ".join(f"{lemma}/{tag}" for lemma, tag in pos_tokens(caption))
    return f"{caption}#{tokens}#{start:.1f}#{end:.1f}"


def read_text_lines(path) -> list[tuple[str, str, float, float]]:
    """A HumanML3D texts/<id>.txt -> [(caption, tokens, start, end)]; malformed lines are skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.strip().split("#")
        if len(parts) < 2 or not parts[0].strip():
            continue
        try:
            start = float(parts[2]) if len(parts) > 2 and parts[2] else 0.0
            end = float(parts[3]) if len(parts) > 3 and parts[3] else 0.0
        except ValueError:
            start = end = 0.0
        start, end = (0.0, 0.0) if np.isnan(start) or np.isnan(end) else (start, end)
        rows.append((parts[0].strip(), parts[1].strip(), start, end))
    return rows


# ---- files ------------------------------------------------------------------------------------
def make_folders(root: Path) -> None:
    for sub in ("new_joints", "new_joint_vecs", "texts"):
        (root / sub).mkdir(parents=True, exist_ok=True)


def write_clip(root: Path, clip_id: str, joints: np.ndarray, features: np.ndarray, lines: list[str]) -> None:
    """Write one clip's positions, features and already formatted text lines."""
    joints, features = np.asarray(joints, np.float32), np.asarray(features, np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (22, 3):
        raise ValueError(f"{clip_id}: joints have shape {joints.shape}, expected (T, 22, 3)")
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
        raise ValueError(f"{clip_id}: features have shape {features.shape}, expected (T, {FEATURE_DIM})")
    np.save(root / "new_joints" / f"{clip_id}.npy", joints)
    np.save(root / "new_joint_vecs" / f"{clip_id}.npy", features)
    (root / "texts" / f"{clip_id}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_splits(root: Path, split_of: dict[str, str]) -> dict[str, int]:
    """Write train/val/test/all.txt (ids sorted) and return the size of each split."""
    sizes = {}
    for name in SPLITS:
        ids = sorted(i for i, s in split_of.items() if s == name)
        (root / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        sizes[name] = len(ids)
    (root / "all.txt").write_text("".join(f"{i}\n" for i in sorted(split_of)), encoding="utf-8")
    return sizes


def read_split(root: Path, name: str) -> list[str]:
    path = Path(root) / f"{name}.txt"
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()] if path.is_file() else []


class FeatureStats:
    """Running mean/std over feature rows (float64 sums, so millions of rows fit in memory)."""

    def __init__(self, dim: int = FEATURE_DIM):
        self.n = 0
        self.total = np.zeros(dim)
        self.total_sq = np.zeros(dim)

    def add(self, features: np.ndarray) -> None:
        f = np.asarray(features, np.float64)
        self.n += f.shape[0]
        self.total += f.sum(axis=0)
        self.total_sq += np.square(f).sum(axis=0)

    def mean_std(self, groups=FEATURE_GROUPS, weights=GROUP_WEIGHTS) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) float32; std averaged within each group and divided by its weight."""
        if self.n == 0:
            raise ValueError("no feature rows: the train split is empty")
        mean = self.total / self.n
        std = np.sqrt(np.maximum(self.total_sq / self.n - mean**2, 0.0))
        for (a, b), w in zip(groups, weights):
            g = std[a:b].mean() / w
            std[a:b] = g if g > 1e-8 else 1.0  # a constant group would divide by zero
        return mean.astype(np.float32), std.astype(np.float32)


# ---- README -------------------------------------------------------------------------------------
LICENCE_TEXT = {
    "cmu": (
        "**CMU Graphics Lab Motion Capture Database** (mocap.cs.cmu.edu). Terms: \"This data is free "
        "for use in research projects. You may include this data in commercially-sold products, but "
        "you may not resell this data directly, even in converted form.\" Acknowledgement: \"The data "
        "used in this project was obtained from mocap.cs.cmu.edu. The database was created with "
        "funding from NSF EIA-0196217.\""
    ),
    "hdm05": (
        "**HDM05** (MPI Informatik / Universität Bonn), licensed under Creative Commons "
        "Attribution-ShareAlike 3.0 Unported; the clips derived from it here are redistributed under "
        "the same licence (CC BY-SA 3.0). Citation: M. Müller, T. Röder, M. Clausen, B. Eberhardt, "
        "B. Krüger, A. Weber, \"Documentation Mocap Database HDM05\", Technical report CG-2007-2, "
        "Universität Bonn, 2007. Acknowledgement: \"The data used in this project was obtained from HDM05.\""
    ),
    "deepmimic": (
        "**DeepMimic motions** as shipped with bullet3 / pybullet (`pybullet_data/data/motions`), "
        "zlib licence."
    ),
    "humanml3d": (
        "**HumanML3D** (Guo et al., CVPR 2022), copied as provided by the user: its motions come from "
        "AMASS and HumanAct12 and stay under their licences; cite HumanML3D and AMASS."
    ),
}


def _human_section(summary: dict, checks) -> str:
    """README part on the human-written captions: figures, alignment checks, notice and citation."""
    from .human_captions import CITATION, NOTICE

    human = summary.get("human_captions") or {}
    if not human:
        return ""
    per_split = ", ".join(f"{k} {v['clips']} clips ({v['minutes']:.1f} min, {v['captions']} captions)"
                          for k, v in sorted(human.items()))
    checked = "\n".join(f"- {line}" for c in checks for line in c.lines()) or "- none"
    return f"""
## Human-written captions (HumanML3D)
Clips cut at the time windows of HumanML3D clips taken from the same CMU trials carry those clips'
human-written captions (manifest `captions_by: "human"`, `hml3d_id`); the rest of such a trial is cut
into windows with the rule-made captions, as every other take. A window longer than 9.8 s loses its
end. Mirrored copies get the captions with left/right swapped. Human-captioned clips (with mirrors)
per split: {per_split}. `test_human.txt` lists the test split's human-captioned clips, so that
`irmogen eval --split test_human` reports them on their own.

Alignment of the windows with our copies of the trials, measured per source folder (window times
are seconds from the trial's first mocap frame; cgspeed's added T-pose frame 0 is dropped first):
{checked}

{NOTICE} (MIT; full licence text in `LICENSE-HumanML3D`). Cite: {CITATION}
"""


def write_readme(root: Path, summary: dict, notes: list[str], checks=()) -> None:
    """The dataset's README.md: what it holds, how it was made, and every source's licence."""
    rows = "\n".join(
        f"| {src} | {summary['takes_per_source'].get(src, 0)} | {summary['clips_per_source'][src]} | "
        f"{summary['minutes_per_source'][src]:.1f} |" for src in sorted(summary["clips_per_source"]))
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    sources = "\n".join(f"- {LICENCE_TEXT[s]}" for s in sorted(summary["clips_per_source"]) if s in LICENCE_TEXT)
    extra = "\n".join(f"- {n}" for n in notes) or "- none"
    text = f"""# IRMoGen motion-language dataset

Made by `irmogen data prepare` in the HumanML3D layout: `new_joints/` (T x 22 x 3 joint positions,
metres, Y up, 20 fps), `new_joint_vecs/` (T x 263 HumanML3D features, one row per `new_joints`
frame), `texts/` (`caption#word/POS ...#start#end` per line), `train.txt` / `val.txt` / `test.txt`
/ `all.txt`, `Mean.npy` / `Std.npy` (train split; std averaged within each feature group) and
`manifest.json` (per clip: source file, performer, licence, window in seconds, mirrored, label).

| source | takes | clips (with mirrors) | minutes (with mirrors) |
|---|---|---|---|
{rows}

Splits (clips): {splits}. Captions per clip: {summary['captions_per_clip']:.2f} on average.

## How it was made
- Every take is resampled to 20 fps, moved onto one reference body (joint rotations solved on
  the performer's body and replayed on the SMPL-like rest skeleton, root path scaled by the leg
  length ratio, HumanML3D's "uniform skeleton"), cut into windows of at most 8 s (overlap about
  1 s) when longer than 9.8 s, and each window canonicalised (on the floor, starting at the origin,
  facing +Z).
- Clips shorter than {MIN_DOC}; looping locomotion clips (DeepMimic walk/run) are repeated instead.
- Every clip has a mirrored copy (id prefixed `M`), its captions with left/right swapped.
- Captions paraphrase the source's own label and add sentences measured from the motion
  (direction and distance travelled, turning, pace, jumps, crouching, lying down, raised hands).
- Splits keep performers apart where the source allows (HDM05 actor mm = test; whole CMU subjects
  to test by a seeded hash; CMU performers held only in `bvh_cgspeed`, subjects 8-14, are drawn
  on their own so that some of them are in test); val is a seeded-hash sample of training takes.
  A take's windows and mirrors share its split.

{_human_section(summary, checks)}
## Notes
{extra}

## Sources and licences
{sources}
"""
    (root / "README.md").write_text(text, encoding="utf-8")


MIN_DOC = ("0.6 s are dropped; clips of 0.6-2 s (HDM05 single repetitions) are padded to 2 s by holding "
           "their first and last poses")

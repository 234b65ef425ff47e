"""Train/val/test assignment that keeps performers apart and is the same on every rebuild.

The unit of assignment is the TAKE (a source file): its windows and their mirrored copies inherit
its split, so no motion is seen in training and again in evaluation. Per source:
  * a source's own split wins (HDM05: actor mm is the test set, as the data ships it);
  * otherwise whole performers (CMU subjects, the two salsa partners together) go to test, in the
    order of a seeded hash of their name, until about 15 % of the source's frames are there;
  * val is carved from the remaining (training) performers' takes by a seeded hash of the take's
    key, about 5 % of them: with so few performers per source (HDM05 has three training actors) a
    whole performer would be far more than 5 %, so val shares performers with train.
A source with a single performer (DeepMimic's clips, each its own "performer") falls back to
hashing performers into test the same way. Pure Python.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

SEED = "irmogen-splits-v1"
# The CMU performers the first build (v1: bvh_cc, bvh_daz, amc) drew for test with SEED. Later builds
# keep them in test and never train on them, so a model trained on v1 is measured unleaked on the
# new test split; newly added performers get their own draw (`prepare.split_groups`).
V1_TEST_PERFORMERS = frozenset({"cmu_01", "cmu_03", "cmu_07", "cmu_88", "cmu_90"})
TEST_FRACTION, VAL_FRACTION = 0.15, 0.05


def unit_hash(text: str, seed: str = SEED) -> float:
    """Deterministic number in [0, 1) for a string (stable across Python runs and machines)."""
    digest = hashlib.sha256(f"{seed}:{text}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class TakeInfo:
    key: str                     # the take's unique key
    source: str                  # "cmu", "hdm05", ...
    subject: str                 # performer group kept out of other splits
    frames: int                  # length, used to balance the test share
    fixed_split: str | None = None


def assign_splits(takes: list[TakeInfo], test_fraction: float = TEST_FRACTION,
                  val_fraction: float = VAL_FRACTION, seed: str = SEED) -> dict[str, str]:
    """take key -> "train" / "val" / "test"."""
    out: dict[str, str] = {}
    for source in sorted({t.source for t in takes}):
        mine = [t for t in takes if t.source == source]
        out.update(_assign_source(mine, test_fraction, val_fraction, seed))
    return out


def _assign_source(takes: list[TakeInfo], test_fraction: float, val_fraction: float, seed: str) -> dict[str, str]:
    out = {t.key: t.fixed_split for t in takes if t.fixed_split}
    free = [t for t in takes if not t.fixed_split]
    has_test = any(s == "test" for s in out.values())
    if not has_test and free:
        frames: dict[str, int] = {}
        for t in free:
            frames[t.subject] = frames.get(t.subject, 0) + t.frames
        total = sum(frames.values())
        test_subjects, in_test = set(), 0
        for subject in sorted(frames, key=lambda s: unit_hash(s, seed)):
            # Stop before test would take more than a third beyond its share; keep >= 1 for train.
            if in_test >= test_fraction * total or len(test_subjects) + 1 >= len(frames):
                break
            if in_test + frames[subject] <= 1.34 * test_fraction * total or not test_subjects:
                if in_test + frames[subject] <= 0.5 * total:
                    test_subjects.add(subject)
                    in_test += frames[subject]
        out.update({t.key: "test" for t in free if t.subject in test_subjects})
    for t in free:
        if t.key not in out:
            out[t.key] = "val" if unit_hash(t.key, seed + ":val") < val_fraction else "train"
    return out


def split_groups(takes) -> dict[str, str]:
    """take key -> the group whose performers `assign_splits` draws test performers from (`takes`:
    records with key, source, subject and folder, as `sources.Take`).

    Performers held only in one sub-folder added later (cgspeed: CMU subjects 8-14) are their own
    group, so the test split gains some of these unseen performers; the other CMU performers keep
    the first build's test draw (`V1_TEST_PERFORMERS`)."""
    folders: dict[str, set] = {}
    for t in takes:
        folders.setdefault(t.subject, set()).add(t.folder)
    return {t.key: f"{t.source}/{t.folder}" if folders[t.subject] == {"bvh_cgspeed"} else t.source for t in takes}

"""Splits keep performers apart and takes together; the HumanML3D files read back as written."""
from __future__ import annotations

import numpy as np

from irmogen.data import layout
from irmogen.data.splits import TakeInfo, assign_splits, unit_hash


def _takes():
    takes = []
    for subject in range(1, 13):  # 12 CMU-like subjects of uneven size
        for trial in range(1, 2 + subject % 5):
            takes.append(TakeInfo(f"cmu_{subject:02d}_{trial:02d}", "cmu", f"cmu_{subject:02d}", 100 + 37 * trial))
    for actor, fixed in (("bd", None), ("bk", None), ("dg", None), ("mm", "test")):
        for n in range(20):
            takes.append(TakeInfo(f"hdm05_{actor}_{n:03d}", "hdm05", f"hdm05_{actor}", 40, fixed))
    return takes


def test_no_performer_in_both_train_and_test_and_fixed_splits_win():
    takes = _takes()
    split = assign_splits(takes)
    assert set(split) == {t.key for t in takes}
    by_subject: dict[str, set] = {}
    for t in takes:
        by_subject.setdefault(t.subject, set()).add(split[t.key])
    for subject, splits in by_subject.items():
        assert not ({"train", "val"} & splits and "test" in splits), subject
    assert by_subject["hdm05_mm"] == {"test"}
    assert "test" not in by_subject["hdm05_bd"] | by_subject["hdm05_bk"] | by_subject["hdm05_dg"]
    cmu = [t for t in takes if t.source == "cmu"]
    test_frames = sum(t.frames for t in cmu if split[t.key] == "test") / sum(t.frames for t in cmu)
    assert 0.05 < test_frames < 0.35
    assert "val" in split.values()


def test_splits_are_deterministic_and_order_free():
    takes = _takes()
    assert assign_splits(takes) == assign_splits(list(reversed(takes)))
    assert unit_hash("cmu_01") == unit_hash("cmu_01") and 0 <= unit_hash("x") < 1


def test_write_clip_and_text_lines_read_back(tmp_path):
    layout.make_folders(tmp_path)
    joints = np.random.default_rng(0).normal(size=(50, 22, 3))
    feats = np.random.default_rng(1).normal(size=(50, 263))
    lines = [layout.caption_line("a person walks forward slowly."), layout.caption_line("someone turns left.")]
    layout.write_clip(tmp_path, "M000001", joints, feats, lines)
    j = np.load(tmp_path / "new_joints" / "M000001.npy")
    f = np.load(tmp_path / "new_joint_vecs" / "M000001.npy")
    assert j.dtype == np.float32 and j.shape == (50, 22, 3) and f.shape == (50, 263)
    rows = layout.read_text_lines(tmp_path / "texts" / "M000001.txt")
    assert rows[0] == ("a person walks forward slowly.", "a/DET person/NOUN walk/VERB forward/ADV slowly/ADV", 0.0, 0.0)
    assert rows[1][1] == "someone/PRON turn/VERB left/ADV"
    for line in (tmp_path / "texts" / "M000001.txt").read_text().splitlines():
        caption, tokens, start, end = line.split("#")
        assert all("/" in tok for tok in tokens.split()) and start == end == "0.0"


def test_split_files_and_mean_std_grouping(tmp_path):
    sizes = layout.write_splits(tmp_path, {"a": "train", "b": "train", "c": "test", "Ma": "train"})
    assert sizes == {"train": 3, "val": 0, "test": 1}
    assert layout.read_split(tmp_path, "train") == ["Ma", "a", "b"]
    stats = layout.FeatureStats()
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(300, 263)) * np.linspace(0.5, 2.0, 263)
    stats.add(rows[:100])
    stats.add(rows[100:])
    mean, std = stats.mean_std()
    assert np.allclose(mean, rows.mean(axis=0), atol=1e-5)
    raw = rows.std(axis=0)
    for a, b in layout.FEATURE_GROUPS:  # one value per group: the group's mean std
        assert np.allclose(std[a:b], raw[a:b].mean(), rtol=1e-5)

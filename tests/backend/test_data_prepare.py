"""`prepare_dataset` end to end: a tiny fake HumanML3D folder, and the real mocap."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from irmogen.data import layout, prepare_dataset, to_reference_body
from irmogen.data.prepare import repeat_cycle, window_ranges
from irmogen.errors import IrmogenError
from irmogen.skeleton import REST_OFFSETS, bone_lengths, rest_positions


def _walk(frames: int, speed: float = 1.0) -> np.ndarray:
    p = np.repeat((rest_positions() - [0, rest_positions()[:, 1].min(), 0])[None], frames, 0)
    p[:, :, 2] += speed * np.arange(frames)[:, None] / 20.0
    return p


def _fake_humanml3d(root: Path) -> None:
    for sub in ("new_joints", "new_joint_vecs", "texts"):
        (root / sub).mkdir(parents=True)
    for i, cid in enumerate(("000000", "M000000", "000001", "000002")):
        np.save(root / "new_joints" / f"{cid}.npy", _walk(60 + 10 * i).astype(np.float32))
        (root / "texts" / f"{cid}.txt").write_text(f"a person walks.#a/DET person/NOUN walk/VERB#0.0#0.0\nclip {cid}.#clip/NOUN#0.0#0.0\n")
    np.save(root / "new_joint_vecs" / "000000.npy", np.zeros((60, 263), np.float32))  # others: computed
    (root / "train.txt").write_text("000000\nM000000\n000001\n")
    (root / "test.txt").write_text("000002\nmissing_id\n")


def test_humanml3d_folder_is_merged_with_its_own_splits(tmp_path):
    src, out = tmp_path / "h3d", tmp_path / "out"
    _fake_humanml3d(src)
    with pytest.warns(UserWarning, match="missing_id"):
        summary = prepare_dataset(out, humanml3d=src, progress=False)
    assert summary["splits"] == {"train": 3, "val": 0, "test": 1}
    assert layout.read_split(out, "test") == ["000002"]
    assert [s["file"] for s in summary["skipped"]] == [str(src / "new_joints" / "missing_id.npy")]
    for cid in ("000000", "M000000", "000001", "000002"):
        j, f = np.load(out / "new_joints" / f"{cid}.npy"), np.load(out / "new_joint_vecs" / f"{cid}.npy")
        assert f.shape[1] == 263 and len(j) == len(f)
        assert layout.read_text_lines(out / "texts" / f"{cid}.txt")[1][0] == f"clip {cid}."
    assert np.load(out / "Mean.npy").shape == (263,) and np.all(np.load(out / "Std.npy") > 0)
    manifest = json.loads((out / "manifest.json").read_text())["clips"]
    assert manifest["M000000"]["mirrored"] and manifest["000002"]["split"] == "test"
    assert "HumanML3D" in (out / "README.md").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial folder left
    with pytest.raises(IrmogenError, match="not empty"):
        prepare_dataset(out, humanml3d=src, progress=False)


def test_failed_build_leaves_nothing(tmp_path):
    empty = tmp_path / "h3d"
    empty.mkdir()
    with pytest.raises(IrmogenError):
        prepare_dataset(tmp_path / "out", humanml3d=empty, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h3d"]


def test_reference_body_has_reference_bone_lengths_and_scaled_path():
    p = _walk(30) * 1.2  # a 20 % larger body walking 1.2 m/s
    q = to_reference_body(p)
    ref = bone_lengths(rest_positions(REST_OFFSETS))
    assert np.allclose(bone_lengths(q)[5], ref, atol=2e-3)
    assert np.linalg.norm(q[-1, 0] - q[0, 0]) == pytest.approx(np.linalg.norm(p[-1, 0] - p[0, 0]) / 1.2, rel=2e-2)


def test_windows_and_cycles():
    assert window_ranges(150) == [(0, 150)]
    for t in (197, 459, 2000):
        w = window_ranges(t)
        assert w[0][0] == 0 and w[-1][1] == t
        assert all(40 <= e - s <= 160 for s, e in w)
        assert all(b[0] < a[1] for a, b in zip(w, w[1:]))  # consecutive windows overlap
    cyc = repeat_cycle(_walk(21), 40)
    assert len(cyc) >= 40
    step = np.linalg.norm(np.diff(cyc[:, 0], axis=0), axis=-1)
    assert np.allclose(step, step[0], atol=1e-6)  # the repeated walk continues at the same pace


@pytest.mark.realdata
@pytest.mark.slow
def test_prepare_on_real_mocap(data_dir, tmp_path):
    cmu = tmp_path / "cmu"
    (cmu / "bvh_cc").mkdir(parents=True)
    (cmu / "cmu_descriptions.csv").symlink_to(data_dir / "cmu" / "cmu_descriptions.csv")
    for name in ("001_01.bvh.gz", "002_01.bvh.gz", "007_04.bvh.gz"):  # one long take, two walks
        (cmu / "bvh_cc" / name).symlink_to(data_dir / "cmu" / "bvh_cc" / name)
    out = tmp_path / "ds"
    summary = prepare_dataset(out, cmu=cmu, hdm05=data_dir / "hdm05", deepmimic=data_dir / "deepmimic", progress=False)
    from irmogen.data.prepare import format_summary
    print(format_summary(summary))

    manifest = json.loads((out / "manifest.json").read_text())["clips"]
    ids = set(layout.read_split(out, "train") + layout.read_split(out, "val") + layout.read_split(out, "test"))
    assert ids == set(manifest) and len(ids) == summary["clips"]
    assert summary["takes_per_source"] == {"cmu": 3, "hdm05": 230, "deepmimic": 20}
    assert all(("M" + i) in ids for i in ids if not i.startswith("M"))
    assert sum(1 for i in ids if i.removeprefix("M").startswith("cmu_01_01_")) == 2 * len(window_ranges(459))
    subjects: dict[str, set] = {}
    for cid, e in manifest.items():
        j, f = np.load(out / "new_joints" / f"{cid}.npy"), np.load(out / "new_joint_vecs" / f"{cid}.npy")
        assert j.dtype == np.float32 and j.shape[1:] == (22, 3) and f.shape == (len(j), 263)
        assert 39 <= len(j) <= 196 and np.all(np.isfinite(f))
        assert abs(float(j[0, 0, 0])) < 1e-4 and abs(float(j[0, 0, 2])) < 1e-4 and j[..., 1].min() > -1e-4
        lines = (out / "texts" / f"{cid}.txt").read_text().splitlines()
        assert len(lines) >= 3 and all(len(ln.split("#")) == 4 for ln in lines)
        twin = manifest.get(cid[1:] if e["mirrored"] else "M" + cid)
        assert twin["split"] == e["split"] and twin["take"] == e["take"]
        subjects.setdefault(e["subject"], set()).add(e["split"])
    assert subjects["hdm05_mm"] == {"test"}
    assert all(not ("test" in s and "train" in s) for s in subjects.values())
    right = (out / "texts" / "hdm05_bd_grabHighR_001.txt").read_text()
    assert "right hand" in right and "left hand" in (out / "texts" / "Mhdm05_bd_grabHighR_001.txt").read_text()
    std = np.load(out / "Std.npy")
    assert std.shape == (263,) and np.all(std > 0) and np.all(np.isfinite(np.load(out / "Mean.npy")))
    readme = (out / "README.md").read_text()
    assert "NSF EIA-0196217" in readme and "CC BY-SA 3.0" in readme and "zlib" in readme

"""`data prepare` with the HumanML3D captions and the cgspeed / salsa copies of CMU trials, on real data.

Three trials picked for what they check: 13_30 (cgspeed: T-pose frame 0; its window 11.25-20.55 s
is captioned "squats ... then jogs"), 61_10 (bvh_daz: the header says 120 fps, the motion is the
CMU listing's 60 fps; HumanML3D's last window ends at 19.95 s = 1197 frames / 60), and 01_01
(bvh_cc, a first-build test performer).
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from irmogen.data import layout, prepare_dataset
from irmogen.data.human_captions import read_human_captions, uncovered
from irmogen.data.prepare import read_take
from irmogen.data.sources import find_takes
from irmogen.io import arms_level, read_source

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
FILES = {"bvh_cgspeed": "13_30.bvh.gz", "bvh_daz": "61_10_scaled.bvh.gz", "bvh_cc": "001_01.bvh.gz"}


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("h3d")
    cmu = root / "cmu"
    for folder, name in FILES.items():
        (cmu / folder).mkdir(parents=True)
        (cmu / folder / name).symlink_to(data_dir / "cmu" / folder / name)
    (cmu / "cmu_descriptions.csv").symlink_to(data_dir / "cmu" / "cmu_descriptions.csv")
    (root / "humanml3d").symlink_to(data_dir / "humanml3d")      # found beside --cmu, as in the shared layout
    summary = prepare_dataset(root / "ds", cmu=cmu, progress=False)
    return root / "ds", summary, json.loads((root / "ds" / "manifest.json").read_text())["clips"], data_dir


def test_human_windows_carry_their_captions_and_the_rest_keeps_rule_captions(built):
    out, summary, manifest, data_dir = built
    rows = [r for r in csv.DictReader(open(data_dir / "humanml3d" / "cmu_captions.csv", encoding="utf-8"))
            if r["trial"] == "13_30"]
    assert rows, "13_30 has HumanML3D captions"
    for r in rows:
        cid = f"cmu_13_30_h{r['hml3d_id']}"
        written = [c for c, *_ in layout.read_text_lines(out / "texts" / f"{cid}.txt")]
        assert written == [" ".join(c.split()) for c in r["captions"].split(" | ")]
        assert manifest[cid]["captions_by"] == "human" and manifest["M" + cid]["captions_by"] == "human"
        assert manifest[cid]["start"] == pytest.approx(float(r["start_s"]), abs=0.05)
    # 61_10: windows 0.2-10.2 s (cut to 9.8 s: ends at 10.0) and 13.05-19.95 s; a rule-captioned window
    # covers the stretch between them
    rule = [e for k, e in manifest.items() if e["take"] == "cmu_61_10" and e["captions_by"] == "rules"]
    assert [(e["start"], e["end"]) for e in rule if not e["mirrored"]] == [(10.0, 13.05)]
    test_human = layout.read_split(out, "test_human")
    assert test_human and all(manifest[i]["split"] == "test" and manifest[i]["captions_by"] == "human" for i in test_human)
    human = summary["human_captions"]
    assert sum(v["clips"] for v in human.values()) == sum(1 for e in manifest.values() if e["captions_by"] == "human")
    readme = (out / "README.md").read_text()
    assert "Chuan Guo" in readme and "CVPR 2022" in readme and "`bvh_cgspeed`" in readme
    assert "Copyright (c) 2022 Chuan Guo" in (out / "LICENSE-HumanML3D").read_text()


def test_the_squat_window_of_13_30_squats(built):
    """The captions of the window 11.25-20.55 s say the person squats: the pelvis drops in it."""
    out, _, manifest, _ = built
    cid = next(k for k, e in manifest.items() if e["take"] == "cmu_13_30" and e.get("hml3d_id") and not e["mirrored"]
               and e["start"] == pytest.approx(11.25, abs=0.05))
    assert "squat" in (out / "texts" / f"{cid}.txt").read_text()
    pelvis = np.load(out / "new_joints" / f"{cid}.npy")[:, 0, 1]
    assert np.percentile(pelvis, 95) - pelvis.min() > 0.25        # metres: a squat, not a stance shift


def test_cgspeed_tpose_dropped_and_salsa_at_its_listed_rate(built, data_dir):
    takes = {t.key: t for t in find_takes(cmu=built[0].parent / "cmu")}
    cg = takes["cmu_13_30"]
    src = read_source(cg.path, fps=None)        # the importer drops the T-pose at the source rate
    assert src.meta["dropped_tpose_frame"] == "1" and not arms_level(src.positions[0])
    pos, meta = read_take(cg)
    assert "dropped_tpose_frame" in meta and len(pos) == pytest.approx(len(src.positions) / 6, abs=1)
    salsa = takes["cmu_61_10"]
    assert salsa.fps == 60.0
    pos, meta = read_take(salsa)
    windows = read_human_captions(data_dir / "humanml3d" / "cmu_captions.csv")[(61, 10)]
    assert len(pos) / 20 == pytest.approx(max(w.end for w in windows), abs=0.1)    # 19.95 s, not 9.98


def test_splits_keep_first_build_test_performers(built):
    _, _, manifest, _ = built
    split = {e["subject"]: e["split"] for e in manifest.values()}
    assert split["cmu_01"] == "test"                 # a first-build test performer stays in test
    assert split["cmu_13"] != "test" and split["cmu_60_61"] != "test"


def test_uncovered_stretches():
    assert uncovered(100, [(10, 30), (25, 60)], 20) == [(60, 100)]
    assert uncovered(100, [(30, 50)], 20) == [(0, 30), (50, 100)]
    assert uncovered(50, [], 40) == [(0, 50)]

"""`engine.build` end to end on a tiny synthetic dataset, and on a slice of the real mocap."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from test_engine_data import write_dataset

from irmogen.data.captions import mirror_text
from irmogen.engine import EngineConfig, build_engine
from irmogen.engine import negatives as neg
from irmogen.engine.build import TASKS, add_arguments, load_clips, run
from irmogen.errors import IrmogenError

FIELDS = ["task", "id", "caption", "motion", "target_motion", "analysis", "assessment", "instruction", "answer"]


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    data = write_dataset(root / "ds")
    config = EngineConfig(seed=3, round_weights=(0, 0, 0, 1, 1), traces_per_caption=2)
    stats = build_engine(data, root / "out", config, verbose=False)
    return data, root / "out", stats, config


class WordEncoder:
    """A small real text-motion encoder for the Protocol: words and motion statistics share 3 axes
    (travel, turning, height change)."""

    def embed_text(self, texts):
        return np.array([[("walk" in t) + ("run" in t), ("turn" in t) * 1.0, ("jump" in t) * 1.0] for t in texts])

    def embed_motion(self, motions):
        return np.array([[np.abs(m[:, 1:3]).sum() / 10, np.abs(m[:, 0]).sum(), np.ptp(m[:, 3]) * 3] for m in motions])


def test_records_have_the_contract_format(built):
    data, out, stats, _ = built
    s1, s2 = _read(out / "stage1.jsonl"), _read(out / "stage2.jsonl")
    assert sorted(p.name for p in out.iterdir()) == ["stage1.jsonl", "stage2.jsonl", "stats.json"]
    assert {r["task"] for r in s1} == set(TASKS)
    train = set((data / "train.txt").read_text().split())
    for r in s1:
        assert list(r) == FIELDS and r["id"] in train and isinstance(r["caption"], str)
        for key in ("motion", "target_motion"):
            assert r[key] is None or r[key] in train  # negatives come from the training split only
        if r["task"] in ("generate", "generate_from_analysis", "refine_direct", "refine_instructed"):
            assert r["target_motion"] == r["id"] and r["answer"] is None
        if r["task"] in ("caption", "analyze", "assess", "instruct"):
            assert isinstance(r["answer"], str) and r["answer"] and r["target_motion"] is None
        if r["task"] == "instruct":
            assert (r["instruction"] == "No refinements needed.") == (r["motion"] == r["id"])
        if r["task"].startswith("refine"):
            assert r["motion"] != r["id"]
        if r["task"] == "refine_instructed":
            assert r["instruction"] and r["instruction"] != "No refinements needed."
    for t in s2:
        assert list(t) == ["id", "caption", "analysis", "rounds"] and t["analysis"]
        assert all(list(x) == ["motion", "assessment", "refinement"] for x in t["rounds"])
    saved = json.loads((out / "stats.json").read_text())
    assert saved["records_per_task"] == {t: sum(r["task"] == t for r in s1) for t in TASKS}
    assert saved["negatives_per_level"] == stats["negatives_per_level"]
    assert sum(saved["traces_by_wrong_motions"].values()) == len(s2) == 2 * stats["goal_captions"]
    assert saved["ranking"].startswith("measured facts") and saved["vocabulary"] > 50


def test_traces_go_worst_to_best_and_end_with_the_goal(built):
    data, out, _, config = built
    clips = load_clips(data, "train")
    index = {c.id: i for i, c in enumerate(clips)}
    s2 = _read(out / "stage2.jsonl")
    assert {len(t["rounds"]) - 1 for t in s2} <= {3, 4} and any(len(t["rounds"]) == 5 for t in s2)
    for t in s2:
        *wrong, last = t["rounds"]
        assert last["motion"] == t["id"] and last["refinement"] == "No refinements needed."
        assert all(w["motion"] != t["id"] and w["refinement"] != "No refinements needed." for w in wrong)
        score = neg.fallback_scores([t["caption"]], [index[t["id"]]], [c.facts for c in clips],
                                    [c.captions for c in clips])[0]
        ranks = [score[index[w["motion"]]] for w in wrong]
        assert ranks == sorted(ranks), t


def test_same_take_and_same_action_are_never_negatives(built):
    data, out, _, _ = built
    manifest = json.loads((data / "manifest.json").read_text())["clips"]
    pairs = {(r["id"], r["motion"]) for r in _read(out / "stage1.jsonl") if r["task"] == "assess" and r["motion"] != r["id"]}
    assert pairs
    for goal, motion in pairs:
        assert manifest[goal]["take"] != manifest[motion]["take"]
        assert manifest[goal]["label"] != manifest[motion]["label"] or manifest[goal]["mirrored"] != manifest[motion]["mirrored"]
    # turn_left / turn_left_b / Mturn_left are one take: none is a negative of another.
    assert not {p for p in pairs if p[0].endswith("turn_left") and "turn_left" in p[1]}


def test_grounded_instructions_in_the_built_records(built):
    _, out, _, _ = built
    recs = [r for r in _read(out / "stage1.jsonl") if r["task"] == "instruct" and r["id"] == "turn_left" and r["motion"] == "walk_fwd"]
    for r in recs:
        assert "turn" in r["instruction"].lower() and "left" in r["instruction"]


def test_deterministic_atomic_and_refuses_to_overwrite(built, tmp_path):
    data, out, _, config = built
    again = tmp_path / "again"
    build_engine(data, again, config, verbose=False)
    for name in ("stage1.jsonl", "stage2.jsonl"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    other = tmp_path / "other"
    build_engine(data, other, EngineConfig(seed=4, round_weights=config.round_weights, traces_per_caption=2), verbose=False)
    assert (other / "stage1.jsonl").read_bytes() != (out / "stage1.jsonl").read_bytes()
    with pytest.raises(IrmogenError, match="not an empty folder"):
        build_engine(data, again, config, verbose=False)
    with pytest.raises(IrmogenError, match="levels"):
        build_engine(data, tmp_path / "bad", EngineConfig(levels=("sort_of",)), verbose=False)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder left
    assert not (tmp_path / "bad").exists()


def test_evaluator_ranking_and_command_line(built, tmp_path, capsys):
    data, _, _, _ = built
    stats = build_engine(data, tmp_path / "enc", EngineConfig(levels=("completely_wrong", "nearly_right")),
                         encoder=WordEncoder(), verbose=False)
    assert stats["ranking"] == "evaluator" and stats["negatives_per_level"]["partly_right"] == 0
    recs = _read(tmp_path / "enc" / "stage1.jsonl")
    near = {r["motion"] for r in recs if r["task"] == "assess" and r["caption"] == "a person runs forward." and r["motion"] != "run"}
    assert "walk_fwd" in near or "walk_back" in near  # the encoder puts walking next to running
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--data", str(data), "--out", str(tmp_path / "cli"), "--evaluator", "none",
                         "--captions-per-clip", "1", "--analyses", "2", "--round-weights", "1,1"])
    assert run(args) == 0
    printed = capsys.readouterr().out
    assert "stage-1 records" in printed and "instructions mentioning" in printed
    s = json.loads((tmp_path / "cli" / "stats.json").read_text())
    assert s["goal_captions"] == 10 and s["records_per_task"]["analyze"] == 20
    assert set(s["traces_by_wrong_motions"]) <= {"0", "1"}


@pytest.mark.realdata
def test_real_hdm05_slice(data_dir, tmp_path):
    from irmogen.data import prepare_dataset

    hdm = tmp_path / "hdm05" / "train"
    for cls, actor in (("grabHighR", "bd"), ("jogLeftCircle4StepsRstart", "bd"), ("squat1Reps", "bk"), ("lieDownFloor", "dg")):
        amc = sorted((data_dir / "hdm05" / "train").glob(f"*/HDM_{actor}_{cls}_*.amc"))[0]
        (hdm / cls).mkdir(parents=True)
        for f in (amc, amc.parent / f"HDM_{actor}.asf"):
            (hdm / cls / f.name).symlink_to(f)
    prepare_dataset(tmp_path / "ds", hdm05=tmp_path / "hdm05", progress=False)
    stats = build_engine(tmp_path / "ds", tmp_path / "out", EngineConfig(split="all"), verbose=False)
    assert stats["goal_clips"] == 8 and all(stats["records_per_task"][t] > 0 for t in TASKS)
    recs = _read(tmp_path / "out" / "stage1.jsonl")
    # A clip and its mirror draw alike: the mirrored clip's analyses are the mirrored analyses.
    grab = [c for c in {r["id"] for r in recs} if "grabHighR" in c and not c.startswith("M")][0]
    mine = [r["answer"] for r in recs if r["task"] == "analyze" and r["id"] == grab]
    twin = [r["answer"] for r in recs if r["task"] == "analyze" and r["id"] == "M" + grab]
    assert len(mine) == len(twin) > 0 and [mirror_text(a) for a in mine] == twin
    assert any("right hand" in a for a in mine) and not any("right hand" in a for a in twin)
    jog = [r for r in recs if r["task"] == "instruct" and "jogLeftCircle" in r["id"] and not r["id"].startswith("M")
           and "squat" in r["motion"]]
    assert jog and all(w in jog[0]["instruction"].lower() for w in ("jog",))

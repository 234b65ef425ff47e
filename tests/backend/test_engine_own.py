"""engine.own: the model's own first motions judged against the goals, written as records and traces
that the training stages read (codes beside the records), on a tiny chain trained here."""
import json

import numpy as np
import pytest

from irmogen.engine import own
from irmogen.engine.build import load_clips
from irmogen.engine.wording import LEVELS, NO_REFINEMENT, POSITIVE
from irmogen.errors import IrmogenError
from irmogen.evaluate.retrieval import Evaluator
from irmogen.llm.model import MotionLLM
from irmogen.train import stage2
from irmogen.train.codes import CodesCache
from irmogen.train.testing import TINY_STAGES, tiny_chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    data, out = tiny_chain(root)
    return {"root": root, "data": data, "out": out, "model": MotionLLM.from_pretrained(out / "base" / "model", device="cpu"),
            "evaluator": Evaluator.load(out / "evaluator", device="cpu")}


def test_levels_follow_the_engines_bands_from_best_to_worst():
    fractions = np.linspace(0.0, 1.0, 101)
    levels = [own.level_of(f) for f in fractions]
    assert levels[0] == "nearly_right" and levels[-1] == "completely_wrong"
    ranks = [LEVELS.index(lv) for lv in levels]
    assert ranks == sorted(ranks, reverse=True)          # a closer motion never gets a worse level
    assert set(levels) == set(LEVELS)


def test_the_goal_motion_is_a_match_and_a_different_action_is_not(chain):
    clips = load_clips(chain["data"], "train")
    judge = own.Judge(clips, chain["evaluator"], match_fraction=0.05)
    walk = next(i for i, c in enumerate(clips) if c.id.startswith("walk_forward"))
    jump = next(i for i, c in enumerate(clips) if c.id.startswith("jump"))
    same = judge.judge(clips[walk].captions[0], walk, clips[walk].features, 20.0)
    assert same["match"] and same["level"] == POSITIVE and same["differences"] == []
    other = judge.judge(clips[walk].captions[0], walk, clips[jump].features, 20.0)
    assert not other["match"] and other["level"] in LEVELS
    assert {"travel", "jumps"} & set(other["differences"])   # what the jump does differently, measured


def test_own_records_are_written_read_by_stage2_and_sharded_runs_merge(chain):
    root, data, out = chain["root"], chain["data"], chain["out"]
    cfg = own.OwnConfig(samples=2, captions_per_clip=1, limit=6)
    whole = own.build_own(chain["model"], chain["evaluator"], data, root / "own", cfg, engine=out / "engine",
                          progress=False)
    traces = [json.loads(x) for x in (root / "own" / "stage2.jsonl").read_text().splitlines()]
    base_traces = (out / "engine" / "stage2.jsonl").read_text().splitlines()
    mine = traces[len(base_traces):]
    assert len(mine) == whole["own_traces"] == 6 * 2 and sum(whole["levels"].values()) == 12
    with np.load(root / "own" / own.OWN_CODES) as z:
        stored = set(z.files)
    for t in mine:
        first, last = t["rounds"][0], t["rounds"][-1]
        assert first["motion"] in stored and first["motion"].startswith(f"own:{t['id']}:")
        assert last["refinement"] == NO_REFINEMENT
        if t["own"]["level"] == POSITIVE:
            assert len(t["rounds"]) == 1
        else:   # a wrong own motion gets an instruction, then the goal motion closes the trace
            assert len(t["rounds"]) == 2 and last["motion"] == t["id"] and first["refinement"] != NO_REFINEMENT
    assert sum(t["own"]["greedy"] for t in mine) == 6
    cache = CodesCache(out / "codes" / "codes.npz", root / "own")
    assert all(t["rounds"][0]["motion"] in cache for t in mine)
    m = stage2.train(stage2.Stage2TrainConfig(data=str(data), out=str(root / "s2"), model=str(out / "base" / "model"),
                                              codes=str(out / "codes" / "codes.npz"), engine=str(root / "own"),
                                              progress=False, device="cpu", **TINY_STAGES["stage2"]))
    assert np.isfinite(m["val/loss"])
    # two shards + merge hold the same own traces as one run
    for k in (0, 1):
        own.build_own(chain["model"], chain["evaluator"], data, root / f"part{k}",
                      own.OwnConfig(samples=2, captions_per_clip=1, limit=6, shard=k, shards=2), progress=False)
    merged = own.merge_shards([root / "part0", root / "part1"], root / "merged", out / "engine")
    assert merged["stage2_traces"] == len(traces) and merged["levels"] == whole["levels"]
    with pytest.raises(IrmogenError, match="exists"):
        own.merge_shards([root / "part0"], root / "merged", out / "engine")


def test_reuse_judges_the_same_motions_again_without_generating(chain, tmp_path):
    data, out = chain["data"], chain["out"]
    cfg = own.OwnConfig(samples=2, captions_per_clip=1, limit=4)
    first = own.build_own(chain["model"], chain["evaluator"], data, tmp_path / "a", cfg, progress=False)
    strict = own.OwnConfig(samples=2, captions_per_clip=1, limit=4, match_fraction=1e-6)
    again = own.build_own(chain["model"], chain["evaluator"], data, tmp_path / "b", strict, progress=False,
                          reuse=tmp_path / "a")
    a, b = own.read_own_codes(tmp_path / "a"), own.read_own_codes(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert again["levels"].get(POSITIVE, 0) <= first["levels"].get(POSITIVE, 0)
    with pytest.raises(IrmogenError, match="--reuse"):
        own.build_own(chain["model"], chain["evaluator"], data, tmp_path / "c", cfg, progress=False, reuse=out / "vq")


def test_bad_settings_are_named():
    with pytest.raises(IrmogenError, match="shard"):
        own.OwnConfig(shard=2, shards=2).check()
    with pytest.raises(IrmogenError, match="match_fraction"):
        own.OwnConfig(match_fraction=1.5).check()

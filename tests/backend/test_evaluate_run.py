"""`irmogen eval` end to end on a tiny random MotionLLM and a tiny synthetic dataset: the structure
of the result and that every number is finite (a random model's values mean nothing)."""
import argparse
import json

import numpy as np
import pytest
import torch

from irmogen.errors import IrmogenError
from irmogen.evaluate import run as R
from irmogen.evaluate.retrieval import Evaluator, EvaluatorConfig
from irmogen.llm.testing import tiny_motionllm

CAPTIONS = ["a person walks forward.", "someone jumps up and down.", "a man waves with his right hand.",
            "the person kicks with the left leg.", "a figure crouches and stands up.", "someone jogs in a circle."]

TRAIN_CAPTIONS = ["somebody strolls ahead.", "a human leaps into the air.", "a child swims in a pool."]


def write_dataset(root, n=6, seed=0):
    """HumanML3D layout with random features: new_joint_vecs/, texts/, test.txt, Mean.npy, Std.npy."""
    rng = np.random.default_rng(seed)
    for sub in ("new_joint_vecs", "texts"):
        (root / sub).mkdir(parents=True)
    ids = [f"clip{i:02d}" for i in range(n)]
    for i, cid in enumerate(ids):
        np.save(root / "new_joint_vecs" / f"{cid}.npy", rng.normal(size=(24 + 8 * i, 263)).astype(np.float32))
        caps = [CAPTIONS[i % len(CAPTIONS)], CAPTIONS[(i + 1) % len(CAPTIONS)]]
        (root / "texts" / f"{cid}.txt").write_text("".join(f"{c}#x/NOUN#0.0#0.0\n" for c in caps))
    (root / "test.txt").write_text("\n".join(ids) + "\n")
    # training clips for the retrieval baseline: one caption each, worded unlike the test captions
    for i, cap in enumerate(TRAIN_CAPTIONS):
        np.save(root / "new_joint_vecs" / f"train{i:02d}.npy", rng.normal(size=(32, 263)).astype(np.float32))
        (root / "texts" / f"train{i:02d}.txt").write_text(f"{cap}#x/NOUN#0.0#0.0\n")
    (root / "train.txt").write_text("".join(f"train{i:02d}\n" for i in range(len(TRAIN_CAPTIONS))))
    np.save(root / "Mean.npy", np.zeros(263, np.float32))
    np.save(root / "Std.npy", np.ones(263, np.float32))
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    model_dir = tmp / "model"
    tiny_motionllm(seed=0).save_pretrained(model_dir)
    torch.manual_seed(0)
    Evaluator(EvaluatorConfig(embed_dim=8, width=16, hidden=16, text_hidden=32),
              np.zeros(263), np.ones(263)).save(model_dir)
    return model_dir, write_dataset(tmp / "data")


def finite_rows(result):
    for row in result["rows"].values():
        for k, v in row.items():
            if k not in ("counts", "per_text"):
                assert np.isfinite(v["mean"]) and np.isfinite(v["interval"]) and v["interval"] >= 0, k


def test_evaluate_model_gives_every_row_with_finite_metrics(setup):
    model_dir, data = setup
    result = R.evaluate_model(model_dir, data, repetitions=3, max_rounds=2, mm_texts=2, mm_repeats=3,
                              progress=False)
    assert list(result["rows"]) == ["real", "direct", "irmogen_first", "irmogen_final", "retrieval"]
    finite_rows(result)
    real = result["rows"]["real"]
    assert real["fid"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert real["counts"] == {"samples": 6, "batch_size": 6, "batches": 1, "repetitions": 3, "diversity_times": 6}
    assert result["rows"]["direct"]["counts"]["mm_repeats"] == 3 and "mmodality" in result["rows"]["direct"]
    assert "mmodality" not in result["rows"]["irmogen_final"]
    rounds = result["rounds"]
    assert sum(rounds["histogram"]) == 6 and 1 <= rounds["mean"] <= 2
    assert rounds["refined"] == pytest.approx(sum(rounds["histogram"][1:]) / 6)
    first, final = result["rows"]["irmogen_first"], result["rows"]["irmogen_final"]
    assert rounds["top1_gain"]["mean"] == pytest.approx(final["top1"]["mean"] - first["top1"]["mean"])
    # every caption's motions are in the result, and the row metrics are computed from exactly those
    texts = result["texts"]
    assert [t["clip"] for t in texts] == [f"clip{i:02d}" for i in range(6)]
    assert sorted(len(t["rounds"]) for t in texts) == np.repeat([1, 2], rounds["histogram"]).tolist()
    for name, pick in (("direct", lambda t: t["direct"]), ("irmogen_first", lambda t: t["rounds"][0]),
                       ("irmogen_final", lambda t: t["rounds"][-1])):
        assert result["rows"][name]["counts"]["distinct_motions"] == len({tuple(pick(t)) for t in texts})
    json.dumps(result)   # JSON-able as written by --out
    table = R.format_table(result)
    assert "| irmogen_final |" in table and "Top-1" in table and "Distinct motions among the texts: direct" in table \
        and "Final minus first motion, Top-1:" in table


def test_all_captions_are_measured_in_draws_of_one_caption_per_clip(setup):
    model_dir, data = setup
    result = R.evaluate_model(model_dir, data, modes=("real", "irmogen"), captions="all", repetitions=2,
                              max_rounds=2, progress=False)
    # every clip has 2 captions: 2 draws of 6 texts, each caption of each clip exactly once
    assert result["protocol"]["draws"] == 2 and result["texts_measured"] == 12
    pairs = [(t["clip"], t["caption"]) for t in result["texts"]]
    assert len(set(pairs)) == 12 and pairs[:6] == [(f"clip{i:02d}", CAPTIONS[i % 6]) for i in range(6)]
    real = result["rows"]["real"]
    assert real["counts"]["draws"] == 2 and real["fid"]["mean"] == pytest.approx(0, abs=1e-6)
    gain = result["rounds"]["top1_gain"]
    rows = result["rows"]
    assert gain["mean"] == pytest.approx(rows["irmogen_final"]["top1"]["mean"] - rows["irmogen_first"]["top1"]["mean"])
    assert "(2 draws of one caption per clip, averaged)" in R.format_table(result)
    with pytest.raises(IrmogenError, match="captions='some'"):
        R.evaluate_model(model_dir, data, modes=("real",), captions="some", progress=False)


def test_retrieval_baseline_answers_with_the_nearest_training_clip(setup):
    """Frozen MiniLM picks the training clip meant by the text: walking -> strolling, jumping ->
    leaping; its motion is the row's motion, scored like every generated row."""
    _, data = setup
    result = R.evaluate_model(None, data, modes=("real", "retrieval"), repetitions=2, progress=False, captions="all",
                              evaluator=Evaluator.load(setup[0] / "evaluator.safetensors"))
    picked = {t["caption"]: t["retrieved"] for t in result["texts"]}
    assert picked["a person walks forward."] == "train00" and picked["someone jumps up and down."] == "train01"
    row = result["rows"]["retrieval"]
    assert row["counts"]["distinct_motions"] == len(set(picked.values())) and row["counts"]["distinct_texts"] == 6
    assert row["fid"]["mean"] > 0 and 0 <= row["top3"]["mean"] <= 1
    # paraphrased prompts reach the baseline, the scores stay on the original captions
    swapped = R.evaluate_model(None, data, modes=("retrieval",), repetitions=2, progress=False, captions="all",
                               evaluator=Evaluator.load(setup[0] / "evaluator.safetensors"),
                               prompts={"a person walks forward.": "a child swims in a pool."})
    first = next(t for t in swapped["texts"] if t["caption"] == "a person walks forward.")
    assert first["prompt"] == "a child swims in a pool." and first["retrieved"] == "train02"


def test_refinement_effect_counts_only_refined_traces():
    text = np.zeros((4, 2))
    first = np.array([[1.0, 0], [1.0, 0], [2.0, 0], [0.5, 0]])
    final = np.array([[1.0, 0], [0.5, 0], [3.0, 0], [0.1, 0]])   # trace 0 kept its first motion
    effect = R.refinement_effect(text, first, final, [1, 2, 3, 2])
    assert effect == pytest.approx({"refined": 0.75, "refined_closer": 2 / 3, "refined_distance_first": 3.5 / 3,
                                    "refined_distance_final": 3.6 / 3})
    assert R.refinement_effect(text, first, first, [1, 1, 1, 1]) == {"refined": 0.0}


def test_real_motion_alone_needs_no_generation_and_manual_rounds_work(setup):
    model_dir, data = setup
    real = R.evaluate_model(model_dir, data, modes=("real",), repetitions=2, progress=False)
    assert list(real["rows"]) == ["real"] and "rounds" not in real
    manual = R.evaluate_model(model_dir, data, modes=("irmogen",), rounds="manual", max_rounds=2, limit=3,
                              repetitions=2, progress=False)
    assert list(manual["rows"]) == ["irmogen_first", "irmogen_final"] and manual["clips"] == 3
    finite_rows(manual)


def test_cli_writes_the_metrics_json(setup, tmp_path, capsys):
    model_dir, data = setup
    parser = argparse.ArgumentParser()
    R.add_arguments(parser)
    out = tmp_path / "m" / "metrics.json"
    args = parser.parse_args(["--model", str(model_dir), "--data", str(data), "--out", str(out), "--repetitions",
                              "2", "--modes", "real", "direct", "--mm-texts", "0", "--device", "cpu"])
    assert R.run(args) == 0
    saved = json.loads(out.read_text())
    assert list(saved["rows"]) == ["real", "direct"] and saved["protocol"]["repetitions"] == 2
    assert "| direct |" in capsys.readouterr().out


def test_cli_measures_paraphrases_against_the_original_captions(setup, tmp_path, capsys):
    model_dir, data = setup
    parser = argparse.ArgumentParser()
    R.add_arguments(parser)
    table = tmp_path / "p.tsv"
    table.write_text("".join(f"{c}\ta kid is swimming in a swimming pool.\n" for c in CAPTIONS))
    out = tmp_path / "m.json"
    args = parser.parse_args(["--model", str(model_dir), "--data", str(data), "--out", str(out), "--repetitions", "2",
                              "--modes", "real", "retrieval", "--paraphrases", str(table), "--device", "cpu"])
    assert R.run(args) == 0
    saved = json.loads(out.read_text())
    assert list(saved["paraphrased"]["rows"]) == ["retrieval"]
    assert {t["prompt"] for t in saved["paraphrased"]["texts"]} == {"a kid is swimming in a swimming pool."}
    assert {t["retrieved"] for t in saved["paraphrased"]["texts"]} == {"train02"}   # the swimming clip
    assert "With the paraphrases as prompts" in capsys.readouterr().out
    table.write_text(f"{CAPTIONS[0]}\tonly one.\n")
    with pytest.raises(IrmogenError, match="no paraphrase"):
        R.run(parser.parse_args(["--model", str(model_dir), "--data", str(data), "--modes", "retrieval",
                                 "--paraphrases", str(table), "--repetitions", "2", "--device", "cpu"]))


def test_a_model_without_evaluator_and_bad_modes_are_named(setup, tmp_path):
    model_dir, data = setup
    with pytest.raises(IrmogenError, match="modes"):
        R.evaluate_model(model_dir, data, modes=("real", "bogus"))
    with pytest.raises(IrmogenError, match="no evaluator"):
        R.evaluate_model(tmp_path, data, modes=("real",))


def test_the_command_line_tells_a_run_folder_from_its_own_handler(tmp_path, capsys):
    """`irmogen eval --run DIR` must reach the stage table, not collide with the command's handler."""
    from irmogen.cli import build_parser, main
    args = build_parser("eval").parse_args(["eval", "--run", str(tmp_path), "--data", str(tmp_path)])
    assert args.run_dir == str(tmp_path) and callable(args.run)
    (tmp_path / "evaluator").mkdir()
    assert main(["eval", "--run", str(tmp_path), "--data", str(tmp_path)]) != 0
    assert "evaluator" in capsys.readouterr().err     # the missing evaluator is named, no traceback

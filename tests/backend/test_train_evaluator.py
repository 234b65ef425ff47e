"""`irmogen train evaluator` on a tiny synthetic dataset whose captions name four motion classes:
it learns (validation R-Precision well above chance), writes a loadable evaluator, and resumes."""
import argparse
import json

import numpy as np
import pytest

from irmogen.evaluate.retrieval import Evaluator, read_clips
from irmogen.train import evaluator as T

CLASSES = (("a person walks forward.", "someone walks ahead."), ("a person jumps in place.", "someone hops up and down."),
           ("a man waves his arms.", "the person waves both hands."), ("someone sits down slowly.", "a person crouches down."))


def write_dataset(root, per_split=(("train", 16), ("val", 8)), seed=0):
    """Class k: a sine of frequency k+1 on a band of channels, plus noise; captions name the class."""
    rng = np.random.default_rng(seed)
    for sub in ("new_joint_vecs", "texts"):
        (root / sub).mkdir(parents=True)
    for split, per_class in per_split:
        ids = []
        for k, captions in enumerate(CLASSES):
            for j in range(per_class):
                cid = f"{split}{k}{j:02d}"
                t = np.arange(int(rng.integers(40, 80)))[:, None]
                f = 0.3 * rng.normal(size=(len(t), 263))
                f[:, 4 + 40 * k:44 + 40 * k] += np.sin((k + 1) * 0.2 * t + rng.uniform(0, 6))
                np.save(root / "new_joint_vecs" / f"{cid}.npy", f.astype(np.float32))
                (root / "texts" / f"{cid}.txt").write_text("".join(f"{c}#x/NOUN#0.0#0.0\n" for c in captions))
                ids.append(cid)
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
    np.save(root / "Mean.npy", np.zeros(263, np.float32))
    np.save(root / "Std.npy", np.ones(263, np.float32))
    return root


def args_for(data, out, *extra):
    parser = argparse.ArgumentParser()
    T.add_arguments(parser)
    return parser.parse_args(["--data", str(data), "--out", str(out), "--embed-dim", "16", "--width", "32",
                              "--hidden", "32", "--text-hidden", "64", "--batch-size", "16", "--lr", "3e-3",
                              "--warmup-steps", "5", "--eval-every", "20", "--checkpoint-every", "20",
                              "--val-repetitions", "4", "--no-progress", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train_evaluator")
    data, out = write_dataset(tmp / "data"), tmp / "run"
    assert T.run(args_for(data, out, "--max-steps", "60")) == 0
    return data, out


def test_training_learns_the_classes_and_writes_a_loadable_evaluator(trained):
    data, out = trained
    best = json.loads((out / "best.json").read_text())
    # 32 val clips in 4 classes with shared captions: chance top-3 is 3/32, a perfect model 3/8
    assert best["top3"] > 0.2
    evaluator = Evaluator.load(out)
    assert evaluator.config.width == 32 and evaluator.config.embed_dim == 16
    m = T.retrieval_metrics(evaluator, read_clips(data, "val"), repetitions=4)
    assert m["top3"]["mean"] == pytest.approx(best["top3"], abs=1e-6)
    cache = np.load(out / "text_cache.npz", allow_pickle=False)
    assert len(cache["texts"]) == 8 and cache["vectors"].shape == (8, 384)
    assert json.loads((out / "config.json").read_text())["embed_dim"] == 16


def test_resume_continues_from_the_last_checkpoint(trained):
    data, out = trained
    assert T.run(args_for(data, out, "--max-steps", "70", "--resume")) == 0
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert max(steps) == 70 and steps.count(60) >= 1
    assert (out / "checkpoints" / "step-00000070" / "model.safetensors").is_file()


def test_info_nce_ignores_masked_pairs():
    import torch
    t = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    same = torch.zeros(4, 4, dtype=torch.bool)
    base = T.info_nce(t, t, torch.tensor(10.0), same)
    dup = t.clone()
    dup[1] = dup[0]   # rows 0 and 1 share a caption: without the mask they compete
    masked = same.clone()
    masked[0, 1] = masked[1, 0] = True
    assert T.info_nce(dup, dup, torch.tensor(10.0), masked) < T.info_nce(dup, dup, torch.tensor(10.0), same)
    assert base > 0

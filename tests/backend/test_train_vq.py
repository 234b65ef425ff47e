"""train.vq and train.codes on a tiny synthetic dataset: a few steps, outputs, exact resume, codes cache."""
import json

import numpy as np
import pytest
import torch

from irmogen.errors import IrmogenError
from irmogen.train.codes import SEP, CodesCache, build_codes
from irmogen.train.testing import tiny_dataset
from irmogen.train.vq import VQTrainConfig, mpjpe_mm, read_features, train, window_batch
from irmogen.vq import MotionVQ

TINY = dict(width=16, code_dim=16, codebook_size=32, depth=1, batch_size=8, warmup_steps=2, eval_every=3,
            checkpoint_every=3, log_every=1, val_clips=3, progress=False, device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("ds"))


def losses(out):
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/total"] for r in rows if "train/total" in r}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("vq") / "run"
    metrics = train(VQTrainConfig(data=str(data), out=str(out), max_steps=6, **TINY))
    return out, metrics


def test_vq_stage_writes_a_tokenizer_with_its_own_normalisation(data, trained):
    out, metrics = trained
    vq = MotionVQ.load(out)
    assert vq.config.width == 16 and vq.config.codebook_size == 32
    assert np.array_equal(np.load(out / "mean.npy"), np.load(data / "Mean.npy"))
    assert np.array_equal(np.load(out / "std.npy"), np.load(data / "Std.npy"))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000003", "step-00000006"]
    assert set(metrics) >= {"val/mpjpe_mm", "val/recon", "val/codebook_used"} and metrics["val/mpjpe_mm"] > 0
    assert json.loads((out / "metrics.json").read_text())["step"] == 6
    assert sorted(losses(out)) == list(range(1, 7))


def test_resume_continues_the_same_trajectory(data, trained, tmp_path):
    whole, _ = trained
    part = tmp_path / "part"
    train(VQTrainConfig(data=str(data), out=str(part), max_steps=6, time_budget_minutes=1e-9, **TINY))
    assert [p.name for p in (part / "checkpoints").iterdir()] == ["step-00000001"]   # stopped, saved
    with pytest.raises(IrmogenError, match="already holds checkpoints"):
        train(VQTrainConfig(data=str(data), out=str(part), max_steps=6, **TINY))
    train(VQTrainConfig(data=str(data), out=str(part), max_steps=6, resume=True, **TINY))
    a, b = losses(whole), losses(part)
    assert sorted(b) == list(range(1, 7))                       # steps 2..6 continue the count
    assert np.allclose([a[s] for s in range(1, 7)], [b[s] for s in range(1, 7)], rtol=1e-4, atol=1e-6)
    wa, wb = MotionVQ.load(whole).state_dict(), MotionVQ.load(part).state_dict()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_windows_and_mpjpe(data):
    _, feats = read_features(data, "train")
    rng = np.random.default_rng(0)
    x = window_batch(feats, np.arange(len(feats)), 64, rng)
    shortest = min(len(f) for f in feats)
    assert x.shape[1] % 4 == 0 and x.shape[1] <= min(64, shortest) and x.shape[0] == len(feats)
    assert mpjpe_mm(feats[0], feats[0]) == (0.0, 0.0)
    moved = feats[0].copy()
    moved[:, 3] += 0.01                                          # root height and the other joints'
    moved[:, 4:67].reshape(len(moved), 21, 3)[..., 1] += 0.01    # (absolute) heights 1 cm up: 10 mm
    assert mpjpe_mm(moved, feats[0])[0] == pytest.approx(10.0, abs=0.5)


def test_codes_cache_holds_every_clip_and_augmented_variants(data, trained, tmp_path):
    out, _ = trained
    path = build_codes(out, data, tmp_path / "codes.npz", variants=3, device="cpu")
    cache = CodesCache(path)
    ids = {line for s in ("train", "val", "test") for line in (data / f"{s}.txt").read_text().split()}
    assert set(cache.ids()) == ids
    vq = MotionVQ.load(out)
    mean, std = np.load(out / "mean.npy"), np.load(out / "std.npy")
    cid = (data / "train.txt").read_text().split()[0]
    f = np.load(data / "new_joint_vecs" / f"{cid}.npy")
    expect = vq.encode(torch.from_numpy((f - mean) / std).float()[None])[0].tolist()
    assert cache.codes(cid) == expect and len(expect) == len(f) // 4
    assert len(cache.variants[cid]) == 4 and all(k.startswith(cid + SEP) or k == cid for k in cache.variants[cid])
    val_id = (data / "val.txt").read_text().split()[0]
    assert cache.variants[val_id] == [val_id]                    # no augmentation outside train
    draws = {tuple(cache.draw(cid, np.random.default_rng(s))) for s in range(20)}
    assert tuple(expect) in draws and len(draws) > 1
    with pytest.raises(IrmogenError, match="no codes for clip"):
        cache.codes("nope")

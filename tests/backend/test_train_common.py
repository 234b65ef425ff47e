"""train.common: flags <-> typed configs, resume semantics, stateless batches, the lr schedule."""
import argparse
import json
from dataclasses import fields

import numpy as np
import pytest

from irmogen.errors import IrmogenError
from irmogen.train.common import (RunConfig, Run, add_config_arguments, batch_indices, config_from_args, lr_at)
from irmogen.train.vq import VQTrainConfig


def parse(cls, argv):
    ap = argparse.ArgumentParser()
    add_config_arguments(ap, cls)
    return ap.parse_args(argv)


def test_every_field_is_one_flag_and_types_carry_over():
    ap = argparse.ArgumentParser()
    add_config_arguments(ap, VQTrainConfig)
    flags = {a.dest: a.option_strings for a in ap._actions if a.dest != "help"}
    assert set(flags) == {f.name for f in fields(VQTrainConfig)}
    assert flags["batch_size"] == ["--batch-size"]
    cfg = config_from_args(VQTrainConfig, parse(VQTrainConfig, ["--out", "o", "--batch-size", "3", "--milestones",
                                                                "0.5", "0.8", "--no-progress", "--lr", "1e-3"]))
    assert (cfg.batch_size, cfg.milestones, cfg.progress, cfg.lr) == (3, (0.5, 0.8), False, 1e-3)
    assert cfg.width == VQTrainConfig().width      # not given: the default


def test_resume_reads_the_saved_config_and_flags_override_it(tmp_path):
    out = tmp_path / "run"
    Run(RunConfig(out=str(out), batch_size=5, lr=3e-4, device="cpu"), "test")
    saved = json.loads((out / "config.json").read_text())
    assert saved["batch_size"] == 5 and saved["lr"] == 3e-4
    cfg = config_from_args(RunConfig, parse(RunConfig, ["--out", str(out), "--resume", "--max-steps", "9"]))
    assert (cfg.batch_size, cfg.lr, cfg.max_steps, cfg.resume) == (5, 3e-4, 9, True)
    fresh = config_from_args(RunConfig, parse(RunConfig, ["--out", str(out)]))
    assert fresh.batch_size == RunConfig().batch_size   # without --resume the saved file is not read


def test_bad_values_are_named():
    with pytest.raises(IrmogenError, match="--batch-size 0"):
        RunConfig(out="x", batch_size=0).check()
    with pytest.raises(IrmogenError, match="--schedule 'linear'"):
        RunConfig(out="x", schedule="linear").check()
    with pytest.raises(IrmogenError, match="--out is required"):
        RunConfig().check()


def test_batches_are_shuffled_epochs_split_over_ranks():
    n, b, world = 12, 3, 2
    steps = n // (b * world)
    epoch = np.concatenate([batch_indices(7, s, n, b, r, world) for s in range(steps) for r in range(world)])
    assert sorted(epoch) == list(range(n))                                # an epoch sees every example once
    again = np.concatenate([batch_indices(7, s, n, b, r, world) for s in range(steps) for r in range(world)])
    assert np.array_equal(epoch, again)                                   # a function of (seed, step, rank)
    nxt = np.concatenate([batch_indices(7, s, n, b, r, world) for s in range(steps, 2 * steps) for r in range(world)])
    assert sorted(nxt) == list(range(n)) and not np.array_equal(nxt, epoch)
    small = batch_indices(0, 5, 4, 10, 0, 1)                              # batch larger than the data
    assert len(small) == 10 and set(small) <= set(range(4))


def test_learning_rate_schedules():
    warm = RunConfig(lr=1.0, warmup_steps=10)
    assert lr_at(warm, 0, 100) == pytest.approx(0.1) and lr_at(warm, 50, 100) == 1.0
    cos = RunConfig(lr=2.0, schedule="cosine")
    assert lr_at(cos, 0, 100) == pytest.approx(2.0) and lr_at(cos, 50, 100) == pytest.approx(1.0)
    assert lr_at(cos, 100, 100) == pytest.approx(0.0, abs=1e-12)
    ms = RunConfig(lr=1.0, schedule="milestones", milestones=(0.5,), gamma=0.05)
    assert lr_at(ms, 49, 100) == 1.0 and lr_at(ms, 50, 100) == pytest.approx(0.05)

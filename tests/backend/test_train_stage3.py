"""train.stage3 (GRPO): rewards, normalisation, advantages, log-probs under the decoder's masks, a real step."""
import json

import numpy as np
import pytest
import torch

from irmogen.evaluate.retrieval import Evaluator, EvaluatorConfig
from irmogen.llm.model import MotionLLM
from irmogen.reasoning import template as T
from irmogen.reasoning.decoder import ReasoningDecoder
from irmogen.reasoning.parser import Round, Trace, render_trace
from irmogen.train import stage3
from irmogen.train.testing import TINY_STAGES, tiny_chain


def good_trace() -> Trace:
    return Trace(analysis="walk ahead.", finished=True, rounds=[Round([1, 2], "it jumps.", "walk instead."),
                                                               Round([3, 4], "it walks.", T.NO_REFINEMENT)])


def test_format_reward_is_one_only_for_a_complete_well_formed_trace():
    text = render_trace(good_trace())
    assert stage3.format_reward(text) == 1.0
    assert stage3.format_reward(text[:len(text) // 2]) == 0.0                      # truncated
    assert stage3.format_reward(text.replace("[/analyze]", "", 1)) == 0.0          # a tag missing
    unfinished = good_trace()
    unfinished.finished = False
    assert stage3.format_reward(render_trace(unfinished)) == 0.0
    assert stage3.format_reward(text + "more text") == 0.0                         # text after </think>
    assert stage3.format_reward("") == 0.0


def test_min_max_normalisation_and_group_advantages():
    v = np.array([1.0, 3.0, 2.0, 5.0, 5.0, 5.0])
    assert np.allclose(stage3.min_max(v), [0, 0.5, 0.25, 1, 1, 1])
    groups = np.array([0, 0, 0, 1, 1, 1])
    assert np.allclose(stage3.min_max(v, groups), [0, 1, 0.5, 0, 0, 0])           # a constant group -> 0
    parts = {"format": np.array([1.0, 0, 1, 1]), "text_motion": np.array([-1.0, -2, -1.5, -1]),
             "motion_motion": np.array([-0.5, -0.5, -0.2, -0.1])}
    total = stage3.total_rewards(parts, np.array([0, 0, 1, 1]), "batch")
    assert np.allclose(total, [1 + 1 + 0, 0 + 0 + 0, 1 + 0.5 + 0.75, 1 + 1 + 1])
    adv = stage3.group_advantages(total, np.array([0, 0, 1, 1]))
    assert np.allclose([adv[:2].sum(), adv[2:].sum()], 0, atol=1e-6)
    assert adv[0] > 0 > adv[1] and adv[3] > 0 > adv[2]


def test_refinement_gain_ranks_helpful_refining_over_stopping_over_spoiling():
    # text-motion rewards (minus distances) of the final and the first motion of three traces:
    # refined into a closer motion, not refined (final is first), refined into a farther one
    gain = stage3.refinement_gain(np.array([-0.5, -0.7, -0.9]), np.array([-0.9, -0.7, -0.4]))
    assert np.allclose(gain, [0.4, 0.0, -0.5])
    parts = {"format": np.ones(3), "text_motion": np.array([-0.5, -0.7, -0.9]), "motion_motion": np.zeros(3),
             "refinement_gain": gain}
    plain = stage3.total_rewards(parts, np.zeros(3, int), "batch")
    weighted = stage3.total_rewards(parts, np.zeros(3, int), "batch", gain_weight=2.0)
    assert np.allclose(weighted - plain, 2.0 * np.array([1.0, 5 / 9, 0.0]))
    assert weighted[0] > weighted[1] > weighted[2]


def test_grpo_loss_pushes_up_good_samples_and_penalises_drift():
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]])).requires_grad_()
    weight = torch.ones(2, 2)
    out = stage3.grpo_loss(logp, logp.detach(), logp.detach(), weight, torch.tensor([1.0, -1.0]), 0.2, 0.01)
    out["total"].backward()
    assert float(out["kl"]) == pytest.approx(0.0, abs=1e-7)
    assert (logp.grad[0] < 0).all() and (logp.grad[1] > 0).all()   # descent raises good, lowers bad
    moved = stage3.grpo_loss(logp.detach() + 0.5, logp.detach(), logp.detach(), weight, torch.zeros(2), 0.2, 0.01)
    assert float(moved["kl"]) > 0 and float(moved["total"]) > 0


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo")
    data, _ = tiny_chain(root)
    return root, data


def test_sampled_log_probs_follow_the_decoders_masks(chain):
    root, _ = chain
    model = MotionLLM.from_pretrained(root / "out" / "base" / "model", device="cpu")
    decoder = ReasoningDecoder(model)
    samples = [[e for e in decoder.run("a person jumps.", greedy=False, seed=s, max_rounds=2, max_text_tokens=6,
                                       decode_clips=False) if e.kind == "done"][0] for s in (1, 2)]
    logp, weight = stage3.sampled_logps(model.lm, samples, decoder.masks, 1.0, 0, "cpu")
    assert [int(w.sum()) for w in weight] == [len(s.steps) for s in samples]
    assert torch.isfinite(logp).all() and (logp <= 0).all()        # every sampled token was allowed
    # a token the mask forbids has probability 0: its log-prob would be -inf, so the masks line up
    s, (pos, name) = samples[0], samples[0].steps[0]
    assert bool(decoder.masks[name][s.ids[pos]])


def test_stage3_runs_a_grpo_step_and_saves_the_policy(chain):
    root, data = chain
    torch.manual_seed(0)
    ev = Evaluator(EvaluatorConfig(embed_dim=16, width=16, hidden=16, text_hidden=32),
                   np.load(data / "Mean.npy"), np.load(data / "Std.npy"))
    ev.save(root / "ev")
    cfg = stage3.Stage3TrainConfig(data=str(data), out=str(root / "s3"), model=str(root / "out" / "base" / "model"),
                                   evaluator=str(root / "ev"), progress=False, device="cpu", log_every=1, lr=1e-3,
                                   gain_weight=1.0, **{**TINY_STAGES["stage3"], "max_steps": 2})
    metrics = stage3.train(cfg)
    rows = [json.loads(x) for x in (root / "s3" / "log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train/total" in r]
    assert [r["step"] for r in train_rows] == [1, 2]
    assert all(r["train/reward_format"] == 1.0 and r["train/reward_text_motion"] < 0 for r in train_rows)
    assert all(np.isfinite(r["train/reward_refinement_gain"]) for r in train_rows)
    assert metrics["val/format"] == 1.0 and metrics["val/rounds"] >= 1
    before = MotionLLM.from_pretrained(root / "out" / "base" / "model", device="cpu").lm.state_dict()
    after = MotionLLM.from_pretrained(root / "s3" / "model", device="cpu").lm.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)   # the policy moved

"""`irmogen train stage3`: GRPO on whole IRMoGen traces (IRG-MotionLLM's third stage).

Why our own loop and not TRL's GRPOTrainer: GRPOTrainer samples with `generate()` (or vLLM), and
our traces must come from the constrained decoder (`reasoning.decoder.ReasoningDecoder`: forced
plans and tags, masked vocabularies inside and outside motions), which it cannot drive. So this
module implements the same algorithm (DeepSeekMath's GRPO):
  1. per train caption, `group_size` (4) traces sampled by the decoder, seeded by (seed, step,
     rank, prompt, sample), with the policy's current weights;
  2. rewards (paper): strict format (the trace parses with no error and finishes: 1, else 0),
     -||E_text(goal caption) - E_motion(final motion)||, -||E_motion(ground truth) -
     E_motion(final)||, with the evaluator's encoders; each reward min-max normalised within the
     batch (or the group, `--reward-norm group`), then summed;
     optional (ours, `--gain-weight`): the refinement gain, how much closer to the text the final
     motion is than the first (0 for a trace that did not refine), so that spoiling a good first
     motion costs and improving a wrong one pays: the paper's rewards score only the final motion;
  3. group-relative advantages: (R - mean of the group) / (std of the group + 1e-4);
  4. the policy's log-probs recomputed by one forward pass over each sampled sequence, each token
     under the SAME constraint mask and temperature the decoder sampled it with; forced tokens and
     the prompt were not sampled and are left out of the loss;
  5. loss per token: -(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) - beta * KL), KL the k3
     estimator against a frozen copy of the starting model, averaged over each sequence's sampled
     tokens, then over sequences. One update per sampled batch, so the ratio starts at 1.
Defaults as the paper: lr 1e-6 cosine, beta (KL) 0.01, 4 samples per prompt. Sampling needs the
full weights on every process (single process or DDP; not FSDP/ZeRO-3). Must not import bpy.
"""
from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import IrmogenError
from ..reasoning.decoder import DoneEvent, ReasoningDecoder
from ..reasoning.parser import parse_trace
from ..llm.prompt_encoder import ConditionedLM
from .base import (LMTrainConfig, dataset_captions, export_model, lm_logits, load_input_model, split_trained,
                   trainable)
from .common import Hooks, Run, add_config_arguments, config_from_args, fit, optimizer_for
from .vq import read_features

REWARDS = ("format", "text_motion", "motion_motion")


@dataclass
class Stage3TrainConfig(LMTrainConfig):
    evaluator: str = ""        # evaluator folder (evaluator.safetensors)
    group_size: int = 4        # samples per prompt
    batch_size: int = 2        # prompts per step and process
    kl_coef: float = 0.01
    clip_eps: float = 0.2
    temperature: float = 1.0
    top_p: float = 1.0
    max_rounds: int = 3
    max_text_tokens: int = 128
    reward_norm: str = "batch"  # batch | group: where each reward is min-max normalised
    gain_weight: float = 0.0   # > 0 adds the refinement-gain reward (ours, not the paper's) with this weight
    lr: float = 1e-6
    schedule: str = "cosine"
    warmup_steps: int = 0
    epochs: float = 1.0
    val_examples: int = 8
    eval_every: int = 100
    checkpoint_every: int = 100


HELP = {"data": "dataset folder (HumanML3D layout): goal captions and ground-truth motions",
        "model": "input model directory (the stage-2 model)", "evaluator": "evaluator folder for the rewards",
        "group_size": "sampled traces per prompt", "kl_coef": "weight of the KL penalty to the starting model",
        "gain_weight": "weight of a fourth reward, the final motion's gain in text alignment over the first "
                       "(0: the paper's three rewards)"}


# ---- rewards ---------------------------------------------------------------------------------------
def format_reward(text: str) -> float:
    """1.0 when the response is a complete, well-formed IRMoGen trace, else 0.0."""
    trace = parse_trace(text)
    return float(not trace.errors and trace.finished and bool(trace.rounds) and bool(trace.final_codes))


def min_max(values: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Scale to [0, 1] over all values, or within each group id; a constant set maps to 0."""
    values = np.asarray(values, np.float64)
    out = np.zeros_like(values)
    for g in np.unique(groups) if groups is not None else [None]:
        sel = np.ones(len(values), bool) if g is None else groups == g
        lo, hi = values[sel].min(), values[sel].max()
        out[sel] = (values[sel] - lo) / (hi - lo) if hi - lo > 1e-12 else 0.0
    return out


def group_advantages(rewards: np.ndarray, groups: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """(R - group mean) / (group std + eps), per group."""
    adv = np.zeros(len(rewards))
    for g in np.unique(groups):
        sel = groups == g
        adv[sel] = (rewards[sel] - rewards[sel].mean()) / (rewards[sel].std() + eps)
    return adv


def alignment_rewards(evaluator, captions: list[str], finals: list[np.ndarray | None],
                      truths: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(-||E_text(caption) - E_motion(final)||, -||E_motion(truth) - E_motion(final)||) per sample;
    samples without a final motion get the worst value of the batch."""
    have = [i for i, f in enumerate(finals) if f is not None and len(f) >= 4]
    tm, mm = np.full(len(finals), np.nan), np.full(len(finals), np.nan)
    if have:
        e_final = evaluator.embed_motion([finals[i] for i in have])
        e_text = evaluator.embed_text([captions[i] for i in have])
        e_true = evaluator.embed_motion([truths[i] for i in have])
        tm[have] = -np.linalg.norm(e_text - e_final, axis=-1)
        mm[have] = -np.linalg.norm(e_true - e_final, axis=-1)
    worst = lambda x: np.nan_to_num(x, nan=np.nanmin(x) if have else 0.0)
    return worst(tm), worst(mm)


def total_rewards(parts: dict[str, np.ndarray], groups: np.ndarray, norm: str, gain_weight: float = 0.0) -> np.ndarray:
    """Sum of the rewards, each min-max normalised within the batch or the group; with
    `gain_weight`, plus that weight times the normalised refinement gain."""
    scale = lambda x: min_max(x, groups if norm == "group" else None)
    total = sum(scale(parts[k]) for k in REWARDS)
    return total + gain_weight * scale(parts["refinement_gain"]) if gain_weight else total


def refinement_gain(text_motion_final: np.ndarray, text_motion_first: np.ndarray) -> np.ndarray:
    """How much closer to the text the final motion is than the first (0 when nothing was refined):
    rewards refining a wrong motion into a better one and penalises spoiling a good one."""
    return np.asarray(text_motion_final, np.float64) - np.asarray(text_motion_first, np.float64)


# ---- log-probs of sampled tokens ---------------------------------------------------------------------
def sampled_logps(lm, samples: list[DoneEvent], masks: dict[str, torch.Tensor], temperature: float,
                  pad_id: int, device, conditions: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, N) log-probs of every sample's sampled tokens under the decoder's masks, and (S, N) weights
    (1 for a sampled token, 0 for padding). One forward pass over the padded sequences; `conditions`
    (the captions) for a model with a prompt encoder, whose prefix the decoder fed too."""
    width = max(len(s.ids) for s in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for i, s in enumerate(samples):
        ids[i, :len(s.ids)] = torch.tensor(s.ids)
        attn[i, :len(s.ids)] = 1
    logits = lm_logits(lm, ids.to(device), attn.to(device), conditions).float()
    n = max(1, max(len(s.steps) for s in samples))
    rows = torch.zeros((len(samples), n), dtype=torch.long)
    pos = torch.zeros((len(samples), n), dtype=torch.long)
    weight = torch.zeros((len(samples), n))
    names = sorted(masks)
    kind = torch.zeros((len(samples), n), dtype=torch.long)
    for i, s in enumerate(samples):
        for j, (p, name) in enumerate(s.steps):
            rows[i, j], pos[i, j], weight[i, j], kind[i, j] = i, p, 1.0, names.index(name)
    pos = pos.clamp(min=1)
    picked = logits[rows, pos - 1] / temperature                              # (S, N, V)
    allowed = torch.stack([masks[k] for k in names]).to(device)[kind.to(device)]
    picked = picked.masked_fill(~allowed, float("-inf")).log_softmax(-1)
    tokens = ids.to(device)[rows, pos]
    logp = picked.gather(-1, tokens[..., None])[..., 0]
    weight = weight.to(device)
    return logp.masked_fill(weight == 0, 0.0), weight


def grpo_loss(logp, old_logp, ref_logp, weight, advantages, clip_eps: float, kl_coef: float) -> dict:
    """The clipped GRPO objective with a k3 KL penalty; per-sequence token means, then the mean."""
    ratio = torch.exp(logp - old_logp)
    adv = advantages[:, None]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    delta = ref_logp - logp
    kl = torch.exp(delta) - delta - 1
    per_token = -(surrogate - kl_coef * kl) * weight
    per_seq = per_token.sum(-1) / weight.sum(-1).clamp(min=1)
    mean_kl = ((kl * weight).sum(-1) / weight.sum(-1).clamp(min=1)).mean()
    return {"total": per_seq.mean(), "kl": mean_kl.detach()}


# ---- the stage --------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, Stage3TrainConfig, HELP)


def run(args) -> int:
    train(config_from_args(Stage3TrainConfig, args))
    return 0


def prompts_of(data: Path, split: str, limit: int = 0) -> tuple[list[tuple[str, str]], dict[str, np.ndarray]]:
    """[(clip id, caption)] of a split and the clips' ground-truth features."""
    ids, feats = read_features(data, split, limit)
    truth = dict(zip(ids, feats))
    caps = dataset_captions(data, (split,))
    return [(cid, c) for cid in ids if cid in caps for c in caps[cid]], truth


def train(config: Stage3TrainConfig) -> dict:
    if not config.evaluator:
        raise IrmogenError("--evaluator is required: the rewards use its text and motion encoders")
    if config.group_size < 2 or config.reward_norm not in ("batch", "group"):
        raise IrmogenError(f"--group-size {config.group_size} (>= 2) / --reward-norm {config.reward_norm!r} "
                           "(batch or group)")
    from ..evaluate.retrieval import Evaluator

    run_ = Run(config, "stage3")
    data = Path(config.data)
    prompts, truth = prompts_of(data, "train")
    val_prompts, val_truth = prompts_of(data, "val", config.val_examples)
    if not prompts:
        raise IrmogenError(f"{data}: no captioned train clip")
    evaluator = Evaluator.load(config.evaluator, device="cpu")
    mllm = load_input_model(config.model)
    frozen = ConditionedLM(mllm.lm, mllm.prompt_encoder) if mllm.prompt_encoder is not None else mllm.lm
    reference = copy.deepcopy(frozen).to(run_.device).eval().requires_grad_(False)
    conditioned = mllm.prompt_encoder is not None
    lm = trainable(mllm, config)
    optimizer = optimizer_for(lm, config)
    lm, optimizer = run_.accelerator.prepare(lm, optimizer)
    run_.restore(lm, optimizer)
    policy, encoder = split_trained(run_.accelerator.unwrap_model(lm))
    mllm.lm, mllm.device = policy, run_.device   # the decoder samples the policy
    mllm.prompt_encoder = encoder
    mllm.vq.to(run_.device)
    decoder = ReasoningDecoder(mllm)
    pad = mllm.tokenizer.pad_token_id

    def sample(caption: str, seed: int, greedy: bool = False) -> DoneEvent:
        events = decoder.run(caption, greedy=greedy, temperature=config.temperature, top_p=config.top_p,
                             seed=seed, max_rounds=config.max_rounds, max_text_tokens=config.max_text_tokens,
                             decode_clips=False, guidance=1.0)   # the policy's own distribution, as scored
        return [e for e in events if isinstance(e, DoneEvent)][0]

    def final_features(done: DoneEvent):
        codes = done.trace.final_codes
        return mllm.decode_codes(codes) if codes else None

    def loss_at(step: int) -> dict:
        picks = [prompts[i] for i in run_.batch(step, len(prompts))]
        lm.eval()
        samples, groups = [], []
        for p, (cid, caption) in enumerate(picks):
            for k in range(config.group_size):
                seed = int(run_.rng(step, stream=1 + p * config.group_size + k).integers(2**62))
                samples.append(sample(caption, seed))
                groups.append(p)
        groups = np.asarray(groups)
        caps = [picks[g][1] for g in groups]
        finals = [final_features(s) for s in samples]
        tm, mm = alignment_rewards(evaluator, caps, finals, [truth[picks[g][0]] for g in groups])
        parts = {"format": np.array([format_reward(s.trace_text) for s in samples]), "text_motion": tm,
                 "motion_motion": mm}
        if config.gain_weight:
            firsts = [mllm.decode_codes(s.trace.rounds[0].codes) if len(s.trace.rounds) > 1 else f
                      for s, f in zip(samples, finals)]
            tm_first, _ = alignment_rewards(evaluator, caps, firsts, [truth[picks[g][0]] for g in groups])
            parts["refinement_gain"] = refinement_gain(tm, tm_first)
        adv = torch.tensor(group_advantages(total_rewards(parts, groups, config.reward_norm, config.gain_weight), groups),
                           dtype=torch.float32, device=run_.device)
        lm.train()
        conds = caps if conditioned else None
        logp, weight = sampled_logps(lm, samples, decoder.masks, config.temperature, pad, run_.device, conds)
        with torch.no_grad():
            ref_logp, _ = sampled_logps(reference, samples, decoder.masks, config.temperature, pad, run_.device, conds)
        out = grpo_loss(logp, logp.detach(), ref_logp, weight, adv, config.clip_eps, config.kl_coef)
        return {**out, **{f"reward_{k}": float(v.mean()) for k, v in parts.items()},
                "rounds": float(np.mean([len(s.trace.rounds) for s in samples])),
                "tokens": float(weight.sum(-1).mean())}

    def evaluate() -> dict:
        mine = val_prompts[run_.rank::run_.world]
        done = [sample(cap, 0, greedy=True) for _, cap in mine]
        tm, mm = alignment_rewards(evaluator, [c for _, c in mine], [final_features(d) for d in done],
                                   [val_truth[cid] for cid, _ in mine]) if mine else ([], [])
        sums = torch.tensor([sum(format_reward(d.trace_text) for d in done), float(np.sum(tm)), float(np.sum(mm)),
                             float(sum(len(d.trace.rounds) for d in done)), len(done)],
                            dtype=torch.float64, device=run_.device)
        sums = run_.accelerator.reduce(sums, reduction="sum")
        n = float(sums[4].clamp(min=1))
        return {k: float(v) / n for k, v in zip(("format", "text_motion", "motion_motion", "rounds"), sums[:4])}

    metrics = fit(run_, lm, optimizer, Hooks(loss_at, evaluate if val_prompts else None),
                  run_.total_steps(len(prompts)))
    export_model(run_, lm, mllm, metrics)
    return metrics

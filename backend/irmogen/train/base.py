"""`irmogen train base`: the MotionLLM stage (text-to-motion + motion captioning), and the
supervised fine-tuning loop the later stages share (`LMTrainConfig`, `finetune`).

Our own model is built from scratch: a byte-level BPE text tokenizer (`build_text_tokenizer`) over
the train/val captions, every template string and (with `--engine`) the data engine's texts, then
a small Llama (`hidden_size`, `layers`, `heads`), the 514 motion tokens, and the trained VQ with
its mean/std. With `--base-llm DIR` a pretrained LM folder (transformers format) is extended
instead, trained fully or through LoRA (`--lora-r`, adapters on q,k,v,o,gate,up,down with the
embedding and output rows fully trained, merged before saving).
Examples: one per (train clip, caption); each step draws a task per example: captioning
(`caption_prompt`, share `caption_ratio`) or generation (`generation_prompt`), both prompts from
`irmogen.reasoning.template`; prompt tokens are masked, the answer ends with eos; motions come from
the codes cache with a random augmented variant. Output: a full model directory `<out>/model`
(`MotionLLM.save_pretrained`: config, LM, VQ, tokenizer, the VQ's mean/std). Must not import bpy.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

from ..data.layout import read_split, read_text_lines
from ..errors import IrmogenError
from ..llm.loaders import LORA_TARGETS, load_model
from ..llm.model import MotionLLM
from ..llm.prompt_encoder import ConditionedLM, PromptEncoder, PromptEncoderConfig
from ..llm.tokenizer import build_text_tokenizer
from ..reasoning import template as T
from .codes import CODES_NAME, CodesCache, load_vq_dir
from .common import Hooks, Run, RunConfig, add_config_arguments, config_from_args, fit, optimizer_for
from .sequences import IGNORE, Renderer, Sequence, collate

MODEL_DIR = "model"
SELECT = ("last", "best")
BEST_NAME = "best"          # <out>/best/: the weights of the lowest validation loss so far (select=best)


@dataclass
class LMTrainConfig(RunConfig):
    """Fields of every LM stage."""

    model: str = ""            # input MotionLLM directory (or model spec); base: unused
    lora_r: int = 0            # 0: full fine-tuning; else LoRA rank
    lora_alpha: int = 0        # 0: equal to lora_r (scale 1, as Motion-Agent)
    lora_dropout: float = 0.1
    max_length: int = 1024     # tokens per sequence (longer ones are cut)
    val_examples: int = 64
    batch_size: int = 16
    lr: float = 1e-5
    schedule: str = "cosine"
    warmup_steps: int = 50
    eval_every: int = 500
    checkpoint_every: int = 500
    caption_noise: float = 0.0  # share of training prompts whose caption words are swapped (prompt encoder only)
    select: str = "last"       # the model exported: "last" step, or "best" validation loss

    def check(self) -> None:
        super().check()
        if self.select not in SELECT:
            raise IrmogenError(f"--select {self.select!r}: expected one of {', '.join(SELECT)}")
        if not 0 <= self.caption_noise <= 1:
            raise IrmogenError(f"--caption-noise {self.caption_noise}: a share in [0, 1]")


@dataclass
class BaseTrainConfig(LMTrainConfig):
    vq: str = ""               # `train vq` output folder (vq.safetensors, mean.npy, std.npy)
    codes: str = ""            # codes cache (default: <vq>/codes.npz)
    engine: str = ""           # data engine folder: its texts join the tokenizer corpus
    base_llm: str = ""         # a pretrained causal LM folder to extend instead of training from scratch
    text_vocab: int = 2048
    hidden_size: int = 256
    intermediate_size: int = 704
    layers: int = 4
    heads: int = 4
    kv_heads: int = 4
    caption_ratio: float = 0.5
    prompt_encoder: str = ""   # "" (none) or "all-MiniLM-L6-v2": the text also goes in as soft prefix tokens
    prefix_tokens: int = 8     # soft tokens of the prompt encoder
    lr: float = 5e-4
    weight_decay: float = 0.01
    epochs: float = 30.0
    max_length: int = 512


HELP = {"data": "dataset folder (HumanML3D layout)", "model": "input model directory",
        "prompt_encoder": "frozen sentence encoder whose reading of the prompt conditions the LM "
                          "(all-MiniLM-L6-v2; empty: none)",
        "lora_r": "LoRA rank (0: full fine-tuning)", "caption_ratio": "share of captioning examples",
        "select": "which weights become the model: the last step's, or those of the lowest validation loss",
        "caption_noise": "share of training prompts whose caption words (the LM's own tokens only) are "
                         "swapped for random words, so the model takes the meaning from its prompt encoder"}


# ---- model ---------------------------------------------------------------------------------------
def template_texts() -> list[str]:
    """Every prompt and response string of the template, as the model will read them."""
    consts = [v for k, v in vars(T).items() if k.isupper() and isinstance(v, str)]
    demo = "a person walks forward"
    rendered = [T.build_prompt(demo), T.generation_prompt(demo), T.caption_prompt([0, 1]),
                T.assessment_prompt([0], demo), T.refinement_instruction_prompt([0], demo),
                T.instructed_refinement_prompt([0], demo, demo), T.direct_refinement_prompt([0], demo)]
    return consts + [T.plan(p) for p in T.PLANS] + rendered


def dataset_captions(data: Path, splits=("train", "val")) -> dict[str, list[str]]:
    """clip id -> its captions, for the clips of `splits`."""
    out = {}
    for split in splits:
        for cid in read_split(data, split):
            path = data / "texts" / f"{cid}.txt"
            caps = [c for c, *_ in read_text_lines(path)] if path.is_file() else []
            if caps:
                out[cid] = caps
    return out


def engine_texts(engine: Path) -> list[str]:
    """The free texts of the engine's stage1.jsonl / stage2.jsonl records."""
    texts = []
    for name in ("stage1.jsonl", "stage2.jsonl"):
        path = Path(engine) / name
        for rec in read_jsonl(path) if path.is_file() else []:
            texts += [rec.get(k) for k in ("caption", "analysis", "assessment", "instruction", "answer")]
            texts += [r.get(k) for r in rec.get("rounds", []) for k in ("assessment", "refinement")]
    return [t for t in texts if isinstance(t, str) and t]


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise IrmogenError(f"{path}:{n}: not valid JSON ({e.msg})") from e
    return rows


def build_base_model(config: BaseTrainConfig, captions: list[str]) -> MotionLLM:
    vq, mean, std = load_vq_dir(config.vq)
    if config.base_llm:
        if config.prompt_encoder:
            raise IrmogenError("--prompt-encoder is for models trained from scratch here, not with --base-llm")
        tokenizer = AutoTokenizer.from_pretrained(config.base_llm)
        lm = AutoModelForCausalLM.from_pretrained(config.base_llm, dtype=torch.float32)
        return MotionLLM.from_text_lm(lm, tokenizer, vq, mean, std, device="cpu", dtype=torch.float32)
    corpus = captions + template_texts() * 20 + (engine_texts(Path(config.engine)) if config.engine else [])
    tokenizer = build_text_tokenizer(corpus, config.text_vocab)
    lm_config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=config.hidden_size,
                            intermediate_size=config.intermediate_size, num_hidden_layers=config.layers,
                            num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
                            max_position_embeddings=max(2048, config.max_length), pad_token_id=0,
                            eos_token_id=1, bos_token_id=2, tie_word_embeddings=False)
    lm = AutoModelForCausalLM.from_config(lm_config, dtype=torch.float32)
    mllm = MotionLLM.from_text_lm(lm, tokenizer, vq, mean, std, mean_resizing=False, device="cpu",
                                  dtype=torch.float32)
    if config.prompt_encoder:
        enc = PromptEncoderConfig(config.prompt_encoder, config.prefix_tokens)
        mllm.set_prompt_encoder(PromptEncoder(enc, lm.config.hidden_size))
    return mllm


def load_input_model(spec: str) -> MotionLLM:
    """A previous stage's model (any format `load_model` reads), on the CPU in float32; Motion-Agent
    LoRA adapters are merged first (the generation adapter, as IRG starts from `t2m`)."""
    if not spec:
        raise IrmogenError("--model is required: the previous stage's model directory")
    mllm = load_model(spec, device="cpu", dtype=torch.float32)
    if mllm.adapters:
        name = mllm.config.adapters.get("generate", mllm.adapters[0])
        mllm.merge_adapter(name)
    return mllm


def with_lora(lm, config: LMTrainConfig):
    """LoRA adapters on the attention and MLP projections (embeddings and head trained fully)."""
    if not config.lora_r:
        return lm
    from peft import LoraConfig, get_peft_model

    targets = [n for n in LORA_TARGETS if any(m.endswith(n) for m, _ in lm.named_modules())]
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha or config.lora_r, lora_dropout=config.lora_dropout,
                      target_modules=targets, modules_to_save=["embed_tokens", "lm_head"])
    return get_peft_model(lm, lora)


# ---- the shared fine-tuning loop -----------------------------------------------------------------------
def finetune(run: Run, mllm: MotionLLM, examples: int, make_batch: Callable[[np.ndarray, np.random.Generator], list],
             val: list[Sequence]) -> dict:
    """Train `mllm.lm` on sequences from `make_batch(indices, rng)`; save `<out>/model` at the end."""
    cfg, acc = run.config, run.accelerator
    lm = trainable(mllm, cfg)
    lm.train()
    optimizer = optimizer_for(lm, cfg)
    lm, optimizer = acc.prepare(lm, optimizer)
    run.restore(lm, optimizer)
    pad = mllm.tokenizer.pad_token_id

    def loss_at(step: int) -> dict:
        seqs = make_batch(run.batch(step, examples), run.rng(step))
        return {"total": lm_loss_sum(lm, collate(seqs, pad, cfg.max_length, run.device), mean=True)}

    def evaluate() -> dict:
        sums = torch.zeros(2, dtype=torch.float64, device=run.device)
        mine = val[run.rank::run.world]
        for i in range(0, len(mine), cfg.batch_size):
            batch = collate(mine[i:i + cfg.batch_size], pad, cfg.max_length, run.device)
            total, count = lm_loss_sum(lm, batch)
            sums += torch.tensor([float(total), float(count)], dtype=torch.float64, device=run.device)
        sums = acc.reduce(sums, reduction="sum")
        loss = float(sums[0] / sums[1].clamp(min=1))
        if cfg.select == "best":
            keep_if_best(run, lm, loss)
        return {"loss": loss}

    metrics = fit(run, lm, optimizer, Hooks(loss_at, evaluate if val else None), run.total_steps(examples))
    if cfg.select == "best" and (run.out / BEST_NAME / "model.safetensors").is_file():
        from safetensors.torch import load_model as load_weights

        load_weights(run.accelerator.unwrap_model(lm), str(run.out / BEST_NAME / "model.safetensors"),
                     device=str(run.device))
        metrics = {**metrics, **json.loads((run.out / BEST_NAME / "best.json").read_text())}
    export_model(run, lm, mllm, metrics)
    return metrics


def keep_if_best(run: Run, lm, loss: float) -> None:
    """Save the trainable weights to <out>/best/ when `loss` is the lowest validation loss of the
    run so far (read back from best.json, so a resumed run keeps comparing with the same best)."""
    from safetensors.torch import save_model as save_weights

    folder = run.out / BEST_NAME
    seen = json.loads((folder / "best.json").read_text()) if (folder / "best.json").is_file() else None
    if run.is_main and (seen is None or loss < seen["best/val_loss"]):
        folder.mkdir(parents=True, exist_ok=True)
        save_weights(run.accelerator.unwrap_model(lm), str(folder / "model.safetensors"))
        (folder / "best.json").write_text(json.dumps({"best/step": run.step, "best/val_loss": loss}) + "\n")
    run.accelerator.wait_for_everyone()


def trainable(mllm: MotionLLM, config: LMTrainConfig):
    """The module a stage trains: the LM (with LoRA adapters when asked) and, when the model has
    one, its prompt encoder (`ConditionedLM`, called with the batch's condition texts)."""
    lm = with_lora(mllm.lm, config)
    return ConditionedLM(lm, mllm.prompt_encoder.train()) if mllm.prompt_encoder is not None else lm


def split_trained(net) -> tuple[object, object]:
    """(LM, prompt encoder or None) of an unwrapped `trainable` module."""
    return (net.lm, net.encoder) if isinstance(net, ConditionedLM) else (net, None)


def export_model(run: Run, lm, mllm: MotionLLM, metrics: dict) -> None:
    """Write the trained LM (LoRA merged) as a full model directory `<out>/model`, and metrics.json."""
    core, encoder = split_trained(run.accelerator.unwrap_model(lm))
    mllm.lm = (core.merge_and_unload() if run.config.lora_r else core).to("cpu").eval()
    mllm.device = torch.device("cpu")
    mllm.vq.to("cpu")
    if encoder is not None:
        mllm.set_prompt_encoder(encoder.to("cpu"))
    if run.is_main:
        mllm.save_pretrained(run.out / MODEL_DIR)
        (run.out / "metrics.json").write_text(json.dumps({"step": run.step, **metrics}, indent=2) + "\n")
    run.accelerator.wait_for_everyone()


def lm_logits(lm, input_ids, attention_mask, conditions=None):
    """(B, L, V) logits of a `trainable` module: with the prompt encoder's prefix when `conditions`."""
    if conditions is not None:
        return lm(input_ids, attention_mask, conditions)
    return lm(input_ids=input_ids, attention_mask=attention_mask).logits


def lm_loss_sum(lm, batch, mean: bool = False):
    """Next-token cross-entropy over learned tokens: the mean, or (sum, count)."""
    logits = lm_logits(lm, batch["input_ids"], batch["attention_mask"], batch.get("conditions"))[:, :-1]
    target = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=IGNORE, reduction="sum")
    count = (target != IGNORE).sum()
    return loss / count.clamp(min=1) if mean else (loss, count)


# ---- the base stage --------------------------------------------------------------------------------
def base_examples(data: Path, cache: CodesCache, split: str) -> list[tuple[str, str]]:
    """(clip id, caption) for every caption of every clip of `split` that has codes."""
    caps = dataset_captions(data, (split,))
    return [(cid, c) for cid in sorted(caps) if cid in cache for c in caps[cid]]


def base_sequence(r: Renderer, cache: CodesCache, cid: str, caption: str, task: str, rng) -> Sequence:
    codes = cache.draw(cid, rng)
    if task == "caption":
        return r.text_answer(T.caption_prompt(codes, r.bos), caption)
    return r.motion_answer(T.generation_prompt(r.shown(caption, rng), r.bos, r.tokenizer), codes, condition=caption)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, BaseTrainConfig, HELP)


def run(args) -> int:
    train(config_from_args(BaseTrainConfig, args))
    return 0


def train(config: BaseTrainConfig) -> dict:
    if not config.vq:
        raise IrmogenError("--vq is required: the folder of the trained tokenizer")
    run_ = Run(config, "base")
    data = Path(config.data)
    cache = CodesCache(config.codes or Path(config.vq) / CODES_NAME)
    train_ex = base_examples(data, cache, "train")
    if not train_ex:
        raise IrmogenError(f"{data}: no captioned train clip has codes in {cache.path}")
    captions = [c for caps in dataset_captions(data).values() for c in caps]
    torch.manual_seed(config.seed)
    mllm = build_base_model(config, captions)
    r = Renderer(mllm.tokenizer, mllm.layout, conditioned=mllm.prompt_encoder is not None,
                 caption_noise=config.caption_noise)
    val_ex = base_examples(data, cache, "val")[:config.val_examples]
    val = [base_sequence(r, cache, cid, cap, task, None) for cid, cap in val_ex for task in ("generate", "caption")]

    def make_batch(idx, rng) -> list[Sequence]:
        tasks = np.where(rng.random(len(idx)) < config.caption_ratio, "caption", "generate")
        return [base_sequence(r, cache, *train_ex[i], task, rng) for i, task in zip(idx, tasks)]

    return finetune(run_, mllm, len(train_ex), make_batch, val)

"""Loaders for the published checkpoint formats (reference/model.md, "Checkpoint formats to load").

- our model directory -> `MotionLLM.from_pretrained`;
- Motion-Agent: a user-supplied Gemma-2-2B-it folder + `motionllm.pth` (a flat dict of LoRA
  tensors for the adapters `t2m` and `m2t`, plus the 514 motion rows of the input embeddings
  `embeddings` and of the output head `lm_head`) + `vqvae.pth` (`{"net": ...}`) + mean/std;
- IRG-MotionLLM stage checkpoints: full weights, saved either as `{"state_dict": {...}}` with plain
  parameter names or as a whole-module save whose LM keys start with `llm.` (VQ keys with `net.`).

Checkpoints are read with `torch.load(weights_only=True)`: tensors and plain containers only, never
code. Every error names the missing file or the tensor at fault with both shapes. Must not import bpy.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.initialization import no_init_weights

from ..device import resolve_device
from ..errors import IrmogenError
from ..models import default_model_dir
from ..vq import MotionVQ
from .model import MotionLLM, MotionLLMConfig, llm_config_dict
from .tokens import add_motion_tokens

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LORA_DROPOUT = 0.1
# Motion-Agent's adapters: t2m r 64 alpha 64, m2t r 32 alpha 32 -- alpha equals r, so the LoRA
# scale is 1; adapters of other ranks (IRG's `shared`) keep that rule.
TASKS = ("generate", "refine", "assess", "caption")
MOTION_AGENT_TASKS = {"t2m": TASKS[:3], "m2t": ("caption",)}  # any other adapter serves every task
_LORA_KEY = re.compile(r"\.lora_[AB]\.([^.]+)\.weight$")
_WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")
# Input-side then output-side row tensors, each side in the order they are written.
_ROW_KEYS = ("model.embed_tokens.weight", "embeddings", "lm_head.weight", "lm_head")


def resolve_model_spec(spec):
    """`spec` as given, or the shipped default model when it is None."""
    if spec is not None:
        return spec
    d = default_model_dir()
    if d is None:
        raise IrmogenError("no model given and no default model is installed", code="no_model",
                           hint="pass --model DIR (a model directory, or a .json spec of Motion-Agent / IRG files)")
    return d


def load_model(spec, device="auto", dtype=None) -> MotionLLM:
    """One entry point for every format.

    `spec` is our model directory, or a mapping / JSON file naming a published checkpoint:
    `{"format": "motion_agent", "gemma_dir", "motionllm", "vqvae", "mean", "std"}` or
    `{"format": "irg", "gemma_dir", "checkpoint", "vq" (optional), "mean", "std", "stage" (optional, 1-3)}`.
    Relative paths in a JSON file are resolved against the file's folder.
    """
    if not isinstance(spec, Mapping):
        path = Path(spec)
        if path.is_dir():
            return MotionLLM.from_pretrained(path, device=device, dtype=dtype)
        if path.suffix == ".json" and path.is_file():
            spec = _read_spec(path)
        else:
            raise IrmogenError(f"model {path}: not a model directory or a .json model spec", code="not_found")
    fmt = spec.get("format")
    try:
        if fmt == "motion_agent":
            return load_motion_agent(spec["gemma_dir"], spec["motionllm"], spec["vqvae"], spec["mean"],
                                     spec["std"], device=device, dtype=dtype)
        if fmt == "irg":
            return load_irg(spec["gemma_dir"], spec["checkpoint"], spec.get("vq"), spec["mean"], spec["std"],
                            device=device, dtype=dtype, stage=spec.get("stage"))
    except KeyError as e:
        raise IrmogenError(f"model spec ({fmt}): missing field {e.args[0]!r}") from None
    raise IrmogenError(f"model spec: format {fmt!r} is not 'motion_agent' or 'irg'")


def load_motion_agent(gemma_dir, motionllm_pth, vqvae_pth, mean, std, *, device="auto", dtype=None) -> MotionLLM:
    """Motion-Agent's MotionLLM: Gemma-2 + LoRA adapters (`t2m` generates, `m2t` captions)."""
    from peft import LoraConfig, get_peft_model

    torch_device, torch_dtype = resolve_device(device, dtype)
    state = _torch_load(motionllm_pth)
    tokenizer = _tokenizer(gemma_dir)
    lm = _lm(gemma_dir, torch_dtype, weights=True)
    vq = _load_vq(vqvae_pth)
    layout = add_motion_tokens(tokenizer, vq.config.codebook_size)
    lm.resize_token_embeddings(layout.vocab_size, mean_resizing=False)

    ranks = _adapter_ranks(state, motionllm_pth)
    loras = {name: LoraConfig(r=r, lora_alpha=r, target_modules=list(LORA_TARGETS), lora_dropout=LORA_DROPOUT,
                              bias="none", task_type="CAUSAL_LM") for name, r in ranks.items()}
    first, *others = loras
    lm = get_peft_model(lm, loras[first], adapter_name=first)
    for name in others:
        lm.add_adapter(name, loras[name])
    lora_state = {k: v for k, v in state.items() if k not in ("embeddings", "lm_head")}
    _copy_exact(lm, {_strip(k, "llm."): v for k, v in lora_state.items()}, motionllm_pth,
                expected=[n for n, _ in lm.named_parameters() if ".lora_" in n])
    _restore_rows(lm, {k: state[k] for k in ("embeddings", "lm_head") if k in state}, layout, motionllm_pth)

    adapters = {task: name for name in ranks for task in MOTION_AGENT_TASKS.get(name, TASKS)}
    config = MotionLLMConfig(llm=llm_config_dict(lm), text_vocab=layout.text_vocab, codebook_size=layout.codebook_size,
                             vq=vq.config.to_dict(), normalisation="published_vq", prompt_style="motion_agent",
                             adapters=adapters)
    model = MotionLLM(lm, tokenizer, vq, _array(mean, "mean"), _array(std, "std"), config,
                      device=torch_device, dtype=torch_dtype)
    model.use_task("generate")
    return model


def load_irg(gemma_dir, checkpoint, vq, mean, std, *, device="auto", dtype=None, stage=None) -> MotionLLM:
    """An IRG-MotionLLM stage checkpoint (full weights, LoRA merged) on Gemma-2's config and tokenizer.

    `vq` is the VQ-VAE checkpoint path, a MotionVQ, or None when the checkpoint carries `net.` keys.
    Checkpoints are `torch.save` files or `.safetensors`. `stage=1` marks a stage-1 checkpoint:
    `generate` then runs the stage-1 loop of separate calls, as IRG evaluates it. The decoder
    tokenizes forced template text piece by piece, as IRG's training did.
    """
    if stage not in (None, 1, 2, 3):
        raise IrmogenError(f"model spec (irg): stage {stage!r} is not 1, 2 or 3")
    torch_device, torch_dtype = resolve_device(device, dtype)
    state = _torch_load(checkpoint)
    if isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    lm_state, vq_state = _split_irg(state, checkpoint)
    if isinstance(vq, MotionVQ):
        vq_model = vq
    elif vq is not None:
        vq_model = _load_vq(vq)
    elif vq_state:
        vq_model = MotionVQ.from_published_state_dict(vq_state)
    else:
        raise IrmogenError(f"{checkpoint}: holds no VQ weights (net.*)", code="not_found",
                           hint="pass the VQ-VAE checkpoint (vqvae.pth)")
    tokenizer = _tokenizer(gemma_dir)
    rows = {k: lm_state.pop(k) for k in _ROW_KEYS if k in lm_state}
    motion_rows = vq_model.config.codebook_size + 2
    has_text = {side: any(rows[k].shape[0] != motion_rows for k in keys if k in rows)
                for side, keys in (("in", _ROW_KEYS[:2]), ("out", _ROW_KEYS[2:]))}
    tied = getattr(AutoConfig.from_pretrained(str(gemma_dir)), "tie_word_embeddings", False)
    # Text rows the checkpoint lacks (it saved only the motion rows) come from the base weights.
    lm = _lm(gemma_dir, torch_dtype, weights=not (has_text["in"] and (has_text["out"] or tied)))
    layout = add_motion_tokens(tokenizer, vq_model.config.codebook_size)
    lm.resize_token_embeddings(layout.vocab_size, mean_resizing=False)
    skip = {"model.embed_tokens.weight", "lm_head.weight"}
    _copy_exact(lm, lm_state, checkpoint, expected=[n for n in lm.state_dict() if n not in skip])
    _restore_rows(lm, rows, layout, checkpoint)

    config = MotionLLMConfig(llm=llm_config_dict(lm), text_vocab=layout.text_vocab, codebook_size=layout.codebook_size,
                             vq=vq_model.config.to_dict(), normalisation="published_vq", prompt_style="irmogen")
    model = MotionLLM(lm, tokenizer, vq_model, _array(mean, "mean"), _array(std, "std"), config,
                      device=torch_device, dtype=torch_dtype)
    model.template_tokens = "piecewise"   # read by reasoning.decoder
    model.stage = stage                   # read by reasoning.tasks.generate
    return model


# ---- pieces ------------------------------------------------------------------------------------

def _tokenizer(folder):
    d = Path(folder)
    if not (d / "config.json").is_file():
        raise IrmogenError(f"LLM folder {d}: missing config.json", code="not_found",
                           hint="point it at the downloaded Gemma-2-2B-it folder")
    if not any((d / name).is_file() for name in ("tokenizer.json", "tokenizer.model")):
        raise IrmogenError(f"LLM folder {d}: missing tokenizer.json", code="not_found")
    return AutoTokenizer.from_pretrained(str(d))


def _lm(folder, dtype: torch.dtype, weights: bool):
    """The text LM of a Hugging Face folder; without `weights`, only its architecture (uninitialised)."""
    d = Path(folder)
    if weights:
        if not any(any(d.glob(g)) for g in _WEIGHT_GLOBS):
            raise IrmogenError(f"LLM folder {d}: missing model weights (*.safetensors)", code="not_found")
        return AutoModelForCausalLM.from_pretrained(str(d), dtype=dtype).eval()
    with no_init_weights():  # every weight is overwritten by the checkpoint
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(d)), dtype=dtype).eval()


def _torch_load(path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise IrmogenError(f"checkpoint {p} not found", code="not_found")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return dict(load_file(str(p), device="cpu"))
        except Exception as e:  # safetensors raises its own error type for a damaged header
            raise IrmogenError(f"checkpoint {p}: not a readable .safetensors file ({type(e).__name__})",
                               code="bad_checkpoint") from e
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for bad or code-carrying files
        raise IrmogenError(f"checkpoint {p}: cannot be read as plain tensors ({type(e).__name__})",
                           code="bad_checkpoint", hint="only tensor checkpoints load; nothing is unpickled") from e
    if not isinstance(state, Mapping):
        raise IrmogenError(f"checkpoint {p}: holds a {type(state).__name__}, expected a dict of tensors",
                           code="bad_checkpoint")
    return dict(state)


def _load_vq(path) -> MotionVQ:
    return MotionVQ.from_published_state_dict(_torch_load(path))


def _array(value, name: str) -> np.ndarray:
    if isinstance(value, (str, Path)):
        if not Path(value).is_file():
            raise IrmogenError(f"{name} file {value} not found", code="not_found")
        return np.load(value, allow_pickle=False)
    return np.asarray(value)


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix):] if key.startswith(prefix) else key


def _adapter_ranks(state: Mapping, where) -> dict[str, int]:
    """Adapter name -> LoRA rank, read from the lora_A shapes, in first-seen order."""
    ranks: dict[str, int] = {}
    for key, value in state.items():
        m = _LORA_KEY.search(key)
        if m and ".lora_A." in key:
            ranks.setdefault(m.group(1), int(value.shape[0]))
    if not ranks:
        raise IrmogenError(f"{where}: no LoRA tensors (*.lora_A.<adapter>.weight) found", code="bad_checkpoint")
    return ranks


def _split_irg(state: Mapping, where):
    """(LM tensors under plain names, VQ tensors) of an IRG checkpoint in either saved form."""
    whole_module = any(k.startswith("llm.") for k in state)
    lm, vq = {}, {}
    for key, value in state.items():
        if key.startswith("net."):
            vq[key] = value
            continue
        if whole_module and not key.startswith("llm.") and key not in ("embeddings", "lm_head"):
            continue  # other sub-modules of the saved object
        name = _strip(key, "llm.").replace("base_model.model.", "").replace(".base_layer", "")
        if ".lora_" in name:
            raise IrmogenError(f"{where}: tensor {key!r} is an unmerged LoRA weight; IRG stage "
                               "checkpoints are full weights", code="bad_checkpoint",
                               hint="load LoRA checkpoints with the motion_agent format")
        lm[name] = value
    return lm, vq


def _copy_exact(module: torch.nn.Module, state: Mapping, where, expected: list[str]) -> None:
    """Copy every tensor of `expected` from `state` into `module`; all must be present, shaped alike,
    and `state` must hold nothing else."""
    own = module.state_dict()
    for name in expected:
        if name not in state:
            raise IrmogenError(f"{where}: missing tensor {name!r} (shape {list(own[name].shape)})",
                               code="bad_checkpoint")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise IrmogenError(f"{where}: unexpected tensor {extra[0]!r} (not in the model)", code="bad_checkpoint")
    with torch.no_grad():
        for name in expected:
            _check_shape(state[name], own[name].shape, name, where)
            own[name].copy_(state[name])


def _restore_rows(lm, rows: Mapping, layout, where) -> None:
    """Write the embedding and output-head rows a checkpoint carries into the resized LM.

    Input rows come from `model.embed_tokens.weight` then `embeddings`, output rows from
    `lm_head.weight` then `lm_head`; each may hold all N + K + 2 rows, the N text rows or the K + 2
    motion rows. Text rows a checkpoint lacks stay as the base model's. The order is the published
    loader's: when input and output embeddings are tied (Gemma), `lm_head` is the value that stays.
    Motion rows must be given for the input side, and for the output side unless it is tied.
    """
    inp, out = lm.get_input_embeddings().weight, lm.get_output_embeddings().weight
    tied = inp.data_ptr() == out.data_ptr()
    with torch.no_grad():
        for weight, names in ((inp, _ROW_KEYS[:2]), (out, _ROW_KEYS[2:])):
            given = [n for n in names if n in rows]
            if not given and weight is out and tied:
                continue
            covered = {_write_rows(weight, rows[n], n, layout, where) for n in given}
            if not covered & {"all", "motion"}:
                raise IrmogenError(f"{where}: missing tensor {names[1]!r} ([{layout.vocab_size - layout.text_vocab}, "
                                   f"{weight.shape[1]}] motion rows)", code="bad_checkpoint")


def _write_rows(weight: torch.Tensor, value: torch.Tensor, name: str, layout, where) -> str:
    n, k = layout.text_vocab, layout.vocab_size - layout.text_vocab
    spans = {layout.vocab_size: ("all", slice(None)), n: ("text", slice(0, n)), k: ("motion", slice(n, None))}
    if value.ndim != 2 or value.shape[0] not in spans or value.shape[1] != weight.shape[1]:
        raise IrmogenError(f"{where}: tensor {name!r} has shape {list(value.shape)}, expected "
                           f"[{layout.vocab_size} or {n} or {k}, {weight.shape[1]}]", code="bad_checkpoint")
    part, rows = spans[value.shape[0]]
    weight[rows].copy_(value)
    return part


def _check_shape(value, shape, name, where) -> None:
    if tuple(value.shape) != tuple(shape):
        raise IrmogenError(f"{where}: tensor {name!r} has shape {list(value.shape)}, expected {list(shape)}",
                           code="bad_checkpoint")


def _read_spec(path: Path) -> dict:
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise IrmogenError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
    for key in ("gemma_dir", "motionllm", "vqvae", "checkpoint", "vq", "mean", "std"):
        if isinstance(spec.get(key), str):
            spec[key] = str((path.parent / spec[key]).resolve())
    return spec

"""Loaders: tiny random models saved in every published format load back to the SAME logits.

A tiny Gemma-2 folder (config, tokenizer, safetensors) stands in for Gemma-2-2B-it; the reference
models are built here from it the way the published code builds them, then saved in the published
layouts with torch.save.
"""
import json

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from irmogen.errors import IrmogenError
from irmogen.llm.loaders import LORA_TARGETS, load_irg, load_model, load_motion_agent
from irmogen.llm.model import MotionLLM
from irmogen.llm.testing import tiny_llm_config, tiny_motionllm, tiny_tokenizer, tiny_vq_config
from irmogen.llm.tokens import add_motion_tokens, codes_to_text
from irmogen.vq import MotionVQ

ADAPTERS = {"t2m": 64, "m2t": 32}  # published ranks; alpha = rank


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny 'Gemma folder', vqvae.pth and mean/std files, plus the reference pieces."""
    root = tmp_path_factory.mktemp("published")
    gemma = root / "gemma-2-2b-it"
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(tiny_llm_config("gemma2", len(tokenizer)), dtype=torch.float32)
    base.save_pretrained(gemma)
    tokenizer.save_pretrained(gemma)
    vq = MotionVQ(tiny_vq_config()).eval()
    torch.save({"net": {"vqvae." + k: v for k, v in vq.state_dict().items()}}, root / "vqvae.pth")
    rng = np.random.default_rng(0)
    np.save(root / "mean.npy", rng.normal(size=263).astype(np.float32))
    np.save(root / "std.npy", rng.uniform(0.5, 1.5, 263).astype(np.float32))
    return {"root": root, "gemma": gemma, "vq": vq}


def _extended_base(files):
    """Base from the folder + motion tokens + resize + random motion rows (what training produced)."""
    tokenizer = AutoTokenizer.from_pretrained(files["gemma"])
    lm = AutoModelForCausalLM.from_pretrained(files["gemma"], dtype=torch.float32)
    layout = add_motion_tokens(tokenizer)
    lm.resize_token_embeddings(layout.vocab_size, mean_resizing=False)
    with torch.no_grad():
        lm.get_input_embeddings().weight[layout.text_vocab:].normal_(0, 0.2)
    return lm, tokenizer, layout


def _ids(tokenizer):
    text = "<bos>Goal Text: a man jogs in a circle. Response:" + codes_to_text([4, 99, 511, 0])
    return torch.tensor([tokenizer.encode(text, add_special_tokens=False)])


def _logits(lm, ids):
    with torch.no_grad():
        return lm(ids).logits


@pytest.fixture(scope="module")
def motion_agent(files):
    """A reference Motion-Agent model with random LoRA weights, saved as motionllm.pth."""
    torch.manual_seed(1)
    lm, tokenizer, layout = _extended_base(files)
    configs = {n: LoraConfig(r=r, lora_alpha=r, target_modules=list(LORA_TARGETS), lora_dropout=0.1,
                             bias="none", task_type="CAUSAL_LM") for n, r in ADAPTERS.items()}
    lm = get_peft_model(lm, configs["t2m"], adapter_name="t2m")
    lm.add_adapter("m2t", configs["m2t"])
    lm.eval()
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if ".lora_" in name:
                p.normal_(0, 0.05)  # peft starts B at zero; random weights make the adapters matter
    ids = _ids(tokenizer)
    expected = {}
    for name in ADAPTERS:
        lm.set_adapter(name)
        expected[name] = _logits(lm, ids)
    n = layout.text_vocab
    flat = {k: v.detach().clone() for k, v in lm.named_parameters() if ".lora_" in k}
    flat["embeddings"] = lm.get_input_embeddings().weight[n:].detach().clone()
    flat["lm_head"] = lm.get_output_embeddings().weight[n:].detach().clone()
    path = files["root"] / "motionllm.pth"
    torch.save(flat, path)
    return {"path": path, "expected": expected, "ids": ids, "flat": flat}


def _load_ma(files, motionllm):
    r = files["root"]
    return load_motion_agent(files["gemma"], motionllm, r / "vqvae.pth", r / "mean.npy", r / "std.npy", device="cpu")


def test_motion_agent_reproduces_both_adapters(files, motion_agent):
    model = _load_ma(files, motion_agent["path"])
    assert model.adapters == ["m2t", "t2m"] and model.config.prompt_style == "motion_agent"
    assert model.layout.vocab_size == len(model.tokenizer)
    ids = motion_agent["ids"]
    assert torch.equal(_logits(model.lm, ids), motion_agent["expected"]["t2m"])   # generation is the default
    model.use_task("caption")
    assert torch.equal(_logits(model.lm, ids), motion_agent["expected"]["m2t"])
    model.set_adapter("t2m")
    assert torch.equal(_logits(model.lm, ids), motion_agent["expected"]["t2m"])
    assert not torch.allclose(motion_agent["expected"]["t2m"], motion_agent["expected"]["m2t"])
    feats = np.random.default_rng(3).normal(size=(24, 263))
    x = torch.from_numpy(((feats - model.mean) / model.std).astype(np.float32))[None]
    assert np.array_equal(model.encode_motion(feats), files["vq"].encode(x)[0].numpy())


def test_motion_agent_merged_saves_to_our_directory(files, motion_agent, tmp_path):
    model = _load_ma(files, motion_agent["path"])
    model.merge_adapter("t2m")
    model.save_pretrained(tmp_path)
    again = MotionLLM.from_pretrained(tmp_path, device="cpu")
    assert not again.adapters
    torch.testing.assert_close(_logits(again.lm, motion_agent["ids"]), motion_agent["expected"]["t2m"],
                               rtol=1e-4, atol=1e-4)


def test_motion_agent_errors_name_file_and_tensor(files, motion_agent, tmp_path):
    with pytest.raises(IrmogenError, match="nowhere.pth"):
        _load_ma(files, tmp_path / "nowhere.pth")
    flat = dict(motion_agent["flat"])
    key = next(k for k in flat if k.endswith("q_proj.lora_B.m2t.weight"))
    flat[key] = torch.zeros(flat[key].shape[0], flat[key].shape[1] + 1)
    torch.save(flat, tmp_path / "bad_shape.pth")
    with pytest.raises(IrmogenError, match=r"q_proj\.lora_B\.m2t\.weight.*expected"):
        _load_ma(files, tmp_path / "bad_shape.pth")
    flat = dict(motion_agent["flat"])
    del flat[key]
    torch.save(flat, tmp_path / "missing.pth")
    with pytest.raises(IrmogenError, match=r"missing tensor .*q_proj\.lora_B\.m2t\.weight"):
        _load_ma(files, tmp_path / "missing.pth")
    flat = dict(motion_agent["flat"])
    flat["embeddings"] = flat["embeddings"][:100]
    torch.save(flat, tmp_path / "rows.pth")
    with pytest.raises(IrmogenError, match=r"'embeddings' has shape \[100, 64\]"):
        _load_ma(files, tmp_path / "rows.pth")
    with pytest.raises(IrmogenError, match="config.json"):
        load_motion_agent(tmp_path, motion_agent["path"], files["root"] / "vqvae.pth", 0, 1, device="cpu")


@pytest.fixture(scope="module")
def irg(files):
    """A reference full-weight model (as a stage checkpoint would hold), its logits and state."""
    torch.manual_seed(2)
    lm, tokenizer, layout = _extended_base(files)
    with torch.no_grad():
        for p in lm.parameters():
            p.add_(torch.randn_like(p) * 0.05)   # 'trained': every weight moved from the base
    return {"lm": lm, "ids": _ids(tokenizer), "expected": _logits(lm, _ids(tokenizer)), "layout": layout}


def _load_irg(files, path, vq="vqvae.pth"):
    r = files["root"]
    return load_irg(files["gemma"], path, None if vq is None else r / vq, r / "mean.npy", r / "std.npy", device="cpu")


def test_irg_state_dict_form(files, irg, tmp_path):
    state = {k: v.clone() for k, v in irg["lm"].state_dict().items()
             if k not in ("model.embed_tokens.weight", "lm_head.weight")}
    state["embeddings"] = irg["lm"].get_input_embeddings().weight.detach().clone()
    state["lm_head"] = irg["lm"].get_output_embeddings().weight.detach().clone()
    torch.save({"state_dict": state}, tmp_path / "stage2.pth")
    model = _load_irg(files, tmp_path / "stage2.pth")
    assert model.config.prompt_style == "irmogen" and not model.adapters
    assert torch.equal(_logits(model.lm, irg["ids"]), irg["expected"])


def test_irg_whole_module_form_with_vq_and_motion_rows(files, irg, tmp_path):
    n = irg["layout"].text_vocab
    state = {}
    for k, v in irg["lm"].state_dict().items():
        if any(f".{t}." in k for t in LORA_TARGETS):
            k = k.replace(".weight", ".base_layer.weight")   # a merged peft wrapper keeps base_layer names
        state["llm.base_model.model." + k] = v.clone()
    state["llm.base_model.model.model.embed_tokens.weight"] = irg["lm"].get_input_embeddings().weight[:n].clone()
    state["embeddings"] = irg["lm"].get_input_embeddings().weight[n:].clone()   # 514 rows
    del state["llm.base_model.model.lm_head.weight"]                             # tied in Gemma
    state.update({"net.vqvae." + k: v for k, v in files["vq"].state_dict().items()})
    state["text_encoder.weight"] = torch.zeros(3)   # another sub-module of the saved object: ignored
    torch.save(state, tmp_path / "stage3.pth")
    model = _load_irg(files, tmp_path / "stage3.pth", vq=None)
    assert torch.equal(_logits(model.lm, irg["ids"]), irg["expected"])
    assert torch.equal(model.vq.quantizer.codebook, files["vq"].quantizer.codebook)


def _irg_state(irg):
    state = {k: v.clone() for k, v in irg["lm"].state_dict().items()
             if k not in ("model.embed_tokens.weight", "lm_head.weight")}
    state["embeddings"] = irg["lm"].get_input_embeddings().weight.detach().clone()
    state["lm_head"] = irg["lm"].get_output_embeddings().weight.detach().clone()
    return state


def test_irg_safetensors_checkpoint(files, irg, tmp_path):
    save_file(_irg_state(irg), str(tmp_path / "stage2.safetensors"))
    model = _load_irg(files, tmp_path / "stage2.safetensors")
    assert torch.equal(_logits(model.lm, irg["ids"]), irg["expected"])
    assert model.template_tokens == "piecewise"
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(IrmogenError, match=r"bad\.safetensors: not a readable \.safetensors file"):
        _load_irg(files, tmp_path / "bad.safetensors")


def test_a_stage1_checkpoint_runs_the_stage1_loop_by_default(files, irg, tmp_path):
    """IRG evaluates stage-1 checkpoints with separate generate / instruct / refine calls."""
    from irmogen.reasoning import tasks
    torch.save({"state_dict": _irg_state(irg)}, tmp_path / "stage1.pth")
    r = files["root"]
    spec = {"format": "irg", "gemma_dir": str(files["gemma"]), "checkpoint": "stage1.pth",
            "vq": str(r / "vqvae.pth"), "mean": str(r / "mean.npy"), "std": str(r / "std.npy")}
    opts = dict(max_rounds=2, max_text_tokens=6, decode_clips=False)
    (tmp_path / "stage1.json").write_text(json.dumps(spec | {"stage": 1}))
    stage1 = load_model(tmp_path / "stage1.json", device="cpu")
    done = list(tasks.generate(stage1, "a man jogs in a circle", **opts))[-1]
    manual = list(tasks.generate_manual(stage1, "a man jogs in a circle", **opts))[-1]
    assert done.trace == manual.trace and done.trace.analysis is None        # no IRMoGen trace
    (tmp_path / "stage2.json").write_text(json.dumps(spec | {"stage": 2}))
    stage2 = load_model(tmp_path / "stage2.json", device="cpu")
    done = list(tasks.generate(stage2, "a man jogs in a circle", **opts))[-1]
    assert done.trace.analysis is not None and done.trace_text.startswith("<think>")
    with pytest.raises(IrmogenError, match="stage 4 is not 1, 2 or 3"):
        load_model(spec | {"stage": 4, "checkpoint": str(tmp_path / "stage1.pth")}, device="cpu")


def test_irg_errors_name_the_tensor(files, irg, tmp_path):
    state = {k: v.clone() for k, v in irg["lm"].state_dict().items()}
    del state["model.layers.1.mlp.down_proj.weight"]
    torch.save({"state_dict": state}, tmp_path / "missing.pth")
    with pytest.raises(IrmogenError, match=r"missing tensor 'model\.layers\.1\.mlp\.down_proj\.weight'"):
        _load_irg(files, tmp_path / "missing.pth")
    state = {k: v.clone() for k, v in irg["lm"].state_dict().items()}
    state["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(5, 64)
    torch.save({"state_dict": state}, tmp_path / "shape.pth")
    with pytest.raises(IrmogenError, match=r"k_proj\.weight' has shape \[5, 64\], expected \[32, 64\]"):
        _load_irg(files, tmp_path / "shape.pth")
    state = {k: v.clone() for k, v in irg["lm"].state_dict().items()}
    state["model.layers.0.self_attn.q_proj.lora_A.shared.weight"] = torch.zeros(4, 64)
    torch.save({"state_dict": state}, tmp_path / "lora.pth")
    with pytest.raises(IrmogenError, match="unmerged LoRA"):
        _load_irg(files, tmp_path / "lora.pth")
    torch.save({"state_dict": {k: v for k, v in state.items() if "lora" not in k}}, tmp_path / "novq.pth")
    with pytest.raises(IrmogenError, match="no VQ"):
        _load_irg(files, tmp_path / "novq.pth", vq=None)


def test_code_carrying_pickles_are_refused(files, tmp_path):
    torch.save({"net": {"x": torch.zeros(1)}, "opt": np.dtype("float32").type}, tmp_path / "evil.pth")
    with pytest.raises(IrmogenError, match="plain tensors"):
        _load_ma(files, tmp_path / "evil.pth")


def test_load_model_dispatch(files, motion_agent, tmp_path):
    ours = tiny_motionllm(seed=4)
    ours.save_pretrained(tmp_path / "ours")
    assert torch.equal(_logits(load_model(tmp_path / "ours", device="cpu").lm, motion_agent["ids"][:, :20]),
                       _logits(ours.lm, motion_agent["ids"][:, :20]))
    r = files["root"]
    spec = {"format": "motion_agent", "gemma_dir": str(files["gemma"]), "motionllm": "motionllm.pth",
            "vqvae": "vqvae.pth", "mean": "mean.npy", "std": "std.npy"}
    (r / "spec.json").write_text(json.dumps(spec))
    model = load_model(r / "spec.json", device="cpu")
    assert torch.equal(_logits(model.lm, motion_agent["ids"]), motion_agent["expected"]["t2m"])
    with pytest.raises(IrmogenError, match="checkpoint"):
        load_model({"format": "irg", "gemma_dir": str(files["gemma"]), "mean": 0, "std": 1})
    with pytest.raises(IrmogenError, match="not a model directory"):
        load_model(tmp_path / "missing")

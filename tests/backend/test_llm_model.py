"""MotionLLM: the tiny model's layout, motion <-> codes <-> clip, and our model directory round trip."""
import json

import numpy as np
import pytest
import torch

from irmogen.errors import IrmogenError
from irmogen.llm.model import MotionLLM, MotionLLMConfig
from irmogen.llm.testing import tiny_motionllm
from irmogen.llm.tokens import codes_to_text


def _ids(model, codes=(5, 77, 300)):
    text = "Goal Text: a man jogs in a circle. Response:" + codes_to_text(list(codes))
    return torch.tensor([model.tokenizer.encode(text, add_special_tokens=False)])


@pytest.fixture(scope="module", params=["llama", "gemma2"])
def tiny(request):
    return tiny_motionllm(seed=0, arch=request.param)


def test_tiny_model_layout(tiny):
    layout = tiny.layout
    assert tiny.lm.get_input_embeddings().weight.shape[0] == layout.vocab_size == len(tiny.tokenizer)
    assert tiny.lm.get_output_embeddings().weight.shape[0] == layout.vocab_size
    assert tiny.lm(_ids(tiny)).logits.shape[-1] == layout.vocab_size
    assert (tiny.device.type, tiny.dtype) == ("cpu", torch.float32)


def test_tiny_model_is_deterministic_per_seed(tiny):
    arch = tiny.lm.config.model_type
    same, other = tiny_motionllm(seed=0, arch=arch), tiny_motionllm(seed=1, arch=arch)
    ids = _ids(tiny)
    with torch.no_grad():
        assert torch.equal(tiny.lm(ids).logits, same.lm(ids).logits)
        assert not torch.allclose(tiny.lm(ids).logits, other.lm(ids).logits)
    assert torch.equal(tiny.vq.quantizer.codebook, same.vq.quantizer.codebook)


def test_save_then_load_reproduces_logits_and_codes_exactly(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    for name in ("config.json", "model.safetensors", "vq.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "mean.npy", "std.npy", "MODEL_CARD.md"):
        assert (tmp_path / name).is_file(), name
    loaded = MotionLLM.from_pretrained(tmp_path, device="cpu")
    ids = _ids(tiny)
    with torch.no_grad():
        assert torch.equal(tiny.lm(ids).logits, loaded.lm(ids).logits)
    assert loaded.tokenizer.encode(codes_to_text([1, 2]), add_special_tokens=False) == \
        tiny.tokenizer.encode(codes_to_text([1, 2]), add_special_tokens=False)
    assert loaded.layout == tiny.layout and loaded.config.to_dict() == tiny.config.to_dict()
    feats = np.random.default_rng(0).normal(size=(36, 263)).astype(np.float32)
    codes = tiny.encode_motion(feats)
    assert np.array_equal(loaded.encode_motion(feats), codes)
    assert np.array_equal(loaded.decode_codes(codes), tiny.decode_codes(codes))
    assert np.array_equal(loaded.mean, tiny.mean) and np.array_equal(loaded.std, tiny.std)


def test_encode_decode_shapes_and_clip(tiny):
    feats = np.random.default_rng(1).normal(size=(42, 263)) * tiny.std + tiny.mean
    codes = tiny.encode_motion(feats)
    assert codes.shape == (10,) and codes.dtype == np.int64
    assert ((codes >= 0) & (codes < 512)).all()
    decoded = tiny.decode_codes(codes)
    assert decoded.shape == (40, 263) and decoded.dtype == np.float32
    clip = tiny.codes_to_clip(codes[:6], text="a man jogs")
    clip.validate()
    assert clip.fps == 20.0 and clip.text == "a man jogs" and clip.positions.shape == (25, 22, 3)


def test_bad_codes_and_features_are_named(tiny):
    with pytest.raises(IrmogenError, match="512"):
        tiny.decode_codes([1, 512])
    with pytest.raises(IrmogenError, match="263"):
        tiny.encode_motion(np.zeros((20, 251)))


def test_missing_file_and_bad_config_are_named(tmp_path):
    model = tiny_motionllm(seed=2)
    model.save_pretrained(tmp_path)
    (tmp_path / "vq.safetensors").unlink()
    with pytest.raises(IrmogenError, match="vq.safetensors"):
        MotionLLM.from_pretrained(tmp_path, device="cpu")
    config = json.loads((tmp_path / "config.json").read_text())
    config["prompt_style"] = "chatml"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(IrmogenError, match="prompt_style"):
        MotionLLMConfig.load(tmp_path / "config.json")
    with pytest.raises(IrmogenError, match="does not exist"):
        MotionLLM.from_pretrained(tmp_path / "nowhere")


def test_wrong_normalisation_is_refused():
    model = tiny_motionllm(seed=0)
    with pytest.raises(IrmogenError, match="std"):
        MotionLLM(model.lm, model.tokenizer, model.vq, model.mean, np.zeros(263), model.config, device="cpu")
    with pytest.raises(IrmogenError, match="mean"):
        MotionLLM(model.lm, model.tokenizer, model.vq, model.mean[:251], model.std, model.config, device="cpu")


def test_bfloat16_on_request():
    model = tiny_motionllm(seed=0, dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and model.lm.dtype == torch.bfloat16
    assert model.vq.quantizer.codebook.dtype == torch.float32
    with torch.no_grad():
        assert torch.isfinite(model.lm(_ids(model)).logits).all()

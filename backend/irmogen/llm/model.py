"""MotionLLM: a transformers causal LM that speaks motion tokens, plus its motion tokenizer (VQ).

The LM is any `AutoModelForCausalLM` (Gemma-2 for the paper's model, a small Llama-style config for
ours) whose vocabulary is the text tokenizer's N tokens plus the 514 motion tokens (llm/tokens.py).
Motion crosses the boundary as HumanML3D features: normalise with the model's own mean/std ->
VQ codes -> token ids, and back: codes -> VQ decoder -> features -> joint positions -> Clip.

Our model directory (DESIGN.md "Models"): config.json (MotionLLMConfig, holding the LM's own config
dict), model.safetensors (the LM), vq.safetensors, tokenizer.json + tokenizer_config.json,
mean.npy/std.npy, optional evaluator.safetensors, MODEL_CARD.md. Nothing is ever unpickled.
Must not import bpy.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils import logging as hf_logging

from ..clip import MODEL_FPS
from ..device import resolve_device
from ..errors import IrmogenError
from ..vq import MotionVQ, VQConfig
from .prompt_encoder import WEIGHTS as PROMPT_ENCODER_WEIGHTS
from .prompt_encoder import PromptEncoder, PromptEncoderConfig
from .tokens import CODEBOOK_SIZE, MotionTokenLayout, add_motion_tokens, check_motion_tokens

# Loading a model is one step of our own progress; transformers' per-tensor bar is noise on stderr.
hf_logging.disable_progress_bar()

FORMAT = "irmogen-motionllm"
FORMAT_VERSION = 1
FEATURE_DIM = 263
DIRECTORY_FILES = ("config.json", "model.safetensors", "vq.safetensors", "tokenizer.json",
                   "mean.npy", "std.npy")
PROMPT_STYLES = ("irmogen", "motion_agent")


@dataclass
class MotionLLMConfig:
    """Everything needed to rebuild a MotionLLM from its directory (saved as config.json)."""

    llm: dict                              # the transformers config, `PretrainedConfig.to_dict()`
    text_vocab: int                        # N: text tokens before the motion tokens
    codebook_size: int = CODEBOOK_SIZE
    vq: dict = field(default_factory=dict)  # VQConfig fields
    fps: float = MODEL_FPS
    feature_dim: int = FEATURE_DIM
    normalisation: str = "dataset"         # where mean.npy/std.npy come from ("dataset", "evaluator", ...)
    prompt_style: str = "irmogen"          # "irmogen" (CoT template) or "motion_agent" (instruction prompt)
    adapters: dict = field(default_factory=dict)  # task -> LoRA adapter name ({} for full-weight models)
    # {"name": "all-MiniLM-L6-v2", "prefix_tokens": P}: the user's text also goes in as P soft tokens
    # (llm/prompt_encoder.py); None (absent from older config.json files): no prompt encoder
    prompt_encoder: dict | None = None
    format: str = FORMAT
    version: int = FORMAT_VERSION

    def __post_init__(self):
        if self.format != FORMAT:
            raise IrmogenError(f"config.json: format {self.format!r} is not {FORMAT!r}")
        if self.version > FORMAT_VERSION:
            raise IrmogenError(f"config.json: version {self.version} is newer than this irmogen reads "
                               f"({FORMAT_VERSION})", hint="update irmogen")
        if "model_type" not in self.llm or self.llm["model_type"] not in CONFIG_MAPPING:
            raise IrmogenError(f"config.json: llm.model_type {self.llm.get('model_type')!r} is not a "
                               "transformers model type")
        if self.prompt_style not in PROMPT_STYLES:
            raise IrmogenError(f"config.json: prompt_style {self.prompt_style!r} is not one of {PROMPT_STYLES}")
        if self.fps <= 0 or self.feature_dim < 1:
            raise IrmogenError(f"config.json: fps={self.fps} and feature_dim={self.feature_dim} must be positive")
        if self.prompt_encoder is not None:
            PromptEncoderConfig.from_dict(self.prompt_encoder)  # names a bad field or value

    @property
    def layout(self) -> MotionTokenLayout:
        return MotionTokenLayout(self.text_vocab, self.codebook_size)

    @property
    def vq_config(self) -> VQConfig:
        return VQConfig.from_dict(self.vq)

    def llm_config(self):
        data = dict(self.llm)
        return CONFIG_MAPPING[data.pop("model_type")].from_dict(data)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "config.json") -> "MotionLLMConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise IrmogenError(f"{where}: unknown field {unknown[0]!r}")
        missing = [k for k in ("llm", "text_vocab") if k not in data]
        if missing:
            raise IrmogenError(f"{where}: missing field {missing[0]!r}")
        return cls(**data)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> "MotionLLMConfig":
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise IrmogenError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
        return cls.from_dict(data, where=str(path))


class MotionLLM:
    """The LM (`.lm`), its tokenizer with motion tokens, the VQ and the feature normalisation."""

    def __init__(self, lm: PreTrainedModel, tokenizer, vq: MotionVQ, mean, std, config: MotionLLMConfig,
                 device: str | torch.device = "auto", dtype: str | torch.dtype | None = None,
                 prompt_encoder: PromptEncoder | None = None):
        self.config = config
        self.layout = config.layout
        self.tokenizer = tokenizer
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        self._check(lm)
        self.device, self.dtype = resolve_device(device, dtype)
        self.lm = lm.to(device=self.device, dtype=self.dtype).eval()
        self.vq = vq.to(self.device).eval()  # the VQ stays float32: it is small and bf16 hurts decoding
        self.prompt_encoder = None
        if prompt_encoder is not None:
            self.set_prompt_encoder(prompt_encoder)

    # ---- the prompt encoder (llm/prompt_encoder.py) -------------------------------------------
    def set_prompt_encoder(self, encoder: PromptEncoder | None) -> None:
        """Attach (or with None remove) a prompt encoder; the config field follows."""
        self.prompt_encoder = None if encoder is None else encoder.to(self.device).eval()
        self.config.prompt_encoder = None if encoder is None else encoder.config.to_dict()

    @property
    def guidance(self) -> float:
        """The model's default classifier-free guidance scale for motion codes (1: none)."""
        return 1.0 if self.prompt_encoder is None else self.prompt_encoder.config.guidance

    @torch.inference_mode()
    def prefix_cache(self, condition: str | None, unconditioned: bool = False):
        """The LM's KV cache after the soft prefix of `condition` ("" when None), or None when the
        model has no prompt encoder. The decoder continues feeding tokens after it. With
        `unconditioned` the cache holds a second row, after the empty text's prefix (for guidance)."""
        if self.prompt_encoder is None:
            return None
        texts = [condition or ""] + ([""] if unconditioned else [])
        embeds = self.prompt_encoder.prefix(texts, self.device, self.dtype)
        return self.lm(inputs_embeds=embeds, use_cache=True).past_key_values

    @classmethod
    def from_text_lm(cls, lm: PreTrainedModel, tokenizer, vq: MotionVQ, mean, std, *,
                     mean_resizing: bool = True, device="auto", dtype=None, **config_fields) -> "MotionLLM":
        """Extend a text LM + tokenizer with the motion tokens (embeddings resized to N + K + 2)."""
        layout = add_motion_tokens(tokenizer, vq.config.codebook_size)
        lm.resize_token_embeddings(layout.vocab_size, mean_resizing=mean_resizing)
        config = MotionLLMConfig(llm=llm_config_dict(lm), text_vocab=layout.text_vocab,
                                 codebook_size=layout.codebook_size, vq=vq.config.to_dict(), **config_fields)
        return cls(lm, tokenizer, vq, mean, std, config, device=device, dtype=dtype)

    def _check(self, lm) -> None:
        check_motion_tokens(self.tokenizer, self.layout)
        rows = lm.get_input_embeddings().weight.shape[0]
        if rows != self.layout.vocab_size:
            raise IrmogenError(f"LM input embeddings have {rows} rows, expected {self.layout.vocab_size} "
                               f"({self.layout.text_vocab} text + {self.layout.codebook_size + 2} motion tokens)")
        dim = self.config.feature_dim
        for name, arr in (("mean", self.mean), ("std", self.std)):
            if arr.shape != (dim,) or not np.all(np.isfinite(arr)):
                raise IrmogenError(f"{name}: shape {arr.shape} (expected ({dim},), finite)")
        if np.any(self.std <= 0):
            raise IrmogenError(f"std: entry {int(np.argmin(self.std))} is {self.std.min()}, must be positive")

    # ---- motion <-> codes -------------------------------------------------------------------
    @torch.inference_mode()
    def encode_motion(self, features: np.ndarray) -> np.ndarray:
        """(T, 263) unnormalised features -> (T // 4,) int64 codes."""
        f = np.asarray(features, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != self.config.feature_dim:
            raise IrmogenError(f"features: shape {f.shape}, expected (frames, {self.config.feature_dim})")
        x = torch.from_numpy((f - self.mean) / self.std).to(self.device)[None]
        return self.vq.encode(x)[0].cpu().numpy().astype(np.int64)

    @torch.inference_mode()
    def decode_codes(self, codes) -> np.ndarray:
        """(N,) codes -> (4N, 263) unnormalised float32 features."""
        c = np.asarray(codes, dtype=np.int64).reshape(-1)
        if c.size == 0 or c.min() < 0 or c.max() >= self.layout.codebook_size:
            raise IrmogenError(f"codes: {c.size} codes in [{c.min(initial=0)}, {c.max(initial=0)}], need at "
                               f"least one, each in [0, {self.layout.codebook_size})")
        x = self.vq.decode(torch.from_numpy(c).to(self.device)[None])[0].float().cpu().numpy()
        return x * self.std + self.mean

    def codes_to_clip(self, codes, text: str = ""):
        """Codes -> features -> joint positions -> a Clip with solved rotations (at the model's fps)."""
        from ..features import features_to_positions
        from ..rotations import clip_from_positions

        positions = features_to_positions(self.decode_codes(codes))
        return clip_from_positions(positions, self.config.fps, text=text)

    # ---- LoRA adapters (Motion-Agent) --------------------------------------------------------
    @property
    def adapters(self) -> list[str]:
        peft_config = getattr(self.lm, "peft_config", None)
        return sorted(peft_config) if peft_config else []

    def set_adapter(self, name: str) -> None:
        if name not in self.adapters:
            raise IrmogenError(f"adapter {name!r} not in this model (it has {self.adapters or 'none'})")
        self.lm.set_adapter(name)

    def use_task(self, task: str) -> None:
        """Activate the adapter for a task ("generate", "caption", ...); no-op for full-weight models."""
        if self.config.adapters:
            if task not in self.config.adapters:
                raise IrmogenError(f"task {task!r} has no adapter (known: {sorted(self.config.adapters)})")
            self.set_adapter(self.config.adapters[task])

    def merge_adapter(self, name: str) -> None:
        """Fold one LoRA adapter into the weights and drop all adapters (e.g. before save_pretrained)."""
        self.set_adapter(name)
        self.lm = self.lm.merge_and_unload(adapter_names=[name]).eval()
        self.config.adapters = {}
        self.config.llm = llm_config_dict(self.lm)

    # ---- our model directory -----------------------------------------------------------------
    def save_pretrained(self, directory, model_card: str | None = None) -> Path:
        if self.adapters:
            raise IrmogenError("save_pretrained: this model still has LoRA adapters "
                               f"{self.adapters}", hint="call merge_adapter(name) first")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.config.llm = llm_config_dict(self.lm)
        self.config.vq = self.vq.config.to_dict()
        self.config.save(d / "config.json")
        save_model(self.lm, str(d / "model.safetensors"), metadata={"format": "pt"})
        self.vq.save(d)
        self.tokenizer.save_pretrained(str(d))
        np.save(d / "mean.npy", self.mean)
        np.save(d / "std.npy", self.std)
        if self.prompt_encoder is not None:
            save_model(self.prompt_encoder, str(d / PROMPT_ENCODER_WEIGHTS), metadata={"format": "pt"})
        if model_card is not None or not (d / "MODEL_CARD.md").exists():
            (d / "MODEL_CARD.md").write_text(model_card or self._default_card())
        return d

    @classmethod
    def from_pretrained(cls, directory, device="auto", dtype=None) -> "MotionLLM":
        d = Path(directory)
        if not d.is_dir():
            raise IrmogenError(f"model directory {d} does not exist", code="not_found")
        for name in DIRECTORY_FILES:
            if not (d / name).is_file():
                raise IrmogenError(f"model directory {d}: missing {name}", code="not_found")
        config = MotionLLMConfig.load(d / "config.json")
        torch_device, torch_dtype = resolve_device(device, dtype)
        lm = AutoModelForCausalLM.from_pretrained(str(d), config=config.llm_config(), dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(d))
        vq = MotionVQ.load(d, config.vq_config)
        mean = np.load(d / "mean.npy", allow_pickle=False)
        std = np.load(d / "std.npy", allow_pickle=False)
        return cls(lm, tokenizer, vq, mean, std, config, device=torch_device, dtype=torch_dtype,
                   prompt_encoder=_load_prompt_encoder(d, config, lm))

    def _default_card(self) -> str:
        params = sum(p.numel() for p in self.lm.parameters())
        return (f"# IRMoGen MotionLLM\n\n- LM: {self.lm.config.model_type}, {params / 1e6:.1f} M parameters, "
                f"{self.lm.config.num_hidden_layers} layers\n- vocabulary: {self.layout.text_vocab} text + "
                f"{self.layout.codebook_size + 2} motion tokens\n- motion: {self.config.feature_dim}-d features "
                f"at {self.config.fps:g} fps, normalisation: {self.config.normalisation}\n")



def _load_prompt_encoder(d: Path, config: MotionLLMConfig, lm) -> PromptEncoder | None:
    if config.prompt_encoder is None:
        return None
    path = d / PROMPT_ENCODER_WEIGHTS
    if not path.is_file():
        raise IrmogenError(f"model directory {d}: config.json has a prompt_encoder but {PROMPT_ENCODER_WEIGHTS} "
                           "is missing", code="not_found")
    from safetensors.torch import load_model

    encoder = PromptEncoder(PromptEncoderConfig.from_dict(config.prompt_encoder), lm.config.hidden_size)
    try:
        load_model(encoder, str(path))
    except RuntimeError as e:
        raise IrmogenError(f"{path}: does not fit the config's prompt encoder ({str(e).splitlines()[0]})") from e
    return encoder


def llm_config_dict(lm: PreTrainedModel) -> dict:
    """The LM's transformers config as it will read back from config.json (JSON keys are strings)."""
    data = json.loads(lm.config.to_json_string(use_diff=False))
    data.pop("_name_or_path", None)
    return data

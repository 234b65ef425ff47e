"""The motion tokenizer: T2M-GPT's VQ-VAE, with the published checkpoint's tensor names.

Normalised HumanML3D features (B, T, 263) go through 1-D convolutions over time (channels first),
are downsampled x4 (`down_t` stride-2 stages) and snapped to the nearest of 512 codes (squared L2);
the decoder mirrors the encoder with nearest-neighbour x2 upsampling. 196 frames -> 49 codes.
Layer indices, residual stacks (pre-activation blocks, dilations 9, 3, 1 in encoder AND decoder)
and the 67-tensor state dict follow reference/model.md, so T2M-GPT / Motion-Agent / IRG VQ weights
load with strict=True. `VQConfig` shrinks the same layout for our own CPU-trained tokenizer.

Training (T2M-GPT): the codebook is not learned by gradients but by exponential moving averages
of the encoder outputs assigned to each code (decay `mu`); codes whose EMA usage falls below
`reset_threshold` are re-seeded from the current batch; the encoder gets gradients through a
straight-through estimator plus the commitment loss. EMA statistics are non-persistent buffers, so
saved state dicts hold exactly the published tensors.

Frames: the encoder needs T divisible by 4; inputs are CROPPED to T // 4 * 4 frames (the tail is
dropped), so decode(encode(x)) has T // 4 * 4 frames. Torch and safetensors only; never imports bpy.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .errors import IrmogenError

VQ_FILENAME = "vq.safetensors"
_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}
_PREFIXES = ("net.", "vqvae.", "module.")


@dataclass
class VQConfig:
    input_dim: int = 263          # 263 HumanML3D, 251 KIT-ML
    width: int = 512              # channels of every hidden convolution
    codebook_size: int = 512
    code_dim: int = 512
    down_t: int = 2               # number of stride-2 stages: x4 downsampling
    stride_t: int = 2
    depth: int = 3                # residual blocks per stack
    dilation_growth_rate: int = 3  # dilations growth**(depth-1) ... 1: 9, 3, 1
    activation: str = "relu"
    mu: float = 0.99              # EMA decay of the codebook statistics
    commit: float = 0.02          # commitment loss weight
    vel_weight: float = 0.5       # weight of T2M-GPT's "velocity" term, see `training_loss`
    reset_threshold: float = 1.0  # codes with EMA usage below this are re-seeded from the batch

    def __post_init__(self):
        for name in ("input_dim", "width", "codebook_size", "code_dim", "down_t", "stride_t",
                     "depth", "dilation_growth_rate"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise IrmogenError(f"VQConfig.{name} = {value!r}: expected a positive integer")
        if self.activation not in _ACTIVATIONS:
            raise IrmogenError(f"VQConfig.activation = {self.activation!r}: expected one of "
                               f"{sorted(_ACTIVATIONS)}")
        if not 0.0 <= self.mu < 1.0:
            raise IrmogenError(f"VQConfig.mu = {self.mu!r}: expected 0 <= mu < 1")
        if self.reset_threshold <= 0:
            raise IrmogenError(f"VQConfig.reset_threshold = {self.reset_threshold!r}: expected > 0")

    @property
    def downsample(self) -> int:
        """Frames per code (4 by default)."""
        return self.stride_t ** self.down_t

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "VQConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise IrmogenError(f"VQ config: unknown field {unknown[0]!r}", hint=f"known: {sorted(known)}")
        return cls(**dict(d))


# --- Encoder and decoder (key names as in the published checkpoint) ----------------------------

class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv2(act(conv1(act(x)))), conv1 k3 dilated, conv2 k1."""

    def __init__(self, width: int, dilation: int, activation: str):
        super().__init__()
        self.act1 = _ACTIVATIONS[activation]()
        self.conv1 = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.act2 = _ACTIVATIONS[activation]()
        self.conv2 = nn.Conv1d(width, width, 1)

    def forward(self, x):
        return x + self.conv2(self.act2(self.conv1(self.act1(x))))


class ResStack(nn.Module):
    """`depth` residual blocks, largest dilation first (9, 3, 1), in encoder and decoder alike."""

    def __init__(self, c: VQConfig):
        super().__init__()
        dilations = [c.dilation_growth_rate ** i for i in reversed(range(c.depth))]
        self.model = nn.Sequential(*[ResBlock(c.width, d, c.activation) for d in dilations])

    def forward(self, x):
        return self.model(x)


class Encoder(nn.Module):
    """(B, input_dim, T) -> (B, code_dim, T / downsample)."""

    def __init__(self, c: VQConfig):
        super().__init__()
        stages = [nn.Sequential(nn.Conv1d(c.width, c.width, 2 * c.stride_t, c.stride_t, c.stride_t // 2),
                                ResStack(c)) for _ in range(c.down_t)]
        self.model = nn.Sequential(nn.Conv1d(c.input_dim, c.width, 3, padding=1),
                                   _ACTIVATIONS[c.activation](),
                                   *stages,
                                   nn.Conv1d(c.width, c.code_dim, 3, padding=1))

    def forward(self, x):
        return self.model(x)


class Decoder(nn.Module):
    """(B, code_dim, N) -> (B, input_dim, N * downsample)."""

    def __init__(self, c: VQConfig):
        super().__init__()
        stages = [nn.Sequential(ResStack(c), nn.Upsample(scale_factor=c.stride_t, mode="nearest"),
                                nn.Conv1d(c.width, c.width, 3, padding=1)) for _ in range(c.down_t)]
        self.model = nn.Sequential(nn.Conv1d(c.code_dim, c.width, 3, padding=1),
                                   _ACTIVATIONS[c.activation](),
                                   *stages,
                                   nn.Conv1d(c.width, c.width, 3, padding=1),
                                   _ACTIVATIONS[c.activation](),
                                   nn.Conv1d(c.width, c.input_dim, 3, padding=1))

    def forward(self, x):
        return self.model(x)


# --- Quantiser ---------------------------------------------------------------------------------

class EMAQuantizer(nn.Module):
    """Nearest-code quantiser with an EMA-trained codebook and dead-code reset (T2M-GPT)."""

    def __init__(self, c: VQConfig):
        super().__init__()
        self.mu, self.threshold = c.mu, c.reset_threshold
        # Random until trained: an untrained tokenizer still yields varied codes. The first
        # training batch re-seeds it from encoder outputs (T2M-GPT's data initialisation).
        self.register_buffer("codebook", torch.randn(c.codebook_size, c.code_dim))
        self.register_buffer("code_sum", torch.zeros(c.codebook_size, c.code_dim), persistent=False)
        self.register_buffer("code_count", torch.zeros(c.codebook_size), persistent=False)
        self.register_buffer("initialised", torch.tensor(False), persistent=False)
        self.register_load_state_dict_post_hook(_quantizer_loaded)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(M, code_dim) -> (M,) long: index of the closest code by squared L2."""
        z, k = z.float(), self.codebook.float()   # half-precision distances can pick the wrong code
        d = z.pow(2).sum(-1, keepdim=True) - 2 * z @ k.t() + k.pow(2).sum(-1)[None]
        return d.argmin(-1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.codebook)

    def forward(self, z: torch.Tensor):
        """z (B, code_dim, N) -> (quantised z (B, code_dim, N), commitment loss, perplexity)."""
        B, C, N = z.shape
        flat = z.permute(0, 2, 1).reshape(-1, C)
        if self.training and not bool(self.initialised):
            self._seed_from(flat.detach())
        codes = self.nearest(flat)
        counts = torch.bincount(codes, minlength=self.codebook.shape[0]).to(flat.dtype)
        if self.training:
            counts = self._ema_update(flat.detach(), codes, counts)
        quantised = self.lookup(codes)
        commit = F.mse_loss(flat, quantised.detach())
        quantised = flat + (quantised - flat).detach()   # straight-through: gradients skip the snap
        prob = counts / counts.sum()
        perplexity = torch.exp(-(prob * torch.log(prob + 1e-7)).sum())
        return quantised.view(B, N, C).permute(0, 2, 1), commit, perplexity

    def _batch_samples(self, flat: torch.Tensor, n: int) -> torch.Tensor:
        """n encoder outputs of this batch; drawn with replacement plus tiny noise if too few."""
        if flat.shape[0] >= n:
            return flat[torch.randperm(flat.shape[0], device=flat.device)[:n]]
        pick = flat[torch.randint(flat.shape[0], (n,), device=flat.device)]
        return pick + torch.randn_like(pick) * (0.01 / flat.shape[1] ** 0.5)

    @torch.no_grad()
    def _seed_from(self, flat: torch.Tensor):
        self.codebook.copy_(self._batch_samples(flat, self.codebook.shape[0]))
        self._sync_statistics()

    @torch.no_grad()
    def _sync_statistics(self):
        """EMA state that reproduces the current codebook, each code counted as used once."""
        self.code_sum.copy_(self.codebook)
        self.code_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat, codes, counts):
        """Move each code to the EMA mean of its assigned vectors; re-seed codes left unused."""
        sums = torch.zeros_like(self.code_sum).index_add_(0, codes, flat)
        if dist.is_available() and dist.is_initialized():
            # One global EMA across processes; DDP broadcasts rank 0's buffers each forward.
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        self.code_sum.mul_(self.mu).add_(sums, alpha=1 - self.mu)
        self.code_count.mul_(self.mu).add_(counts, alpha=1 - self.mu)
        dead = self.code_count < self.threshold
        fresh = self._batch_samples(flat, self.codebook.shape[0])
        # A re-seeded code restarts its statistics as if it had just been used `threshold` times.
        self.code_sum[dead] = fresh[dead] * self.threshold
        self.code_count[dead] = self.threshold
        self.codebook.copy_(self.code_sum / self.code_count[:, None])
        return counts


def _quantizer_loaded(module: EMAQuantizer, incompatible):
    """A loaded codebook is trained: continue training from it instead of re-seeding it."""
    module._sync_statistics()


# --- The model ---------------------------------------------------------------------------------

class MotionVQ(nn.Module):
    """T2M-GPT VQ-VAE: normalised features (B, T, D) <-> codes (B, T // 4)."""

    def __init__(self, config: VQConfig | None = None):
        super().__init__()
        self.config = config or VQConfig()
        self.encoder = Encoder(self.config)
        self.quantizer = EMAQuantizer(self.config)
        self.decoder = Decoder(self.config)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check (B, T, D), crop T to a multiple of 4, return channels-first (B, D, T')."""
        c, book = self.config, self.quantizer.codebook
        x = torch.as_tensor(x, device=book.device)
        if x.ndim != 3 or x.shape[-1] != c.input_dim:
            raise IrmogenError(f"VQ input has shape {tuple(x.shape)}: expected (batch, frames, "
                               f"{c.input_dim}) normalised features")
        usable = x.shape[1] // c.downsample * c.downsample
        if usable == 0:
            raise IrmogenError(f"VQ input has {x.shape[1]} frames: at least {c.downsample} are needed")
        return x[:, :usable].to(book.dtype).permute(0, 2, 1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) normalised -> codes (B, T // 4) long."""
        z = self.encoder(self._prepare(x))
        B, C, N = z.shape
        return self.quantizer.nearest(z.permute(0, 2, 1).reshape(-1, C)).view(B, N)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, N) -> normalised features (B, 4N, D)."""
        codes = torch.as_tensor(codes, device=self.quantizer.codebook.device).long()
        size = self.config.codebook_size
        if codes.ndim != 2 or codes.shape[1] == 0:
            raise IrmogenError(f"VQ codes have shape {tuple(codes.shape)}: expected (batch, codes) "
                               "with at least one code")
        if codes.numel() and (codes.min() < 0 or codes.max() >= size):
            bad = codes[(codes < 0) | (codes >= size)][0].item()
            raise IrmogenError(f"VQ code {bad} is out of range: the codebook has {size} codes")
        z = self.quantizer.lookup(codes).permute(0, 2, 1)
        return self.decoder(z).permute(0, 2, 1)

    def forward(self, x: torch.Tensor):
        """x (B, T, D) -> (reconstruction (B, T // 4 * 4, D), commitment loss, perplexity)."""
        quantised, commit, perplexity = self.quantizer(self.encoder(self._prepare(x)))
        return self.decoder(quantised).permute(0, 2, 1), commit, perplexity

    # -- published checkpoints ----------------------------------------------------------------

    @classmethod
    def from_published_state_dict(cls, sd: Mapping, config: VQConfig | None = None) -> "MotionVQ":
        """Load T2M-GPT-format weights (`{"net": sd}`, keys with or without `vqvae.`/`net.`).

        Without a config, the architecture (input dim, widths, codebook, stages, depth) is read
        from the tensor shapes; activation and dilation growth keep their defaults.
        """
        if "net" in sd and isinstance(sd["net"], Mapping):
            sd = sd["net"]
        if any(k.startswith("net.") for k in sd):   # a whole-module save: keep only the VQ part
            sd = {k: v for k, v in sd.items() if k.startswith("net.")}
        renamed = {_strip_prefixes(k): k for k in sd}
        tensors = {new: sd[old] for new, old in renamed.items()}
        model = cls(config or _infer_config(tensors))
        model._load_checked(tensors, names=renamed)
        return model.eval()

    def _load_checked(self, tensors: Mapping, names: Mapping | None = None, source="VQ checkpoint"):
        """Strict load with an error naming the first missing, unexpected or mis-shaped tensor."""
        names = names or {}
        expected = self.state_dict()
        for key, ref in expected.items():
            if key not in tensors:
                raise IrmogenError(f"{source}: missing tensor {key!r} (shape {list(ref.shape)})",
                                   code="bad_checkpoint", hint=_CONFIG_HINT)
            if tuple(tensors[key].shape) != tuple(ref.shape):
                raise IrmogenError(f"{source}: tensor {names.get(key, key)!r} has shape "
                                   f"{list(tensors[key].shape)}, expected {list(ref.shape)}",
                                   code="bad_checkpoint", hint=_CONFIG_HINT)
        for key in tensors:
            if key not in expected:
                raise IrmogenError(f"{source}: unexpected tensor {names.get(key, key)!r}",
                                   code="bad_checkpoint", hint=_CONFIG_HINT)
        self.load_state_dict(dict(tensors), strict=True)

    # -- our own format -----------------------------------------------------------------------

    def state_dict_for_safetensors(self) -> dict[str, torch.Tensor]:
        """The persistent tensors (67 at the default layout), contiguous, on the CPU."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}

    def save_safetensors(self, path) -> Path:
        """Write the weights, with the config as JSON in the file's metadata."""
        path = Path(path)
        save_file(self.state_dict_for_safetensors(), str(path),
                  metadata={"format": "irmogen-vq", "config": json.dumps(self.config.to_dict())})
        return path

    @classmethod
    def load_safetensors(cls, path, config: VQConfig | None = None) -> "MotionVQ":
        """Load a file written by `save_safetensors`; `config` overrides the one stored in it."""
        path = Path(path)
        if not path.is_file():
            raise IrmogenError(f"{path}: VQ weights not found", code="missing_file")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if config is None:
            if "config" not in meta:
                raise IrmogenError(f"{path}: no VQ config stored in the file", code="bad_checkpoint",
                                   hint="pass the VQConfig from the model's config.json")
            config = VQConfig.from_dict(json.loads(meta["config"]))
        model = cls(config)
        model._load_checked(tensors, source=str(path))
        return model.eval()

    def save(self, directory) -> Path:
        """Write `vq.safetensors` into a model directory."""
        return self.save_safetensors(Path(directory) / VQ_FILENAME)

    @classmethod
    def load(cls, directory, config: VQConfig | None = None) -> "MotionVQ":
        return cls.load_safetensors(Path(directory) / VQ_FILENAME, config)


_CONFIG_HINT = ("check that the VQ config (input_dim, width, codebook_size, code_dim, down_t, depth) "
                "matches the checkpoint")


def _strip_prefixes(key: str) -> str:
    while key.startswith(_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _infer_config(tensors: Mapping) -> VQConfig:
    """Architecture from tensor shapes; fields whose tensor is absent keep their default (the
    strict load then names the missing tensor)."""
    found = {}
    if "encoder.model.0.weight" in tensors:
        found["width"], found["input_dim"] = tensors["encoder.model.0.weight"].shape[:2]
    if "quantizer.codebook" in tensors:
        found["codebook_size"], found["code_dim"] = tensors["quantizer.codebook"].shape
    stages = sorted(k for k in tensors if re.fullmatch(r"encoder\.model\.\d+\.0\.weight", k))
    if stages:   # each stage's strided convolution has kernel 2 * stride_t
        found["down_t"], found["stride_t"] = len(stages), tensors[stages[0]].shape[-1] // 2
    blocks = {m.group(1) for k in tensors
              if (m := re.fullmatch(r"encoder\.model\.2\.1\.model\.(\d+)\.conv1\.weight", k))}
    if blocks:
        found["depth"] = len(blocks)
    return VQConfig(**{k: int(v) for k, v in found.items()})


# --- Training losses (T2M-GPT) -----------------------------------------------------------------

def position_slice(input_dim: int) -> slice:
    """Features T2M-GPT's `loss_vel` compares: [4 : 4 + 3 * (joints - 1)], i.e. [4:67] of 263
    (and [4:64] of KIT's 251). Despite the name these are the root-relative joint POSITIONS."""
    if (input_dim - 11) % 12:
        raise IrmogenError(f"feature dim {input_dim} is not 12 * (joints - 1) + 11 (263 or 251)")
    joints = (input_dim - 11) // 12 + 1
    return slice(4, 4 + 3 * (joints - 1))


def training_loss(recon: torch.Tensor, target: torch.Tensor, commit: torch.Tensor,
                  config: VQConfig) -> dict[str, torch.Tensor]:
    """Smooth-L1 on all features + vel_weight * smooth-L1 on `position_slice` + commit * commitment.

    `target` is the (cropped) input of `forward`; longer targets are cropped to the reconstruction.
    Returns {"total", "recon", "vel", "commit"}.
    """
    target = target[:, :recon.shape[1]].to(recon.dtype)
    part = position_slice(recon.shape[-1])
    rec = F.smooth_l1_loss(recon, target)
    vel = F.smooth_l1_loss(recon[..., part], target[..., part])
    total = rec + config.vel_weight * vel + config.commit * commit
    return {"total": total, "recon": rec, "vel": vel, "commit": commit}

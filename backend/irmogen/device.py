"""Where the model runs: one function turns a device spec into (torch.device, dtype).

`auto` picks CUDA (bfloat16 when the GPU supports it, else float32) > Apple MPS (float32) > CPU
(float32). float16 is never chosen automatically: Gemma-2 overflows in it. An explicit spec
("cpu", "cuda", "cuda:1", "mps") is checked against what this machine has. Must not import bpy.
"""
from __future__ import annotations

import torch

from .errors import IrmogenError

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def resolve_device(spec: str | torch.device = "auto", dtype: str | torch.dtype | None = None):
    """'auto' | 'cpu' | 'cuda[:i]' | 'mps' (+ optional dtype override) -> (torch.device, torch.dtype)."""
    device = _auto_device() if str(spec) == "auto" else _explicit_device(spec)
    return device, _resolve_dtype(dtype, device)


def _auto_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _explicit_device(spec) -> torch.device:
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as e:
        raise IrmogenError(f"device: {spec!r} is not a device (use auto, cpu, cuda, cuda:N or mps)",
                           code="device") from e
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise IrmogenError(f"device: {spec!r} requested but CUDA is not available on this machine",
                               code="device", hint="use --device cpu or install a CUDA build of torch")
        count = torch.cuda.device_count()
        index = 0 if device.index is None else device.index
        if index >= count:
            raise IrmogenError(f"device: {spec!r} requested but this machine has {count} CUDA device(s)",
                               code="device", hint=f"use cuda:0 .. cuda:{count - 1}")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise IrmogenError(f"device: {spec!r} requested but Apple MPS is not available", code="device",
                               hint="use --device cpu")
        return device
    raise IrmogenError(f"device: {spec!r} is not supported (use auto, cpu, cuda, cuda:N or mps)", code="device")


def _resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    if dtype is None or str(dtype) == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise IrmogenError(f"dtype: {dtype} is not a floating type the model runs in", code="device")
        return dtype
    key = str(dtype).removeprefix("torch.")
    if key not in _DTYPES:
        raise IrmogenError(f"dtype: {dtype!r} is not one of auto, float32, bfloat16, float16", code="device")
    return _DTYPES[key]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())

"""What every training stage shares: typed configs <-> flags, the accelerate run, checkpoints, the loop.

A stage is a config dataclass (a subclass of `RunConfig`), a model, an optimizer and a function
`loss_at(step) -> {"total": tensor, ...}`; `fit` does the rest under `accelerate`:
  * flags map one-to-one onto config fields (`--batch-size` <-> `batch_size`); the config is saved
    as `<out>/config.json`, and `--resume` reads it back, flags given again override it;
  * randomness is a pure function of (seed, step, rank) (`step_rng`, `seed_step`), so a resumed run
    draws exactly the batches, crops and dropout masks the uninterrupted run would have;
  * checkpoints `<out>/checkpoints/step-NNNNNNNN/`: `model.safetensors` (trainable module),
    `extra.safetensors` (stage buffers, e.g. the VQ's EMA statistics), `optimizer.pt`
    (`torch.save` of the optimizer's state dict: tensors and numbers only, read back with
    `weights_only=True`) and `state.json`; written to a temporary folder and renamed, by the main
    process only. Under FSDP / DeepSpeed the sharded states go through `accelerator.save_state`;
  * the learning rate is a pure function of the step (warm-up, then constant, cosine or
    milestones), so there is no scheduler state to save;
  * a run stops at `max_steps` (else `epochs`), or cleanly (with a checkpoint) when
    `time_budget_minutes` is spent; tqdm on the main process; `<out>/log.jsonl` holds the losses.
Must not import bpy.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from tqdm.auto import tqdm

from ..device import resolve_device
from ..errors import IrmogenError

CONFIG_NAME = "config.json"
LOG_NAME = "log.jsonl"
SCHEDULES = ("constant", "cosine", "milestones")
# Fields that only say how long or how visibly to run: changing them on --resume is expected.
RUN_LENGTH_FIELDS = ("max_steps", "epochs", "time_budget_minutes", "resume", "progress", "eval_every",
                     "checkpoint_every", "keep_checkpoints", "log_every")


@dataclass
class RunConfig:
    """Fields every stage has. Stages subclass this with their own fields and defaults."""

    data: str = ""                    # dataset folder (HumanML3D layout) or the stage's input folder
    out: str = ""                     # output folder: config.json, checkpoints/, log.jsonl, results
    seed: int = 0
    device: str = "auto"              # irmogen.device.resolve_device spec; accelerate launch sets the GPU
    batch_size: int = 32              # per process
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: str = "constant"        # constant | cosine | milestones
    warmup_steps: int = 0
    milestones: tuple[float, ...] = ()  # fractions of the total steps where lr is multiplied by gamma
    gamma: float = 0.1
    grad_clip: float = 1.0            # max gradient norm; 0 disables clipping
    max_steps: int = 0                # 0: derive from epochs
    epochs: float = 1.0
    time_budget_minutes: float = 0.0  # 0: no budget; else stop cleanly (and save) when spent
    eval_every: int = 200
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = False
    progress: bool = True

    def check(self) -> None:
        """Raise IrmogenError naming the first bad field (called before a run starts)."""
        if not self.out:
            raise IrmogenError("--out is required: the folder for checkpoints and results")
        for name in ("batch_size", "eval_every", "checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise IrmogenError(f"--{_flag(name)} {getattr(self, name)}: must be >= 1")
        for name in ("lr", "epochs"):
            if not getattr(self, name) > 0:
                raise IrmogenError(f"--{_flag(name)} {getattr(self, name)}: must be > 0")
        for name in ("max_steps", "warmup_steps", "time_budget_minutes", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise IrmogenError(f"--{_flag(name)} {getattr(self, name)}: must be >= 0")
        if self.schedule not in SCHEDULES:
            raise IrmogenError(f"--schedule {self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        if any(not 0 <= m <= 1 for m in self.milestones):
            raise IrmogenError(f"--milestones {list(self.milestones)}: fractions of the run in [0, 1]")


# ---- config <-> flags <-> config.json --------------------------------------------------------
def _flag(name: str) -> str:
    return name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, helps: dict[str, str] | None = None) -> None:
    """One flag per field of `cls`. Absent flags stay absent (default SUPPRESS), so that
    `config_from_args` can tell 'not given' (use the saved or default value) from 'given'."""
    helps = helps or {}
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in fields(cls):
        kind, default = hints[f.name], getattr(defaults, f.name)
        text = f"{helps.get(f.name, '')} (default: {default!r})".strip()
        kw = dict(default=argparse.SUPPRESS, help=text, dest=f.name)
        if kind is bool:
            parser.add_argument(f"--{_flag(f.name)}", action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            parser.add_argument(f"--{_flag(f.name)}", nargs="*", type=item, **kw)
        else:
            base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)  # X | None -> X
            parser.add_argument(f"--{_flag(f.name)}", type=base, **kw)


def config_from_args(cls: type, args) -> RunConfig:
    """The config of a run: the defaults (or, with --resume, the saved config.json) updated by every
    flag that was given. A namespace may also carry fields set by code (all of them, say)."""
    given = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    for name, value in given.items():
        if isinstance(value, list):
            given[name] = tuple(value)
    base = cls()
    saved = Path(given.get("out", "")) / CONFIG_NAME
    if given.get("resume") and given.get("out") and saved.is_file():
        base = load_config(cls, saved)
    return replace(base, **given)


def save_config(config: RunConfig, out: Path) -> None:
    (Path(out) / CONFIG_NAME).write_text(json.dumps(asdict(config), indent=2, sort_keys=True) + "\n")


def load_config(cls: type, path: Path) -> RunConfig:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise IrmogenError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise IrmogenError(f"{path}: unknown field {unknown[0]!r} for {cls.__name__}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# ---- randomness as a function of the step ----------------------------------------------------
def step_rng(seed: int, step: int, rank: int = 0, stream: int = 0) -> np.random.Generator:
    """The numpy generator of one step on one process (batches, crops)."""
    return np.random.default_rng([seed, step, rank, stream])


def seed_step(seed: int, step: int, rank: int = 0) -> None:
    """Seed torch for one step (dropout, sampling) from (seed, step, rank)."""
    torch.manual_seed((seed * 1_000_003 + step * 7919 + rank) % (2**63 - 1))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled order of `n` training examples in an epoch (identical on every process)."""
    return np.random.default_rng([seed, epoch, 2**31 - 1]).permutation(n)


def batch_indices(seed: int, step: int, n: int, batch_size: int, rank: int, world: int) -> np.ndarray:
    """This process's `batch_size` example indices at `step`. The examples form one endless stream
    of shuffled epochs (each a permutation of range(n)); a step takes the next world * batch_size
    entries of it, and process `rank` its slice."""
    pos = step * batch_size * world + rank * batch_size + np.arange(batch_size)
    epochs, within = np.divmod(pos, n)
    out = np.empty(batch_size, dtype=np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        out[sel] = epoch_order(seed, int(e), n)[within[sel]]
    return out


def lr_at(config: RunConfig, step: int, total: int) -> float:
    """Learning rate at `step` of a `total`-step run: linear warm-up, then the schedule."""
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.schedule == "cosine":
        span = max(1, total - config.warmup_steps)
        progress = min(1.0, max(0, step - config.warmup_steps) / span)
        return config.lr * warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "milestones":
        passed = sum(step >= m * total for m in config.milestones)
        return config.lr * warm * config.gamma ** passed
    return config.lr * warm


# ---- the run -----------------------------------------------------------------------------------
class Run:
    """One training run of one stage: accelerator, output folder, checkpoints, log and progress."""

    def __init__(self, config: RunConfig, stage: str):
        from accelerate import Accelerator

        config.check()
        self.config, self.stage = config, stage
        device, dtype = resolve_device(config.device)
        precision = os.environ.get("ACCELERATE_MIXED_PRECISION") or ("bf16" if dtype == torch.bfloat16 else "no")
        self.accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=precision)
        self.out = Path(config.out)
        self.ckpt_root = self.out / "checkpoints"
        self.step = 0
        self.started = time.monotonic()
        saved = self.out / CONFIG_NAME
        if not config.resume and self.checkpoints():   # checked on every process: all stop alike
            raise IrmogenError(f"{self.out} already holds checkpoints of a run",
                               hint="pass --resume to continue it, or choose a new --out folder")
        if config.resume and saved.is_file():
            _check_same_run(load_config(type(config), saved), config, saved)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(config, self.out)
        self.accelerator.wait_for_everyone()

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def total_steps(self, examples: int) -> int:
        """max_steps if set, else epochs over `examples` at world * batch_size examples a step."""
        if self.config.max_steps:
            return self.config.max_steps
        per_epoch = max(1, math.ceil(examples / (self.config.batch_size * self.world)))
        return max(1, math.ceil(self.config.epochs * per_epoch))

    def batch(self, step: int, n: int) -> np.ndarray:
        return batch_indices(self.config.seed, step, n, self.config.batch_size, self.rank, self.world)

    def rng(self, step: int, stream: int = 0) -> np.random.Generator:
        return step_rng(self.config.seed, step, self.rank, stream)

    def log(self, record: dict) -> None:
        if self.is_main:
            with open(self.out / LOG_NAME, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": self.step, **record}) + "\n")

    def out_of_time(self) -> bool:
        """Has the time budget run out? Agreed by all processes (the slowest decides)."""
        budget = self.config.time_budget_minutes
        spent = budget > 0 and time.monotonic() - self.started >= budget * 60
        flag = torch.tensor([float(spent)], device=self.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    # ---- checkpoints ---------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.ckpt_root.is_dir():
            return []
        done = [p for p in self.ckpt_root.glob("step-*") if (p / "state.json").is_file()]
        return sorted(done, key=lambda p: int(p.name.split("-")[1]))

    def save(self, model, optimizer, extra: dict[str, torch.Tensor] | None = None, state: dict | None = None) -> Path:
        """Write a checkpoint of the current step (collective call: every process must make it)."""
        acc = self.accelerator
        final = self.ckpt_root / f"step-{self.step:08d}"
        tmp = self.ckpt_root / f".tmp-step-{self.step:08d}"
        sharded = _sharded(acc)
        if sharded:
            acc.save_state(str(tmp / "accelerate"), safe_serialization=True)
        if self.is_main:
            tmp.mkdir(parents=True, exist_ok=True)
            if not sharded:
                save_model(acc.unwrap_model(model), str(tmp / "model.safetensors"))
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            if extra:
                save_file({k: v.detach().cpu().contiguous() for k, v in extra.items()}, str(tmp / "extra.safetensors"))
            info = {"step": self.step, "stage": self.stage, "world": self.world, **(state or {})}
            (tmp / "state.json").write_text(json.dumps(info, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            for old in self.checkpoints()[:-self.config.keep_checkpoints]:
                shutil.rmtree(old)
        acc.wait_for_everyone()
        return final

    def restore(self, model, optimizer) -> tuple[dict, dict[str, torch.Tensor]]:
        """Load the latest checkpoint into model/optimizer; returns (state.json, extra tensors).
        Without a checkpoint (or without --resume) nothing changes and ({}, {}) is returned."""
        found = self.checkpoints() if self.config.resume else []
        if not found:
            return {}, {}
        path = found[-1]
        if (path / "accelerate").is_dir():
            self.accelerator.load_state(str(path / "accelerate"))
        else:
            load_model(self.accelerator.unwrap_model(model), str(path / "model.safetensors"), device=str(self.device))
            optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=self.device, weights_only=True))
        extra = load_file(str(path / "extra.safetensors")) if (path / "extra.safetensors").is_file() else {}
        state = json.loads((path / "state.json").read_text())
        self.step = int(state["step"])
        return state, extra


def _sharded(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def _check_same_run(saved: RunConfig, now: RunConfig, where: Path) -> None:
    """--resume may change how long a run goes, not what it trains."""
    for f in fields(saved):
        if f.name not in RUN_LENGTH_FIELDS and getattr(saved, f.name) != getattr(now, f.name):
            raise IrmogenError(f"--resume: --{_flag(f.name)} {getattr(now, f.name)!r} differs from "
                               f"{getattr(saved, f.name)!r} in {where}",
                               hint="resume with the same settings, or train into a new --out folder")


# ---- the loop ------------------------------------------------------------------------------------
@dataclass
class Hooks:
    """What a stage plugs into `fit`."""

    loss_at: Callable[[int], dict]                       # step -> {"total": tensor, other logged tensors}
    evaluate: Callable[[], dict] | None = None           # -> {"name": float} on the validation split
    extra: Callable[[], dict] | None = None              # -> buffers to checkpoint besides the weights
    load_extra: Callable[[dict], None] | None = None
    trainable: Callable[[], list] | None = None          # parameters to clip (default: all)


def fit(run: Run, model, optimizer, hooks: Hooks, total: int) -> dict:
    """Train `model` (already `accelerator.prepare`d with `optimizer`) up to step `total` from
    `run.step`; checkpoints, validation and logging on the way. Returns the last metrics."""
    cfg, acc = run.config, run.accelerator
    params = hooks.trainable() if hooks.trainable else [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=total, initial=run.step, desc=run.stage, disable=not (run.is_main and cfg.progress),
               dynamic_ncols=True)
    metrics, running, last_saved = {}, {}, run.step
    while run.step < total:
        seed_step(cfg.seed, run.step, run.rank)
        lr = lr_at(cfg, run.step, total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        losses = hooks.loss_at(run.step)
        acc.backward(losses["total"])
        if cfg.grad_clip:
            acc.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        run.step += 1
        bar.update(1)
        for k, v in losses.items():
            running.setdefault(k, []).append(float(v.detach().float()) if torch.is_tensor(v) else float(v))
        if run.step % cfg.log_every == 0 or run.step == total:
            means = {f"train/{k}": _mean_across(acc, v) for k, v in running.items()}
            running = {}
            run.log({"lr": lr, **means})
            bar.set_postfix(loss=f"{means['train/total']:.4f}")
        stop = run.out_of_time()
        if hooks.evaluate and (run.step % cfg.eval_every == 0 or run.step == total or stop):
            model.eval()
            with torch.no_grad():
                metrics = {f"val/{k}": v for k, v in hooks.evaluate().items()}
            run.log(metrics)
            if run.is_main:
                bar.write(f"{run.stage} step {run.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if run.step % cfg.checkpoint_every == 0 or run.step == total or stop:
            run.save(model, optimizer, hooks.extra() if hooks.extra else None, {"metrics": metrics})
            last_saved = run.step
        if stop:
            if run.is_main:
                bar.write(f"{run.stage}: time budget of {cfg.time_budget_minutes:g} min spent at step {run.step}")
            break
    if last_saved != run.step:
        run.save(model, optimizer, hooks.extra() if hooks.extra else None, {"metrics": metrics})
    bar.close()
    return metrics


def _mean_across(accelerator, values: list[float]) -> float:
    t = torch.tensor([sum(values), len(values)], dtype=torch.float64, device=accelerator.device)
    t = accelerator.reduce(t, reduction="sum")
    return float(t[0] / t[1])


def optimizer_for(model, config: RunConfig, betas=(0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases and norms (1-d tensors)."""
    decay, plain = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else plain).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, betas=betas)

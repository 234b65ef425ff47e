"""A tiny synthetic dataset in the HumanML3D layout, for the training tests and quick trials.

Simple procedural motions of the reference body (walking in a direction, turning, jumping,
raising an arm), each with captions that say what it does, so a trained model has something real
to learn: `tiny_dataset(root)` writes new_joints/, new_joint_vecs/, texts/, the splits and
Mean/Std exactly as `irmogen data prepare` lays them out. Deterministic for a seed.
Pure numpy (`tiny_chain` trains, through the pipeline); must not import bpy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import layout
from ..features import positions_to_features
from ..quaternions import qabout_y, qfrom_axis_angle, qrot
from ..skeleton import INDEX, rest_positions

FPS = 20.0
LEFT_ARM = tuple(INDEX[n] for n in ("left_elbow", "left_wrist"))
RIGHT_ARM = tuple(INDEX[n] for n in ("right_elbow", "right_wrist"))
KINDS = ("walk_forward", "walk_back", "turn_left", "turn_right", "jump", "raise_left", "raise_right")
CAPTIONS = {
    "walk_forward": ("a person walks forward.", "someone walks straight ahead."),
    "walk_back": ("a person walks backwards.", "someone steps back slowly."),
    "turn_left": ("a person turns to the left.", "someone turns around to their left."),
    "turn_right": ("a person turns to the right.", "someone turns around to their right."),
    "jump": ("a person jumps up and down.", "someone hops in place."),
    "raise_left": ("a person raises the left arm.", "someone lifts their left hand up."),
    "raise_right": ("a person raises the right arm.", "someone lifts their right hand up."),
}


def synthetic_motion(kind: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, 22, 3) metres, Y up, facing +Z at the start, feet on the floor."""
    rest = rest_positions()
    rest = rest - [0.0, rest[:, 1].min(), 0.0]
    t = np.arange(frames) / FPS
    p = np.repeat(rest[None], frames, 0)
    speed = rng.uniform(0.8, 1.4)
    sway = 0.03 * np.sin(2 * np.pi * 1.8 * t)                    # a little life in every motion
    p[:, :, 0] += sway[:, None]
    if kind in ("walk_forward", "walk_back"):
        p[:, :, 2] += (1 if kind == "walk_forward" else -0.6) * speed * t[:, None]
    elif kind in ("turn_left", "turn_right"):
        yaw = (1 if kind == "turn_left" else -1) * np.pi * t / t[-1]   # half a turn, left = +yaw
        root = p[:, :1] * [1, 0, 1]
        p = qrot(qabout_y(yaw)[:, None], p - root) + root
    elif kind == "jump":
        p[:, :, 1] += 0.25 * np.abs(np.sin(np.pi * speed * t))[:, None]
    else:
        arm = LEFT_ARM if kind == "raise_left" else RIGHT_ARM
        shoulder = INDEX["left_shoulder" if kind == "raise_left" else "right_shoulder"]
        side = 1.0 if kind == "raise_left" else -1.0
        angle = side * np.minimum(1.0, t / (0.6 * t[-1])) * np.pi / 2   # arm out -> up about +Z
        q = qfrom_axis_angle(np.array([0.0, 0.0, 1.0]), angle)[:, None]
        p[:, arm] = qrot(q, p[:, arm] - p[:, shoulder:shoulder + 1]) + p[:, shoulder:shoulder + 1]
    return p.astype(np.float32)


def tiny_dataset(root, clips_per_kind: int = 4, seed: int = 0, min_frames: int = 40,
                 max_frames: int = 100) -> Path:
    """Write a synthetic dataset of len(KINDS) * clips_per_kind clips; returns `root`.
    Each kind's first clip is in val, its second in test (when there are >= 3), the rest in train."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    layout.make_folders(root)
    split_of, stats = {}, layout.FeatureStats()
    for kind in KINDS:
        for k in range(clips_per_kind):
            cid = f"{kind}_{k:03d}"
            joints = synthetic_motion(kind, int(rng.integers(min_frames, max_frames + 1)), rng)
            feats = positions_to_features(joints)
            lines = [layout.caption_line(c) for c in CAPTIONS[kind]]
            layout.write_clip(root, cid, joints[:-1], feats, lines)
            split_of[cid] = "val" if k == 0 else "test" if k == 1 and clips_per_kind >= 3 else "train"
            if split_of[cid] == "train":
                stats.add(feats)
    layout.write_splits(root, split_of)
    mean, std = stats.mean_std()
    np.save(root / "Mean.npy", mean)
    np.save(root / "Std.npy", std)
    return root


# Stage settings for a whole tiny chain in seconds (pipeline `--set` values, by stage and field).
TINY_STAGES = {
    "vq": dict(width=16, code_dim=16, codebook_size=32, depth=1, batch_size=8, max_steps=4, warmup_steps=0,
               eval_every=2, checkpoint_every=2, val_clips=4),
    "evaluator": dict(embed_dim=16, width=16, hidden=16, text_hidden=32, batch_size=8, max_steps=2,
                      eval_every=2, checkpoint_every=2, val_repetitions=1),
    "base": dict(text_vocab=400, hidden_size=32, intermediate_size=64, layers=2, heads=2, kv_heads=2,
                 batch_size=4, max_steps=3, eval_every=3, checkpoint_every=3, val_examples=4, warmup_steps=0),
    "stage1": dict(batch_size=4, max_steps=2, eval_every=2, checkpoint_every=2, val_examples=4, warmup_steps=0),
    "stage2": dict(batch_size=2, max_steps=2, eval_every=2, checkpoint_every=2, val_examples=2, warmup_steps=0),
    "stage2_own": dict(batch_size=2, max_steps=2, eval_every=2, checkpoint_every=2, val_examples=2, warmup_steps=0),
    "stage3": dict(batch_size=1, group_size=2, max_steps=1, eval_every=1, checkpoint_every=1, val_examples=1,
                   max_rounds=1, max_text_tokens=8),
}


def tiny_chain(root, stop_after: str = "base") -> tuple[Path, Path]:
    """A tiny dataset and `irmogen train all` run on it up to `stop_after` (seconds, on a CPU):
    (dataset folder, run folder). Imports torch through the pipeline."""
    from .pipeline import PipelineConfig, run_pipeline

    root = Path(root)
    data = tiny_dataset(root / "data")
    stages = {k: {**v, "log_every": 1} for k, v in TINY_STAGES.items()}
    run_pipeline(PipelineConfig(data=str(data), out=str(root / "out"), device="cpu", progress=False,
                                stop_after=stop_after), stages)
    return data, root / "out"

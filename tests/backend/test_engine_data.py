"""Synthetic motions and a tiny HumanML3D-layout dataset for the data-engine tests (imported by
the other test_engine_* files), and a check that they measure as intended."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from irmogen.data import layout
from irmogen.features import positions_to_features
from irmogen.skeleton import rest_positions

FPS = 20.0


def standing(frames: int) -> np.ndarray:
    """(T, 22, 3) the rest pose on the floor, facing +Z."""
    p = rest_positions() - [0.0, rest_positions()[:, 1].min(), 0.0]
    return np.repeat(p[None], frames, 0).astype(np.float64)


def walk(frames: int, speed: float, backward: bool = False) -> np.ndarray:
    p = standing(frames)
    p[:, :, 2] += (-1 if backward else 1) * speed * np.arange(frames)[:, None] / FPS
    return p


def turn(frames: int, degrees: float) -> np.ndarray:
    """Turn in place about +Y; positive degrees turn the body to its left (+Z toward +X)."""
    p = standing(frames)
    a = np.radians(np.linspace(0.0, degrees, frames))[:, None]
    x, z = p[..., 0].copy(), p[..., 2].copy()
    p[..., 0], p[..., 2] = x * np.cos(a) + z * np.sin(a), -x * np.sin(a) + z * np.cos(a)
    return p


def jumps(frames: int, count: int) -> np.ndarray:
    p = standing(frames)
    for k in range(count):
        s = int((k + 1) * frames / (count + 1))
        p[s - 3:s + 3, :, 1] += 0.3
    return p


def hand_up(frames: int, side: str) -> np.ndarray:
    p = standing(frames)
    wrist = 21 if side == "right" else 20
    p[frames // 4:, wrist, 1] = p[0, 15, 1] + 0.25
    return p


def mirror(p: np.ndarray) -> np.ndarray:
    from irmogen.mirror import mirror_positions
    return mirror_positions(p)


# id -> (take, label, mirrored, positions, captions)
def clips() -> dict:
    t = 80
    c = {
        "walk_fwd": ("walk", "walk", False, walk(t, 1.2), ["a person walks forward.", "someone walks straight ahead."]),
        "turn_left": ("turn", "turn left", False, turn(t, 180), ["a person turns around to the left.", "someone turns left on the spot."]),
        "turn_left_b": ("turn", "turn left", False, turn(t, 170), ["a person turns to the left.", "the person turns around left."]),
        "jump": ("jump", "jump", False, jumps(t, 2), ["a person jumps twice.", "someone jumps up and down two times."]),
        "walk_back": ("back", "walk back", False, walk(t, 0.5, True), ["a person walks backward slowly.", "someone steps backward."]),
        "run": ("run", "run", False, walk(t, 3.2), ["a person runs forward.", "someone runs ahead quickly."]),
        "still": ("still", "stand", False, standing(t), ["a person stands still.", "someone stays in place."]),
        "wave_r": ("wave", "raise right hand", False, hand_up(t, "right"), ["a person raises the right hand above the head.",
                                                                           "someone lifts the right hand up high."]),
        "test_walk": ("twalk", "walk", False, walk(t, 1.0), ["a person walks."]),
    }
    from irmogen.data.captions import mirror_text
    for cid in ("turn_left", "wave_r"):
        take, label, _, p, caps = c[cid]
        c["M" + cid] = (take, label, True, mirror(p), [mirror_text(x) for x in caps])
    return c


def write_dataset(root: Path) -> Path:
    layout.make_folders(root)
    split, manifest = {}, {}
    for cid, (take, label, mirrored, p, caps) in clips().items():
        layout.write_clip(root, cid, p[:-1], positions_to_features(p), [layout.caption_line(x) for x in caps])
        split[cid] = "test" if cid.startswith("test") else "train"
        manifest[cid] = {"take": take, "label": label, "mirrored": mirrored, "split": split[cid], "source": "synthetic"}
    layout.write_splits(root, split)
    (root / "manifest.json").write_text(json.dumps({"fps": FPS, "clips": manifest}))
    return root


def test_synthetic_motions_measure_as_intended():
    from irmogen.engine.compare import measure

    c = clips()
    f = {k: measure(v[3]).motion for k, v in c.items()}
    assert f["walk_fwd"].direction == "forward" and abs(f["walk_fwd"].turn_degrees) < 5
    assert f["turn_left"].turn_degrees > 150 and f["Mturn_left"].turn_degrees < -150 and f["turn_left"].pace == "still"
    assert f["jump"].jumps == 2 and f["walk_back"].direction == "backward" and f["run"].pace == "very fast"
    assert f["wave_r"].hands_up == "right" and f["Mwave_r"].hands_up == "left"

"""The motion clip: the one motion container the backend, the protocol and the add-on share.

A clip is the SMPL-22 skeleton's rest offsets plus per-frame local rotations and root translation,
and the world joint positions those produce (DESIGN.md, "Motion clip"). On disk it is an `.npz`
that loads with `np.load(path)` and no pickle. Y up, metres, quaternions (w, x, y, z).
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import IrmogenError
from .skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, check_joint_names

MODEL_FPS = 20.0  # the frame rate of HumanML3D and of every model here


@dataclass
class Clip:
    fps: float
    offsets: np.ndarray            # (22, 3) rest offsets, T-pose, facing +Z, metres
    rotations: np.ndarray          # (T, 22, 4) local rotations relative to rest, wxyz
    root_translation: np.ndarray   # (T, 3) pelvis position, metres
    positions: np.ndarray          # (T, 22, 3) world joint positions, metres
    text: str = ""
    transcript: str = ""           # JSON string of the reasoning rounds, when generated
    features: np.ndarray | None = None  # (T-1, 263) HumanML3D features, when computed
    meta: dict = field(default_factory=dict)  # free-form string fields (source file, licence)

    joint_names = JOINT_NAMES
    parents = PARENTS

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    def with_(self, **changes) -> "Clip":
        return replace(self, **changes)

    def validate(self, where: str = "clip") -> "Clip":
        """Raise IrmogenError naming the first field whose shape or values break the contract."""
        t = self.positions.shape[0] if np.ndim(self.positions) == 3 else -1
        expect = {
            "offsets": (NUM_JOINTS, 3),
            "rotations": (t, NUM_JOINTS, 4),
            "root_translation": (t, 3),
            "positions": (t, NUM_JOINTS, 3),
        }
        for name, shape in expect.items():
            arr = np.asarray(getattr(self, name))
            if arr.shape != shape or t < 1:
                raise IrmogenError(f"{where}: field '{name}' has shape {arr.shape}, expected {shape}")
            if not np.all(np.isfinite(arr)):
                raise IrmogenError(f"{where}: field '{name}' contains NaN or infinite values")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise IrmogenError(f"{where}: field 'fps' is {self.fps!r}, expected a positive number")
        if self.features is not None and np.asarray(self.features).ndim != 2:
            raise IrmogenError(f"{where}: field 'features' must be 2-D (frames, dims)")
        return self

    # ---- .npz file -------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the clip atomically: a failed write never leaves a half-written file behind."""
        self.validate()
        path = Path(path)
        arrays = {
            "fps": np.float32(self.fps),
            "joint_names": np.array(JOINT_NAMES),
            "parents": np.array(PARENTS, dtype=np.int32),
            "offsets": np.asarray(self.offsets, np.float32),
            "rotations": np.asarray(self.rotations, np.float32),
            "root_translation": np.asarray(self.root_translation, np.float32),
            "positions": np.asarray(self.positions, np.float32),
        }
        if self.text:
            arrays["text"] = np.array(self.text)
        if self.transcript:
            arrays["transcript"] = np.array(self.transcript)
        if self.features is not None:
            arrays["features"] = np.asarray(self.features, np.float32)
        for k, v in self.meta.items():
            arrays[f"meta_{k}"] = np.array(str(v))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path) -> "Clip":
        path = Path(path)
        if not path.is_file():
            raise IrmogenError(f"{path}: no such clip file")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise IrmogenError(f"{path}: not a readable clip .npz ({e})") from None
        missing = [k for k in ("fps", "offsets", "rotations", "root_translation", "positions") if k not in data]
        if missing:
            raise IrmogenError(f"{path}: clip is missing field(s) {', '.join(missing)}")
        if "joint_names" in data:
            try:
                check_joint_names(data["joint_names"].tolist())
            except ValueError as e:
                raise IrmogenError(f"{path}: {e}") from None
        clip = cls(
            fps=float(data["fps"]),
            offsets=data["offsets"].astype(np.float64),
            rotations=data["rotations"].astype(np.float64),
            root_translation=data["root_translation"].astype(np.float64),
            positions=data["positions"].astype(np.float64),
            text=str(data["text"]) if "text" in data else "",
            transcript=str(data["transcript"]) if "transcript" in data else "",
            features=data["features"].astype(np.float64) if "features" in data else None,
            meta={k[5:]: str(v) for k, v in data.items() if k.startswith("meta_")},
        )
        return clip.validate(str(path))

"""Human-written HumanML3D captions of CMU trials, with the time window each one describes.

`humanml3d/cmu_captions.csv` (shared data) lists every HumanML3D clip cut from a CMU trial:
`hml3d_id, subject, trial, start_s, end_s, captions` with the captions joined by " | " and the
window in seconds from the trial's first mocap frame (HumanML3D's 20 fps index of the AMASS copy).
The captions are MIT-licensed (Copyright (c) 2022 Chuan Guo); every file that carries them keeps
that notice (the licence file beside the CSV is copied along; `NOTICE`, `CITATION`). Pure Python; imports only `errors` from the package.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import IrmogenError

CSV_NAME = "cmu_captions.csv"
LICENCE_NAME = "LICENSE"     # the MIT licence text beside the CSV, copied verbatim into a dataset
NOTICE = "HumanML3D captions: MIT License, Copyright (c) 2022 Chuan Guo"
CITATION = ("C. Guo, S. Zou, X. Zuo, S. Wang, W. Ji, X. Li, L. Cheng, \"Generating Diverse and Natural 3D "
            "Human Motions from Text\", CVPR 2022.")
_TRIAL = re.compile(r"^0*(\d+)_0*(\d+)$")


@dataclass(frozen=True)
class HumanWindow:
    hml3d_id: str                # HumanML3D clip id ("000025")
    start: float                 # seconds from the trial's first mocap frame
    end: float
    captions: tuple[str, ...]    # as written, whitespace normalised


def find_captions_csv(humanml3d=None, cmu=None) -> Path | None:
    """The captions CSV: inside --humanml3d when it holds one, else ../humanml3d beside --cmu."""
    for folder in ([Path(humanml3d)] if humanml3d else []) + ([Path(cmu).parent / "humanml3d"] if cmu else []):
        if (folder / CSV_NAME).is_file():
            return folder / CSV_NAME
    return None


def _captions(cell: str) -> tuple[str, ...]:
    return tuple(c for c in (" ".join(part.split()) for part in cell.split("|")) if c)


def read_human_captions(csv_path) -> dict[tuple[int, int], tuple[HumanWindow, ...]]:
    """(subject, trial) -> its HumanML3D windows, in time order. Rows that do not parse are errors."""
    path = Path(csv_path)
    out: dict[tuple[int, int], list[HumanWindow]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            m = _TRIAL.match((row.get("trial") or "").strip())
            try:
                start, end = float(row["start_s"]), float(row["end_s"])
            except (KeyError, TypeError, ValueError):
                m = None
            caps = _captions(row.get("captions") or "")
            if not m or not caps or not end > start >= 0:
                raise IrmogenError(f"{path}:{n}: expected trial <subject>_<trial>, 0 <= start_s < end_s and captions",
                                   hint="the file must be the shared data's humanml3d/cmu_captions.csv")
            window = HumanWindow(row["hml3d_id"].strip(), start, end, caps)
            out.setdefault((int(m.group(1)), int(m.group(2))), []).append(window)
    return {k: tuple(sorted(v, key=lambda w: (w.start, w.end))) for k, v in out.items()}


def uncovered(frames: int, ranges: list[tuple[int, int]], min_frames: int) -> list[tuple[int, int]]:
    """[(start, end)) stretches of 0..frames that no range covers and that last >= min_frames."""
    gaps, at = [], 0
    for s, e in sorted(ranges):
        if s - at >= min_frames:
            gaps.append((at, s))
        at = max(at, e)
    if frames - at >= min_frames:
        gaps.append((at, frames))
    return gaps

"""`irmogen data prepare`: real motion capture -> a captioned dataset in the HumanML3D layout.

Per take (one source file): read it as SMPL-22 positions at 20 fps, fit its length (cyclic clips
are repeated, 1-2 s clips are held at both ends up to 2 s, shorter ones dropped), move it onto
the one reference body (`to_reference_body`, HumanML3D's "uniform skeleton"), cut takes longer
than 9.8 s into ~8 s windows, then per window and its mirror: canonicalise, extract the 263-d
features, caption. Splits are per take (`splits`), Mean/Std over the train split (`layout`).
Everything is written into a temporary sibling folder that is renamed into place at the end, so a
failure leaves nothing half-written. A real HumanML3D folder can be merged in as it is.
Never imports torch or bpy.
"""
from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from .. import skeleton as sk
from ..canonical import canonicalize
from ..errors import IrmogenError
from ..features import positions_to_features
from ..folders import replaced_folder
from ..io import read_source
from ..mirror import mirror_positions
from ..quaternions import qabout_y, qrot
from ..rotations import forward_kinematics, solve
from . import layout
from .captions import make_captions, mirror_text
from .describe import describe, heading_degrees
from .alignment import check_alignment
from .human_captions import LICENCE_NAME, find_captions_csv, read_human_captions, uncovered
from .sources import Take, find_takes
from .splits import V1_TEST_PERFORMERS, TakeInfo, assign_splits, split_groups

FPS = 20.0
MIN_FRAMES = 40          # HumanML3D's shortest clip (2 s); its loaders skip anything shorter
PAD_FROM_FRAMES = 12     # clips of 0.6-2 s are held at both ends up to MIN_FRAMES; shorter: dropped
MAX_FRAMES = 196         # HumanML3D's longest clip (9.8 s); longer takes are cut into windows
WINDOW_FRAMES, WINDOW_OVERLAP = 160, 20  # 8 s windows overlapping by about 1 s
LEG = (5, 8)             # right knee, right ankle: HumanML3D measures leg length on these bones


def to_reference_body(positions: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> the same motion on the reference body (skeleton.REST_OFFSETS).

    Joint rotations are solved on the clip's own body and replayed on the reference offsets; the
    root path is scaled by the ratio of leg lengths (thigh + shin), as HumanML3D does.
    """
    offsets, rotations, root = solve(positions)
    leg = lambda off: float(sum(np.linalg.norm(off[j]) for j in LEG))
    scale = leg(sk.REST_OFFSETS) / max(leg(offsets), 1e-6)
    return forward_kinematics(np.asarray(sk.REST_OFFSETS), rotations, root * scale)


def window_ranges(frames: int) -> list[tuple[int, int]]:
    """[(start, end)) frame ranges: the whole clip up to MAX_FRAMES, else evenly spread windows of
    at most WINDOW_FRAMES overlapping by at least WINDOW_OVERLAP."""
    if frames <= MAX_FRAMES:
        return [(0, frames)]
    n = math.ceil((frames - WINDOW_OVERLAP) / (WINDOW_FRAMES - WINDOW_OVERLAP))
    width = math.ceil((frames + (n - 1) * WINDOW_OVERLAP) / n)
    starts = np.round(np.linspace(0, frames - width, n)).astype(int)
    return [(int(s), int(s) + width) for s in starts]


def repeat_cycle(positions: np.ndarray, min_frames: int) -> np.ndarray:
    """Repeat a looping clip (its last frame is its first pose, moved on) to >= min_frames.

    Repetition k is the clip turned about Y by k times the loop's heading change and shifted on the
    ground so that its first frame lands on the previous repetition's last frame (which it drops).
    """
    p = np.asarray(positions, np.float64)
    h = heading_degrees(p[[0, -1]])
    turn = np.radians(h[1] - h[0])
    start = p[0, 0] * [1.0, 0.0, 1.0]
    out = [p]
    while sum(len(c) for c in out) < min_frames:
        end = out[-1][-1, 0] * [1.0, 0.0, 1.0]
        out.append(qrot(qabout_y(np.array(turn * len(out))), p[1:] - start) + end)
    return np.concatenate(out, axis=0)


def hold_ends(positions: np.ndarray, frames: int) -> np.ndarray:
    """Pad to `frames` by holding the first and last poses (half the padding at each end)."""
    p = np.asarray(positions)
    extra = max(frames - len(p), 0)
    before = extra // 2
    return np.concatenate([np.repeat(p[:1], before, 0), p, np.repeat(p[-1:], extra - before, 0)])


def fit_length(positions: np.ndarray, cyclic: bool) -> tuple[np.ndarray | None, str]:
    """Make a take usable: (positions, how) with how in "", "repeated", "padded"; None if too short."""
    t = len(positions)
    if t >= MIN_FRAMES:
        return positions, ""
    if cyclic and t >= 2:
        return repeat_cycle(positions, MIN_FRAMES), "repeated"
    if t >= PAD_FROM_FRAMES:
        return hold_ends(positions, MIN_FRAMES), "padded"
    return None, f"too short ({t} frames at 20 fps, need {PAD_FROM_FRAMES})"


def _clip_records(cid: str, canon: np.ndarray, captions: list[str], entry: dict) -> list[dict]:
    """One canonical window -> its record and its mirror's (left/right swapped in the captions)."""
    clips = []
    for mirrored in (False, True):
        pos = canonicalize(mirror_positions(canon)) if mirrored else canon
        clips.append({
            "id": ("M" + cid) if mirrored else cid, "joints": pos[:-1], "features": positions_to_features(pos),
            "captions": [mirror_text(c) for c in captions] if mirrored else captions,
            "entry": {**entry, "mirrored": mirrored},
        })
    return clips


def _entry(take: Take, source_root: Path, s: int, e: int, how: str) -> dict:
    entry = {
        "source": take.source, "file": take.path.relative_to(source_root).as_posix(),
        "subject": take.subject, "licence": take.licence, "start": round(s / FPS, 2),
        "end": round(e / FPS, 2), "mirrored": False, "label": take.label, "take": take.key,
        "captions_by": "rules",
    }
    if how:
        entry["length_fix"] = how
    if take.notes:
        entry["notes"] = list(take.notes)
    return entry


WINDOW_PAST_END = 0.5  # s: a window ending further past our copy's end shows the copies differ


def human_ranges(take: Take, frames: int) -> list[tuple[int, int, object]]:
    """[(start, end, window)) frames of the take's HumanML3D windows, clipped to the motion and
    to MAX_FRAMES (a 10 s window loses its last 0.2 s). Windows ending more than WINDOW_PAST_END
    beyond our copy are dropped: that copy is not the one HumanML3D cut (the README counts them)."""
    out = []
    for w in take.human:
        if w.end > frames / FPS + WINDOW_PAST_END:
            continue
        s = int(round(w.start * FPS))
        e = min(int(round(w.end * FPS)), frames, s + MAX_FRAMES)
        if e - s >= PAD_FROM_FRAMES:
            out.append((s, e, w))
    return out


def _human_clips(take: Take, body: np.ndarray, source_root: Path) -> list[dict]:
    """Clips cut at the HumanML3D windows (human captions) plus rule-captioned windows over the
    stretches of the take that no HumanML3D window covers."""
    clips, ranges = [], human_ranges(take, len(body))
    for s, e, w in ranges:
        seg, how = fit_length(body[s:e], cyclic=False)
        entry = {**_entry(take, source_root, s, e, how), "captions_by": "human", "hml3d_id": w.hml3d_id}
        clips += _clip_records(f"{take.key}_h{w.hml3d_id}", canonicalize(seg), list(w.captions), entry)
    for k, (gs, ge) in enumerate(uncovered(len(body), [(s, e) for s, e, _ in ranges], MIN_FRAMES)):
        for j, (s, e) in enumerate(window_ranges(ge - gs)):
            canon = canonicalize(body[gs + s:gs + e])
            cid = f"{take.key}_g{k}{j:02d}"
            captions = make_captions(list(take.phrasings), describe(canon, FPS), seed=cid, vague=take.vague, windowed=True)
            clips += _clip_records(cid, canon, captions, _entry(take, source_root, gs + s, gs + e, ""))
    return clips


def _take_clips(take: Take, body: np.ndarray, how: str, source_root: Path) -> list[dict]:
    """One take on the reference body -> clip records (windows and their mirrors)."""
    if take.human:
        return _human_clips(take, body, source_root)
    ranges = window_ranges(len(body))
    clips = []
    for k, (s, e) in enumerate(ranges):
        cid = take.key if len(ranges) == 1 else f"{take.key}_{k:02d}"
        canon = canonicalize(body[s:e])
        captions = make_captions(list(take.phrasings), describe(canon, FPS), seed=cid,
                                 vague=take.vague, windowed=len(ranges) > 1)
        clips += _clip_records(cid, canon, captions, _entry(take, source_root, s, e, how))
    return clips


def read_take(take: Take) -> tuple[np.ndarray, dict]:
    """A take's SMPL-22 positions at 20 fps, motion time 0 at frame 0, and the importer's notes.

    The importer drops a converter's prepended T-pose frame (cgspeed's frame 0, data README) at the
    source rate, so that window times of the HumanML3D captions (seconds from the first mocap frame)
    index the motion directly. A take whose file header states the wrong frame rate (`Take.fps`, see
    `sources`) is resampled from the true one.
    """
    from ..resample import resample_positions

    src = read_source(take.path, asf=take.asf, fps=None if take.fps else FPS)
    pos, meta = src.positions, dict(src.meta)
    if not take.fps:
        return pos, meta
    meta["source_fps_used"] = f"{take.fps:g}"
    return resample_positions(pos, take.fps, FPS, antialias=False), meta


def _load_takes(takes: list[Take], progress: bool, skipped: list[dict]) -> list[tuple[Take, np.ndarray, str]]:
    from tqdm import tqdm

    loaded = []
    for take in tqdm(takes, desc="reading takes", unit="take", disable=not progress):
        try:
            pos, _ = read_take(take)
            how = ""
            if not take.human:  # windowed takes are fitted per window (`_human_clips`)
                pos, how = fit_length(pos, cyclic=take.cyclic)
            if pos is None:
                skipped.append({"file": str(take.path), "reason": how})
                continue
            loaded.append((take, to_reference_body(pos), how))
        except (IrmogenError, ValueError, OSError, KeyError, IndexError, UnicodeDecodeError) as e:
            warnings.warn(f"{take.path}: skipped ({e})", stacklevel=2)
            skipped.append({"file": str(take.path), "reason": str(e)})
    return loaded


def import_humanml3d(src: Path, dst: Path, progress: bool, skipped: list[dict]) -> tuple[dict, dict]:
    """Copy a HumanML3D folder's clips, texts and splits into `dst`: (split of id, manifest)."""
    from tqdm import tqdm

    split_of = {}
    for name in layout.SPLITS:
        split_of.update({i: name for i in layout.read_split(src, name)})
    if not split_of:
        raise IrmogenError(f"{src}: no train.txt / val.txt / test.txt in the HumanML3D folder")
    manifest, kept = {}, {}
    for cid, split in tqdm(sorted(split_of.items()), desc="copying HumanML3D", unit="clip", disable=not progress):
        joints, vecs, text = (src / "new_joints" / f"{cid}.npy", src / "new_joint_vecs" / f"{cid}.npy",
                              src / "texts" / f"{cid}.txt")
        try:
            if not joints.is_file() or not text.is_file():
                raise IrmogenError("missing new_joints or texts file")
            rows = layout.read_text_lines(text)
            if not rows:
                raise IrmogenError("no caption lines")
            if vecs.is_file():
                frames = int(np.load(vecs, mmap_mode="r").shape[0])
                for a, b in ((joints, "new_joints"), (vecs, "new_joint_vecs"), (text, "texts")):
                    shutil.copyfile(a, dst / b / a.name)
            else:  # features computed here; joints trimmed so both have one row per frame
                j = np.load(joints)
                feats = positions_to_features(j)
                frames = len(feats)
                layout.write_clip(dst, cid, canonicalize(j)[:-1], feats, [ln.strip() for ln in text.read_text(encoding="utf-8").splitlines() if ln.strip()])
        except (IrmogenError, ValueError, OSError) as e:
            warnings.warn(f"{src / 'new_joints' / (cid + '.npy')}: skipped ({e})", stacklevel=2)
            skipped.append({"file": str(joints), "reason": str(e)})
            continue
        kept[cid] = split
        manifest[cid] = {
            "source": "humanml3d", "file": f"new_joints/{cid}.npy", "subject": "", "licence": "HumanML3D (AMASS, HumanAct12 terms)",
            "start": 0.0, "end": round(frames / FPS, 2), "mirrored": cid.startswith("M"), "label": rows[0][0],
            "captions": len(rows), "frames": frames,
        }
    return kept, manifest


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise IrmogenError(f"{out}: exists and is not a folder", hint="choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise IrmogenError(f"{out}: folder exists and is not empty", hint="pass --overwrite to replace it, or choose another --out")


def prepare_dataset(out, cmu=None, hdm05=None, deepmimic=None, humanml3d=None, progress=True,
                    overwrite=False) -> dict:
    """Build the dataset in `out` from the given source folders; returns (and prints) a summary.

    `humanml3d` is either a folder holding `cmu_captions.csv` (human captions of CMU trials; found
    as ../humanml3d beside `cmu` when not given) or a real HumanML3D dataset folder merged in as it is.
    """
    out = Path(out)
    _check_out(out, overwrite)
    if not any((cmu, hdm05, deepmimic, humanml3d)):
        raise IrmogenError("data prepare: no source given", hint="pass at least one of --cmu, --hdm05, --deepmimic, --humanml3d")
    started = time.time()
    captions_csv = find_captions_csv(humanml3d, cmu)
    if humanml3d and captions_csv is not None and captions_csv.parent == Path(humanml3d):
        humanml3d = None  # the folder holds captions, not a HumanML3D dataset to copy
    human = read_human_captions(captions_csv) if captions_csv is not None and cmu else {}
    takes = find_takes(cmu=cmu, hdm05=hdm05, deepmimic=deepmimic, human=human)
    roots = {"cmu": cmu, "hdm05": hdm05, "deepmimic": deepmimic}
    with replaced_folder(out) as tmp:
        layout.make_folders(tmp)
        summary = _build(tmp, takes, roots, Path(humanml3d) if humanml3d else None, progress,
                         captions_csv if human else None)
    summary["out"] = str(out)
    summary["seconds_to_build"] = round(time.time() - started, 1)
    if progress:
        print(format_summary(summary))
    return summary


def _split_takes(loaded) -> dict[str, str]:
    group = split_groups([t for t, _, _ in loaded])
    fixed = lambda t: "test" if t.source == "cmu" and t.subject in V1_TEST_PERFORMERS else t.fixed_split
    return assign_splits([TakeInfo(t.key, group[t.key], t.subject, len(b), fixed(t)) for t, b, _ in loaded])


def _build(tmp: Path, takes: list[Take], roots: dict, humanml3d: Path | None, progress: bool,
           captions_csv: Path | None = None) -> dict:
    from tqdm import tqdm

    skipped: list[dict] = []
    loaded = _load_takes(takes, progress, skipped)
    split_of_take = _split_takes(loaded)
    split_of, manifest, stats = {}, {}, layout.FeatureStats()
    clips, frames, captions = Counter(), Counter(), []
    for take, body, how in tqdm(loaded, desc="writing clips", unit="take", disable=not progress):
        for c in _take_clips(take, body, how, Path(roots[take.source])):
            split = split_of_take[take.key]
            layout.write_clip(tmp, c["id"], c["joints"], c["features"], [layout.caption_line(x) for x in c["captions"]])
            split_of[c["id"]] = split
            manifest[c["id"]] = {**c["entry"], "split": split, "captions": len(c["captions"]), "frames": len(c["features"])}
            if split == "train":
                stats.add(c["features"])
            clips[take.source] += 1
            frames[take.source] += len(c["features"])
            captions.append(len(c["captions"]))
    if humanml3d is not None:
        h_split, h_manifest = import_humanml3d(humanml3d, tmp, progress, skipped)
        for cid, entry in h_manifest.items():
            manifest[cid] = {**entry, "split": h_split[cid]}
            if h_split[cid] == "train":
                stats.add(np.load(tmp / "new_joint_vecs" / f"{cid}.npy"))
            clips["humanml3d"] += 1
            frames["humanml3d"] += entry["frames"]
            captions.append(entry["captions"])
        split_of.update(h_split)
    if not split_of:
        raise IrmogenError("data prepare: no usable clips in the given sources")
    mean, std = stats.mean_std()
    np.save(tmp / "Mean.npy", mean)
    np.save(tmp / "Std.npy", std)
    sizes = layout.write_splits(tmp, split_of)
    human_test = sorted(c for c, e in manifest.items() if e["split"] == "test" and e.get("captions_by") == "human")
    if human_test:  # `irmogen eval --split test_human`: the human-captioned test clips on their own
        (tmp / "test_human.txt").write_text("".join(f"{i}\n" for i in human_test), encoding="utf-8")
    (tmp / "manifest.json").write_text(json.dumps({"fps": FPS, "clips": manifest}, indent=1, ensure_ascii=False), encoding="utf-8")
    summary = {
        "clips": len(split_of), "clips_per_source": dict(clips),
        "takes_per_source": dict(Counter(t.source for t, _, _ in loaded)),
        "minutes_per_source": {k: round(v / FPS / 60, 2) for k, v in frames.items()},
        "minutes": round(sum(frames.values()) / FPS / 60, 2),
        "captions_per_clip": float(np.mean(captions)), "splits": sizes,
        "length_fixes": dict(Counter(h for _, _, h in loaded if h)), "skipped": skipped,
        "human_captions": human_figures(manifest),
    }
    checks = []
    if captions_csv is not None:
        shutil.copyfile(captions_csv.parent / LICENCE_NAME, tmp / "LICENSE-HumanML3D")
        checks = check_alignment(loaded)
    layout.write_readme(tmp, summary, _notes(loaded, skipped), checks)
    return summary


def human_figures(manifest: dict) -> dict:
    """Per split: clips whose captions are human-written (HumanML3D), and their minutes."""
    out = {}
    for e in manifest.values():
        if e.get("captions_by") == "human":
            row = out.setdefault(e["split"], {"clips": 0, "minutes": 0.0, "captions": 0})
            row["clips"] += 1
            row["minutes"] = round(row["minutes"] + e["frames"] / FPS / 60, 2)
            row["captions"] += e["captions"]
    return out


def _notes(loaded, skipped) -> list[str]:
    notes = sorted({n for t, _, _ in loaded for n in t.notes})
    fixes = Counter(h for _, _, h in loaded if h)
    notes += [f"{n} take(s) {how} to reach 2 s" for how, n in sorted(fixes.items())]
    notes += [f"skipped {s['file']}: {s['reason']}" for s in skipped]
    notes.append("CMU trials present both as BVH and as AMC are taken once, from the BVH")
    return notes


def format_summary(s: dict) -> str:
    lines = [f"dataset: {s.get('out', '')}  ({s['clips']} clips, {s['minutes']:.1f} min, "
             f"{s['captions_per_clip']:.2f} captions/clip)"]
    for src in sorted(s["clips_per_source"]):
        lines.append(f"  {src:<10} takes {s['takes_per_source'].get(src, '-')!s:>5}  clips {s['clips_per_source'][src]:>6}"
                     f"  minutes {s['minutes_per_source'][src]:>7.1f}")
    lines.append("  splits: " + ", ".join(f"{k} {v}" for k, v in s["splits"].items()))
    if s["skipped"]:
        lines.append(f"  skipped {len(s['skipped'])} file(s): " + "; ".join(f"{x['file']} ({x['reason']})" for x in s["skipped"][:10]))
    return "\n".join(lines)

"""Every real mocap file of every source kind imports as a plausible SMPL-22 motion; joint maps keep
the solver's rigid groups rigid; our BVH writer round-trips real clips. Prints the figures."""
from __future__ import annotations

import numpy as np
import pytest

from irmogen.io import builtin_maps, load_motion, read_source, save_bvh
from irmogen.skeleton import INDEX, PARENTS

KINDS = {
    "cmu_bvh_cc": "cmu/bvh_cc/*.bvh.gz",
    "cmu_bvh_daz": "cmu/bvh_daz/*.bvh.gz",
    "cmu_bvh_cgspeed": "cmu/bvh_cgspeed/*.bvh.gz",
    "cmu_amc": "cmu/amc/*.amc",
    "hdm05": "hdm05/*/*/*.amc",
    "deepmimic": "deepmimic/**/*.txt",
}
MAP_OF_KIND = {"cmu_bvh_cc": "cmu_cc", "cmu_bvh_daz": "cmu_daz", "cmu_bvh_cgspeed": "cmu_daz",
               "cmu_amc": "vicon_asf", "hdm05": "vicon_asf", "deepmimic": "deepmimic"}
FEET = [INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]


def files_of(data_dir, kind):
    files = sorted(data_dir.glob(KINDS[kind]))
    assert files, f"no files for {kind}"
    return files


def rigid_group_variation(p: np.ndarray) -> float:
    """Max over SMPL joints of the range over time of any distance inside {joint, its children}."""
    worst = 0.0
    for j in range(22):
        group = [j] + [c for c, q in enumerate(PARENTS) if q == j]
        for a in group:
            for b in group:
                if a < b:
                    worst = max(worst, float(np.ptp(np.linalg.norm(p[:, a] - p[:, b], axis=-1))))
    return worst


def head_height(p: np.ndarray) -> float:
    """Head joint above the lowest foot joint, in the 90th-percentile frame (standing frames)."""
    return float(np.percentile(p[:, INDEX["head"], 1] - p[:, FEET, 1].min(axis=1), 90))


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_real_file_imports_plausibly(data_dir, kind, capsys):
    heights, frames, upright, rigid, dropped = [], 0, [], 0.0, []
    for f in files_of(data_dir, kind):
        src = read_source(f)
        p = src.positions
        assert src.skeleton == MAP_OF_KIND[kind] and src.fps == 20.0
        assert p.ndim == 3 and p.shape[1:] == (22, 3) and p.shape[0] >= 5, f.name
        assert np.all(np.isfinite(p)), f.name
        frames += len(p)
        heights.append(head_height(p))
        upright.append(float(np.mean(p[:, INDEX["head"], 1] > p[:, INDEX["pelvis"], 1])))
        # Feet on the ground: in the most upright frame, a foot joint is the body's lowest point.
        t = np.argmax(p[:, INDEX["head"], 1] - p[:, INDEX["pelvis"], 1])
        assert p[t, FEET, 1].min() - p[t, :, 1].min() < 0.02, f.name
        if src.meta.get("dropped_tpose_frame"):
            dropped.append(f.name)
        if kind == "hdm05":
            actor = f.name.split("_")[1]
            assert src.meta["asf"].endswith(f"HDM_{actor}.asf")
        if kind == "cmu_amc":
            assert "asf_stand_in" in src.meta  # subjects 05/88/90 have no ASF of their own
    heights = np.array(heights)
    with capsys.disabled():
        print(f"\n{kind}: {len(heights)} clips, {frames} frames at 20 fps ({frames / 20:.0f} s); head "
              f"joint height median {np.median(heights):.2f} m (min {heights.min():.2f}, max "
              f"{heights.max():.2f}); head above pelvis in {np.median(upright):.0%} of frames (median "
              f"clip); prepended T-pose dropped in {len(dropped)} clips")
    assert min(upright) > 0.4 and np.mean(upright) > 0.85  # Y up (flips, getting up from the floor)
    assert heights.max() < 1.9
    # A standing adult's head joint is 1.2-1.8 m up (stature ~1.35-2.0 m). The bvh_daz skeleton is
    # smaller as shipped (head joint ~1.07 m, a ~1.25 m figure), though its README calls it metres.
    low = 1.0 if kind == "cmu_bvh_daz" else 1.2
    assert low < np.median(heights) < 1.8
    # The converters' prepended T-pose frames go, and no source's real first frame: subject 7's
    # trials 03-12 in bvh_cc carry one, every cgspeed file does (data README), nothing else.
    if kind == "cmu_bvh_cc":
        assert sorted(dropped) == [f"007_{k:02d}.bvh.gz" for k in range(3, 13)]
    elif kind == "cmu_bvh_cgspeed":
        assert sorted(dropped) == [f.name for f in files_of(data_dir, kind)]
    else:
        assert dropped == []


@pytest.mark.realdata
@pytest.mark.parametrize("kind", list(KINDS))
def test_joint_maps_keep_rigid_groups_rigid(data_dir, kind, capsys):
    """At the source frame rate, each SMPL joint and its children keep their distances (the
    rotation solver fits one rigid frame per joint), within 1 cm."""
    files = files_of(data_dir, kind)[:: max(1, len(files_of(data_dir, kind)) // 4)]
    worst = max(rigid_group_variation(read_source(f, fps=None).positions) for f in files)
    with capsys.disabled():
        print(f"\n{kind}: rigid-group distance variation max {worst * 1000:.1f} mm over {len(files)} clips")
    assert worst < 0.01


@pytest.mark.realdata
@pytest.mark.parametrize("kind", list(KINDS))
def test_writer_round_trips_real_clips(data_dir, kind, tmp_path, capsys):
    worst = 0.0
    for f in files_of(data_dir, kind)[:2]:
        clip = load_motion(f)
        # Canonical: root starts at x = z = 0, lowest point on the floor.
        assert np.allclose(clip.positions[0, 0, [0, 2]], 0, atol=1e-6)
        assert abs(clip.positions[..., 1].min()) < 0.1  # FK of the solved rotations: near, not exact
        assert clip.meta["skeleton"] == MAP_OF_KIND[kind]
        back = read_source(save_bvh(clip, tmp_path / f"{kind}.bvh"), fps=None)
        assert back.skeleton == "smpl22"
        worst = max(worst, float(np.abs(back.positions - clip.positions).max()))
    with capsys.disabled():
        print(f"\n{kind}: BVH writer -> reader max round-trip error {worst:.2e} m")
    assert worst < 1e-4


def test_builtin_maps_ship_and_cover_all_22_joints():
    maps = builtin_maps()
    assert {"cmu_cc", "cmu_daz", "vicon_asf", "deepmimic", "smpl22", "mixamo"} <= set(maps)
    for m in maps.values():
        assert len(m.sources) == 22
        assert all(abs(sum(w for _, w in blend) - 1) < 1e-9 for blend in m.sources)

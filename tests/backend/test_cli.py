"""The `irmogen` command as a user runs it: a real subprocess from an empty working directory."""
import subprocess
import sys

import numpy as np
import pytest

from irmogen.clip import Clip
from irmogen.io import arms_level


def irmogen(*args, cwd):
    return subprocess.run([sys.executable, "-m", "irmogen", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_the_commands(workdir):
    r = irmogen("--help", cwd=workdir)
    assert r.returncode == 0
    for cmd in ("motion", "data"):
        assert cmd in r.stdout


@pytest.mark.realdata
@pytest.mark.parametrize("source, extra", [
    ("cmu/bvh_cc/002_01.bvh.gz", []),
    ("cmu/bvh_daz/60_01_scaled.bvh.gz", []),
    ("cmu/amc/05_06.amc", ["--asf", "cmu/amc/08.asf"]),
    ("deepmimic/humanoid3d_walk.txt", []),
])
def test_import_then_export_each_source_kind(workdir, data_dir, source, extra):
    extra = [str(data_dir / e) if e.startswith("cmu/") else e for e in extra]
    r = irmogen("motion", "import", data_dir / source, *extra, "--out", "clip.npz", cwd=workdir)
    assert r.returncode == 0, r.stderr
    print(r.stdout.strip())
    clip = Clip.load(workdir / "clip.npz")
    assert clip.fps == 20.0 and clip.num_frames > 20
    with np.load(workdir / "clip.npz", allow_pickle=False) as z:  # the contract: no pickle needed
        assert list(z["joint_names"])[:2] == ["pelvis", "left_hip"]
    r = irmogen("motion", "export", "clip.npz", "--out", "clip.bvh", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert (workdir / "clip.bvh").read_text().startswith("HIERARCHY")


@pytest.mark.realdata
def test_import_drops_the_tpose_cgspeed_adds_as_frame_0(workdir, data_dir):
    # 13_30 leaves its T-pose by 0.22 m in the first 120 fps frame: the case a per-frame jump missed.
    r = irmogen("motion", "import", data_dir / "cmu/bvh_cgspeed/13_30.bvh.gz", "--out", "c.npz", cwd=workdir)
    assert r.returncode == 0, r.stderr
    clip = Clip.load(workdir / "c.npz")
    assert clip.meta["dropped_tpose_frame"] == "1" and not arms_level(clip.positions[0])


@pytest.mark.realdata
def test_hdm05_import(workdir, data_dir):
    amc = sorted((data_dir / "hdm05" / "test").rglob("*.amc"))[0]
    r = irmogen("motion", "import", amc, "--out", "h.npz", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert Clip.load(workdir / "h.npz").num_frames > 10


def test_bad_input_is_one_line_and_writes_nothing(workdir):
    (workdir / "broken.bvh").write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n")
    r = irmogen("motion", "import", "broken.bvh", "--out", "x.npz", cwd=workdir)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "broken.bvh" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not (workdir / "x.npz").exists()


def test_missing_file_is_a_clear_error(workdir):
    r = irmogen("motion", "export", "nope.npz", "--out", "x.bvh", cwd=workdir)
    assert r.returncode == 2 and "nope.npz" in r.stderr and "Traceback" not in r.stderr

"""`irmogen generate` with several parts and exact lengths, `irmogen extend`, and `irmogen refine
--frames/--part`, run as a user runs them: a real subprocess, the shipped default model, a real
mocap take."""
import json
import subprocess
import sys

import numpy as np
import pytest

from irmogen.clip import Clip
from irmogen.io import load_motion
from irmogen.partcheck import check_parts
from irmogen.rotations import forward_kinematics
from irmogen.splice import part_joints


def irmogen(*args, cwd):
    return subprocess.run([sys.executable, "-m", "irmogen", *map(str, args), "--device", "cpu"], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def take(data_dir, tmp_path_factory):
    """A real take: CMU 02_05 (punch/strike) imported at 20 fps and saved as the add-on saves clips."""
    d = tmp_path_factory.mktemp("take")
    load_motion(data_dir / "cmu" / "bvh_cc" / "002_05.bvh.gz").save(d / "take.npz")
    return Clip.load(d / "take.npz"), d / "take.npz"


def same(a: Clip, b: Clip, frames=slice(None)) -> bool:
    return all(np.array_equal(getattr(a, n)[frames], getattr(b, n)[frames])
               for n in ("rotations", "root_translation", "positions"))


def test_generate_the_readme_demo_prompt_has_both_parts_and_the_asked_length(tmp_path):
    r = irmogen("generate", "a person walks forward, then jumps", "--seconds", "6.55", "--max-rounds", "2",
                "--out", "demo.npz", "--transcript", "demo.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'part 1 "a person walks forward": analysis:' in r.stdout and "part 2: round 1: motion" in r.stdout
    clip = Clip.load(tmp_path / "demo.npz")
    assert clip.num_frames == 131  # 6.55 s at 20 fps, to the frame
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved == json.loads(clip.transcript)
    assert [p["caption"] for p in saved["parts"]] == ["a person walks forward", "a person jumps"]
    checks = check_parts(clip, saved["parts"])
    assert all(c["ok"] for c in checks), checks  # the walk travels and the jump leaves the ground


def test_generate_one_part_is_exact_to_the_frame(tmp_path):
    r = irmogen("generate", "a person walks forward", "--seconds", "3", "--max-rounds", "1", "--out", "w.npz",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert Clip.load(tmp_path / "w.npz").num_frames == 60


def test_extend_continues_a_real_take_and_leaves_it_untouched(take, tmp_path):
    clip, path = take
    r = irmogen("extend", path, "then he jumps", "--seconds", "3", "--max-rounds", "2", "--out", "ext.npz",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = Clip.load(tmp_path / "ext.npz")
    n = clip.num_frames
    assert out.num_frames == n + 60
    assert same(out, clip, slice(0, n))
    assert same(Clip.load(path), clip)  # the take's own file is not rewritten
    assert np.allclose(forward_kinematics(out.offsets, out.rotations, out.root_translation), out.positions,
                       atol=1e-4)
    t = json.loads(out.transcript)
    assert t["take_frames"] == n and t["parts"][0]["start"] == n and t["seams"] == [n]
    assert all(c["ok"] for c in check_parts(out, t["parts"]))
    # No jump where the new motion starts: the pelvis moves no more than it does inside the take.
    step = np.linalg.norm(np.diff(out.root_translation, axis=0), axis=-1)
    assert step[n - 1] <= step[:n - 1].max()


@pytest.mark.parametrize("part", ["upper", "whole"])
def test_refine_a_range_and_part_leaves_everything_else_bit_identical(take, tmp_path, part):
    clip, path = take
    r = irmogen("refine", path, "raise the arms higher", "--frames", "40:90", "--part", part, "--out", "r.npz",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = Clip.load(tmp_path / "r.npz")
    assert out.num_frames == clip.num_frames
    assert same(out, clip, slice(0, 40)) and same(out, clip, slice(90, None))
    joints, owns_root = part_joints(part)
    others = [j for j in range(22) if j not in joints]
    assert np.array_equal(out.rotations[40:90, others], clip.rotations[40:90, others])
    assert owns_root or np.array_equal(out.root_translation, clip.root_translation)
    assert not np.array_equal(out.rotations[40:90], clip.rotations[40:90])
    assert json.loads(out.transcript)["frames"] == [40, 90]


@pytest.mark.parametrize("args, message", [
    (["refine", "{take}", "raise the arms", "--frames", "90:40"], "frames: 90:40 is not a range"),
    (["refine", "{take}", "raise the arms", "--frames", "ten:20"], "--frames: 'ten:20' must be two whole numbers"),
    (["generate", "a person walks", "--seconds", "61"], "seconds: 61.0 must be a number in (0, 60]"),
    (["extend", "missing.npz", "then he waves"], "missing.npz"),
])
def test_mistakes_are_one_clear_line_and_write_nothing(take, tmp_path, args, message):
    r = irmogen(*[a.format(take=take[1]) for a in args], "--out", "x.npz", cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.npz").exists()

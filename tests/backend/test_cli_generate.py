"""`irmogen generate / refine / assess / caption` as a user runs them, on a tiny random model.

A random model writes nonsense words, but everything a user relies on around it is real: the clip
contract, the streamed rounds, the transcript, the BVH, refinement of the result, the errors.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from irmogen.clip import Clip
from irmogen.models import default_model_dir
from irmogen.reasoning.parser import Trace
from irmogen.rotations import forward_kinematics


def irmogen(*args, cwd):
    return subprocess.run([sys.executable, "-m", "irmogen", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from irmogen.llm.testing import tiny_motionllm

    d = tmp_path_factory.mktemp("tiny_model")
    tiny_motionllm(seed=3).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def generated(model_dir, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("gen")
    r = irmogen("generate", "a person walks forward, then waves", "--model", model_dir, "--seconds", "3",
                "--max-rounds", "3", "--seed", "7", "--out", "walk.npz", "--bvh", "walk.bvh",
                "--transcript", "walk.json", cwd=cwd)
    assert r.returncode == 0, r.stderr
    return cwd, r


def test_generate_streams_rounds_and_writes_clip_bvh_transcript(generated):
    cwd, r = generated
    out = r.stdout
    # Two parts ("walks forward", "waves"), each in its own rounds, streamed in order.
    assert out.index("part 1") < out.index("part 1: round 1: motion") < out.index("part 2: round 1: motion")
    clip = Clip.load(cwd / "walk.npz")
    assert clip.fps == 20.0 and clip.num_frames == 60  # 3 s asked: exact to the frame
    assert np.allclose(forward_kinematics(clip.offsets, clip.rotations, clip.root_translation),
                       clip.positions, atol=1e-4)
    assert clip.text == "a person walks forward, then waves"
    saved = json.loads((cwd / "walk.json").read_text())
    assert saved == json.loads(clip.transcript)
    assert [p["caption"] for p in saved["parts"]] == ["a person walks forward", "a person waves with the right hand"]
    assert sum(p["frames"] for p in saved["parts"]) == 60 and saved["parts"][1]["start"] == saved["parts"][0]["frames"]
    trace = Trace.from_json(saved)  # single-motion readers still read every round
    assert len(trace.rounds) == sum(part["rounds"] for part in saved["parts"])
    for i, part in enumerate(saved["parts"]):
        assert 1 <= part["rounds"] <= 3
        assert [rd["part"] for rd in saved["rounds"]].count(i) == part["rounds"]
        assert part["traces"][-1]["rounds"][-1]["refinement"] == "No refinements needed."
    assert trace.finished
    assert (cwd / "walk.bvh").read_text().startswith("HIERARCHY")


def test_refine_assess_caption_on_the_result(generated, model_dir):
    cwd, _ = generated
    r = irmogen("refine", "walk.npz", "raise the arms higher", "--model", model_dir, "--out", "walk2.npz", cwd=cwd)
    assert r.returncode == 0, r.stderr
    refined = Clip.load(cwd / "walk2.npz")
    assert json.loads(refined.transcript)["instruction"] == "raise the arms higher"
    assert refined.text == "a person walks forward, then waves"  # the goal carries over
    r = irmogen("assess", "walk.npz", "a person waves", "--model", model_dir, cwd=cwd)
    assert r.returncode == 0 and "refinement:" in r.stdout, r.stderr
    r = irmogen("caption", "walk.npz", "--model", model_dir, cwd=cwd)
    assert r.returncode == 0, r.stderr


def test_empty_prompt_is_a_clear_error(model_dir, workdir):
    r = irmogen("generate", "   ", "--model", model_dir, "--out", "x.npz", cwd=workdir)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert not (workdir / "x.npz").exists()


def test_missing_model_names_what_to_do(workdir):
    if default_model_dir() is not None:
        pytest.skip("a default model is installed")
    r = irmogen("generate", "a person jumps", "--out", "x.npz", cwd=workdir)
    assert r.returncode == 2 and "--model" in r.stderr and "Traceback" not in r.stderr


def test_wrong_model_path_names_it(workdir):
    r = irmogen("generate", "a person jumps", "--model", "no/such/dir", "--out", "x.npz", cwd=workdir)
    assert r.returncode == 2 and "no/such/dir" in r.stderr and "Traceback" not in r.stderr


def test_guidance_without_a_prompt_encoder_is_a_clear_error(model_dir, workdir):
    r = irmogen("generate", "a person jumps", "--model", model_dir, "--guidance", "3", "--out", "x.npz", cwd=workdir)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "guidance 3.0: this model has no prompt encoder" in r.stderr
    assert not (workdir / "x.npz").exists()

"""Refine keeps a length: with `seconds` the served refine returns exactly round(seconds * fps)
frames (issue 14, defect 11: the add-on sends a take's length and a 4.45 s take came back 1.85 s).
Through the real `irmogen serve` subprocess with a tiny model, instructed and direct; and the same
from `irmogen refine --seconds`."""
from __future__ import annotations

import subprocess
import sys

import pytest

from irmogen import protocol as P
from irmogen.client import BackendClient
from irmogen.clip import Clip
from irmogen.llm.testing import tiny_motionllm
from irmogen.rotations import forward_kinematics

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_motionllm(0).save_pretrained(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def backend(model):
    client = BackendClient(model=model, device="cpu", env=ENV)
    yield client
    assert client.close() == 0, client.stderr_tail()


@pytest.fixture(scope="module")
def source(backend):
    """A generated motion to refine (its own length differs from the lengths asked below)."""
    done = backend.call("generate", {"text": "a person jumps", "seconds": 3, "max_rounds": 1,
                                     "max_text_tokens": 4}, timeout=120)
    return done["data"]["clip"]


@pytest.mark.parametrize("seconds", [1.0, 4.5, 9.8])   # even frame counts: never 4 * codes + 1
@pytest.mark.parametrize("mode", ["instructed", "direct"])
def test_refine_returns_exactly_the_length_asked(backend, source, seconds, mode):
    params = {"clip": source, "seconds": seconds, "greedy": False, "seed": 1}
    params.update({"instruction": "raise the arms higher"} if mode == "instructed" else {"text": "a person sits"})
    done = backend.call("refine", params, timeout=120)
    assert done["event"] == "result" and done["data"]["mode"] == mode, done
    clip = P.decode_clip(done["data"]["clip"])
    positions = clip.positions.to_numpy()
    assert clip.fps == 20.0 and positions.shape[0] == round(seconds * 20), positions.shape
    # The time-fitted motion is still one skeleton moving: its positions are its rotations' FK.
    fk = forward_kinematics(clip.offsets.to_numpy(), clip.rotations.to_numpy(), clip.root_translation.to_numpy())
    assert abs(fk - positions).max() < 1e-4


def test_cli_refine_seconds_is_exact(backend, source, model, workdir):
    clip = P.decode_clip(source)
    Clip(clip.fps, clip.offsets.to_numpy(), clip.rotations.to_numpy(), clip.root_translation.to_numpy(),
         clip.positions.to_numpy(), text="a person jumps").save(workdir / "jump.npz")
    r = subprocess.run([sys.executable, "-m", "irmogen", "refine", "jump.npz", "raise the arms higher",
                        "--seconds", "4.5", "--model", str(model), "--device", "cpu", "--out", "out.npz"],
                       cwd=workdir, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert Clip.load(workdir / "out.npz").num_frames == 90

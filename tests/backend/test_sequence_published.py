"""Sequences run with the published checkpoint formats too: a Motion-Agent LoRA MotionLLM (one
motion per request, no reasoning rounds) and an IRG stage-1 checkpoint (the manual generate /
instruct / refine loop), loaded by the real loaders from tiny files of those formats. Each part
streams its own events and the clip has exactly the asked frames."""
import json

import numpy as np
import pytest
import torch

from irmogen.llm.loaders import load_model
from irmogen.reasoning.sequence import SequenceDone, run_sequence, transcript
from irmogen.rotations import forward_kinematics
from test_llm_loaders import _irg_state, _load_ma, files, irg, motion_agent  # noqa: F401  (fixtures)

TEXT = "a person walks, then jumps, then waves"


def sequence(model):
    events = list(run_sequence(model, TEXT, seconds=4, max_rounds=2, max_text_tokens=6))
    assert isinstance(events[-1], SequenceDone)
    return events[-1], events[:-1]


def check(done, events):
    clip = done.clip
    assert clip.num_frames == 80 and [p["start"] for p in done.parts] == [0, done.parts[0]["frames"],
                                                                          sum(p["frames"] for p in done.parts[:2])]
    assert {e.part for e in events} == {0, 1, 2}
    assert np.allclose(forward_kinematics(clip.offsets, clip.rotations, clip.root_translation), clip.positions,
                       atol=1e-4)
    assert [p["caption"] for p in json.loads(json.dumps(transcript(TEXT, done.parts, done.seams)))["parts"]] == [
        "a person walks", "a person jumps", "a person waves with the right hand"]


def test_motion_agent_checkpoint_makes_sequences(files, motion_agent):
    done, events = sequence(_load_ma(files, motion_agent["path"]))
    check(done, events)
    assert all(p["rounds"] == 1 for p in done.parts)       # Motion-Agent answers once per part


def test_irg_stage1_checkpoint_makes_sequences(files, irg, tmp_path):
    torch.save({"state_dict": _irg_state(irg)}, tmp_path / "stage1.pth")
    r = files["root"]
    spec = {"format": "irg", "gemma_dir": str(files["gemma"]), "checkpoint": str(tmp_path / "stage1.pth"),
            "vq": str(r / "vqvae.pth"), "mean": str(r / "mean.npy"), "std": str(r / "std.npy"), "stage": 1}
    done, events = sequence(load_model(spec, device="cpu"))
    check(done, events)

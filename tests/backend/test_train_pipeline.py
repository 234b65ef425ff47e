"""train.pipeline (`irmogen train all`) and a two-process (gloo) distributed run under accelerate."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import irmogen.train
from irmogen.errors import IrmogenError
from irmogen.evaluate.retrieval import Evaluator
from irmogen.evaluate.stages import format_stage_table, stage_table
from irmogen.llm.model import MotionLLM
from irmogen.reasoning.tasks import generate
from irmogen.train.pipeline import STEPS, PipelineConfig, _stage_modules, parse_overrides, run_pipeline
from irmogen.train.testing import TINY_STAGES, tiny_dataset

DIST = Path(irmogen.train.__file__).parent / "dist"


def test_the_whole_chain_runs_resumes_and_ships_a_model(tmp_path):
    data = tiny_dataset(tmp_path / "data")
    cfg = PipelineConfig(data=str(data), out=str(tmp_path / "out"), device="cpu", progress=False)
    final = run_pipeline(cfg, TINY_STAGES)
    assert all((tmp_path / "out" / s / "done.json").is_file() for s in STEPS)
    assert (final / "evaluator.safetensors").is_file()
    own = [json.loads(x) for x in (tmp_path / "out" / "own" / "stage2.jsonl").read_text().splitlines() if '"own"' in x]
    assert own and all(t["rounds"][0]["motion"].startswith("own:") for t in own)   # stage 2 saw its own motions
    model = MotionLLM.from_pretrained(final, device="cpu")
    done = [e for e in generate(model, "a person walks forward.", max_rounds=2, max_text_tokens=6) if e.kind == "done"][0]
    assert done.trace.finished and done.final_clip.num_frames >= 4
    # the model card's table from the run: every stage, first vs final motion of the rounds
    table = stage_table(tmp_path / "out", data, Evaluator.load(tmp_path / "out" / "evaluator"), repetitions=2,
                        mm_texts=0, max_rounds=2, progress=False)
    assert table["stages"] == ["base", "stage1", "stage2", "stage2_own", "stage3"]
    assert "real motion" in table["rows"] and "stage3 + IRMoGen trace, final motion" in table["rows"]
    assert "retrieval: nearest training caption's motion" in table["rows"]
    assert "stage1 + IRMoGen rounds (stage-1 calls), first motion" in table["rows"]
    assert set(table["rounds"]) == {"stage1", "stage2", "stage2_own", "stage3"}
    text = format_stage_table(table)
    assert "| stage2_own, direct |" in text and text.count("Final minus first motion, Top-1:") == 4
    stamp = (final / "model.safetensors").stat().st_mtime_ns
    started = time.monotonic()
    run_pipeline(cfg, TINY_STAGES)                      # everything done: nothing is trained again
    assert time.monotonic() - started < 30
    assert json.loads((tmp_path / "out" / "stage3" / "checkpoints" / "step-00000001" / "state.json").read_text())["step"] == 1
    assert (final / "model.safetensors").stat().st_mtime_ns >= stamp


def test_overrides_are_typed_and_checked():
    classes = {k: cls for k, (_, cls) in _stage_modules().items()}
    out = parse_overrides(["vq.width=128", "base.caption_ratio=0.3", "vq.milestones=0.5,0.9", "stage2.learn_intermediate=true"],
                          classes)
    assert out == {"vq": {"width": 128, "milestones": (0.5, 0.9)}, "base": {"caption_ratio": 0.3},
                   "stage2": {"learn_intermediate": True}}
    with pytest.raises(IrmogenError, match="has no field 'wdth'"):
        parse_overrides(["vq.wdth=3"], classes)
    with pytest.raises(IrmogenError, match="'x' is not a int"):
        parse_overrides(["vq.width=x"], classes)
    with pytest.raises(IrmogenError, match="STAGE.FIELD=VALUE"):
        parse_overrides(["width=3"], classes)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_with_gloo_train_and_checkpoint_once(tmp_path):
    data = tiny_dataset(tmp_path / "data")
    out = tmp_path / "vq"
    launcher = Path(sys.executable).with_name("accelerate")
    cmd = [str(launcher), "launch", "--config_file", str(DIST / "cpu_gloo_2proc.yaml"), "--main_process_port",
           str(_free_port()), "-m", "irmogen.train", "vq", "--data", str(data), "--out", str(out), "--width", "16",
           "--code-dim", "16", "--codebook-size", "32", "--depth", "1", "--batch-size", "4", "--max-steps", "4",
           "--eval-every", "2", "--checkpoint-every", "2", "--log-every", "1", "--no-progress", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    states = [json.loads((p / "state.json").read_text()) for p in sorted((out / "checkpoints").iterdir())]
    assert [s["step"] for s in states] == [2, 4] and all(s["world"] == 2 for s in states)   # both ranks joined
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "train/total" in r]
    assert steps == [1, 2, 3, 4]                       # the main process alone logs, once per step
    assert not list((out / "checkpoints").glob(".tmp-*")) and (out / "vq.safetensors").is_file()
    assert done.stdout.count("vq step 4:") == 1        # validation is reported once, combined over ranks

"""The bridge against the REAL backend process: lazy start, events via pump, cancel, restart, stop."""
from __future__ import annotations

import os
import sys

import pytest

bpy = pytest.importorskip("bpy")

import irmogen_extension as ext  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    addon = ext.install()
    model = ext.tiny_model(tmp_path_factory.mktemp("tiny"))
    b = addon.bridge.Bridge()
    python = os.environ.get("IRMOGEN_BACKEND_PYTHON", sys.executable)
    b.test_command = [python, "-m", "irmogen", "serve", "--model", str(model), "--device", "cpu"]
    yield b
    b.stop()


def test_generate_streams_rounds_then_a_result(bridge):
    assert not bridge.alive()  # nothing runs until the first request
    job = bridge.submit(bridge.test_command, "generate",
                        {"text": "a person walks forward", "max_rounds": 2, "seconds": 2.0})
    assert bridge.alive()
    seen = []
    bridge.pump(job, timeout=300, on_change=lambda j: seen.append(j.status))
    assert job.status == "done", job.error
    assert bridge.hello  # the hello event arrived (versions, device, model)
    assert job.result["clip"]["fps"] > 0 and job.result["rounds"] >= 1
    assert job.analysis  # goal analysis text
    motion_rounds = [r for r in job.rounds if "clip" in r]
    assert motion_rounds and all(r["round"] >= 1 for r in motion_rounds)
    assert "running" in seen and job.progress == 1.0


def test_cancel_ends_a_job_with_cancelled(bridge):
    job = bridge.submit(bridge.test_command, "generate", {"text": "a person jumps", "max_rounds": 5})
    bridge.cancel(job)
    bridge.pump(job, timeout=300)
    assert job.status in {"cancelled", "done"}  # a tiny model may finish before the cancel lands
    assert job.finished


def test_a_dead_backend_is_restarted_on_the_next_request(bridge):
    bridge.start(bridge.test_command)
    old = bridge.proc
    old.kill()
    old.wait()
    job = bridge.submit(bridge.test_command, "generate", {"text": "a person waves", "max_rounds": 1})
    assert bridge.proc is not old and bridge.alive()
    bridge.pump(job, timeout=300)
    assert job.status == "done", job.error


def test_backend_exit_turns_running_jobs_into_errors(bridge):
    job = bridge.submit(bridge.test_command, "generate", {"text": "a person runs", "max_rounds": 3})
    bridge.proc.kill()
    bridge.pump(job, timeout=60)
    assert job.status == "error" and job.error["code"] == "backend_exited"


def test_stop_ends_the_process_and_a_missing_python_is_a_clear_error(bridge):
    bridge.start(bridge.test_command)
    proc = bridge.proc
    bridge.stop()
    assert proc.poll() is not None and not bridge.alive()
    addon = ext.install()
    with pytest.raises(addon.bridge.BackendError, match="cannot start the backend"):
        bridge.submit(["/nonexistent/python", "-m", "irmogen", "serve"], "status", {})

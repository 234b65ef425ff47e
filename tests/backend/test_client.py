"""BackendClient against real server processes: a killed server is an error at once, a new client
starts a fresh process, waits time out without stopping the job, and start-up failures say why."""
import os
import signal
import sys

import pytest

from irmogen import protocol as P
from irmogen.client import BackendClient
from irmogen.errors import IrmogenError
from irmogen.llm.testing import tiny_motionllm

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
LONG = {"text": "a man jogs in a circle, then waves", "seconds": 9.8, "max_rounds": 10}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_motionllm(0).save_pretrained(tmp_path_factory.mktemp("models") / "tiny")


def first_event_of_kind(client, rid, kind):
    for ev in client.events(rid, timeout=60):
        assert ev["event"] not in P.FINAL_EVENTS, ev
        if ev["event"] == kind:
            return ev


def test_a_killed_server_is_an_error_within_a_second_and_a_new_client_starts_fresh(model_dir):
    client = BackendClient(model=model_dir, device="cpu", env=ENV)
    job = client.request("generate", LONG)
    first_event_of_kind(client, job, "round")
    os.kill(client.pid, signal.SIGKILL)
    final = client.wait(job, timeout=1.0)  # the client's reader sees end-of-output, not a timeout
    assert final["event"] == "error" and final["data"]["code"] == P.BACKEND_EXITED
    assert f"backend process {client.pid} exited with status -9" in final["data"]["message"]
    assert not client.alive and client.returncode == -signal.SIGKILL
    with pytest.raises(IrmogenError) as info:
        client.request("status")
    assert info.value.code == P.BACKEND_EXITED and info.value.hint == "start a new BackendClient"
    assert client.close() == -signal.SIGKILL

    fresh = BackendClient(model=model_dir, device="cpu", env=ENV)
    assert fresh.pid != client.pid and fresh.hello["model"]["id"] == "tiny"
    assert fresh.call("status", timeout=10)["data"]["state"] == "idle"
    os.kill(fresh.pid, signal.SIGKILL)  # idle: the exit shows up among the unrouted events
    assert fresh.next_unrouted(1.0)["data"]["code"] == P.BACKEND_EXITED
    fresh.close()


def test_a_timed_out_wait_leaves_the_job_running_until_cancelled(model_dir):
    with BackendClient(model=model_dir, device="cpu", env=ENV) as client:
        job = client.request("generate", LONG)
        with pytest.raises(IrmogenError) as info:
            client.wait(job, timeout=0.05)
        assert info.value.code == P.TIMEOUT and "cancel" in info.value.hint
        assert client.call("status", timeout=10)["data"]["running"]["id"] == job
        assert client.cancel(job)["event"] == "result"
        assert client.wait(job, timeout=60)["event"] == "cancelled"
        with pytest.raises(IrmogenError, match="not pending"):
            client.wait(job, timeout=1)
    assert client.returncode == 0 and client.close() == 0  # closing twice is harmless


def test_a_server_that_cannot_start_says_why():
    with pytest.raises(IrmogenError) as info:
        BackendClient(device="tpu:7", env=ENV)
    assert info.value.code == P.BACKEND_EXITED and "tpu:7" in str(info.value) and "status 2" in str(info.value)


def test_a_program_that_never_says_hello_times_out_and_is_killed():
    with pytest.raises(IrmogenError) as info:
        BackendClient(command=[sys.executable, "-c", "import time; time.sleep(60)"], device=None,
                      startup_timeout=0.5)
    assert info.value.code == P.TIMEOUT


def test_a_program_that_does_not_speak_the_protocol_is_refused():
    with pytest.raises(IrmogenError, match=r"backend failed to start: reply: not valid JSON .*b'hello world"):
        BackendClient(command=[sys.executable, "-c", "print('hello world'); import time; time.sleep(60)"],
                      device=None, startup_timeout=30)

"""A request line over the server's limit is answered with ITS id (issue 14, defect 5): the
client can end that request instead of waiting for a reply that never comes."""
import pytest

from irmogen import protocol as P
from irmogen.client import BackendClient
from irmogen.llm.testing import tiny_motionllm

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    model_dir = tiny_motionllm(0).save_pretrained(tmp_path_factory.mktemp("models") / "tiny")
    client = BackendClient(model=model_dir, device="cpu", env=ENV)
    yield client
    assert client.close() == 0, client.stderr_tail()


@pytest.mark.parametrize("rid", ["refine-1", 42])
def test_an_over_long_request_gets_an_error_with_its_id(backend, rid):
    rid = backend.request("refine", {"instruction": "x" * (P.MAX_LINE_BYTES + 1)}, id=rid)
    reply = backend.wait(rid, timeout=120)
    assert reply["event"] == "error" and reply["id"] == rid and reply["data"]["code"] == P.LINE_TOO_LONG
    assert backend.call("status", timeout=30)["event"] == "status"      # and the server keeps serving


def test_peek_id_reads_only_an_id_written_first():
    assert P.peek_id(b'{"id": "j3", "method": "refine", "params": {"clip": {"fps"') == "j3"
    assert P.peek_id(b' {"id":7,"method"') == 7
    assert P.peek_id(b'{"method": "refine", "id": "j3"') is None
    assert P.peek_id(b'{"id": "j3 cut off') is None and P.peek_id(b"[[[[") is None

"""Device choice: auto on this machine, explicit specs, and clear errors for unavailable ones."""
import pytest
import torch

from irmogen.device import resolve_device
from irmogen.errors import IrmogenError


def test_auto_prefers_cuda_then_mps_then_cpu():
    device, dtype = resolve_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda"
        assert dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    elif torch.backends.mps.is_available():
        assert (device.type, dtype) == ("mps", torch.float32)
    else:
        assert (device, dtype) == (torch.device("cpu"), torch.float32)


def test_explicit_cpu_and_dtype_override():
    assert resolve_device("cpu") == (torch.device("cpu"), torch.float32)
    assert resolve_device("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
    assert resolve_device(torch.device("cpu"), torch.float16)[1] == torch.float16


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_unavailable_cuda_is_a_clear_error():
    with pytest.raises(IrmogenError, match="cuda:7") as e:
        resolve_device("cuda:7")
    assert e.value.code == "device" and e.value.hint


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu:0"])
def test_bad_specs_are_errors(spec):
    with pytest.raises(IrmogenError, match="device"):
        resolve_device(spec)


def test_bad_dtype_is_an_error():
    with pytest.raises(IrmogenError, match="float8"):
        resolve_device("cpu", "float8")

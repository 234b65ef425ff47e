"""Shared fixtures: where the real mocap lives, and temporary working directories."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Blender's user folder (extensions, their writable state) goes to a temporary folder for the whole
# run, set before anything imports bpy, so tests never touch the user's own Blender set-up.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="irmogen-blender-user-"))


def shared_data_dir() -> Path | None:
    """The real motion-capture folder: $IRMOGEN_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("IRMOGEN_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "README.md").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("real mocap not found: set IRMOGEN_DATA or place it at ../shared/data")
    return d


@pytest.fixture()
def workdir(tmp_path, monkeypatch) -> Path:
    """Run from an empty temporary directory, as a user would: no repository-relative paths."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_configure(config):
    # Tiny test models run fastest on one thread; on a shared 2-core machine, torch's default of
    # one thread per core makes them many times slower through contention.
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)

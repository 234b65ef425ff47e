"""Where the models that ship inside the package live (`models/default/`: the small default model
trained by this project on real motion capture). Imports nothing heavy, so the server and the CLI
can ask for it before torch is loaded."""
from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parent / "default"


def default_model_dir() -> Path | None:
    """The shipped default model directory, or None while it is not installed."""
    return DEFAULT_MODEL if (DEFAULT_MODEL / "config.json").is_file() else None

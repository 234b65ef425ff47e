"""Output folders that appear whole or not at all.

A command that writes a folder (dataset, data engine records) writes it into a hidden sibling
`.<name>.partial-<pid>` and renames that into place only when everything is written, so an error
or Ctrl-C never leaves a half-written folder where a good one was. Stdlib only.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import IrmogenError


def check_output_folder(out: Path, overwrite: bool) -> None:
    """A clear error unless `out` is absent, an empty folder, or `overwrite` allows replacing it."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise IrmogenError(f"{out}: exists and is not an empty folder", hint="pass --overwrite or choose another --out")


@contextmanager
def replaced_folder(out: Path) -> Iterator[Path]:
    """Yields an empty staging folder; on success it replaces `out`, on any error it is removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

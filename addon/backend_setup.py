"""Set up backend: a venv under the add-on's user folder with the bundled backend pip-installed.

Only runs when the user asks (the operator) and `bpy.app.online_access` allows downloads; otherwise
the operator shows `Plan.command_line()` for the user to run. The worker thread runs the commands
and records progress as plain fields; it never touches bpy. Imports bpy (for paths) and the stdlib.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from . import preferences

# pip prints one "Collecting ..." line per package; the backend pulls in roughly this many.
EXPECTED_PACKAGES = 40


@dataclass
class Plan:
    venv: Path
    commands: list

    def command_line(self) -> str:
        return " && ".join(shlex.join(c) for c in self.commands)


def plan() -> Plan:
    """Make a venv with the Python Blender runs on, then pip-install the bundled backend into it."""
    venv = Path(preferences.user_dir()) / "venv"
    py = preferences.venv_python(venv)
    return Plan(venv, [[sys.executable, "-m", "venv", str(venv)],
                       [str(py), "-m", "pip", "install", "--disable-pip-version-check",
                        str(preferences.bundled_backend())]])


class SetupRun(threading.Thread):
    """Runs a Plan in the background; `progress` (0..1), `status`, `error` are read by the UI."""

    def __init__(self, plan: Plan):
        super().__init__(daemon=True)
        self.plan = plan
        self.progress, self.status, self.error = 0.0, "starting", ""
        self.finished = False

    def run(self) -> None:
        try:
            for step, cmd in enumerate(self.plan.commands):
                self._run_step(step, cmd)
                if self.error:
                    return
        finally:
            self.progress, self.finished = 1.0 if not self.error else self.progress, True

    def _run_step(self, step: int, cmd: list) -> None:
        share = 1.0 / len(self.plan.commands)
        seen = 0
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        except OSError as e:
            self.error = f"cannot run {cmd[0]}: {e.strerror}"
            return
        last = ""
        for line in proc.stdout:
            last = line.strip() or last
            if line.startswith(("Collecting", "Downloading", "Installing")):
                seen += 1
                self.status = last[:80]
            self.progress = share * (step + min(0.95, seen / EXPECTED_PACKAGES))
        if proc.wait() != 0:
            self.error = f"'{' '.join(cmd[:4])} ...' failed (exit {proc.returncode}): {last[:120]}"
        else:
            self.progress = share * (step + 1)

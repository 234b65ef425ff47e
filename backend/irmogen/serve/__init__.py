"""The backend service (`irmogen serve`): newline-delimited JSON on stdin/stdout, logs on stderr.

Rooms: `server` (stdio, threads, queue, cancel, shutdown, entry points) and `jobs` (the loaded model
and one handler per job method). The message schema lives in irmogen.protocol. Must not import bpy.
"""
from .server import add_arguments, main, run

__all__ = ["add_arguments", "main", "run"]

"""A Python client of the backend service: starts the server as a child process, sends requests,
yields their events, times out, and notices a dead server.

    with BackendClient(model="path/to/model") as backend:
        job = backend.request("generate", {"text": "a person waves", "seconds": 4})
        for event in backend.events(job, timeout=60):
            ...                       # queued / progress / round ..., then result | error | cancelled

Every request ends with one final event (protocol.FINAL_EVENTS). When the server dies, every waiting
request receives an `error` event with code `backend_exited` (its reader sees end-of-output at once)
and later requests raise IrmogenError; start a new client to get a fresh process. Safe for one
consuming thread (plus any thread calling `cancel` or `request`).
Standard library + irmogen.protocol/errors: never imports torch or bpy.
"""
from __future__ import annotations

import collections
import itertools
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from . import protocol as P
from .errors import IrmogenError

# The lead switches this to (sys.executable, "-m", "irmogen", "serve") once the CLI is wired.
DEFAULT_COMMAND = (sys.executable, "-m", "irmogen", "serve")
STARTUP_TIMEOUT_S = 300.0   # a Gemma-2B checkpoint can take minutes to load from a slow disk


class BackendClient:
    def __init__(self, command=None, model=None, device: str | None = "auto", env: dict | None = None,
                 startup_timeout: float = STARTUP_TIMEOUT_S, args=(), log=None):
        """Start the server and wait for its `hello`. `command` is the server program (default: this
        Python running irmogen's server); `--model`/`--device` and `args` are appended. `env` adds to
        os.environ. `log`, a text file, receives the server's stderr (the last lines are also kept)."""
        cmd = list(command or DEFAULT_COMMAND)
        if model is not None:
            cmd += ["--model", str(model)]
        if device is not None:
            cmd += ["--device", device]
        cmd += list(args)
        self._routes: dict[tuple, queue.Queue] = {}
        self._unrouted: queue.Queue = queue.Queue()
        self._lock = threading.Lock()          # routes and the exit state
        self._write_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._exit_error: dict | None = None
        self._stderr = collections.deque(maxlen=200)
        self._log = log
        self.started_at = time.perf_counter()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env={**os.environ, **(env or {})})
        self._err_pump = threading.Thread(target=self._pump_stderr, name="irmogen-client-stderr", daemon=True)
        self._out_pump = threading.Thread(target=self._pump_stdout, name="irmogen-client-stdout", daemon=True)
        self._err_pump.start()
        self._out_pump.start()
        try:
            first = self.next_unrouted(startup_timeout)
        except IrmogenError:
            self._kill()
            raise IrmogenError(f"backend did not say hello within {startup_timeout:g} s "
                               f"(last log line: {self._tail_line() or 'none'})", code=P.TIMEOUT) from None
        if first["event"] != "hello":
            self._kill()
            data = first["data"]
            raise IrmogenError(f"backend failed to start: {data.get('message')}", code=data.get("code", P.INTERNAL),
                               hint=data.get("hint"))
        self.hello: dict = first["data"]
        self.hello_at = time.perf_counter()

    # ---- state ---------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._exit_error is None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def stderr_tail(self, n: int = 20) -> list[str]:
        """The server's last `n` log lines."""
        return list(self._stderr)[-n:]

    # ---- requests ------------------------------------------------------------------------------
    def request(self, method: str, params: dict | None = None, id=None) -> str | int:
        """Send a request; returns its id (generated unless given). Raises IrmogenError if the server is gone."""
        rid = id if id is not None else f"c{next(self._ids)}"
        line = P.encode_request(rid, method, params)
        with self._lock:
            self._raise_if_exited()
            if _key(rid) in self._routes:
                raise IrmogenError(f"request id {rid!r} is already pending", hint="give every request its own id")
            self._routes[_key(rid)] = queue.Queue()
        try:
            self.send_raw(line)
        except IrmogenError:
            with self._lock:
                self._routes.pop(_key(rid), None)
            raise
        return rid

    def events(self, rid, timeout: float | None = None) -> Iterator[dict]:
        """The events of request `rid` until its final one. `timeout`: the longest wait for any one
        event, after which IrmogenError (code `timeout`) is raised; the request keeps running."""
        while True:
            event = self._next(rid, timeout)
            yield event
            if event["event"] in P.FINAL_EVENTS:
                return

    def wait(self, rid, timeout: float | None = None) -> dict:
        """Drain request `rid`'s events; return its final event. `timeout` bounds the whole wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            event = self._next(rid, left, total=timeout)
            if event["event"] in P.FINAL_EVENTS:
                return event

    def call(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        """Send a request and return its final event (result, error, cancelled or status)."""
        return self.wait(self.request(method, params), timeout)

    def cancel(self, rid, timeout: float = 10.0) -> dict:
        """Ask the server to cancel job `rid`; returns the cancel request's own final event. The job's
        `cancelled` event arrives on its own stream."""
        return self.call("cancel", {"id": rid}, timeout)

    def send_raw(self, data: bytes) -> None:
        """Write bytes to the server's stdin as they are (for tools probing the server, and tests)."""
        with self._write_lock:
            try:
                self._proc.stdin.write(data)
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                raise IrmogenError(self._exit_message("backend stdin is closed"), code=P.BACKEND_EXITED,
                                   hint="start a new BackendClient") from None

    def next_unrouted(self, timeout: float | None = None) -> dict:
        """The next event whose id no pending request of this client has: `hello`, errors about lines
        sent with send_raw, and the `backend_exited` error."""
        try:
            return self._unrouted.get(timeout=timeout)
        except queue.Empty:
            raise IrmogenError(f"no unrouted event within {timeout:g} s", code=P.TIMEOUT) from None

    def _next(self, rid, timeout: float | None, total: float | None = None) -> dict:
        with self._lock:
            q = self._routes.get(_key(rid))
        if q is None:
            raise IrmogenError(f"request {rid!r}: not pending (unknown id, or its final event was taken)")
        try:
            event = q.get(timeout=timeout)
        except queue.Empty:
            raise IrmogenError(f"request {rid!r}: no event within {total if total is not None else timeout:g} s",
                               code=P.TIMEOUT, hint="the request keeps running; cancel(id) stops it") from None
        if event["event"] in P.FINAL_EVENTS:
            with self._lock:
                self._routes.pop(_key(rid), None)
        return event

    # ---- shutting down -------------------------------------------------------------------------
    def end_input(self) -> None:
        """Close the server's stdin: end of input, after which it cancels its jobs and exits."""
        with self._write_lock:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def wait_exit(self, timeout: float | None = None) -> int:
        """Wait for the server process to exit; its exit code (subprocess.TimeoutExpired after `timeout`)."""
        return self._proc.wait(timeout)

    def close(self, timeout: float = 30.0) -> int | None:
        """Shut the server down (cancelling its jobs) and wait for it to exit; returns its exit code.
        A server that does not exit within `timeout` is killed."""
        if self.alive:
            try:
                self.call("shutdown", timeout=timeout)
            except IrmogenError:
                pass
        self.end_input()
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = self._kill()
        self._out_pump.join(5)
        self._err_pump.join(5)
        return code

    def _kill(self) -> int:
        if self._proc.poll() is None:
            self._proc.kill()
        return self._proc.wait()

    def __enter__(self) -> "BackendClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- reader threads -------------------------------------------------------------------------
    def _pump_stdout(self) -> None:
        for line in iter(self._proc.stdout.readline, b""):
            try:
                event = P.decode_event(line)
            except P.ProtocolError as e:
                event = {"id": None, "event": "error", "data": P.error_data("bad_reply", f"{e}: {line[:80]!r}")}
            with self._lock:
                q = self._routes.get(_key(event["id"]))
            (q or self._unrouted).put(event)
        self._on_exit()

    def _pump_stderr(self) -> None:
        for raw in iter(self._proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._stderr.append(line)
            if self._log is not None:
                self._log.write(line + "\n")
                self._log.flush()

    def _on_exit(self) -> None:
        """End of the server's output: fail every pending request at once."""
        try:
            code = self._proc.wait(2.0)
        except subprocess.TimeoutExpired:
            code = None
        self._err_pump.join(0.5)  # let the last log line arrive: it usually says why
        status = "closed its output" if code is None else f"exited with status {code}"
        data = P.error_data(P.BACKEND_EXITED, self._exit_message(f"backend process {self.pid} {status}"),
                            "start a new BackendClient")
        with self._lock:
            self._exit_error = data
            routes = list(self._routes.items())
        for key, q in routes:
            q.put({"id": key[1], "event": "error", "data": data})
        self._unrouted.put({"id": None, "event": "error", "data": data})

    def _exit_message(self, what: str) -> str:
        tail = self._tail_line()
        return f"{what} (last log line: {tail})" if tail else what

    def _tail_line(self) -> str:
        return next((line for line in reversed(self._stderr) if line.strip()), "")

    def _raise_if_exited(self) -> None:
        if self._exit_error is not None:
            raise IrmogenError(self._exit_error["message"], code=P.BACKEND_EXITED, hint=self._exit_error["hint"])


def _key(rid) -> tuple:
    return (type(rid).__name__, rid)  # 1 and "1" are different ids

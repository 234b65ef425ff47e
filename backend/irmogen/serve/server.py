"""The stdio server: reads requests from stdin, answers on stdout, logs on stderr, never trusts input.

Threads: a reader parses stdin lines and answers `status`, `cancel`, `shutdown` and every malformed
line at once (in line order); one worker runs jobs one at a time from a queue (a waiting job is
told its `queued` position, again whenever it moves); the main thread waits for the end (shutdown
request, end of input, SIGTERM/SIGINT, or a client that stopped reading) and then cancels what is
queued and running and exits with status 0. stdout belongs to the protocol writer alone: file
descriptor 1 is pointed at stderr, so stray prints of any library land in the log.
Must not import bpy.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from .. import protocol as P
from ..errors import IrmogenError
from ..models import default_model_dir

log = logging.getLogger("irmogen.serve")
READ_CHUNK = 1 << 20          # bytes per os.read of stdin
HEAD_BYTES = 512              # kept of a skipped over-long line: enough for its id
SHUTDOWN_GRACE_S = 30.0       # how long shutdown waits for a running job to notice its cancel


@dataclass
class Job:
    id: str | int
    method: str
    params: object
    cancel: threading.Event = field(default_factory=threading.Event)
    enqueued: float = field(default_factory=time.perf_counter)
    started: float | None = None

    @property
    def queued_s(self) -> float:
        return (self.started or time.perf_counter()) - self.enqueued


def split_lines(read: Callable[[], bytes], limit: int,
                on_skip: Callable[[bytes], None] | None = None) -> Iterator[bytes | None]:
    """Lines (without the newline) of a byte stream; None for a line longer than `limit` bytes, whose
    bytes are dropped as they arrive, so memory stays bounded. A last line without newline counts.
    `on_skip` gets the first HEAD_BYTES of each skipped line (where a request's id is)."""
    buf, skipping = bytearray(), False
    while True:
        chunk = read()
        if not chunk:
            if skipping or buf:
                yield None if skipping else bytes(buf)
            return
        start = 0
        while (i := chunk.find(b"\n", start)) >= 0:
            if not skipping:
                buf += chunk[start:i]
            if not skipping and len(buf) > limit and on_skip is not None:
                on_skip(bytes(buf[:HEAD_BYTES]))
            yield None if skipping or len(buf) > limit else bytes(buf)
            buf.clear()
            skipping, start = False, i + 1
        if not skipping:
            buf += chunk[start:]
            if len(buf) > limit:
                if on_skip is not None:
                    on_skip(bytes(buf[:HEAD_BYTES]))
                buf.clear()
                skipping = True


class Writer:
    """The protocol channel: whole lines, one at a time, from any thread."""

    def __init__(self, stream, on_broken: Callable[[], None]):
        self.stream, self.on_broken = stream, on_broken
        self.lock = threading.Lock()
        self.broken = False

    def emit(self, rid, event: str, data: dict) -> None:
        line = P.encode_event(rid, event, data)  # ValueError on NaN: the caller's job fails, not the server
        with self.lock:
            if self.broken:
                return
            try:
                self.stream.write(line)
                self.stream.flush()
            except OSError:  # the client closed its end: nobody is listening any more
                self.broken = True
                self.on_broken()


class Server:
    def __init__(self, session, out, in_fd: int):
        self.session, self.in_fd = session, in_fd
        self.stop = threading.Event()
        self.writer = Writer(out, self.stop.set)
        self.lock = threading.Condition()   # guards queue, running, closing
        self.queue: deque[Job] = deque()
        self.running: Job | None = None
        self.closing = False
        self.shutdown_ids: list = []
        self.gate = threading.Lock()        # see _read
        self.closed = False
        self.started = time.monotonic()
        self.skipped_head = b""             # the start of the last over-long line (see split_lines)

    def serve(self, hello: dict) -> int:
        self.writer.emit(None, "hello", hello)
        worker = threading.Thread(target=self._work, name="irmogen-worker", daemon=True)
        worker.start()
        # Daemon, reading with os.read (no buffered-file lock): blocked on stdin, it never holds up the exit.
        threading.Thread(target=self._read, name="irmogen-reader", daemon=True).start()
        while not self.stop.wait(0.5):
            pass
        return self._close(worker)

    # ---- reader thread -------------------------------------------------------------------------
    def _read(self) -> None:
        # Every step that writes (replies, logs) holds `gate` and checks `closed`: once the main
        # thread has closed the gate, this daemon thread writes nothing more.
        try:
            lines = split_lines(lambda: os.read(self.in_fd, READ_CHUNK), P.MAX_LINE_BYTES, self._skipped)
            for n, line in enumerate(lines, 1):
                with self.gate:
                    if self.closed:
                        return
                    self.handle_line(line, n)
            with self.gate:
                if not self.closed:
                    log.info("end of input")
        except OSError as e:
            with self.gate:
                if not self.closed:
                    log.error("reading stdin failed: %s", e)
        finally:
            self.stop.set()

    def _skipped(self, head: bytes) -> None:
        self.skipped_head = head

    def handle_line(self, line: bytes | None, n: int) -> None:
        """Answer one input line; never raises. A skipped (too long) line is answered with the id
        its first bytes carry, so the client can end that request."""
        rid = None
        try:
            if line is None:
                head, self.skipped_head = self.skipped_head, b""
                raise P.ProtocolError(f"line {n}: longer than {P.MAX_LINE_BYTES} bytes; skipped", P.LINE_TOO_LONG,
                                      "send clips as base64 payloads, or shorter", id=P.peek_id(head))
            if not line.strip():
                return  # blank lines are allowed and ignored
            request = P.parse_line(line, n)
            rid = request.id
            self._dispatch(request)
        except P.ProtocolError as e:
            self.writer.emit(e.id, "error", e.data())
        except Exception as e:  # a bug here must not take the server down
            log.error("line %d: %s", n, traceback.format_exc())
            self.writer.emit(rid, "error", P.error_data(P.INTERNAL, f"line {n}: {type(e).__name__}: {e}"[:300]))

    def _dispatch(self, r: P.Request) -> None:
        if r.method == "status":
            self.writer.emit(r.id, "status", self.status())
        elif r.method == "cancel":
            self._cancel(r)
        elif r.method == "shutdown":
            with self.lock:
                self.shutdown_ids.append(r.id)
            self.stop.set()
        else:
            self._enqueue(Job(r.id, r.method, r.params))

    def _enqueue(self, job: Job) -> None:
        with self.lock:
            if self.closing or self.stop.is_set():
                raise P.ProtocolError("the server is shutting down", P.SHUTTING_DOWN, id=job.id)
            if self._find(job.id) is not None:
                raise P.ProtocolError(f"id: {P.show_value(job.id)} is already used by a running or queued job",
                                      P.DUPLICATE_ID, "give every request its own id", id=job.id)
            if len(self.queue) >= P.MAX_QUEUE:
                raise P.ProtocolError(f"queue: {len(self.queue)} jobs are already waiting", P.QUEUE_FULL,
                                      "wait for a result or cancel a job", id=job.id)
            self.queue.append(job)
            position = len(self.queue) - (self.running is None)  # when idle, the queue's head runs next
            if position >= 1:
                self.writer.emit(job.id, "queued", {"position": position})
            self.lock.notify_all()

    def _find(self, rid) -> Job | None:
        if self.running is not None and _same_id(self.running.id, rid):
            return self.running
        return next((j for j in self.queue if _same_id(j.id, rid)), None)

    def _cancel(self, r: P.Request) -> None:
        target = r.params.target
        with self.lock:
            job = self._find(target)
            if job is None:
                raise P.ProtocolError(f"params.id: no running or queued job has id {P.show_value(target)}",
                                      P.UNKNOWN_JOB, "it may have finished already", id=r.id)
            if job is self.running:
                job.cancel.set()   # the decoder checks it before every forward call
                state = "running"
            else:
                self.queue.remove(job)
                state = "queued"
                self.writer.emit(job.id, "cancelled", {"reason": "cancelled while queued", "rounds": 0})
                self._announce_positions()
            self.writer.emit(r.id, "result", {"cancelled": target, "state": state})

    def _announce_positions(self) -> None:
        for position, j in enumerate(self.queue, 1):
            self.writer.emit(j.id, "queued", {"position": position})

    def status(self) -> dict:
        with self.lock:
            run = self.running
            running = None if run is None else {
                "id": run.id, "method": run.method, "cancelling": run.cancel.is_set(),
                "elapsed_s": round(time.perf_counter() - (run.started or run.enqueued), 3)}
            queued = [{"id": j.id, "method": j.method} for j in self.queue]
        return {"state": "busy" if running else "idle", "running": running, "queued": queued,
                "model": self.session.info, "device": str(self.session.device),
                "dtype": str(self.session.dtype).removeprefix("torch."), "protocol": P.PROTOCOL_VERSION,
                "uptime_s": round(time.monotonic() - self.started, 3)}

    # ---- worker thread -------------------------------------------------------------------------
    def _work(self) -> None:
        from .jobs import HANDLERS

        while True:
            with self.lock:
                while not self.queue and not self.closing:
                    self.lock.wait()
                if self.closing:
                    return
                job = self.running = self.queue.popleft()
                job.started = time.perf_counter()
                self._announce_positions()
            self._run(job, HANDLERS[job.method])
            self._finish(job, None)

    def _run(self, job: Job, handler) -> None:
        log.info("job %r: %s started", job.id, job.method)
        try:
            for event, data in handler(self.session, job.params, job):
                if event in P.FINAL_EVENTS:
                    return self._finish(job, (event, data))
                self.writer.emit(job.id, event, data)
        except IrmogenError as e:
            if e.code == "cancelled":  # raised by the one-shot tasks (refine, assess, caption)
                self._finish(job, ("cancelled", {"rounds": 0}))
            else:
                self._finish(job, ("error", P.error_data(e.code, e.message, e.hint)))
        except Exception as e:  # the model failed: report it, keep serving
            log.error("job %r (%s) failed:\n%s", job.id, job.method, traceback.format_exc())
            first = (str(e).strip().splitlines() or [""])[0][:240]
            self._finish(job, ("error", P.error_data(
                P.INTERNAL, f"{job.method} failed inside the backend: {type(e).__name__}: {first}",
                "the server is still running; its log (stderr) has the traceback")))

    def _finish(self, job: Job, final: tuple[str, dict] | None) -> None:
        """The job's final event and the end of `running`, as one step for `status` and `cancel`."""
        with self.lock:
            if self.running is not job:
                return
            self.running = None
            if final is None:
                final = ("error", P.error_data(P.INTERNAL, f"{job.method} ended without a result"))
            try:
                self.writer.emit(job.id, *final)
            except ValueError as e:  # NaN or a non-JSON value in the result
                final = ("error", P.error_data(P.INTERNAL, f"{job.method}: the result is not valid JSON ({e})"))
                self.writer.emit(job.id, *final)
        log.info("job %r: %s %s after %.3f s", job.id, job.method, final[0], time.perf_counter() - job.started)

    # ---- the end -------------------------------------------------------------------------------
    def _close(self, worker: threading.Thread) -> int:
        with self.lock:
            self.closing = True
            dropped = list(self.queue)
            self.queue.clear()
            if self.running is not None:
                self.running.cancel.set()
            for job in dropped:
                self.writer.emit(job.id, "cancelled", {"reason": "server shutting down", "rounds": 0})
            self.lock.notify_all()
        worker.join(SHUTDOWN_GRACE_S)
        if worker.is_alive():
            log.warning("the running job did not stop within %.0f s; exiting anyway", SHUTDOWN_GRACE_S)
        for rid in self.shutdown_ids:
            self.writer.emit(rid, "result", {"shutdown": True, "cancelled_queued": [j.id for j in dropped]})
        log.info("shut down")
        with self.gate:
            self.closed = True
        return 0


def _same_id(a, b) -> bool:
    return type(a) is type(b) and a == b  # 1 and "1" are different ids


# ---- entry points ----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model directory or .json model spec (default: the shipped default "
                                        "model, when installed)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16 (default: auto)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="stderr log level (default: info)")


def run(args: argparse.Namespace) -> int:
    """Serve until shutdown, then END THE PROCESS with status 0; returns 2 only when the device cannot
    be used (before serving). The process ends with os._exit after flushing every stream: a normal
    interpreter shutdown with torch's threads and the blocked stdin reader around can abort
    ("terminate called without an active exception"), which a client would see as a crash."""
    _configure_logging(args.log_level)
    in_fd, out = _claim_stdio()
    from .jobs import Session

    try:
        session = Session(args.device, args.dtype)
    except IrmogenError as e:
        print(f"irmogen serve: error: {e}" + (f" ({e.hint})" if e.hint else ""), file=sys.stderr)
        return 2
    spec = args.model or default_model_dir()
    model_error = P.error_data(P.NO_MODEL, "no model given and no default model is installed",
                               "start with --model DIR or send load_model")
    if spec is not None:
        try:
            session.load(spec)
            model_error = None
            log.info("model %s loaded on %s in %.2f s", session.info["id"], session.device, session.info["load_s"])
        except IrmogenError as e:  # serve anyway: the client shows the error and may send load_model
            model_error = P.error_data(e.code, e.message, e.hint)
        except Exception as e:
            log.error("loading %s failed:\n%s", spec, traceback.format_exc())
            model_error = P.error_data(P.INTERNAL, f"loading {spec} failed: {type(e).__name__}: {e}"[:300])
    if model_error:
        log.warning("no model: %s", model_error["message"])
    server = Server(session, out, in_fd)
    _install_signal_handlers(server.stop)
    code = server.serve(hello_data(session, model_error))
    logging.shutdown()
    for stream in (out, sys.stderr, sys.__stderr__):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def hello_data(session, model_error: dict | None) -> dict:
    import torch
    import transformers

    return {"protocol": P.PROTOCOL_VERSION, "irmogen": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "device": str(session.device),
            "dtype": str(session.dtype).removeprefix("torch."), "model": session.info, "model_error": model_error,
            "pid": os.getpid(), "methods": list(P.METHODS), "limits": P.limits()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="irmogen serve", description="the IRMoGen backend on stdin/stdout")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if level != "debug":
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _claim_stdio() -> tuple[int, object]:
    """Take stdin and stdout for the protocol: (input fd, output stream). Afterwards fd 0 reads
    /dev/null and fd 1 writes to stderr, so no library can eat requests or corrupt replies."""
    sys.stdout.flush()
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return in_fd, os.fdopen(out_fd, "wb")


def _install_signal_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda signum, frame: stop.set())

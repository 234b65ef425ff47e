"""The backend process client: start it lazily, send requests, hand its events to the main thread.

The backend (`<python> -m irmogen serve ...`) speaks newline-delimited JSON on stdin/stdout
(`protocol`). A reader thread turns each stdout line into an event dict on a queue; a second thread
keeps the last stderr lines for error messages. Nothing here touches bpy: the main thread drains
the queue, from a `bpy.app.timers` callback in the UI or through the synchronous `pump()` in
background runs (timers never fire in the bpy module), and events reach each job's `handle`.
A backend that died is restarted on the next request. Imports the stdlib and `protocol` only.
"""
from __future__ import annotations

import itertools
import os
import queue
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from . import protocol

EXITED = "backend_exited"   # pseudo-event the reader posts when the process's stdout closes
CANCEL_PREFIX = "cancel-"   # id of the cancel request sent for job <id>


class BackendError(Exception):
    def __init__(self, message: str, code: str = "backend", hint: str = ""):
        super().__init__(message)
        self.code, self.hint = code, hint


@dataclass
class Job:
    """One request and everything its events said so far (plain data: drawn by the panel)."""
    id: str
    method: str
    params: dict
    status: str = "queued"          # queued | running | done | error | cancelled
    progress: float = 0.0           # 0..1
    analysis: str = ""
    rounds: list = field(default_factory=list)    # per round: {round, clip, assessment, refinement, ...}
    result: dict | None = None
    error: dict | None = None       # {code, message, hint}
    warnings: list = field(default_factory=list)
    context: dict = field(default_factory=dict)   # what the caller needs to finish the job

    @property
    def finished(self) -> bool:
        return self.status in {"done", "error", "cancelled"}

    def handle(self, event: str, data: dict) -> None:
        if event == "queued":
            self.status = "queued"
        elif event == "progress":
            self.status = "running"
            self.progress = _fraction(data, self.progress, self.params.get("max_rounds"))
        elif event == "round":
            self.status = "running"
            self._merge_round(data)
        elif event == "result":
            self.status, self.result, self.progress = "done", data, 1.0
        elif event == "error":
            self.status, self.error = "error", data
        elif event == "cancelled":
            self.status = "cancelled"
        self.warnings.extend(data.get("warnings", []) if isinstance(data, dict) else [])


    def _merge_round(self, data: dict) -> None:
        """`round` events come in parts (analysis; per round the motion, then the assessment). A
        sequence's rounds carry their prompt part: each part's model rounds start again at 1, so
        they are numbered on through the job (`round`, unique) and keep their own (`part_round`)."""
        part = data.get("part") if isinstance(data.get("part"), int) else None
        if data.get("kind") == "analysis":
            text = str(data.get("text", ""))
            if part is None:
                self.analysis = text
            elif not data.get("piece"):   # one analysis per part (a long part's pieces repeat it)
                self.analysis = "\n".join(filter(None, [self.analysis, f"Part {part + 1} ({data.get('caption', '')}): {text}"]))
            return
        k = int(data.get("round", len(self.rounds) + 1))
        if part is None:
            entry = next((r for r in self.rounds if r["round"] == k), None)
        else:
            key = (part, data.get("piece", 0), k)
            entry = next((r for r in self.rounds if (r.get("part"), r.get("piece", 0), r.get("part_round")) == key), None)
        if entry is None:
            entry = {"round": k} if part is None else {"round": len(self.rounds) + 1, "part_round": k}
            self.rounds.append(entry)
        entry.update({key: v for key, v in data.items() if key not in {"kind", "round", "tokens", "codes", "parts"}})


def _fraction(data: dict, old: float, max_rounds) -> float:
    """A progress event ({tokens, round}) as a fraction 0..1 of the round budget; never goes back."""
    rnd, part, parts = data.get("round"), data.get("part"), data.get("parts")
    if isinstance(rnd, int) and isinstance(max_rounds, int) and max_rounds > 0:
        done = min(1.0, rnd / max_rounds)
        if isinstance(part, int) and isinstance(parts, int) and parts > 0:   # a sequence: parts run in turn
            done = (part + done) / parts
        return max(old, min(0.95, done))
    return old


class Bridge:
    """One backend process and the jobs sent to it."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.command: list[str] | None = None
        self.events: queue.Queue = queue.Queue()
        self.log: deque = deque(maxlen=40)
        self.hello: dict = {}
        self.jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()

    # ---- process --------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, command: list[str], cwd: str | None = None) -> None:
        """Start (or restart, when the command changed or it died) the backend process."""
        if self.alive() and command == self.command:
            return
        self.stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        try:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, cwd=cwd, env=env, bufsize=0)
        except OSError as e:
            raise BackendError(f"cannot start the backend {command[0]}: {e.strerror}", "no_backend",
                               "Check the Backend Python in the preferences, or Set up backend") from None
        self.command, self.hello = list(command), {}
        self.log.clear()
        threading.Thread(target=self._read_stdout, args=(self.proc,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True).start()

    def _read_stdout(self, proc) -> None:
        for line in proc.stdout:
            try:
                self.events.put(protocol.decode_event(line))
            except protocol.ProtocolError as e:
                self.log.append(f"[bad reply] {e}")
        proc.wait()
        self.events.put({"id": None, "event": EXITED, "data": {"returncode": proc.returncode, "proc": id(proc)}})

    def _read_stderr(self, proc) -> None:
        for line in proc.stderr:
            self.log.append(line.decode("utf-8", "replace").rstrip())

    def stop(self, timeout: float = 3.0) -> None:
        """Ask the backend to shut down, then terminate it if it does not."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                with self._write_lock:
                    proc.stdin.write(protocol.encode_request("shutdown", "shutdown"))
                    proc.stdin.flush()
                proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass

    # ---- requests -------------------------------------------------------------------------
    def submit(self, command: list[str], method: str, params: dict, cwd: str | None = None,
               context: dict | None = None) -> Job:
        """Start the backend if needed (restarting a dead one) and send one job request."""
        self.start(command, cwd)
        job = Job(id=f"j{next(self._ids)}", method=method, params=params, context=context or {})
        self.jobs[job.id] = job
        try:
            self.send(job.id, method, params)
        except BackendError:
            del self.jobs[job.id]        # never sent: nothing to wait for or cancel
            raise
        return job

    def send(self, rid, method: str, params: dict | None = None) -> None:
        if not self.alive():
            raise self._not_running()
        try:
            with self._write_lock:
                self.proc.stdin.write(protocol.encode_request(rid, method, params))
                self.proc.stdin.flush()
        except OSError:
            # A process that exits at once (a wrong Backend Python) can still look alive above, and
            # the write then hits a closed pipe: wait a moment so the error can say it exited.
            raise self._not_running(wait=2.0) from None

    def _not_running(self, wait: float = 0.0) -> BackendError:
        """Why nothing can be sent: the process exited (its code, its last log line or how to fix
        the Backend Python), or it stopped reading its input."""
        proc = self.proc
        if proc is None:
            return BackendError("the backend is not running", EXITED, self.startup_hint())
        try:
            code = proc.wait(wait) if wait else proc.poll()
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            return BackendError("the backend stopped accepting requests", EXITED, self.last_log())
        return BackendError(f"the backend {self._program()} exited at once (code {code})", EXITED,
                            self.last_log() or self.startup_hint())

    def cancel(self, job: Job) -> None:
        """Ask the backend to cancel `job`; a job the backend cannot be asked about (it is gone, or it
        answers that it never queued the job) ends cancelled here, so nothing waits for it."""
        if job.finished:
            return
        if not self.alive():
            job.handle("cancelled", {})
            return
        self.send(CANCEL_PREFIX + job.id, "cancel", {"id": job.id})

    def _program(self) -> str:
        return self.command[0] if self.command else "?"

    def startup_hint(self) -> str:
        return (f"{self._program()} printed nothing: the Backend Python in the preferences must be a Python "
                "with the irmogen package (Set up Backend installs one)")

    def last_log(self) -> str:
        lines = [ln for ln in self.log if ln.strip()]
        return lines[-1] if lines else ""

    # ---- main thread: drain events --------------------------------------------------------
    def dispatch(self, event: dict) -> Job | None:
        """Route one event to its job (the main thread calls this); returns the job it changed."""
        name, data, rid = event["event"], event["data"], event.get("id")
        if name == "hello":
            self.hello = data
            return None
        if name == EXITED:
            if self.proc is not None and id(self.proc) != data.get("proc"):
                return None  # an old process; the current one is fine
            hint = self.last_log() or (self.startup_hint() if not self.hello else
                                       "See the system console for the backend's log")
            for job in self.jobs.values():
                if not job.finished:
                    job.handle("error", {"code": EXITED, "hint": hint,
                                         "message": f"the backend exited (code {data.get('returncode')})"})
            return None
        if isinstance(rid, str) and rid.startswith(CANCEL_PREFIX):
            return self._cancel_reply(rid.removeprefix(CANCEL_PREFIX), name, data)
        job = self.jobs.get(rid) if isinstance(rid, str) else None
        if job is not None:
            job.handle(name, data)
        elif name == "error":  # a reply to no job of ours (e.g. a line the backend could not read)
            self.log.append(f"[backend error] {data.get('message', '')}")
        return job

    def _cancel_reply(self, jid: str, name: str, data: dict) -> Job | None:
        """The backend knows no such job (it refused or never read the request): end it here."""
        job = self.jobs.get(jid)
        if job is None or job.finished or name != "error" or data.get("code") != "unknown_job":
            return None
        job.handle("cancelled", {})
        return job

    def drain(self) -> list[Job]:
        """Dispatch every queued event without waiting; returns the jobs that changed."""
        changed = []
        while True:
            try:
                job = self.dispatch(self.events.get_nowait())
            except queue.Empty:
                return changed
            if job is not None and job not in changed:
                changed.append(job)

    def pump(self, job: Job, timeout: float, on_change=None) -> Job:
        """Block until `job` finishes (or `timeout` seconds pass), dispatching events as they come."""
        deadline = time.monotonic() + timeout
        while not job.finished:
            left = deadline - time.monotonic()
            if left <= 0:
                job.handle("error", {"code": "timeout", "message": f"no result after {timeout:.0f} s",
                                     "hint": "Cancel and try fewer rounds or a shorter duration"})
                break
            try:
                changed = self.dispatch(self.events.get(timeout=min(left, 0.5)))
            except queue.Empty:
                continue
            if changed is not None and on_change is not None:
                on_change(changed)
        return job

    def active_jobs(self) -> list[Job]:
        return [j for j in self.jobs.values() if not j.finished]


BRIDGE = Bridge()  # the add-on's one backend connection

"""Benchmark: the backend service as a client sees it, through a real process and pipes.

Prints medians over several runs (asserts nothing):
  * start -> hello: spawning `python -m irmogen.serve`, importing torch, loading the model;
  * generate -> first `round` (the analysis) and -> `result`, for a 4 s motion with the protocol's
    defaults (greedy, at most 5 rounds, at most 256 tokens per text segment);
  * kill -9 -> the client's `backend_exited` error.
Model: `--model DIR` (or spec .json), else the shipped default model when installed, else a tiny random
model built on the fly (its traces are noise and its timings say little about a real model).
Run: `.venv/bin/python benchmarks/serve.py [--model DIR] [--runs 5] [--device cpu] [--threads 1]`.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from irmogen.client import BackendClient
from irmogen.models import default_model_dir

PROMPT = "a person walks forward, turns around and waves with the right hand"


def one_run(model, device: str, env: dict, seconds: float) -> dict:
    client = BackendClient(model=model, device=device, env=env)
    out = {"hello": client.hello_at - client.started_at}
    t0 = time.perf_counter()
    rid = client.request("generate", {"text": PROMPT, "seconds": seconds})
    for ev in client.events(rid, timeout=600):
        if ev["event"] == "round" and "first_round" not in out:
            out["first_round"] = time.perf_counter() - t0
        if ev["event"] == "result":
            out["result"] = time.perf_counter() - t0
            out["rounds"] = ev["data"]["rounds"]
            out["tokens"] = ev["data"]["tokens"]
        elif ev["event"] in ("error", "cancelled"):
            raise SystemExit(f"generate failed: {ev['data']}")
    t1 = time.perf_counter()
    os.kill(client.pid, signal.SIGKILL)
    client.next_unrouted(10)
    out["kill_seen"] = time.perf_counter() - t1
    client.close()
    out["device"], out["model"] = client.hello["device"], client.hello["model"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="model directory or spec .json (default: shipped default, else tiny)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for the server (0: torch's default)")
    a = ap.parse_args()
    env = {"OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)} if a.threads > 0 else {}
    with tempfile.TemporaryDirectory() as tmp:
        model, source = a.model, "--model"
        if model is None and default_model_dir() is not None:
            model, source = default_model_dir(), "the shipped default model"
        if model is None:
            from irmogen.llm.testing import tiny_motionllm

            model, source = tiny_motionllm(0).save_pretrained(Path(tmp) / "tiny"), "a TINY RANDOM model (no default model installed)"
        runs = [one_run(model, a.device, env, a.seconds) for _ in range(a.runs)]
    info = runs[0]["model"]
    print(f"model: {source}: {info['id']} ({info['kind']}, {info['parameters'] / 1e6:.2f} M LM parameters) "
          f"on {runs[0]['device']}, server threads: {a.threads or 'default'}")
    print(f"generate: {a.seconds:g} s motion, protocol defaults; rounds per run: {[r['rounds'] for r in runs]}, "
          f"response tokens: {[r['tokens'] for r in runs]}")
    for key, label in (("hello", "process start -> hello"), ("first_round", "generate -> first round"),
                       ("result", "generate -> result"), ("kill_seen", "kill -9 -> client sees the error")):
        values = [r[key] for r in runs]
        print(f"{label:34s} median {statistics.median(values):8.3f} s  (min {min(values):.3f}, "
              f"max {max(values):.3f}, {len(values)} runs)")


if __name__ == "__main__":
    main()

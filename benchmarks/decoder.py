"""Benchmark: the IRMoGen decoder vs plain `generate()`, and vs the bare forward passes it needs.

Model: a random Llama of hidden 256 and 4 layers with the tiny tokenizer and VQ (small but not
tiny, so forward time dominates as it does with a real model). Prints medians of several runs;
asserts nothing. Run: `.venv/bin/python benchmarks/decoder.py [--runs 5] [--threads 1]`.

Method (printed too):
  * ours: greedy `ReasoningDecoder.run` (3 rounds, 8 s motions, <= 48 tokens per text segment,
    clips not decoded), tokens/s over the whole response;
  * generate: `model.lm.generate` greedy for the same number of new tokens
    (min_new_tokens = max_new_tokens = our response length) from the same prompt. It cannot be made
    to write our trace (no forced strings), so this compares cost for the same trace length;
  * bare forward: our exact forward schedule (same chunks, same cache, logits of the last position)
    replayed with nothing else: the floor for any decoder writing this trace; overhead = ours/bare - 1.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoModelForCausalLM

from irmogen.llm.model import MotionLLM
from irmogen.llm.testing import _normalisation, tiny_llm_config, tiny_tokenizer, tiny_vq_config
from irmogen.reasoning.decoder import ReasoningDecoder
from irmogen.vq import MotionVQ

RUN = dict(max_rounds=3, seconds=8, max_text_tokens=48, decode_clips=False)


def bench_model(seed: int = 0) -> MotionLLM:
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    lm = AutoModelForCausalLM.from_config(tiny_llm_config("llama", len(tokenizer), hidden=256, layers=4),
                                          dtype=torch.float32)
    return MotionLLM.from_text_lm(lm, tokenizer, MotionVQ(tiny_vq_config()), *_normalisation(seed),
                                  mean_resizing=False, device="cpu")


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@torch.inference_mode()
def replay(lm, ids: list[int], steps: list[tuple[int, str]]) -> None:
    """The decoder's forward calls and nothing else: chunk k feeds ids[s_{k-1}:s_k]."""
    cache, start = None, 0
    for pos, _ in steps:
        x = torch.tensor([ids[start:pos]])
        out = lm(input_ids=x, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache, start = out.past_key_values, pos


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = bench_model()
    d = ReasoningDecoder(model)
    caption = "a man jogs in a circle, then waves with his right hand."
    done = list(d.run(caption, **RUN))[-1]
    n_new = len(done.ids) - done.prompt_length
    prompt = torch.tensor([done.ids[:done.prompt_length]])
    gen_kw = dict(max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, use_cache=True,
                  pad_token_id=model.tokenizer.pad_token_id)
    model.lm.generate(prompt, **gen_kw)  # warm-up

    ours, gen, bare = [], [], []
    for _ in range(args.runs):
        ours.append(timed(lambda: list(d.run(caption, **RUN))))
        gen.append(timed(lambda: model.lm.generate(prompt, **gen_kw)))
        bare.append(timed(lambda: replay(model.lm, done.ids, done.steps)))
    t_ours, t_gen, t_bare = (statistics.median(x) for x in (ours, gen, bare))
    print(__doc__.split("Method (printed too):")[1].rstrip())
    print(f"\nmodel: llama hidden 256, 4 layers, vocab {model.layout.vocab_size}; torch threads "
          f"{torch.get_num_threads()}; medians of {args.runs} runs")
    print(f"trace: prompt {done.prompt_length} tokens, response {n_new} tokens, {len(done.trace.rounds)} rounds, "
          f"{len(done.steps)} sampled / {n_new - len(done.steps)} forced, {done.forward_calls} forward calls")
    print(f"ours:          {t_ours * 1e3:8.1f} ms  {n_new / t_ours:8.0f} tokens/s")
    print(f"generate():    {t_gen * 1e3:8.1f} ms  {n_new / t_gen:8.0f} tokens/s")
    print(f"speed-up ours vs generate: {t_gen / t_ours:.2f}x (target >= 1.5x)")
    print(f"bare forward:  {t_bare * 1e3:8.1f} ms; decoder overhead {100 * (t_ours / t_bare - 1):.1f} % (target < 25 %)")


if __name__ == "__main__":
    main()

"""The constrained streaming decoder on tiny random models: grammar, length, cancel, streaming,
cached-vs-uncached parity, and a model trained on one trace reproducing it."""
import threading

import pytest
import torch

from irmogen.errors import IrmogenError
from irmogen.llm.testing import tiny_motionllm
from irmogen.reasoning import template as T
from irmogen.reasoning.decoder import MAX_CODES, ReasoningDecoder, code_window, overlap
from irmogen.reasoning.parser import Round, Trace, parse_trace, render_trace


@pytest.fixture(scope="module")
def model():
    return tiny_motionllm(0)


@pytest.fixture(scope="module")
def decoder(model):
    return ReasoningDecoder(model)


def _motion_spans(ids, layout):
    spans, cur = [], None
    for i in ids:
        if i == layout.start_id:
            cur = []
        elif i == layout.end_id:
            spans.append(cur)
            cur = None
        elif cur is not None:
            cur.append(i)
    return spans


def test_grammar_holds_in_100_sampled_traces(decoder, model):
    for seed in range(100):
        rounds = 1 + seed % 3
        done = list(decoder.run("a man jogs in a circle", max_rounds=rounds, max_text_tokens=6, seconds=1 + seed % 2,
                                greedy=False, temperature=1.5, seed=seed, decode_clips=False))[-1]
        assert done.kind == "done"
        parsed = parse_trace(done.trace_text)
        assert parsed.errors == [] and parsed == done.trace
        assert parsed.finished and parsed.satisfied and 1 <= len(parsed.rounds) <= rounds
        spans = _motion_spans(done.ids[done.prompt_length:], model.layout)
        assert len(spans) == len(parsed.rounds)
        assert all(span and all(model.layout.is_code(i) for i in span) for span in spans)
        assert done.trace_text.count("[plan]") == 2 + 2 * len(parsed.rounds)
        for p in T.PLANS:
            assert done.trace_text.count("[plan]" + p + "[/plan]") == {
                T.P_ANALYZE: 1, T.P_GENERATE: 1, T.P_ASSESS: len(parsed.rounds),
                T.P_REFINE: len(parsed.rounds) - 1, T.P_FINISH: 1}[p]
        assert done.ids[-1] == decoder.eos_id


@pytest.mark.parametrize("seconds", [2, 4, 8])
def test_length_control(decoder, seconds):
    lo, hi = code_window(seconds, fps=20.0)
    assert lo <= seconds * 5 <= hi and hi - lo <= max(2, seconds)
    for seed in range(3):
        done = list(decoder.run("a person walks", seconds=seconds, max_rounds=2, max_text_tokens=4, greedy=False,
                                seed=seed, decode_clips=False))[-1]
        assert all(lo <= len(r.codes) <= hi for r in done.trace.rounds)


def test_length_window_errors():
    assert code_window(60) == (MAX_CODES, MAX_CODES)
    with pytest.raises(IrmogenError):
        code_window(-1)
    with pytest.raises(IrmogenError):
        code_window(min_codes=10, max_codes=5)


def test_cancel_after_the_first_motion_stops_within_one_token(decoder):
    stop = threading.Event()
    events = []
    for ev in decoder.run("a man waves", max_rounds=3, max_text_tokens=8, cancel=stop):
        events.append(ev)
        if ev.kind == "motion":
            stop.set()
            at = ev.tokens
    assert events[-1].kind == "cancelled" and [e.kind for e in events].count("motion") == 1
    assert events[-1].tokens - at <= 1


def test_cancel_from_a_progress_event(decoder):
    calls = {"n": 0}
    events = []
    gen = decoder.run("a man waves", max_rounds=3, max_text_tokens=30, cancel=lambda: calls["n"] > 0)
    for ev in gen:
        events.append(ev)
        if ev.kind == "progress" and not calls["n"]:
            calls["n"] = 1
            at = ev.tokens
    assert events[-1].kind == "cancelled" and events[-1].tokens - at <= 1


def test_streaming_order(decoder):
    events = list(decoder.run("a man jumps", max_rounds=3, max_text_tokens=10, seconds=2))
    kinds = [(e.kind, getattr(e, "round", None)) for e in events if e.kind != "progress"]
    assert kinds == [("analysis", None), ("motion", 1), ("assessment", 1), ("motion", 2), ("assessment", 2),
                     ("motion", 3), ("assessment", 3), ("done", None)]
    tokens = [e.tokens for e in events if e.kind in ("analysis", "motion", "assessment")]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    motions = [e for e in events if e.kind == "motion"]
    assert all(m.clip.positions.shape == (4 * len(m.codes) + 1, 22, 3) for m in motions)
    assert events[-1].final_clip is motions[-1].clip


def test_seeded_sampling_is_reproducible(decoder):
    run = lambda seed: list(decoder.run("a man jumps", max_rounds=2, max_text_tokens=6, greedy=False,  # noqa: E731
                                        seed=seed, top_p=0.9, decode_clips=False))[-1].ids
    assert run(7) == run(7) and run(7) != run(8)


@pytest.mark.parametrize("arch", ["llama", "gemma2"])
def test_cached_decoding_matches_uncached_forward(arch):
    """At every SAMPLED position our greedy token is the argmax of the masked uncached logits."""
    model = tiny_motionllm(1, arch=arch)
    d = ReasoningDecoder(model, text_guard=False)  # the guard may refuse the argmax (test_reasoning_textguard)
    done = list(d.run("a figure crouches", max_rounds=3, max_text_tokens=16, seconds=4, decode_clips=False))[-1]
    assert len(done.ids) > 2 * 64  # past gemma2's tiny sliding window
    with torch.no_grad():
        logits = model.lm(input_ids=torch.tensor([done.ids])).logits[0].float()
    for pos, mask in done.steps:
        masked = logits[pos - 1].masked_fill(~d.masks[mask], float("-inf"))
        assert masked[done.ids[pos]] >= masked.max() - 1e-4, (pos, mask)
    assert done.forward_calls == len(done.steps)  # forced text never costs a forward of its own


def test_a_model_trained_on_one_trace_writes_it_and_stops_by_itself():
    model = tiny_motionllm(3)
    d = ReasoningDecoder(model)
    goal = Trace("a jog then a wave", [Round([12, 40, 3, 9], "the arms stay low", "raise the right arm"),
                                        Round([5, 6, 7, 8, 9], "aligned", T.NO_REFINEMENT)], finished=True)
    ids = torch.tensor([d.encode(T.build_prompt("a man jogs", d.bos_token)) + d.encode(render_trace(goal))
                        + [d.eos_id]])
    opt = torch.optim.Adam(model.lm.parameters(), lr=1e-2)
    model.lm.train()
    for _ in range(100):
        loss = model.lm(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.01:
            break
    model.lm.eval()
    done = list(d.run("a man jogs", max_rounds=4, max_text_tokens=40, decode_clips=False))[-1]
    assert done.trace == goal and done.trace_text == render_trace(goal)


def test_overlap():
    assert overlap("abc[/ana", "[/analyze]\n") == 5
    assert overlap("abc", "[/analyze]") == 0
    assert overlap("x\nRefinement", "\nRefinement:") == 11

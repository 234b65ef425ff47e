"""The text guard: no markup, same-word contrast or repeated clause inside a free-text span,
whatever the logits say (adversarial logits on a real tiny model), and none in the shipped
default model's transcripts for 32 prompts in and out of its training vocabulary."""
import pytest
import torch

from irmogen.llm.testing import tiny_motionllm
from irmogen.reasoning import template as T
from irmogen.reasoning import textguard as G
from irmogen.reasoning.decoder import ReasoningDecoder
from irmogen.reasoning.parser import Trace, parse_trace


def test_rules_on_plain_text():
    assert G.same_word_contrast("switch from squatting to squat")
    assert G.same_word_contrast("the person is walking instead of walking")
    assert G.same_word_contrast("jog to the left rather than to the left.")
    assert not G.same_word_contrast("switch from walking to jumping")
    assert not G.same_word_contrast("from the left to the right")
    assert G.repeated_ngram("the person never leaves the ground; the person never leaves")
    assert not G.repeated_ngram("the person walks forward and then walks back")
    assert G.repeated_clause("keep the pace, keep the pace.")
    assert G.problems("keep the sameassess]\nRefinement: x") == ["tag fragment"]
    assert G.problems("The motion matches the goal: the person walks forward.") == []


class _Biased:
    """A real tiny LM whose logits are pushed toward chosen token ids (the adversary)."""

    def __init__(self, lm, bias):
        self.lm, self.bias = lm, bias

    def __call__(self, *args, **kw):
        out = self.lm(*args, **kw)
        out.logits[..., :] = out.logits + self.bias.to(out.logits.dtype)
        return out

    def __getattr__(self, name):
        return getattr(self.lm, name)


def _adversarial_decoder(words):
    model = tiny_motionllm(0)
    d = ReasoningDecoder(model)
    v = d.masks["text"].shape[0]
    bias = torch.zeros(v)
    texts = G.token_texts(model.tokenizer)
    for i, t in enumerate(texts):
        if any(w in t for w in words):
            bias[i] = 30.0
    d.lm = _Biased(model.lm, bias)
    return d


def _free_texts(trace):
    out = [trace.analysis]
    for r in trace.rounds:
        out += [r.assessment, r.refinement]
    return [t for t in out if t is not None]


@pytest.mark.parametrize("words", [["[", "]", "<", ">", "\n"], ["Assess", "Refine", ":"], [" the", " walk"]])
def test_adversarial_logits_cannot_break_the_text(words):
    d = _adversarial_decoder(words)
    for seed in range(6):
        done = list(d.run("a man walks forward then jumps", max_rounds=3, max_text_tokens=40, greedy=seed == 0,
                          temperature=1.3, seed=seed, decode_clips=False))[-1]
        parsed = parse_trace(done.trace_text)
        assert parsed.errors == [] and parsed == done.trace
        for text in _free_texts(parsed):
            if text != T.NO_REFINEMENT:
                assert G.problems(text) == [], text


def test_the_guard_refuses_a_same_word_contrast_the_model_prefers():
    model = tiny_motionllm(0)
    guard = G.TextGuard(model.tokenizer, len(model.tokenizer))
    enc = model.tokenizer(" walking", add_special_tokens=False)["input_ids"]
    body = " switch from walking to"
    assert guard.verdict(body, enc[0], "[/assess]")[0] == (G.BAN if len(enc) == 1 else G.OK)
    close = model.tokenizer("[", add_special_tokens=False)["input_ids"][0]
    assert guard.verdict(" keep the pace", close, "[/assess]")[0] == G.CLOSE
    assert guard.verdict(" keep the pace, keep the pace", close, "[/assess]")[0] == G.BAN
    assert guard.verdict("", close, "[/assess]")[0] == G.BAN        # a span never closes empty


PROMPTS = [  # in the training vocabulary, then out of it
    "a person walks forward", "a man jumps twice", "someone jogs in a circle", "a person turns around",
    "a woman squats down and stands up", "a person waves with the right hand", "a man kicks with the left leg",
    "a person walks backward slowly", "someone runs forward then stops", "a person sits down on the floor",
    "a person raises both arms above the head", "a man crawls on the floor", "a person hops on one foot",
    "a person does a cartwheel", "someone throws a ball", "a person walks forward, then jumps",
    "a ballerina pirouettes gracefully", "a zombie staggers toward the camera", "someone juggles three balls",
    "a knight swings a heavy sword overhead", "an old man climbs invisible stairs", "a robot dances the robot",
    "a cat-like crouch and pounce", "the character shrugs and shakes its head", "a drunk person stumbles around..",
    "someone swims freestyle in the air", "a boxer throws a left hook and a right uppercut",
    "a person plays air guitar", "somebody tiptoes past a sleeping dog", "a goalkeeper dives to the right",
    "a person salutes, then marches in place", "a child skips happily",
]


SAMPLED = [(prompt, seed) for seed in (1, 2, 3) for prompt in PROMPTS[seed::4]]   # 24 sampled traces


@pytest.fixture(scope="module")
def default_traces():
    """The shipped model's traces through the path the CLI and the server use (tasks.generate),
    greedy for every prompt and sampled (temperature 1) for a quarter of them per seed; max 3 rounds."""
    from irmogen.llm.loaders import load_model, resolve_model_spec
    from irmogen.reasoning import tasks
    model = load_model(resolve_model_spec(None), device="cpu")
    opts = dict(max_rounds=3, decode_clips=False)
    runs = [(p, "greedy", list(tasks.generate(model, p, **opts))[-1]) for p in PROMPTS]
    runs += [(p, f"seed {s}", list(tasks.generate(model, p, greedy=False, seed=s, **opts))[-1]) for p, s in SAMPLED]
    return runs


def _transcript_texts(done):
    """Every text an animator reads: the streamed trace's, the transcript JSON's, the parsed text's."""
    parsed = parse_trace(done.trace_text)
    assert parsed.errors == [] and parsed == done.trace
    stored = Trace.from_json(done.trace.to_json())
    return [t for trace in (done.trace, stored, parsed) for t in _free_texts(trace)]


@pytest.mark.slow
def test_default_model_transcripts_are_clean(default_traces):
    assert len(PROMPTS) >= 30 and len(default_traces) == len(PROMPTS) + len(SAMPLED)
    bad = [(prompt, how, text, G.problems(text)) for prompt, how, done in default_traces
           for text in _transcript_texts(done) if G.problems(text)]
    assert bad == []
    assert sum(len(done.trace.rounds) > 1 for _, _, done in default_traces) > 0   # refinements were written too


def test_problems_are_what_an_animator_would_flag():
    """The check itself finds each fault the issue quotes from the unguarded decoder."""
    for text in ("Switch from squatting to squatting.", "the person is walking instead of walking",
                 "the person never leaves the ground; the person never leaves the ground",
                 "keep the sameassess]\nRefinement: Switch from jumping to jumping"):
        assert G.problems(text), text

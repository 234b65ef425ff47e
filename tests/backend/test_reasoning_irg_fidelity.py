"""Fidelity to IRG-MotionLLM's checkpoints: the ids our decoder writes for an IRG trace are the ids
IRG's training code gives the same trace, with a Gemma-style tokenizer whose merged tokens ("]\\n[",
"w.\\n") make a one-go encoding of a template stretch differ from IRG's piece-by-piece one.

`irg_training_ids` restates how IRG's stage-2 training tokenizes a trace (reference/model.md and
the upstream data code): bos, the prompt in one go (".." -> "." in the user prompt), then every tag,
plan text, newline and free text on its own; the assess step's "Assessment: A\\nRefinement: R" is
ONE piece; motions are "<Motion>" + the code tokens + "</Motion>"; the response ends "</think><eos>".
A real tiny Gemma-2 LM, its logits pushed toward those ids (the stand-in for a checkpoint trained
on them), drives our decoder; everything the decoder forces must then agree id for id.
"""
import pytest

from irmogen.llm.testing import tiny_motionllm
from irmogen.reasoning import template as T
from irmogen.reasoning.decoder import ReasoningDecoder

CAPTION = "a person walks forward slowly then turns left.."
ANALYSIS = "The goal asks for a slow walk forward and a turn to the left."
ROUNDS = [  # (codes, assessment, refinement): a 3-round trace, worst motion first
    ([5, 17, 301, 44, 44, 9], "The motion is too fast and the turn is missing.", "Walk slower and turn left at the end."),
    ([5, 18, 300, 44, 12, 9, 77], "The walk is slow now, but the turn is missing.", "Add a turn to the left."),
    ([5, 18, 300, 44, 12, 9, 78, 3], "It matches the goal.", T.NO_REFINEMENT),
]


def irg_training_ids(tokenizer, layout, caption, analysis, rounds) -> list[int]:
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    nl = enc("\n")
    plan = lambda p: enc("[plan]") + enc(p) + enc("[/plan]") + nl  # noqa: E731
    user = T.USER.format(caption=caption).replace("..", ".")
    ids = [tokenizer.bos_token_id] + enc(T.SYSTEM + "\n\n" + "User: " + user + "\n\n" + " Response:")
    ids += enc("<think>") + plan(T.P_ANALYZE) + enc("[analyze]") + enc(analysis) + enc("[/analyze]") + nl
    ids += plan(T.P_GENERATE)
    for k, (codes, assessment, refinement) in enumerate(rounds):
        motion = tokenizer.decode([layout.first_code_id + c for c in codes])
        ids += enc("[generate]") + enc("<Motion>") + enc(motion) + enc("</Motion>") + enc("[/generate]") + nl
        ids += plan(T.P_ASSESS) + enc("[assess]")
        ids += enc(f"Assessment: {assessment}\nRefinement: {refinement}") + enc("[/assess]") + nl
        ids += plan(T.P_FINISH if k == len(rounds) - 1 else T.P_REFINE)
    return ids + enc("</think>") + enc("<eos>")


class _Trained:
    """A real tiny LM whose next-token logits favour the target sequence's id at each position."""

    def __init__(self, lm, target):
        self.lm, self.target = lm, target

    def __call__(self, input_ids, past_key_values=None, **kw):
        start = 0 if past_key_values is None else past_key_values.get_seq_length()
        out = self.lm(input_ids=input_ids, past_key_values=past_key_values, **kw)
        pos = start + input_ids.shape[1]
        if pos < len(self.target):
            out.logits[:, -1, self.target[pos]] += 1e4
        return out

    def __getattr__(self, name):
        return getattr(self.lm, name)


@pytest.fixture(scope="module")
def model():
    m = tiny_motionllm(0, arch="gemma2", tokenizer="gemma")
    m.template_tokens = "piecewise"   # what loaders.load_irg sets
    return m


@pytest.fixture(scope="module")
def target(model):
    return irg_training_ids(model.tokenizer, model.layout, CAPTION, ANALYSIS, ROUNDS)


def _first_difference(a, b, tokenizer):
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    show = lambda ids: tokenizer.convert_ids_to_tokens(ids[max(0, i - 3):i + 3])  # noqa: E731
    return f"first difference at {i}: ours {show(a)} vs IRG {show(b)}"


def test_the_tokenizer_merges_across_template_pieces(model):
    """The premise: with this tokenizer a stretch encoded in one go is NOT IRG's piece-by-piece ids."""
    tok = model.tokenizer
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    stretch = T.AFTER_ANALYSIS + "<Motion>"
    pieces = [i for p in T.template_pieces(stretch) for i in enc(p)]
    assert enc(stretch) != pieces
    assert len(enc("]\n[")) == 1 and tok.decode(pieces) == stretch


@pytest.mark.parametrize("max_rounds", [3, 5])
def test_decoder_ids_equal_irg_training_ids(model, target, max_rounds):
    """max_rounds 3: the decoder forces the last "No refinements needed."; 5: the model writes it."""
    d = ReasoningDecoder(model)
    d.lm = _Trained(model.lm, target)
    done = list(d.run(CAPTION, max_rounds=max_rounds, decode_clips=False))[-1]
    assert done.kind == "done"
    assert done.ids == target, _first_difference(done.ids, target, model.tokenizer)
    assert [(r.codes, r.assessment, r.refinement) for r in done.trace.rounds] == ROUNDS
    assert done.trace.analysis == ANALYSIS


def test_measured_assessments_are_one_piece_as_irg_writes_them(model, target):
    """The measured assessor forces its texts; they too are tokenized as IRG's assess piece."""
    d = ReasoningDecoder(model)
    d.lm = _Trained(model.lm, target)
    done = list(d.run(CAPTION, max_rounds=2, assessor="measured", decode_clips=False))[-1]
    rounds = [(r.codes, r.assessment, r.refinement) for r in done.trace.rounds]
    assert all(r.author == "measured" for r in done.trace.rounds)
    expected = irg_training_ids(model.tokenizer, model.layout, CAPTION, done.trace.analysis, rounds)
    assert done.ids == expected, _first_difference(done.ids, expected, model.tokenizer)


def test_the_prompt_normalises_double_full_stops_as_irg():
    prompt = T.build_prompt("a person stumbles around..")
    assert "Goal Text: a person stumbles around.\n\n Response:" in prompt and ".." not in prompt


def test_our_own_models_keep_the_one_go_encoding(model):
    """Models trained by this project saw each forced stretch encoded whole (train/sequences.py);
    only IRG checkpoints (loaders.load_irg marks them) get the piece-by-piece ids."""
    ours = ReasoningDecoder(tiny_motionllm(0, arch="gemma2", tokenizer="gemma"))
    irg = ReasoningDecoder(model)
    stretch = T.AFTER_ANALYSIS + "<Motion>"
    assert ours.encode_forced(stretch) == ours.encode(stretch) != irg.encode_forced(stretch)

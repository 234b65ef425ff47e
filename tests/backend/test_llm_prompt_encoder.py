"""The prompt encoder: frozen MiniLM token states -> soft prefix tokens of the LM.

A tiny random LM with the real MiniLM: the prefix is saved and loaded with the model, models
without the config field load as before, KV-cached decoding after the prefix equals uncached
decoding of the whole sequence, and training through the prefix learns what only the text says.
"""
import json

import pytest
import torch

from irmogen.errors import IrmogenError
from irmogen.llm.model import MotionLLM
from irmogen.llm.prompt_encoder import WEIGHTS, ConditionedLM, PromptEncoder, PromptEncoderConfig
from irmogen.llm.testing import tiny_motionllm
from irmogen.reasoning import template as T
from irmogen.reasoning.decoder import ReasoningDecoder
from irmogen.train.base import lm_loss_sum
from irmogen.train.sequences import Renderer, collate


def with_encoder(seed=0, prefix_tokens=4) -> MotionLLM:
    m = tiny_motionllm(seed=seed)
    torch.manual_seed(seed)
    m.set_prompt_encoder(PromptEncoder(PromptEncoderConfig(prefix_tokens=prefix_tokens), m.lm.config.hidden_size))
    return m


def test_saved_and_loaded_with_its_config_field(tmp_path):
    m = with_encoder()
    m.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["prompt_encoder"] == {"name": "all-MiniLM-L6-v2", "prefix_tokens": 4, "guidance": 1.0}
    assert (tmp_path / "m" / WEIGHTS).is_file()
    back = MotionLLM.from_pretrained(tmp_path / "m", device="cpu")
    a = m.prompt_encoder.prefix(["a person tiptoes"], "cpu", torch.float32)
    b = back.prompt_encoder.prefix(["a person tiptoes"], "cpu", torch.float32)
    assert a.shape == (1, 4, m.lm.config.hidden_size) and torch.equal(a, b)
    (tmp_path / "m" / WEIGHTS).unlink()
    with pytest.raises(IrmogenError, match=WEIGHTS):
        MotionLLM.from_pretrained(tmp_path / "m", device="cpu")


def test_a_model_without_the_field_loads_as_before(tmp_path):
    m = tiny_motionllm(seed=1)
    m.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    del config["prompt_encoder"]                       # as written before the field existed
    path.write_text(json.dumps(config))
    back = MotionLLM.from_pretrained(tmp_path / "m", device="cpu")
    assert back.prompt_encoder is None and back.config.prompt_encoder is None
    assert back.prefix_cache("a person walks") is None
    config["prompt_encoder"] = {"name": "all-MiniLM-L6-v2", "prefix_tokens": 0}
    path.write_text(json.dumps(config))
    with pytest.raises(IrmogenError, match="prefix_tokens"):
        MotionLLM.from_pretrained(tmp_path / "m", device="cpu")


def _uncached_greedy_codes(m: MotionLLM, prompt: str, condition: str, n: int, guidance: float = 1.0) -> list[int]:
    """Greedy codes from full forward passes of prefix + every token so far (no cache); with
    guidance s the logits are u + s (c - u), u under the empty text's prefix."""
    net = ConditionedLM(m.lm, m.prompt_encoder).eval()
    ids = m.tokenizer(prompt, add_special_tokens=False)["input_ids"] + [m.layout.start_id]
    first, vocab = m.layout.first_code_id, m.layout.vocab_size
    codes = []
    with torch.no_grad():
        for _ in range(n):
            x = torch.tensor([ids])
            logits = net(x, torch.ones_like(x), [condition])[0, -1]
            if guidance != 1.0:
                u = net(x, torch.ones_like(x), [""])[0, -1]
                logits = u + guidance * (logits - u)
            tok = first + int(torch.argmax(logits[first:vocab]))
            codes.append(tok - first)
            ids.append(tok)
    return codes


def test_cached_decoding_after_the_prefix_equals_uncached():
    m = with_encoder(seed=2)
    d = ReasoningDecoder(m)
    prompt = T.generation_prompt("a person strolls and then hops", d.bos_token)
    for condition in ("a person strolls and then hops", "someone shambles backwards"):
        cached = d.respond_motion(prompt, min_codes=6, max_codes=6, condition=condition)
        assert cached == _uncached_greedy_codes(m, prompt, condition, 6)
    # the prefix is what the model reads: the same tokens under another text give other logits
    net = ConditionedLM(m.lm, m.prompt_encoder).eval()
    x = torch.tensor([m.tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        a, b = (net(x, torch.ones_like(x), [c])[0, -1] for c in ("walk forward", "do a cartwheel"))
    assert not torch.allclose(a, b)


def test_guided_decoding_amplifies_what_the_text_changes_about_the_codes():
    m = with_encoder(seed=2)
    d = ReasoningDecoder(m)
    prompt = T.generation_prompt("a person strolls and then hops", d.bos_token)
    condition = "someone shambles backwards"
    plain = d.respond_motion(prompt, min_codes=8, max_codes=8, condition=condition)
    assert d.respond_motion(prompt, min_codes=8, max_codes=8, condition=condition, guidance=1.0) == plain
    guided = {s: d.respond_motion(prompt, min_codes=8, max_codes=8, condition=condition, guidance=s) for s in (2.0, 6.0)}
    for s, codes in guided.items():
        assert codes == _uncached_greedy_codes(m, prompt, condition, 8, guidance=s)
    assert any(codes != plain for codes in guided.values())
    # the model's own default (config.json) applies when a call does not ask
    m.prompt_encoder.config.guidance = 6.0
    assert d.respond_motion(prompt, min_codes=8, max_codes=8, condition=condition) == guided[6.0]


def test_guidance_leaves_text_alone_and_needs_a_prompt_encoder():
    m = with_encoder(seed=3)
    d = ReasoningDecoder(m)
    traces = [[e for e in d.run("a person hops", max_rounds=1, max_text_tokens=12, decode_clips=False, guidance=s)
               if e.kind == "done"][0] for s in (1.0, 5.0)]
    assert traces[0].trace.analysis == traces[1].trace.analysis   # written before any motion code
    for bad in (0.5, 11.0, True):
        with pytest.raises(IrmogenError, match="guidance"):
            d.respond_motion("x", min_codes=1, max_codes=2, condition="a person hops", guidance=bad)
    plain = ReasoningDecoder(tiny_motionllm(seed=1))
    with pytest.raises(IrmogenError, match="no prompt encoder"):
        plain.respond_motion("x", min_codes=1, max_codes=2, condition="a person hops", guidance=2.0)
    assert plain.respond_motion("x", min_codes=2, max_codes=2, guidance=1.0)   # 1 means none: allowed
    with pytest.raises(IrmogenError, match="prompt_encoder.guidance"):
        PromptEncoderConfig(guidance=0.0)


def test_training_through_the_prefix_learns_what_only_the_text_says():
    """Two sequences with identical tokens whose answers differ: only the condition tells them apart."""
    torch.manual_seed(0)
    m = with_encoder(seed=3)
    r = Renderer(m.tokenizer, m.layout, conditioned=True)
    prompt = T.generation_prompt("a person moves", r.bos)
    texts, answers = ("a person strolls forward", "someone cartwheels sideways"), ([5, 5, 5], [9, 9, 9])
    seqs = [r.motion_answer(prompt, codes, condition=t) for t, codes in zip(texts, answers)]
    assert [s.condition for s in seqs] == list(texts) and r.text_answer(prompt, "x").condition == ""
    batch = collate(seqs, m.tokenizer.pad_token_id, 256, "cpu")
    assert batch["conditions"] == list(texts)
    net = ConditionedLM(m.lm.train(), m.prompt_encoder.train())
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    before = lm_loss_sum(net, batch, mean=True).item()
    for _ in range(60):
        opt.zero_grad()
        lm_loss_sum(net, batch, mean=True).backward()
        opt.step()
    assert m.prompt_encoder.queries.grad is not None
    assert lm_loss_sum(net, batch, mean=True).item() < 0.1 * before
    m.lm.eval(), m.prompt_encoder.eval()
    d = ReasoningDecoder(m)
    for t, codes in zip(texts, answers):   # the decoder, with its cached prefix, writes each text's answer
        assert d.respond_motion(prompt, min_codes=3, max_codes=3, condition=t) == codes


def test_every_training_stage_carries_and_trains_the_prompt_encoder(tmp_path):
    """`train all` on a tiny synthetic chain with the encoder switched on in the base stage: each
    stage's model has it, later stages keep training it, and the final model decodes with it."""
    from safetensors.torch import load_file

    from irmogen.reasoning import tasks
    from irmogen.train.pipeline import PipelineConfig, run_pipeline
    from irmogen.train.testing import TINY_STAGES, tiny_dataset

    data = tiny_dataset(tmp_path / "data")
    stages = {k: {**v, "log_every": 1} for k, v in TINY_STAGES.items()}
    stages["base"].update(prompt_encoder="all-MiniLM-L6-v2", prefix_tokens=2, caption_noise=0.5, select="best")
    for stage in ("stage1", "stage2", "stage2_own"):
        stages[stage]["caption_noise"] = 1.0     # every prompt's words swapped: the encoder alone tells the goal
    run_pipeline(PipelineConfig(data=str(data), out=str(tmp_path / "out"), device="cpu", progress=False,
                                stop_after="stage3"), stages)
    weights = {}
    for stage in ("base", "stage1", "stage2", "stage3"):
        model = tmp_path / "out" / stage / "model"
        assert json.loads((model / "config.json").read_text())["prompt_encoder"]["prefix_tokens"] == 2, stage
        weights[stage] = load_file(str(model / WEIGHTS))
    for a, b in (("base", "stage1"), ("stage1", "stage2")):
        assert not torch.equal(weights[a]["queries"], weights[b]["queries"]), f"{b} did not train the encoder"
    final = MotionLLM.from_pretrained(tmp_path / "out" / "stage3" / "model", device="cpu")
    events = list(tasks.generate(final, "a person tiptoes forward", max_rounds=1, min_codes=2, max_codes=4,
                                 decode_clips=False))
    assert events[-1].trace.final_codes

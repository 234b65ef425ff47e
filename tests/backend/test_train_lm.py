"""train.base / stage1 / stage2 on a tiny synthetic chain: sequences, loss masks, runs, resume, saving."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from irmogen.engine.build import build_engine
from irmogen.errors import IrmogenError
from irmogen.llm.model import MotionLLM
from irmogen.llm.tokens import codes_to_text
from irmogen.reasoning import template as T
from irmogen.reasoning.decoder import ReasoningDecoder
from irmogen.reasoning.parser import Round, Trace, render_trace
from irmogen.train import base, stage1, stage2
from irmogen.train.codes import CodesCache, build_codes
from irmogen.train.sequences import IGNORE, Renderer, collate
from irmogen.train.testing import TINY_STAGES, tiny_dataset
from irmogen.train.vq import VQTrainConfig
from irmogen.train.vq import train as train_vq

RUN = dict(progress=False, device="cpu", log_every=1)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    data = tiny_dataset(root / "data")
    train_vq(VQTrainConfig(data=str(data), out=str(root / "vq"), **{**TINY_STAGES["vq"], **RUN}))
    codes = build_codes(root / "vq", data, root / "codes.npz", device="cpu")
    build_engine(data, root / "engine", verbose=False)
    cfg = base.BaseTrainConfig(data=str(data), out=str(root / "base"), vq=str(root / "vq"), codes=str(codes),
                               engine=str(root / "engine"), **{**TINY_STAGES["base"], "max_steps": 4, **RUN})
    base.train(cfg)
    return {"root": root, "data": data, "codes": codes, "engine": root / "engine", "base_cfg": cfg,
            "model": MotionLLM.from_pretrained(root / "base" / "model", device="cpu")}


def losses(out):
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/total"] for r in rows if "train/total" in r}


def test_base_model_directory_is_complete_and_usable(chain):
    m, root = chain["model"], chain["root"]
    assert np.array_equal(m.mean, np.load(root / "vq" / "mean.npy"))   # the VQ's own pair travels on
    assert m.layout.codebook_size == 32 and m.lm.config.num_hidden_layers == 2
    assert len(m.tokenizer) <= 400 + 34
    ReasoningDecoder(m)                  # the tokenizer round-trips every forced template stretch
    words = m.tokenizer(T.P_ASSESS, add_special_tokens=False)["input_ids"]
    assert len(words) < len(T.P_ASSESS) / 2   # template strings are in the BPE corpus: merged
    assert len(losses(root / "base")) == 4


def test_base_resume_matches_an_uninterrupted_run(chain, tmp_path):
    cfg = replace(chain["base_cfg"], out=str(tmp_path / "b"))
    base.train(replace(cfg, time_budget_minutes=1e-9))           # the budget runs out after one step
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["step-00000001"]
    base.train(replace(cfg, resume=True))
    a, b = losses(chain["root"] / "base"), losses(tmp_path / "b")
    assert sorted(b) == [1, 2, 3, 4]
    assert np.allclose([a[s] for s in range(1, 5)], [b[s] for s in range(1, 5)], rtol=1e-4)


def test_select_best_exports_the_weights_of_the_lowest_validation_loss(chain, tmp_path):
    """A high learning rate makes the validation loss go up after the first evaluations: the
    exported model must be the best step's, not the last one's."""
    from safetensors.torch import load_file

    cfg = replace(chain["base_cfg"], out=str(tmp_path / "b"), select="best", lr=0.5, max_steps=6, eval_every=1)
    metrics = base.train(cfg)
    rows = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val/loss"] for r in rows if "val/loss" in r}
    best = min(val, key=val.get)
    assert best < 6, val                                   # else the test would not tell best from last
    assert metrics["best/step"] == best and metrics["best/val_loss"] == pytest.approx(val[best])
    exported = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))
    kept = load_file(str(tmp_path / "b" / "best" / "model.safetensors"))
    name = next(k for k in exported if "layers.0.self_attn.q_proj" in k)
    assert torch.equal(exported[name], kept[next(k for k in kept if k.endswith(name.split("model.", 1)[-1]))])
    with pytest.raises(IrmogenError, match="--select 'first'"):
        base.train(replace(cfg, out=str(tmp_path / "c"), select="first"))


def test_caption_noise_swaps_words_the_lm_reads_but_never_the_encoders_text(chain):
    m = chain["model"]
    caption = "a person walks forward and waves with the right hand"
    plain = Renderer(m.tokenizer, m.layout, conditioned=False, caption_noise=1.0)
    noisy = Renderer(m.tokenizer, m.layout, conditioned=True, caption_noise=1.0)
    rng = np.random.default_rng(0)
    assert plain.shown(caption, rng) == caption          # no encoder: nothing else carries the meaning
    assert noisy.shown(caption, None) == caption         # validation sequences stay as written
    shown = [noisy.shown(caption, rng) for _ in range(200)]
    changed = [sum(a != b for a, b in zip(s.split(), caption.split())) for s in shown]
    assert all(len(s.split()) == len(caption.split()) for s in shown)
    assert min(changed) == 0 and max(changed) >= 8 and 2 < np.mean(changed) < 8   # rates spread over [0, 1]
    seq = base.base_sequence(noisy, CodesCache(chain["codes"]), *base.base_examples(
        chain["data"], CodesCache(chain["codes"]), "train")[0], "generate", np.random.default_rng(3))
    assert seq.condition == base.base_examples(chain["data"], CodesCache(chain["codes"]), "train")[0][1]


def test_text_and_motion_answers_mask_the_prompt(chain):
    m = chain["model"]
    r = Renderer(m.tokenizer, m.layout)
    prompt = T.generation_prompt("a person walks forward.", r.bos)
    seq = r.motion_answer(prompt, [3, 4, 5])
    head = len(r.encode(prompt)) + 1
    assert seq.labels[:head] == [IGNORE] * head and seq.ids[head - 1] == m.layout.start_id
    assert seq.labels[head:] == [m.layout.code_to_id(c) for c in (3, 4, 5)] + [m.layout.end_id, r.eos]
    txt = r.text_answer(T.caption_prompt([1, 2], r.bos), "a person walks.")
    learned = [i for i, lab in zip(txt.ids, txt.labels) if lab != IGNORE]
    assert learned[-1] == r.eos and m.tokenizer.decode(learned[:-1]) == " a person walks."


def test_all_eight_stage1_tasks_render(chain):
    m, cache = chain["model"], CodesCache(chain["codes"])
    r = Renderer(m.tokenizer, m.layout)
    records = base.read_jsonl(chain["engine"] / "stage1.jsonl")
    seen = {}
    for rec in records:
        seen.setdefault(rec["task"], rec)
    assert set(seen) == set(stage1.TASKS)
    for task, rec in seen.items():
        seq = stage1.render_record(r, cache, rec, None)
        learned = [i for i, lab in zip(seq.ids, seq.labels) if lab != IGNORE]
        assert learned[-1] == r.eos and seq.labels[0] == IGNORE
        prompt = m.tokenizer.decode(seq.ids[:seq.labels.index(next(x for x in seq.labels if x != IGNORE))])
        if rec["motion"]:
            assert codes_to_text(cache.codes(rec["motion"])) in prompt
        if task in ("generate", "generate_from_analysis", "refine_direct", "refine_instructed"):
            assert learned[:-2] == [m.layout.code_to_id(c) for c in cache.codes(rec["target_motion"] or rec["id"])]
        else:
            assert m.tokenizer.decode(learned[:-1]).strip() == rec["answer"].strip()
    with pytest.raises(IrmogenError, match="unknown task 'dance'"):
        stage1.render_record(r, cache, {**seen["generate"], "task": "dance"}, None)


def test_stage2_excludes_intermediate_motions_from_the_loss(chain):
    m = chain["model"]
    r = Renderer(m.tokenizer, m.layout)
    trace = Trace(analysis="walk ahead.", finished=True, rounds=[
        Round([1, 2, 3], "it jumps.", "walk instead."), Round([4, 5], "it turns.", "go straight."),
        Round([6, 7, 8, 9], "it walks.", T.NO_REFINEMENT)])
    seq = r.trace("a person walks forward.", trace)
    labels = collate([seq], m.tokenizer.pad_token_id, 4096, "cpu")["labels"][0].tolist()
    prompt = len(r.encode(T.build_prompt("a person walks forward.", r.bos)))
    assert labels[:prompt] == [IGNORE] * prompt
    code_ids = lambda cs: [m.layout.code_to_id(c) for c in cs]
    for codes, learned in (([1, 2, 3], False), ([4, 5], False), ([6, 7, 8, 9], True)):
        span = code_ids(codes) + [m.layout.end_id]
        at = next(i for i in range(len(seq.ids)) if seq.ids[i:i + len(span)] == span)
        assert (labels[at:at + len(span)] == span) is learned
        assert learned or labels[at:at + len(span)] == [IGNORE] * len(span)
    # everything after the prompt except the two wrong motions is learned, and spells the trace
    response = seq.ids[prompt:]
    kept = [i for i, lab in zip(response, labels[prompt:]) if lab != IGNORE]
    assert len(response) - len(kept) == 3 + 1 + 2 + 1
    text = render_trace(trace)
    for codes in ([1, 2, 3], [4, 5]):
        text = text.replace(codes_to_text(codes), "<Motion>", 1)
    assert m.tokenizer.decode(kept[:-1]) == text and kept[-1] == r.eos
    every = r.trace("a person walks forward.", trace, learn_intermediate=True)
    assert sum(lab != IGNORE for lab in every.labels) == len(kept) + 7


def test_stage1_and_stage2_train_and_save(chain):
    root, common = chain["root"], dict(data=str(chain["data"]), codes=str(chain["codes"]), engine=str(chain["engine"]),
                                       **RUN)
    m1 = stage1.train(stage1.Stage1TrainConfig(out=str(root / "s1"), model=str(root / "base" / "model"),
                                               **{**TINY_STAGES["stage1"], **common}))
    assert np.isfinite(m1["val/loss"]) and len(losses(root / "s1")) == 2
    m2 = stage2.train(stage2.Stage2TrainConfig(out=str(root / "s2"), model=str(root / "s1" / "model"),
                                               **{**TINY_STAGES["stage2"], **common}))
    assert np.isfinite(m2["val/loss"])
    model = MotionLLM.from_pretrained(root / "s2" / "model", device="cpu")
    assert model.layout == chain["model"].layout
    done = [e for e in ReasoningDecoder(model).run("a person walks forward.", max_rounds=1, max_text_tokens=4,
                                                   decode_clips=False) if e.kind == "done"][0]
    assert done.trace.finished


def test_lora_fine_tuning_is_merged_into_a_plain_model_directory(chain):
    root = chain["root"]
    stage1.train(stage1.Stage1TrainConfig(out=str(root / "lora"), model=str(root / "base" / "model"),
                                          data=str(chain["data"]), codes=str(chain["codes"]), engine=str(chain["engine"]),
                                          batch_size=2, max_steps=1, lora_r=4, lr=1e-2, warmup_steps=0, **RUN))
    tuned = MotionLLM.from_pretrained(root / "lora" / "model", device="cpu")
    before, after = chain["model"].lm.state_dict(), tuned.lm.state_dict()
    assert sorted(before) == sorted(after) and tuned.config.adapters == {} and not tuned.adapters
    changed = {k for k in before if not np.array_equal(before[k].numpy(), after[k].numpy())}
    assert "model.layers.0.self_attn.q_proj.weight" in changed and "model.embed_tokens.weight" in changed
    assert "model.layers.0.input_layernorm.weight" not in changed    # LoRA leaves the norms alone

"""Our Evaluator: the frozen MiniLM text side, the motion side's handling of lengths/padding/contacts,
and its one-file save format."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from irmogen.errors import IrmogenError
from irmogen.evaluate.retrieval import Evaluator, EvaluatorConfig, read_clips
from irmogen.evaluate.text import minilm_dir, shared_encoder

TINY = EvaluatorConfig(embed_dim=8, width=16, hidden=16, text_hidden=32)


def tiny_evaluator(seed=0) -> Evaluator:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    return Evaluator(TINY, rng.normal(0, 0.1, 263), rng.uniform(0.5, 1.5, 263)).eval()


def test_sentence_embeddings_equal_sentence_transformers_on_the_same_folder():
    st = pytest.importorskip("sentence_transformers", exc_type=ImportError)
    texts = ["a person walks forward.", "someone waves with the left hand then sits down", "jump"]
    ours = shared_encoder().encode(texts)
    reference = st.SentenceTransformer(str(minilm_dir()), device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_text_embeddings_are_unit_vectors_and_similar_captions_are_close():
    e = tiny_evaluator()
    s = shared_encoder().encode(["a person walks forward.", "someone walks forwards.", "a man does a cartwheel."])
    assert s[0] @ s[1] > s[0] @ s[2] + 0.2
    out = e.embed_text(["a person walks forward.", "a man does a cartwheel."])
    assert out.shape == (2, 8) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_motion_embedding_ignores_padding_contacts_and_frames_past_196():
    e = tiny_evaluator()
    rng = np.random.default_rng(1)
    short, long = rng.normal(size=(41, 263)).astype(np.float32), rng.normal(size=(250, 263)).astype(np.float32)
    alone = e.embed_motion([short])
    batched = e.embed_motion([long, short, short[:8]])
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5)           # padding to 196 frames changes nothing
    np.testing.assert_allclose(batched[0], e.embed_motion([long[:196]])[0], atol=1e-5)
    no_contacts = short.copy()
    no_contacts[:, 259:] = 1.0 - no_contacts[:, 259:]
    np.testing.assert_allclose(e.embed_motion([no_contacts])[0], alone[0], atol=1e-6)
    assert not np.allclose(e.embed_motion([short * 2])[0], alone[0], atol=1e-3)
    with pytest.raises(IrmogenError, match="motion 1"):
        e.embed_motion([short, short[:3]])


def test_save_and_load_give_the_same_embeddings_and_keep_the_config(tmp_path):
    e = tiny_evaluator(2)
    file = e.save(tmp_path / "m")
    assert file.name == "evaluator.safetensors"
    assert json.loads((tmp_path / "m" / "evaluator.json").read_text())["width"] == 16
    back = Evaluator.load(tmp_path / "m")
    assert back.config == TINY
    motion = [np.random.default_rng(3).normal(size=(60, 263)).astype(np.float32)]
    np.testing.assert_allclose(back.embed_motion(motion), e.embed_motion(motion), atol=1e-6)
    np.testing.assert_allclose(back.embed_text(["a person jogs."]), e.embed_text(["a person jogs."]), atol=1e-6)


def test_loading_a_file_that_is_not_an_evaluator_names_the_problem(tmp_path):
    save_file({"x": torch.zeros(2)}, str(tmp_path / "evaluator.safetensors"))
    with pytest.raises(IrmogenError, match="no 'config'"):
        Evaluator.load(tmp_path)
    with pytest.raises(IrmogenError, match="does not exist"):
        Evaluator.load(tmp_path / "missing.safetensors")


def test_read_clips_returns_features_captions_and_tokens_in_split_order(tmp_path):
    for sub in ("new_joint_vecs", "texts"):
        (tmp_path / sub).mkdir()
    for i, cid in enumerate(["b", "a", "c"]):
        np.save(tmp_path / "new_joint_vecs" / f"{cid}.npy", np.full((20 + i, 263), i, np.float32))
        lines = [f"caption {cid} one#caption/NOUN {cid}/NOUN#0.0#0.0", f"caption {cid} two#x/NOUN#0.0#0.0"]
        (tmp_path / "texts" / f"{cid}.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.txt").write_text("b\na\nmissing\nc\n")
    clips = read_clips(tmp_path, "test")
    assert [c.id for c in clips] == ["b", "a", "c"]
    assert clips[1].captions == ["caption a one", "caption a two"] and clips[1].tokens[0] == "caption/NOUN a/NOUN"
    assert clips[2].features.shape == (22, 263)
    assert len(read_clips(tmp_path, "test", limit=2)) == 2
    with pytest.raises(IrmogenError, match="val.txt"):
        read_clips(tmp_path, "val")

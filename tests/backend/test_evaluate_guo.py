"""Guo et al.'s evaluator: a random checkpoint in the published layout loads with strict key
matching, GloVe pickles are read without running code, and embeddings behave."""
import pickle

import numpy as np
import pytest
import torch

from irmogen.errors import IrmogenError
from irmogen.evaluate import guo

# A few published parameter names and shapes of text_mot_match/model/finest.tar
PUBLISHED = {
    "movement_encoder": {"main.0.weight": (512, 259, 4), "main.3.weight": (512, 512, 4), "out_net.weight": (512, 512)},
    "text_encoder": {"pos_emb.weight": (300, 15), "input_emb.weight": (512, 300), "gru.weight_ih_l0": (1536, 512),
                     "gru.weight_hh_l0_reverse": (1536, 512), "output_net.0.weight": (512, 1024),
                     "output_net.1.weight": (512,), "output_net.3.weight": (512, 512), "hidden": (2, 1, 512)},
    "motion_encoder": {"input_emb.weight": (1024, 512), "gru.weight_ih_l0": (3072, 1024),
                       "output_net.0.weight": (1024, 2048), "output_net.3.weight": (512, 1024), "hidden": (2, 1, 1024)},
}
WORDS = ["sos", "eos", "unk", "person", "walk", "forward", "left", "a", "the"]


class Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("guo")
    torch.manual_seed(0)
    modules = {"movement_encoder": guo.MovementConvEncoder(), "text_encoder": guo.TextEncoderBiGRUCo(),
               "motion_encoder": guo.MotionEncoderBiGRUCo()}
    state = {k: m.state_dict() for k, m in modules.items()}
    opt = torch.optim.Adam(modules["text_encoder"].parameters())
    state.update(opt_text_encoder=opt.state_dict(), epoch=3, iter=1000)   # what the published file also holds
    torch.save(state, d / "finest.tar")
    (d / "glove").mkdir()
    rng = np.random.default_rng(0)
    np.save(d / "glove" / "our_vab_data.npy", rng.normal(size=(len(WORDS), 300)).astype(np.float32))
    with open(d / "glove" / "our_vab_words.pkl", "wb") as f:
        pickle.dump(WORDS, f)
    with open(d / "glove" / "our_vab_idx.pkl", "wb") as f:
        pickle.dump({w: np.int64(i) for i, w in enumerate(WORDS)}, f)   # numpy ints, as scripts often write
    (d / "meta").mkdir()
    np.save(d / "meta" / "mean.npy", rng.normal(0, 0.1, 263).astype(np.float32))
    np.save(d / "meta" / "std.npy", rng.uniform(0.5, 1.5, 263).astype(np.float32))
    return d, state


def test_modules_carry_the_published_names_and_shapes():
    modules = {"movement_encoder": guo.MovementConvEncoder(), "text_encoder": guo.TextEncoderBiGRUCo(),
               "motion_encoder": guo.MotionEncoderBiGRUCo()}
    for key, expected in PUBLISHED.items():
        shapes = {k: tuple(v.shape) for k, v in modules[key].state_dict().items()}
        for name, shape in expected.items():
            assert shapes[name] == shape, (key, name)


def test_a_checkpoint_of_the_published_layout_loads_and_embeds(files):
    d, state = files
    ev = guo.load_guo_evaluator(d / "finest.tar", d / "glove", d / "meta")
    torch.testing.assert_close(ev.text.state_dict()["hidden"], state["text_encoder"]["hidden"])
    text = ev.embed_text(["a person walks forward", "the person walks left"],
                         tokens=["a/DET person/NOUN walk/VERB forward/ADV", "the/DET person/NOUN walk/VERB left/ADV"])
    assert text.shape == (2, 512) and np.isfinite(text).all() and not np.allclose(text[0], text[1])
    rng = np.random.default_rng(1)
    short, long = rng.normal(size=(60, 263)).astype(np.float32), rng.normal(size=(230, 263)).astype(np.float32)
    both = ev.embed_motion([long, short])
    assert both.shape == (2, 512)
    np.testing.assert_allclose(both[1], ev.embed_motion([short])[0], atol=1e-4)   # batch order/padding invariant
    tagged = ev.embed_text(["a person walks forward"])   # tagged by our rule-based tagger
    np.testing.assert_allclose(tagged[0], text[0], atol=1e-5)


def test_word_vectors_use_vip_classes_and_fall_back_to_unk(files):
    d, _ = files
    words = guo.WordVectors(d / "glove")
    vec, pos = words("walk/VERB")
    assert pos.argmax() == guo.POS_CLASSES.index("Act_VIP")
    _, pos = words("person/NOUN")
    assert pos.argmax() == guo.POS_CLASSES.index("NOUN")
    unknown, pos = words("cartwheel/NOUN")
    np.testing.assert_array_equal(unknown, words("unk/OTHER")[0])
    assert pos.argmax() == guo.POS_CLASSES.index("OTHER")
    assert guo.text_tokens("a/DET b/NOUN")[:4] == ["sos/OTHER", "a/DET", "b/NOUN", "eos/OTHER"]
    assert len(guo.text_tokens(" ".join(["w/NOUN"] * 30))) == 22


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path, capsys):
    path = tmp_path / "our_vab_words.pkl"
    path.write_bytes(pickle.dumps(["sos", Boom()]))
    with pytest.raises(IrmogenError, match="refused global builtins.print"):
        guo.read_plain_pickle(path)
    assert "never run" not in capsys.readouterr().out


def test_a_checkpoint_of_another_layout_is_named(tmp_path, files):
    d, state = files
    bad = dict(state)
    bad["motion_encoder"] = guo.MotionEncoderBiGRUCo(hidden_size=64).state_dict()
    torch.save(bad, tmp_path / "finest.tar")
    with pytest.raises(IrmogenError, match="motion_encoder does not match"):
        guo.load_guo_evaluator(tmp_path / "finest.tar", d / "glove", d / "meta")
    torch.save({"text_encoder": state["text_encoder"]}, tmp_path / "partial.tar")
    with pytest.raises(IrmogenError, match="no 'movement_encoder'"):
        guo.load_guo_evaluator(tmp_path / "partial.tar", d / "glove", d / "meta")

"""The standard evaluator of the field (Guo et al., CVPR 2022, "text_mot_match"), so that users
with HumanML3D get numbers comparable to the papers.

Modules with the published parameter names (so `finest.tar` loads with strict key matching):
  MovementConvEncoder(259 -> 512 -> 512): `main.0` Conv1d(k4, s2, p1), Dropout, LeakyReLU,
      `main.3` Conv1d(k4, s2, p1), Dropout, LeakyReLU, then `out_net` Linear; time / 4.
  TextEncoderBiGRUCo(word 300, POS 15, hidden 512, out 512): `pos_emb` Linear(15 -> 300) added to
      the word vector, `input_emb` Linear(300 -> 512), bi-GRU `gru` with learned initial state
      `hidden` (2, 1, 512), `output_net` = Linear(1024 -> 512), LayerNorm, LeakyReLU, Linear(512 -> 512)
      on the concatenated last states.
  MotionEncoderBiGRUCo(512 -> hidden 1024 -> 512): the same shape over the movement latents, with
      lengths = frames // 4.
Inputs, as the evaluation code feeds them: motion features normalised with the evaluator's OWN
mean/std (`.../Comp_v6_KLD01/meta/mean.npy`, `std.npy`, not the dataset's), contacts dropped (259),
at most 196 frames cut to a multiple of 4; text = the caption's "word/POS" tokens, at most 20,
wrapped as sos + tokens + eos and padded with unk to 22; a token's POS one-hot (15 classes) is
replaced by a "VIP" class for listed words and OTHER for unknown words, whose vector is `unk`.

Files: `finest.tar` (a torch zip; dict with keys movement_encoder, text_encoder, motion_encoder,
plus optimiser states) is read with torch.load(weights_only=True). GloVe comes as
`our_vab_data.npy` (V, 300) float, `our_vab_words.pkl` (list of str) and `our_vab_idx.pkl`
(dict str -> int): these two are pickles, read with a restricted unpickler that can build only
plain containers, str and numbers (and numpy scalars/dtypes); any other class or callable in the
file is refused, so no code in a pickle ever runs. Needs torch; never imports bpy.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..errors import IrmogenError
from .retrieval import FEATURE_DIM, MAX_FRAMES, pad_motions

WORD_DIM, POS_DIM, MAX_TEXT_TOKENS = 300, 15, 20
POS_CLASSES = ("VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV",
               "Loc_VIP", "Body_VIP", "Obj_VIP", "Act_VIP", "Desc_VIP", "OTHER")
# Words whose POS one-hot is replaced by a "VIP" class (HumanML3D's word vectorizer lists).
VIP_WORDS = {
    "Loc_VIP": "left right clockwise counterclockwise anticlockwise forward back backward up down straight curve",
    "Body_VIP": "arm chin foot feet face hand mouth leg waist eye knee shoulder thigh",
    "Obj_VIP": "stair dumbbell chair window floor car ball handrail baseball basketball",
    "Act_VIP": "walk run swing pick bring kick put squat throw hop dance jump turn stumble stop sit lift lower "
               "raise wash stand kneel stroll rub bend balance flap jog shuffle lean rotate spin spread climb",
    "Desc_VIP": "slowly carefully fast careful slow quickly happy angry sad happily angrily sadly",
}
VIP_OF = {w: cls for cls, words in VIP_WORDS.items() for w in words.split()}


# ---- the published modules ----------------------------------------------------------------------
class MovementConvEncoder(nn.Module):
    def __init__(self, input_size: int = FEATURE_DIM - 4, hidden_size: int = 512, output_size: int = 512):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2))
        self.out_net = nn.Linear(output_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 259) -> (B, T // 4, 512)."""
        return self.out_net(self.main(x.transpose(1, 2)).transpose(1, 2))


class _BiGRUCo(nn.Module):
    """Shared shape of Guo's text and motion encoders: input Linear, bi-GRU from a learned state,
    output MLP on the two final states."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(nn.Linear(2 * hidden_size, hidden_size), nn.LayerNorm(hidden_size),
                                        nn.LeakyReLU(0.2), nn.Linear(hidden_size, output_size))
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))

    def _encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.input_emb(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed, self.hidden.repeat(1, x.shape[0], 1).contiguous())
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class TextEncoderBiGRUCo(_BiGRUCo):
    def __init__(self, word_size: int = WORD_DIM, pos_size: int = POS_DIM, hidden_size: int = 512,
                 output_size: int = 512):
        super().__init__(word_size, hidden_size, output_size)
        self.pos_emb = nn.Linear(pos_size, word_size)

    def forward(self, words: torch.Tensor, pos: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """words (B, L, 300), pos one-hot (B, L, 15), lengths (B,) tokens -> (B, 512)."""
        return self._encode(words + self.pos_emb(pos), lengths)


class MotionEncoderBiGRUCo(_BiGRUCo):
    def __init__(self, input_size: int = 512, hidden_size: int = 1024, output_size: int = 512):
        super().__init__(input_size, hidden_size, output_size)

    def forward(self, movements: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """movements (B, T // 4, 512), lengths (B,) in steps -> (B, 512)."""
        return self._encode(movements, lengths)


# ---- GloVe -------------------------------------------------------------------------------------------
class _PlainUnpickler(pickle.Unpickler):
    """Builds lists, dicts, tuples, str, bytes and numbers; refuses every global except numpy's
    scalar/dtype reconstruction (a numpy int in a dict) and `_codecs.encode` (how protocol-2
    pickles spell bytes). Nothing else can be imported or called."""

    ALLOWED = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def read_plain_pickle(path) -> object:
    """A pickle of plain data only (see _PlainUnpickler); anything else is an IrmogenError."""
    path = Path(path)
    try:
        return _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except FileNotFoundError:
        raise IrmogenError(f"{path}: not found", code="not_found") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise IrmogenError(f"{path}: not a plain-data pickle ({e})",
                           hint="only lists/dicts of strings and numbers are read; no code in a pickle runs") from None


class WordVectors:
    """GloVe vectors of HumanML3D's vocabulary + POS one-hots, the evaluator's text input."""

    def __init__(self, glove_dir, prefix: str = "our_vab"):
        root = Path(glove_dir)
        data_file = root / f"{prefix}_data.npy"
        if not data_file.is_file():
            raise IrmogenError(f"{data_file}: not found", code="not_found",
                               hint="pass the glove folder holding our_vab_data.npy, our_vab_words.pkl, our_vab_idx.pkl")
        vectors = np.load(data_file, allow_pickle=False)
        words = read_plain_pickle(root / f"{prefix}_words.pkl")
        index = read_plain_pickle(root / f"{prefix}_idx.pkl")
        if vectors.ndim != 2 or vectors.shape[1] != WORD_DIM:
            raise IrmogenError(f"{data_file}: shape {vectors.shape}, expected (words, {WORD_DIM})")
        if not isinstance(words, list) or not isinstance(index, dict):
            raise IrmogenError(f"{root}: {prefix}_words.pkl must hold a list and {prefix}_idx.pkl a dict")
        bad = [w for w in words if w not in index or not 0 <= int(index[w]) < len(vectors)]
        if bad or "unk" not in index:
            raise IrmogenError(f"{root}: word {(bad or ['unk'])[0]!r} has no row in {data_file.name}")
        self.vectors = {str(w): vectors[int(index[w])].astype(np.float32) for w in words}

    def __call__(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """'word/POS' -> (300,) vector, (15,) one-hot."""
        word, _, pos = token.partition("/")
        one_hot = np.zeros(POS_DIM, np.float32)
        if word in self.vectors:
            cls = VIP_OF.get(word, pos if pos in POS_CLASSES else "OTHER")
            one_hot[POS_CLASSES.index(cls)] = 1.0
            return self.vectors[word], one_hot
        one_hot[POS_CLASSES.index("OTHER")] = 1.0
        return self.vectors["unk"], one_hot


def text_tokens(tokens: str) -> list[str]:
    """HumanML3D token field 'w/POS w/POS ...' -> sos + at most 20 tokens + eos, padded with unk to 22."""
    words = tokens.split()[:MAX_TEXT_TOKENS]
    seq = ["sos/OTHER", *words, "eos/OTHER"]
    return seq + ["unk/OTHER"] * (MAX_TEXT_TOKENS + 2 - len(seq))


# ---- the evaluator --------------------------------------------------------------------------------
class GuoEvaluator:
    """Same interface as our Evaluator: embed_text(captions, tokens) and embed_motion(features)."""

    embed_dim = 512

    def __init__(self, movement, text, motion, words: WordVectors, mean, std, device="cpu"):
        self.device = torch.device(device)
        self.movement, self.text, self.motion = (m.to(self.device).eval() for m in (movement, text, motion))
        self.words = words
        self.mean = np.asarray(mean, np.float32).reshape(-1)
        self.std = np.asarray(std, np.float32).reshape(-1)
        if self.mean.shape != (FEATURE_DIM,) or self.std.shape != (FEATURE_DIM,):
            raise IrmogenError(f"Guo evaluator: mean/std of shape {self.mean.shape}/{self.std.shape}, "
                               f"expected ({FEATURE_DIM},)")

    @torch.no_grad()
    def embed_text(self, captions, tokens=None) -> np.ndarray:
        """(N, 512). `tokens`: HumanML3D 'word/POS ...' strings; without them the captions are
        tagged by irmogen.data.layout.pos_tokens (a rule-based tagger, not spaCy: expect small
        differences from the published numbers)."""
        if tokens is None:
            from ..data.layout import pos_tokens
            tokens = [" ".join(f"{w}/{t}" for w, t in pos_tokens(c)) for c in captions]
        seqs = [text_tokens(t) for t in tokens]
        lengths = torch.tensor([min(len(t.split()), MAX_TEXT_TOKENS) + 2 for t in tokens])
        vecs = [[self.words(tok) for tok in seq] for seq in seqs]
        words = torch.from_numpy(np.array([[w for w, _ in v] for v in vecs], np.float32)).to(self.device)
        pos = torch.from_numpy(np.array([[p for _, p in v] for v in vecs], np.float32)).to(self.device)
        return self.text(words, pos, lengths).cpu().numpy()

    @torch.no_grad()
    def embed_motion(self, motions, batch_size: int = 64) -> np.ndarray:
        """list of (T, 263) unnormalised features -> (N, 512)."""
        out = []
        for i in range(0, len(motions), batch_size):
            # padded to 196 frames like the published evaluation batches (its convolutions see the padding)
            feats, lengths = pad_motions(motions[i:i + batch_size], MAX_FRAMES, pad_to=MAX_FRAMES)
            x = (feats - torch.from_numpy(self.mean)) / torch.from_numpy(self.std)
            x = x * (torch.arange(x.shape[1])[None, :, None] < lengths[:, None, None])   # zero padding
            movement = self.movement(x[..., :FEATURE_DIM - 4].to(self.device))
            out.append(self.motion(movement, lengths // 4).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.embed_dim), np.float32)


def load_guo_evaluator(checkpoint, glove_dir, meta_dir, device="cpu") -> GuoEvaluator:
    """`text_mot_match/model/finest.tar` + GloVe folder + the evaluator's meta folder (mean.npy, std.npy)."""
    checkpoint, meta = Path(checkpoint), Path(meta_dir)
    if not checkpoint.is_file():
        raise IrmogenError(f"{checkpoint}: not found", code="not_found")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:   # torch raises several types for a bad or unsafe file
        raise IrmogenError(f"{checkpoint}: cannot be read as a weights-only torch checkpoint ({type(e).__name__})") from None
    modules = {"movement_encoder": MovementConvEncoder(), "text_encoder": TextEncoderBiGRUCo(),
               "motion_encoder": MotionEncoderBiGRUCo()}
    for key, module in modules.items():
        if not isinstance(state, dict) or key not in state:
            raise IrmogenError(f"{checkpoint}: no {key!r} entry (expected the text_mot_match finest.tar layout)")
        try:
            module.load_state_dict(state[key])
        except RuntimeError as e:
            raise IrmogenError(f"{checkpoint}: {key} does not match the published layout: "
                               f"{str(e).splitlines()[0]}") from None
    mean_std = []
    for name in ("mean.npy", "std.npy"):
        if not (meta / name).is_file():
            raise IrmogenError(f"{meta / name}: not found", code="not_found",
                               hint="pass the evaluator's meta folder (e.g. t2m/Comp_v6_KLD01/meta)")
        mean_std.append(np.load(meta / name, allow_pickle=False))
    return GuoEvaluator(modules["movement_encoder"], modules["text_encoder"], modules["motion_encoder"],
                        WordVectors(glove_dir), *mean_std, device=device)

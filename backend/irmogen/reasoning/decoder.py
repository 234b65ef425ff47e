"""The constrained, KV-cached, streaming decoder that writes an IRMoGen trace in one pass.

Why not `generate()`: the plan strings and tags are constants of the grammar (template.py), so we
feed each constant stretch in ONE forward call instead of sampling it token by token, and we apply
the grammar as logit masks:
  * inside `<Motion>...</Motion>` only code tokens and `</Motion>` are allowed; `</Motion>` is masked
    until `min_codes` codes exist and forced at `max_codes`;
  * outside, every motion token and every special token (bos, pad, unk; eos too) is masked;
  * a free-text segment (analysis, assessment, refinement) ends when the decoded text contains its
    closing string, or at `max_text_tokens`, after which the closing string is forced.
A sampled token is only fed to the model together with whatever follows it, so when the token that
completes a closing string carries text the grammar does not allow, it is dropped unfed and the
closing string is forced in its place: no cache rewind is ever needed.

After each refinement: exactly "No refinements needed." (outer spaces ignored) -> the finish plan and
`</think>` are forced and decoding stops; otherwise the refine plan and the next `[generate]<Motion>`
are forced. Once `max_rounds` motions exist, the last refinement is forced to "No refinements
needed." (the model still writes that round's assessment), so a trace always finishes.

Events stream out as soon as each piece exists (a motion's clip is decoded while the rest of the
trace is still to come); cancellation is checked before every forward call and every forced chunk.
Needs torch and a MotionLLM; must not import bpy.
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from ..errors import IrmogenError
from ..llm.prompt_encoder import check_guidance
from ..llm.tokens import MOTION_START
from . import template as T
from .parser import Round, Trace
from .assessors import check_name as check_assessor
from .assessors import contradictions, facts_of, measured_assessment
from .textguard import BAN, CLOSE, OK, TextGuard, clean_end

MAX_CODES = 49            # 196 frames at 20 fps: the longest motion every published model saw
LENGTH_TOLERANCE = 0.1    # seconds -> codes window: +-10 % (at least +-1 code)
MAX_TEXT_TOKENS = 256     # cap of one free-text segment; the paper's rounds are ~100-150 text tokens
PROGRESS_EVERY = 32       # tokens between progress events
GUIDED_MASKS = ("codes", "codes_or_end")   # guidance acts on motion codes only
MAX_TRIES = 64            # candidates the text guard may refuse at one position before the span closes
# A measured assessment that still finds gaps when the round cap ends the trace says why it stops.
LAST_ROUND_NOTE = "This was the last round allowed, so this motion is kept."


# ---- events ----------------------------------------------------------------------------------
@dataclass
class AnalysisEvent:
    text: str
    tokens: int
    kind: str = field(default="analysis", init=False)


@dataclass
class MotionEvent:
    round: int            # 1-based
    codes: list[int]
    clip: object          # irmogen.clip.Clip
    tokens: int           # response tokens so far
    kind: str = field(default="motion", init=False)


@dataclass
class AssessmentEvent:
    round: int
    text: str | None
    refinement: str | None
    tokens: int
    author: str = "model"                 # who wrote the assessment: "model" or "measured"
    contradicted: list = field(default_factory=list)   # [{"clause", "fact"}] (assessor "checked")
    kind: str = field(default="assessment", init=False)


@dataclass
class ProgressEvent:
    tokens: int
    round: int
    kind: str = field(default="progress", init=False)


@dataclass
class DoneEvent:
    trace: Trace
    final_clip: object
    trace_text: str               # the response text, exactly the decoded response ids
    ids: list[int]                # prompt + response token ids (response ends with eos)
    prompt_length: int
    steps: list[tuple[int, str]]  # (position in ids, mask name) of every SAMPLED token
    forward_calls: int
    kind: str = field(default="done", init=False)


@dataclass
class CancelledEvent:
    trace: Trace                  # the rounds completed before the cancel
    tokens: int
    kind: str = field(default="cancelled", init=False)


class _Cancelled(Exception):
    pass


# ---- length control --------------------------------------------------------------------------
def code_window(seconds: float | None = None, min_codes: int | None = None, max_codes: int | None = None,
                fps: float = 20.0, tolerance: float = LENGTH_TOLERANCE) -> tuple[int, int]:
    """(min_codes, max_codes) for a target duration: seconds * fps / 4 codes (4 frames per code)."""
    lo, hi = 1, MAX_CODES
    if seconds is not None:
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise IrmogenError(f"seconds: {seconds!r} must be a positive number")
        n = seconds * fps / 4.0
        lo = min(MAX_CODES, max(1, math.floor(min(n * (1 - tolerance), n - 1))))
        hi = min(MAX_CODES, max(lo, math.ceil(max(n * (1 + tolerance), n + 1))))
    lo = lo if min_codes is None else int(min_codes)
    hi = hi if max_codes is None else int(max_codes)
    if not 1 <= lo <= hi <= MAX_CODES:
        raise IrmogenError(f"motion length: min_codes={lo}, max_codes={hi}; need 1 <= min <= max <= {MAX_CODES}",
                           hint=f"at most {MAX_CODES} codes = {MAX_CODES * 4} frames ({MAX_CODES * 4 / fps:g} s)")
    return lo, hi


# ---- one KV-cached pass --------------------------------------------------------------------
class _Pass:
    """The growing token sequence, the model's cache over its fed part, and the sampler.

    With guidance (scale s > 1) every fed token goes to two rows of one batch: the cache after the
    text's soft prefix and the cache after the empty text's. Motion codes are drawn from
    u + s * (c - u) of the two rows' logits (classifier-free guidance, as MoMask and LlamaGen decode):
    what the text changes about the next code is amplified, so different texts stop sharing one
    motion under greedy decoding. Text tokens are drawn from the text's row alone."""

    def __init__(self, decoder: "ReasoningDecoder", cancel: Callable[[], bool], generator, greedy: bool,
                 temperature: float, top_p: float, guidance: float = 1.0):
        self.d, self.cancel, self.generator = decoder, cancel, generator
        self.greedy, self.temperature, self.top_p = greedy, temperature, top_p
        self.guidance = guidance
        self.unconditioned: torch.Tensor | None = None   # the empty text's logits at the last feed
        self.ids: list[int] = []
        self.pending: list[int] = []   # appended, not yet fed to the model
        self.cache = None
        self.steps: list[tuple[int, str]] = []
        self.forward_calls = 0
        self.prompt_length = 0
        self.reported = 0              # response tokens at the last progress event

    def progress_due(self) -> bool:
        if self.tokens - self.reported < self.d.progress_every:
            return False
        self.reported = self.tokens
        return True

    def append(self, ids: list[int]) -> None:
        if self.cancel():
            raise _Cancelled
        self.ids += ids
        self.pending += ids

    def force(self, text: str) -> None:
        self.append(self.d.encode_forced(text))

    @torch.inference_mode()
    def _feed(self) -> torch.Tensor:
        if self.cancel():
            raise _Cancelled
        rows = 2 if self.guidance != 1.0 else 1
        x = torch.tensor([self.pending] * rows, dtype=torch.long, device=self.d.device)
        out = self.d.lm(input_ids=x, past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.cache, self.pending = out.past_key_values, []
        self.forward_calls += 1
        logits = out.logits[:, -1].float()
        self.unconditioned = logits[1] if rows == 2 else None
        return logits[0]

    def sample(self, mask: str) -> int:
        """Feed what is pending, draw one token under the named mask, append it (unfed)."""
        logits = self._feed()
        if self.unconditioned is not None and mask in GUIDED_MASKS:
            logits = self.unconditioned + self.guidance * (logits - self.unconditioned)
        logits = logits.masked_fill(~self.d.masks[mask], float("-inf"))
        if self.greedy:
            tok = int(torch.argmax(logits))
        else:
            tok = int(torch.multinomial(_top_p(torch.softmax(logits / self.temperature, -1), self.top_p), 1,
                                        generator=self.generator))
        self.steps.append((len(self.ids), mask))
        self.ids.append(tok)
        self.pending.append(tok)
        return tok

    def sample_guarded(self, mask: str, static: torch.Tensor, judge) -> tuple[str, str]:
        """Feed what is pending, then draw tokens under the mask (best first when greedy) until
        `judge(token)` accepts one: OK appends it (unfed); CLOSE ends the span (nothing appended);
        when no candidate is acceptable within MAX_TRIES the span closes too."""
        logits = self._feed().masked_fill(~(self.d.masks[mask] & static), float("-inf"))
        probs = None
        for _ in range(MAX_TRIES):
            if not torch.isfinite(logits).any():
                break
            if self.greedy:
                tok = int(torch.argmax(logits))
            else:
                if probs is None:
                    probs = _top_p(torch.softmax(logits / self.temperature, -1), self.top_p)
                tok = (int(torch.multinomial(probs, 1, generator=self.generator)) if probs.sum() > 0
                       else int(torch.argmax(logits)))
            verdict, add = judge(tok)
            if verdict == OK:
                self.steps.append((len(self.ids), mask))
                self.ids.append(tok)
                self.pending.append(tok)
                return OK, add
            if verdict == CLOSE:
                return CLOSE, add
            logits[tok] = float("-inf")
            if probs is not None:
                probs[tok] = 0.0
        return CLOSE, ""

    def drop_last(self) -> None:
        """Forget the last sampled token (never fed: it is still pending)."""
        assert self.pending and self.steps and self.steps[-1][0] == len(self.ids) - 1
        self.ids.pop()
        self.pending.pop()
        self.steps.pop()

    @property
    def tokens(self) -> int:
        return len(self.ids) - self.prompt_length


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches top_p."""
    if top_p >= 1.0:
        return probs
    sorted_p, order = torch.sort(probs, descending=True)
    drop = torch.cumsum(sorted_p, 0) - sorted_p > top_p
    return probs.scatter(0, order, sorted_p.masked_fill(drop, 0.0))


def overlap(text: str, forced: str) -> int:
    """Length of the longest suffix of `text` that is a prefix of `forced` (shorter than `forced`)."""
    for j in range(min(len(text), len(forced) - 1), 0, -1):
        if text.endswith(forced[:j]):
            return j
    return 0


# ---- the decoder -----------------------------------------------------------------------------
class ReasoningDecoder:
    """Writes IRMoGen traces (and stage-1 responses) with a MotionLLM; see the module docstring."""

    def __init__(self, model, progress_every: int = PROGRESS_EVERY, text_guard: bool = True):
        self.model, self.lm, self.tokenizer = model, model.lm, model.tokenizer
        self.layout, self.device = model.layout, model.device
        self.progress_every = progress_every
        self.eos_id = self.tokenizer.eos_token_id
        self.bos_token = self.tokenizer.bos_token or ""
        self.masks = self._build_masks()
        self.guard = TextGuard(self.tokenizer, self.masks["text"].shape[0]) if text_guard else None
        # IRG's training tokenized every template piece on its own (tags, plans, newlines); models
        # trained by this project saw each forced stretch encoded in one go (train/sequences.py).
        self.piecewise = getattr(model, "template_tokens", "stretch") == "piecewise"
        self._check_round_trip()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_forced(self, text: str) -> list[int]:
        """Ids of a forced stretch of template text: piece by piece for IRG checkpoints."""
        if not self.piecewise:
            return self.encode(text)
        return [i for piece in T.template_pieces(text) for i in self.encode(piece)]

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _build_masks(self) -> dict[str, torch.Tensor]:
        """Boolean 'allowed' masks over the LM's output vocabulary (which may exceed the tokenizer's)."""
        v = self.lm.get_output_embeddings().weight.shape[0]
        ids = torch.arange(v, device=self.device)
        text = ids < self.layout.start_id
        for s in self.tokenizer.all_special_ids:
            text[s] = False
        with_eos = text.clone()
        with_eos[self.eos_id] = True
        codes = (ids >= self.layout.first_code_id) & (ids < self.layout.vocab_size)
        with_end = codes.clone()
        with_end[self.layout.end_id] = True
        lead = text & _leading_space(self.tokenizer, v).to(self.device)
        return {"text": text, "text_or_eos": with_eos, "text_lead": lead, "codes": codes, "codes_or_end": with_end}

    def _check_round_trip(self) -> None:
        """Forced chunks are encoded on their own: their decoded text must be themselves."""
        for s in (T.RESPONSE_OPEN, T.AFTER_ANALYSIS + MOTION_START, T.AFTER_MOTION[:-1], T.REFINEMENT_PREFIX[:-1],
                  T.AFTER_REFINEMENT + T.FINISH, T.NEXT_ROUND + MOTION_START):
            if self.decode(self.encode_forced(s)) != s:
                raise IrmogenError(f"tokenizer does not round-trip the template text {s[:40]!r}",
                                   code="bad_model", hint="the tokenizer adds or drops spaces around text")

    def new_pass(self, *, greedy=True, temperature=1.0, top_p=1.0, seed=None, cancel=None,
                 condition: str | None = None, guidance: float | None = None) -> _Pass:
        """A fresh pass; for a model with a prompt encoder its cache starts after the soft prefix
        of `condition` (the user's text; "" for tasks without one), as training fed it.
        `guidance`: the classifier-free guidance scale of motion codes (None: the model's default;
        1: none); it needs a prompt encoder and acts only when there is a condition text."""
        if not greedy and not (temperature > 0 and 0 < top_p <= 1):
            raise IrmogenError(f"sampling: temperature={temperature} must be > 0 and top_p={top_p} in (0, 1]")
        scale = self._guidance_scale(guidance)   # checked even when there is no text to guide by
        scale = scale if condition else 1.0
        generator = torch.Generator(device=self.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        p = _Pass(self, _cancel_check(cancel), generator, greedy, temperature, top_p, scale)
        prefix = getattr(self.model, "prefix_cache", None)
        if prefix is not None:
            p.cache = prefix(condition, unconditioned=True) if scale != 1.0 else prefix(condition)
        return p

    def _guidance_scale(self, asked: float | None) -> float:
        """The guidance scale a pass uses: `asked`, or the model's default when None."""
        default = getattr(self.model, "guidance", 1.0)
        if asked is None:
            return default
        scale = check_guidance(asked)
        if scale != 1.0 and getattr(self.model, "prompt_encoder", None) is None:
            raise IrmogenError(f"guidance {asked!r}: this model has no prompt encoder to guide by (use 1)")
        return scale

    # ---- pieces --------------------------------------------------------------------------
    def sample_text(self, p: _Pass, stop: str | None, after: Callable[[str], str] | str,
                    cap: int, round_: int = 0, lead: str = "", piece: int | None = None) -> Iterator:
        """Sample free text until the span closes (its closing string, or eos when stop is None) or
        `cap` tokens; then append the forced continuation `after(body)` (which starts with `stop`).
        Returns the body text. With the text guard (textguard.py) markup, same-word contrasts and
        repeats are never sampled and the closing is forced as template pieces.

        With `lead` (a space), the first token must start with it and the body excludes it.
        `piece` (piecewise models): where in `p.ids` the template piece holding this span began; the
        closing string's own piece then continues it, tokenized as one text (`_continue_piece`).
        """
        if self.guard is None:
            return (yield from self._sample_text_unguarded(p, stop, after, cap, round_, lead))
        mask = "text" if stop is not None else "text_or_eos"
        start, raw, closed = len(p.ids), "", False
        for n in range(cap):
            name = "text_lead" if lead and n == 0 else mask
            verdict, add = p.sample_guarded(name, self.guard.static_mask(stop, self.device),
                                            lambda tok: self._judge(raw, tok, stop))
            if p.progress_due():
                yield ProgressEvent(p.tokens, round_)
            raw += add
            if verdict != OK:
                closed = True
                break
        carried = add if closed and stop is not None else ""   # text the closing token held before its markup
        if piece is not None and self.piecewise:
            text = self.decode(p.ids[start:]) + carried
            body = text[len(lead):] if text.startswith(lead) else text
            forced = after(body) if callable(after) else after
            head = T.template_pieces(forced)[0]  # starts with `stop`; IRG wrote it in the span's piece
            self._continue_piece(p, piece, carried + head)
            p.force(forced[len(head):])
            return body
        if carried:
            p.append(self.encode(carried))
        text = self.decode(p.ids[start:])    # the guard's `raw` is per-token text; this is exact
        body = text[len(lead):] if text.startswith(lead) else text
        if stop is None:
            p.append([self.eos_id])
            return body
        p.force(after(body) if callable(after) else after)
        return body

    def _continue_piece(self, p: _Pass, piece: int, text: str) -> None:
        """Append `text` as the rest of the template piece that began at `p.ids[piece]`, with the ids
        the tokenizer gives the whole piece (IRG encoded "Assessment: A\nRefinement: R" in one go, so
        "motion." then "\nRefinement:" may be written with a merged ".\n"). When the ids so far are
        not the start of that encoding (the model sampled another split), `text` is encoded alone."""
        so_far = p.ids[piece:]
        whole = self.encode(self.decode(so_far) + text)
        p.append(whole[len(so_far):] if whole[:len(so_far)] == so_far else self.encode(text))

    def _judge(self, raw: str, tok: int, stop: str | None) -> tuple[str, str]:
        if tok == self.eos_id:
            return (CLOSE, "") if stop is None and raw.strip() and clean_end(raw) else (BAN, "")
        return self.guard.verdict(raw, tok, stop)

    def _sample_text_unguarded(self, p: _Pass, stop, after, cap: int, round_: int, lead: str) -> Iterator:
        start, mask = len(p.ids), ("text" if stop is not None else "text_or_eos")
        for n in range(cap):
            tok = p.sample("text_lead" if lead and n == 0 else mask)
            if p.progress_due():
                yield ProgressEvent(p.tokens, round_)
            if stop is None and tok == self.eos_id:
                return self.decode(p.ids[start:-1])
            text = self.decode(p.ids[start:])[len(lead):]
            i = text.find(stop) if stop is not None else -1
            if i >= 0:
                body = text[:i]
                forced = after(body) if callable(after) else after
                if forced.startswith(text[i:]):
                    p.force(forced[len(text) - i:])
                    return body
                p.drop_last()  # the closing token carries text the grammar does not allow
                break
        text = self.decode(p.ids[start:])[len(lead):]
        if stop is None:
            p.append([self.eos_id])
            return text
        j = overlap(text, stop)
        body = text[:len(text) - j]
        forced = after(body) if callable(after) else after
        p.force(forced[j:])
        return body

    def sample_motion(self, p: _Pass, min_codes: int, max_codes: int, round_: int = 0) -> Iterator:
        """After `<Motion>`: sample codes, then `</Motion>` (masked before min, forced at max)."""
        codes: list[int] = []
        while len(codes) < max_codes:
            tok = p.sample("codes_or_end" if len(codes) >= min_codes else "codes")
            if p.progress_due():
                yield ProgressEvent(p.tokens, round_)
            if tok == self.layout.end_id:
                return codes
            codes.append(tok - self.layout.first_code_id)
        p.append([self.layout.end_id])
        return codes

    # ---- the trace -------------------------------------------------------------------------
    def run(self, prompt_caption: str, *, seconds: float | None = None, min_codes: int | None = None,
            max_codes: int | None = None, max_rounds: int = 5, greedy: bool = True, temperature: float = 1.0,
            top_p: float = 1.0, seed: int | None = None, max_text_tokens: int = MAX_TEXT_TOKENS,
            cancel=None, decode_clips: bool = True, assessor: str = "model",
            guidance: float | None = None) -> Iterator:
        """Write one IRMoGen trace for a caption; yields the events above, ending with done or cancelled.

        `decode_clips=False` leaves every clip None (callers that only need codes, e.g. evaluation).
        `assessor` (assessors.py): "model" writes its own assessments; "measured" forces the
        measurements' assessment and refinement instead; "checked" marks contradicted clauses.
        """
        check_assessor(assessor)
        if not (isinstance(max_rounds, int) and max_rounds >= 1) or max_text_tokens < 1:
            raise IrmogenError(f"max_rounds={max_rounds!r} and max_text_tokens={max_text_tokens!r} must be >= 1")
        lo, hi = code_window(seconds, min_codes, max_codes, fps=self.model.config.fps)
        caption = T.normalize_caption(prompt_caption, self.tokenizer)
        p = self.new_pass(greedy=greedy, temperature=temperature, top_p=top_p, seed=seed, cancel=cancel,
                          condition=caption, guidance=guidance)
        trace, clips = Trace(), []
        try:
            p.append(self.encode(T.build_prompt(caption, self.bos_token)))
            p.prompt_length = len(p.ids)
            p.force(T.RESPONSE_OPEN)
            trace.analysis = yield from self.sample_text(p, T.ANALYZE_CLOSE, T.AFTER_ANALYSIS + MOTION_START,
                                                         max_text_tokens)
            yield AnalysisEvent(trace.analysis, p.tokens)
            while not trace.finished:
                k = len(trace.rounds) + 1
                codes = yield from self.sample_motion(p, lo, hi, k)
                clips.append(self.model.codes_to_clip(codes, text=caption) if decode_clips else None)
                yield MotionEvent(k, codes, clips[-1], p.tokens)
                p.force(T.AFTER_MOTION[:-len(T.LEAD)])
                piece = len(p.ids) - len(self.encode_forced(T.ASSESSMENT_PREFIX[:-len(T.LEAD)]))  # "Assessment:"
                rnd = Round(codes)
                refine_tag = T.REFINEMENT_PREFIX[:-len(T.LEAD)]
                if assessor == "measured":
                    self._force_measured(p, rnd, caption, k >= max_rounds, piece)
                elif k >= max_rounds:
                    rnd.assessment = yield from self.sample_text(
                        p, refine_tag, T.REFINEMENT_PREFIX + T.NO_REFINEMENT + T.AFTER_REFINEMENT + T.FINISH,
                        max_text_tokens, k, lead=T.LEAD, piece=piece)
                    rnd.refinement = T.NO_REFINEMENT
                else:
                    rnd.assessment = yield from self.sample_text(p, refine_tag, refine_tag, max_text_tokens, k,
                                                                 lead=T.LEAD, piece=piece)
                    rnd.refinement = yield from self.sample_text(p, T.ASSESS_CLOSE, _after_refinement,
                                                                 max_text_tokens, k, lead=T.LEAD)
                if assessor == "checked":
                    rnd.contradicted = contradictions(rnd.assessment, caption, facts_of(self.model, codes))
                trace.rounds.append(rnd)
                trace.finished = trace.satisfied
                yield AssessmentEvent(k, rnd.assessment, rnd.refinement, p.tokens, rnd.author, list(rnd.contradicted))
            p.append([self.eos_id])
        except _Cancelled:
            trace.finished = False
            yield CancelledEvent(trace, p.tokens)
            return
        response = p.ids[p.prompt_length:]
        yield DoneEvent(trace, clips[-1], self.decode(response), list(p.ids), p.prompt_length,
                        list(p.steps), p.forward_calls)

    def _force_measured(self, p: _Pass, rnd: Round, caption: str, last: bool, piece: int) -> None:
        """The round's assessment and refinement written from measurements, forced into the trace
        (each text encoded on its own, as a free text of the trace is; piecewise models: the whole
        assess piece in one go, as IRG's training wrote it)."""
        rnd.assessment, rnd.refinement = measured_assessment(caption, facts_of(self.model, rnd.codes))
        if last and rnd.refinement != T.NO_REFINEMENT:   # the grammar ends on "No refinements needed."
            rnd.assessment += f" {LAST_ROUND_NOTE}"
            rnd.refinement = T.NO_REFINEMENT
        rnd.author = "measured"
        if self.piecewise:
            self._continue_piece(p, piece, T.LEAD + rnd.assessment + T.REFINEMENT_PREFIX + rnd.refinement)
            p.force(_after_refinement(rnd.refinement))
            return
        p.append(self.encode(T.LEAD + rnd.assessment))
        p.force(T.REFINEMENT_PREFIX[:-len(T.LEAD)])
        p.append(self.encode(T.LEAD + rnd.refinement))
        p.force(_after_refinement(rnd.refinement))

    # ---- single responses (stage-1 tasks) ----------------------------------------------------
    def respond_motion(self, prompt: str, *, min_codes=1, max_codes=MAX_CODES, cancel=None, condition=None,
                       **sampling) -> list[int]:
        """Codes of the motion a prompt asks for. `<Motion>` is forced unless the prompt ends with it.
        `condition`: the user's text for a model's prompt encoder (None: none)."""
        p = self.new_pass(cancel=cancel, condition=condition, **sampling)
        ids = self.encode(prompt if prompt.endswith(MOTION_START) else prompt + MOTION_START)
        return _drain(p, ids, self.sample_motion(p, min_codes, max_codes))

    def respond_text(self, prompt: str, *, max_tokens: int = MAX_TEXT_TOKENS, cancel=None, condition=None,
                     **sampling) -> str:
        """The text answer to a prompt, up to eos (motion tokens masked); `condition` as respond_motion."""
        p = self.new_pass(cancel=cancel, condition=condition, **sampling)
        return _drain(p, self.encode(prompt), self.sample_text(p, None, "", max_tokens))


_LEADING_SPACE_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # tokenizer -> mask


def _leading_space(tokenizer, vocab: int) -> torch.Tensor:
    """(vocab,) bool: does the token's text start with a space? Each id is decoded after an anchor
    token, because some tokenizers drop a leading space when a token is decoded alone."""
    key = tokenizer
    if key not in _LEADING_SPACE_CACHE:
        anchor = tokenizer("a", add_special_tokens=False)["input_ids"][:1]
        prefix = tokenizer.decode(anchor)
        texts = tokenizer.batch_decode([anchor + [i] for i in range(len(tokenizer))],
                                       clean_up_tokenization_spaces=False)
        mask = torch.zeros(vocab, dtype=torch.bool)
        mask[:len(texts)] = torch.tensor([t[len(prefix):].startswith(" ") for t in texts])
        _LEADING_SPACE_CACHE[key] = mask
    return _LEADING_SPACE_CACHE[key]


def _after_refinement(refinement: str) -> str:
    done = refinement.strip() == T.NO_REFINEMENT
    return T.AFTER_REFINEMENT + (T.FINISH if done else T.NEXT_ROUND + MOTION_START)


def _cancel_check(cancel) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if hasattr(cancel, "is_set"):
        return cancel.is_set
    if callable(cancel):
        return cancel
    raise IrmogenError(f"cancel: expected a callable or threading.Event, got {type(cancel).__name__}")


def _drain(p: _Pass, prompt_ids: list[int], gen):
    """Feed the prompt, run a piece generator to its return value (ignoring its progress events)."""
    try:
        p.append(prompt_ids)
        p.prompt_length = len(p.ids)
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value
    except _Cancelled:
        raise IrmogenError("cancelled by the caller", code="cancelled") from None

"""`irmogen eval`: the command line over `measure` (one model) and `stages` (a training run).

The rows and the protocol are described in `measure`; the tables are written by `table`.
Needs torch; never imports bpy.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import IrmogenError
from . import metrics as M
from .measure import CAPTION_CHOICES, MODES, ROUND_STYLES, caption_draws, evaluate_model, refinement_effect
from .retrieval import Evaluator
from .stages import STAGES, format_stage_table, stage_table, write_table
from .table import format_table

__all__ = ["add_arguments", "run", "evaluate_model", "format_table", "caption_draws", "refinement_effect"]


def add_arguments(parser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model directory")
    which.add_argument("--run", dest="run_dir", metavar="RUN", help="an `irmogen train all` output folder: the table of every stage (model card)")
    parser.add_argument("--stages", nargs="+", help="with --run: the stage folders to measure (default: base "
                        "stage1 stage2 stage2_own stage3, those that exist)")
    parser.add_argument("--data", required=True, help="dataset folder (HumanML3D layout)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", help="write the metrics as JSON here")
    parser.add_argument("--repetitions", type=int, default=M.REPETITIONS)
    parser.add_argument("--limit", type=int, help="evaluate only the first N clips of the split")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--rounds", default="trace", choices=ROUND_STYLES,
                        help="IRMoGen rounds as one trace (stage 2/3) or the stage-1 chain of calls")
    parser.add_argument("--max-rounds", type=int, default=5)
    parser.add_argument("--captions", default="one", choices=CAPTION_CHOICES,
                        help="one caption per clip, drawn with --seed (the field's protocol), or every caption as a "
                             "text of its own (about 5x the texts: tighter intervals on small splits)")
    parser.add_argument("--evaluator", help="our evaluator.safetensors (default: the one in the model directory)")
    parser.add_argument("--guo-checkpoint", help="Guo et al.'s text_mot_match/model/finest.tar (with --glove, --guo-meta)")
    parser.add_argument("--glove", help="folder with our_vab_data.npy, our_vab_words.pkl, our_vab_idx.pkl")
    parser.add_argument("--guo-meta", help="the Guo evaluator's meta folder with mean.npy and std.npy")
    parser.add_argument("--mm-texts", type=int, default=100, help="texts for MModality (0 skips it)")
    parser.add_argument("--mm-repeats", type=int, default=30, help="sampled generations per MModality text")
    parser.add_argument("--paraphrases", nargs="?", const="default", metavar="TSV",
                        help="also measure with each caption replaced by its paraphrase (caption<TAB>paraphrase; "
                             "default: the shipped test-split set); scored against the original captions")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance scale of motion codes "
                        "(1: none; default: the model's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")


def run(args) -> int:
    evaluator = None
    if args.guo_checkpoint:
        if not (args.glove and args.guo_meta):
            raise IrmogenError("--guo-checkpoint needs --glove and --guo-meta too")
        from .guo import load_guo_evaluator
        evaluator = load_guo_evaluator(args.guo_checkpoint, args.glove, args.guo_meta)
    elif args.evaluator:
        evaluator = Evaluator.load(args.evaluator)
    if args.run_dir:
        return run_stages(args, evaluator)
    result = evaluate_model(args.model, args.data, args.split, args.repetitions, evaluator, tuple(args.modes),
                            limit=args.limit, seed=args.seed, max_rounds=args.max_rounds, rounds=args.rounds,
                            mm_texts=args.mm_texts, mm_repeats=args.mm_repeats, captions=args.captions,
                            guidance=args.guidance, device=args.device)
    print(format_table(result))
    if args.paraphrases:
        result["paraphrased"] = _paraphrased(args, evaluator, result)
        print("\nWith the paraphrases as prompts (scored against the original captions):")
        print(format_table(result["paraphrased"]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


def _paraphrased(args, evaluator, originals: dict) -> dict:
    """The same rows with every measured caption replaced by its paraphrase; a caption without one
    is an error (the comparison would mix the two sets)."""
    from ..data.paraphrases import DEFAULT, read_paraphrases
    table = read_paraphrases(DEFAULT if args.paraphrases == "default" else args.paraphrases)
    missing = sorted({t["caption"] for t in originals["texts"]} - set(table))
    if missing:
        raise IrmogenError(f"--paraphrases: {len(missing)} measured caption(s) have no paraphrase, e.g. {missing[0]!r}",
                           hint="add them to the paraphrase file, or measure the split the file was written for")
    modes = tuple(m for m in args.modes if m != "real")
    return evaluate_model(args.model, args.data, args.split, args.repetitions, evaluator, modes, limit=args.limit,
                          seed=args.seed, max_rounds=args.max_rounds, rounds=args.rounds, mm_texts=0,
                          captions=args.captions, prompts=table, guidance=args.guidance, device=args.device)


def run_stages(args, evaluator) -> int:
    if evaluator is None:
        evaluator = Evaluator.load(Path(args.run_dir) / "evaluator")
    table = stage_table(args.run_dir, args.data, evaluator, tuple(args.stages or STAGES), split=args.split,
                        repetitions=args.repetitions, limit=args.limit, seed=args.seed, max_rounds=args.max_rounds,
                        mm_texts=args.mm_texts, mm_repeats=args.mm_repeats, captions=args.captions,
                        device=args.device)
    print(format_stage_table(table))
    if args.out:
        write_table(table, args.out)
    return 0

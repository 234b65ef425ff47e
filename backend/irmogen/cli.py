"""The `irmogen` command (also `python -m irmogen`).

Each subcommand parses its flags and calls one function in a room that knows nothing about the
command line. User mistakes (IrmogenError) print one line on stderr and exit with status 2; they
never show a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from . import __version__, commands
from .errors import IrmogenError


def _motion_import(a) -> None:
    from .io import load_motion

    clip = load_motion(a.file, asf=a.asf)
    out = Path(a.out)
    if out.suffix.lower() == ".bvh":
        from .io import save_bvh

        save_bvh(clip, out)
    else:
        clip.save(out)
    src = clip.meta.get("source_format", Path(a.file).suffix.lstrip("."))
    print(f"{a.file}: {src} -> {out}: {clip.num_frames} frames at {clip.fps:g} fps ({clip.seconds:.2f} s)")


def _motion_export(a) -> None:
    from .io import load_motion, save_bvh

    clip = load_motion(a.clip)
    save_bvh(clip, a.out)
    print(f"{a.clip} -> {a.out}: {clip.num_frames} frames, SMPL-22 skeleton, Y up, metres")


def _motion_clean(a) -> None:
    from .feet import clean_feet
    from .io import load_motion

    clip, report = clean_feet(load_motion(a.clip))
    clip.save(a.out)
    print(f"{a.clip} -> {a.out}: {report.summary()}")


def _data_prepare(a) -> None:
    from .data.prepare import prepare_dataset

    if not any((a.cmu, a.hdm05, a.deepmimic, a.humanml3d)):
        raise IrmogenError("data prepare: give at least one source (--cmu, --hdm05, --deepmimic or --humanml3d)")
    for flag in ("cmu", "hdm05", "deepmimic", "humanml3d"):
        d = getattr(a, flag)
        if d is not None and not Path(d).is_dir():
            raise IrmogenError(f"data prepare: --{flag} {d} is not a folder")
    prepare_dataset(a.out, cmu=a.cmu, hdm05=a.hdm05, deepmimic=a.deepmimic, humanml3d=a.humanml3d,
                    overwrite=a.overwrite)


def _motion(p) -> None:
    motion = p.add_subparsers(dest="action", required=True)
    imp = motion.add_parser("import", help="BVH (.bvh/.bvh.gz), ASF/AMC or DeepMimic JSON -> clip .npz at 20 fps")
    imp.add_argument("file")
    imp.add_argument("--asf", help="skeleton file for an .amc motion (default: the .asf beside it)")
    imp.add_argument("--out", required=True, help="clip .npz (or .bvh) to write")
    imp.set_defaults(run=_motion_import)
    exp = motion.add_parser("export", help="clip .npz -> BVH on the SMPL-22 skeleton (Y up, metres)")
    exp.add_argument("clip")
    exp.add_argument("--out", required=True)
    exp.set_defaults(run=_motion_export)
    cln = motion.add_parser("clean", help="lock planted feet, remove foot sliding and ground penetration")
    cln.add_argument("clip", help="clip .npz (or any importable motion file)")
    cln.add_argument("--out", required=True, help="clip .npz to write")
    cln.set_defaults(run=_motion_clean)


def _data(p) -> None:
    prep = p.add_subparsers(dest="action", required=True).add_parser(
        "prepare", help="build a HumanML3D-layout dataset from real motion capture")
    prep.add_argument("--out", required=True)
    prep.add_argument("--cmu", help="CMU folder (bvh_cc/, bvh_daz/, amc/, bvh_cgspeed/, cmu_descriptions.csv)")
    prep.add_argument("--hdm05", help="HDM05 folder (train/, test/)")
    prep.add_argument("--deepmimic", help="DeepMimic clips folder")
    prep.add_argument("--humanml3d", help="a folder with cmu_captions.csv (human captions of CMU trials; default: "
                      "../humanml3d beside --cmu), or a HumanML3D dataset folder (new_joints/, texts/, splits)")
    prep.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    prep.set_defaults(run=_data_prepare)


def _module_command(module: str):
    """Arguments from a module exposing add_arguments(parser) and run(args) -> int."""
    def build(p) -> None:
        m = importlib.import_module(module)
        m.add_arguments(p)
        p.set_defaults(run=m.run)
    return build


def _train(p) -> None:
    importlib.import_module("irmogen.train.__main__").add_commands(p.add_subparsers(dest="stage", required=True))


def _engine(p) -> None:
    actions = p.add_subparsers(dest="action", required=True)
    _module_command("irmogen.engine.build")(actions.add_parser(
        "build", help="write stage1.jsonl / stage2.jsonl from a dataset"))
    _module_command("irmogen.engine.own")(actions.add_parser(
        "own", help="add records built on a model's own first motions, judged against the goals"))
    merge = actions.add_parser("merge", help="join `engine own --shard` outputs after an engine's records")
    m = importlib.import_module("irmogen.engine.own")
    m.add_merge_arguments(merge)
    merge.set_defaults(run=m.run_merge)


def _extend(p) -> None:
    from .timeline_commands import add_extend

    add_extend(p)


# name -> (help, builder). Only the chosen command's builder runs, so `irmogen motion ...` never
# imports torch and `irmogen --help` answers at once.
COMMANDS = {
    "motion": ("import and export motion files", _motion),
    "generate": ("text -> motion, reasoning in assess/refine rounds", commands.add_generate),
    "extend": ("continue a take with new motion from its last frame", _extend),
    "refine": ("change a motion by an instruction (or toward a new text with --direct)", commands.add_refine),
    "assess": ("how well a motion matches a text, and how to refine it", commands.add_assess),
    "caption": ("describe a motion in words", commands.add_caption),
    "data": ("build training datasets", _data),
    "engine": ("the data engine: stage-1 records and stage-2 reasoning traces", _engine),
    "train": ("train a model stage by stage (or `train all`)", _train),
    "serve": ("the backend server: JSON lines on stdin/stdout (used by the Blender add-on)",
              _module_command("irmogen.serve")),
    "eval": ("R-Precision, FID, MM-Dist, Diversity, MModality of a model", _module_command("irmogen.evaluate.run")),
}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="irmogen", description="IRMoGen backend: motion import/export, data, models")
    ap.add_argument("--version", action="version", version=f"irmogen {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, (text, builder) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        if name == chosen:
            builder(p)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        rc = args.run(args)
    except IrmogenError as e:
        print(f"irmogen: error: {e}", file=sys.stderr)
        if e.hint:
            print(f"irmogen: hint: {e.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("irmogen: interrupted", file=sys.stderr)
        return 130
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m irmogen.train STAGE ...`: the training commands without the rest of the CLI, e.g.
under `accelerate launch --config_file dist/cpu_gloo_2proc.yaml -m irmogen.train vq ...`.
`add_commands(subparsers)` is what `irmogen train` wires in. Must not import bpy.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import IrmogenError

COMMANDS = {"vq": "the motion tokenizer (VQ-VAE)", "evaluator": "the text-motion retrieval evaluator",
            "codes": "encode every clip with a trained tokenizer -> codes.npz",
            "base": "the MotionLLM: text-to-motion + captioning", "stage1": "the eight atomic tasks",
            "stage2": "IRMoGen-CoT traces", "stage3": "GRPO", "all": "the whole chain (pipeline)"}
MODULES = {"all": "pipeline"}


def add_commands(sub) -> None:
    """One subcommand per stage; each sets `run` to the stage module's run(args) -> int."""
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        module = importlib.import_module(f"{__package__}.{MODULES.get(name, name)}")
        module.add_arguments(p)
        p.set_defaults(run=module.run)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m irmogen.train")
    add_commands(ap.add_subparsers(dest="stage", required=True))
    args = ap.parse_args(argv)
    try:
        return args.run(args)
    except IrmogenError as e:
        print(f"irmogen: error: {e}", file=sys.stderr)
        if e.hint:
            print(f"irmogen: hint: {e.hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

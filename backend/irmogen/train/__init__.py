"""Training: one module per stage (`vq`, `evaluator`, `base`, `stage1`, `stage2`, `stage3`), the
shared run machinery (`common`), the VQ codes cache (`codes`) and the whole chain (`pipeline`).
Each stage module exposes `add_arguments(parser)` and `run(args) -> int` for `irmogen train`.
Must not import bpy.
"""

"""The data engine: dataset clips and captions -> stage-1 task records and stage-2 CoT traces.

Rooms: `compare` (what motions do and how two differ, measured), `wording` (sentences),
`annotator` (the pluggable writer of analyses/assessments: rules or a local LLM), `negatives`
(ranking and picking negative motions at alignment levels), `build` (orchestration, JSONL,
statistics; the `irmogen engine build` command), `own` (records on a model's own first motions,
judged against the goals; `irmogen engine own` / `merge`). Never imports bpy.
"""
from .annotator import Annotator, RuleAnnotator, TransformersAnnotator
from .build import EngineConfig, build_engine
from .negatives import MotionTextEncoder

__all__ = ["Annotator", "EngineConfig", "MotionTextEncoder", "RuleAnnotator", "TransformersAnnotator", "build_engine"]

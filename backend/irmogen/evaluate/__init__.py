"""Evaluation: our text-motion retrieval Evaluator (text.py: frozen MiniLM; motion.py: motion
encoder; retrieval.py: both sides, files, the dataset reader), the field's metrics (metrics.py),
Guo et al.'s evaluator for HumanML3D-comparable numbers (guo.py) `evaluate_model` (measure.py), its tables (table.py) and `irmogen eval` (run.py).
Needs torch; never imports bpy.
"""
from .metrics import evaluate_embeddings
from .retrieval import Evaluator, EvaluatorConfig, read_clips
from .measure import evaluate_model
from .table import format_table

__all__ = ["Evaluator", "EvaluatorConfig", "evaluate_embeddings", "evaluate_model", "format_table", "read_clips"]

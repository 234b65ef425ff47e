"""Add-on preferences: which Python runs the backend, which model it loads, on which device, and
who writes the reasoning's assessments (sent with every generate / extend request).

Also the one place that resolves those choices into a backend command line (`backend_command`)
and knows where the add-on's writable folder is (`user_dir`, under `extension_path_user`; the
add-on never writes into its own folder). Imports bpy, the stdlib and the add-on's `protocol`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import bpy
from bpy.props import EnumProperty, FloatProperty, StringProperty

from . import protocol

ADDON_DIR = Path(__file__).resolve().parent
ENV_PYTHON = "IRMOGEN_BACKEND_PYTHON"  # e.g. a project checkout's .venv/bin/python
MODEL_KINDS = [
    ("DEFAULT", "Default", "The small model that ships with IRMoGen"),
    ("DIRECTORY", "Model directory", "An IRMoGen model directory (config.json, model.safetensors, ...)"),
    ("MOTION_AGENT", "Motion-Agent files", "Motion-Agent's MotionLLM: Gemma-2 folder + LoRA + VQ-VAE"),
    ("IRG", "IRG-MotionLLM files", "An IRG-MotionLLM stage checkpoint + Gemma-2 folder"),
]
# The backend's assessor names (protocol.ASSESSORS), as the animator reads them.
ASSESSORS = [
    ("model", "Model", "The model assesses its own motion and writes the refinement (the paper's IRMoGen)"),
    ("measured", "Measured", "The motion is measured (travel, turning, pace, jumps, posture, hands) against "
                             "the prompt; the assessment and refinement state the measurements"),
    ("checked", "Model, checked", "The model assesses; clauses the measurements contradict are marked"),
]
IRG_STAGES = [
    ("TRACE", "Stage 2 or 3", "Reasoning traces in one pass (IRMoGen-CoT)"),
    ("1", "Stage 1", "Separate generate / instruct / refine calls, as IRG evaluates stage-1 checkpoints"),
]
DEVICES = [
    ("auto", "Auto", "CUDA if available, else Apple MPS, else CPU"),
    ("cpu", "CPU", "Run on the CPU (slow but always works)"),
    ("cuda", "CUDA", "NVIDIA GPU"),
    ("mps", "Apple MPS", "Apple Silicon GPU"),
]


def user_dir(sub: str = "") -> Path:
    """The add-on's writable folder (or a sub-folder), created on demand."""
    return Path(bpy.utils.extension_path_user(__package__, path=sub, create=True))


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def bundled_backend() -> Path:
    """The backend source shipped inside the extension (pip-installed by Set up backend)."""
    return ADDON_DIR / "backend"


def get() -> "IRMOGEN_AddonPreferences":
    return bpy.context.preferences.addons[__package__].preferences


@dataclass
class BackendSpec:
    """Everything needed to start the backend process (a plain value: safe to hand to threads)."""
    python: str
    model_args: list
    device: str
    cwd: str

    def command(self) -> list[str]:
        return [self.python, "-m", "irmogen", "serve", *self.model_args, "--device", self.device]


class IRMOGEN_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="Python interpreter with the irmogen backend installed; empty: auto-detect "
                    f"(${ENV_PYTHON}, then the environment made by Set up backend)")
    model_kind: EnumProperty(name="Model", items=MODEL_KINDS, default="DEFAULT")
    model_dir: StringProperty(name="Model directory", subtype="DIR_PATH")
    gemma_dir: StringProperty(name="Gemma-2 folder", subtype="DIR_PATH",
                              description="Hugging Face folder of the base LM (config, tokenizer, weights)")
    checkpoint: StringProperty(name="Checkpoint", subtype="FILE_PATH",
                               description="Motion-Agent motionllm .pth, or IRG stage checkpoint")
    vq_path: StringProperty(name="VQ-VAE", subtype="FILE_PATH", description="Motion tokenizer weights")
    irg_stage: EnumProperty(name="IRG stage", items=IRG_STAGES, default="TRACE",
                            description="Which training stage the IRG-MotionLLM checkpoint is from")
    mean_path: StringProperty(name="mean.npy", subtype="FILE_PATH")
    std_path: StringProperty(name="std.npy", subtype="FILE_PATH")
    device: EnumProperty(name="Device", items=DEVICES, default="auto")
    assessor: EnumProperty(name="Assessments", items=ASSESSORS, default=protocol.DEFAULT_ASSESSOR,
                           description="Who writes each round's assessment and refinement instruction")
    guidance: FloatProperty(name="Text guidance", default=0.0, min=0.0, max=protocol.MAX_GUIDANCE, step=50,
                            description="How strongly the motion follows the prompt's words (classifier-free "
                                        "guidance scale of models with a prompt encoder). Below 1: the model's "
                                        "own setting; 1: no guidance; higher: closer to the words, less varied")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "python_path")
        found = resolve_python(self)
        col.label(text=f"Using: {found}" if found else "No backend Python found", icon="CONSOLE")
        col.operator("irmogen.setup_backend", icon="IMPORT")
        col.separator()
        col.prop(self, "model_kind")
        if self.model_kind == "DIRECTORY":
            col.prop(self, "model_dir")
        elif self.model_kind in {"MOTION_AGENT", "IRG"}:
            for name in ("gemma_dir", "checkpoint", "vq_path", "mean_path", "std_path"):
                col.prop(self, name)
            if self.model_kind == "IRG":
                col.prop(self, "irg_stage")
        col.prop(self, "device")
        col.prop(self, "assessor")
        col.prop(self, "guidance")


def resolve_python(prefs) -> str | None:
    """The backend interpreter: the preference, else $IRMOGEN_BACKEND_PYTHON, else the user venv."""
    candidates = [bpy.path.abspath(prefs.python_path)] if prefs.python_path else []
    if os.environ.get(ENV_PYTHON):
        candidates.append(os.environ[ENV_PYTHON])
    candidates.append(str(venv_python(Path(bpy.utils.extension_path_user(__package__)) / "venv")))
    return next((c for c in candidates if c and Path(c).is_file()), None)


def model_args(prefs) -> list[str]:
    """`--model ...` for the chosen model; Motion-Agent / IRG files go through a JSON spec."""
    kind = prefs.model_kind
    if kind == "DEFAULT":
        shipped = bundled_backend() / "irmogen" / "models" / "default"
        return ["--model", str(shipped)] if (shipped / "config.json").is_file() else []
    if kind == "DIRECTORY":
        return ["--model", bpy.path.abspath(prefs.model_dir)]
    spec = {"format": "motion_agent" if kind == "MOTION_AGENT" else "irg",
            "gemma_dir": bpy.path.abspath(prefs.gemma_dir), "mean": bpy.path.abspath(prefs.mean_path),
            "std": bpy.path.abspath(prefs.std_path)}
    if kind == "MOTION_AGENT":
        spec.update(motionllm=bpy.path.abspath(prefs.checkpoint), vqvae=bpy.path.abspath(prefs.vq_path))
    else:
        spec.update(checkpoint=bpy.path.abspath(prefs.checkpoint))
        if prefs.vq_path:
            spec["vq"] = bpy.path.abspath(prefs.vq_path)
        if prefs.irg_stage == "1":   # the backend then runs the stage-1 loop
            spec["stage"] = 1
    path = user_dir() / "model_spec.json"
    path.write_text(json.dumps(spec, indent=1))
    return ["--model", str(path)]


def model_label(prefs) -> str:
    if prefs.model_kind == "DIRECTORY":
        return Path(bpy.path.abspath(prefs.model_dir).rstrip("/\\")).name or "model"
    return dict((k, n) for k, n, _ in MODEL_KINDS)[prefs.model_kind]


def backend_spec(prefs) -> BackendSpec | None:
    """The backend command for the current preferences, or None when no interpreter is found."""
    python = resolve_python(prefs)
    if python is None:
        return None
    return BackendSpec(python=python, model_args=model_args(prefs), device=prefs.device, cwd=str(user_dir()))


classes = (IRMOGEN_AddonPreferences,)

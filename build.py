#!/usr/bin/env python3
"""The project's one entry point: set up, test, run the demo, package the extension.

    python build.py setup [--bpy 4.5|4.2|5.0]   make the virtual environment (idempotent)
    python build.py test [pytest args]          set up, then run the whole test suite
    python build.py demo "TEXT"                 set up, then run the main job headless
    python build.py package                     build the Blender extension zip into dist/

Only the standard library is used here: this file runs under whatever Python 3 starts it and
creates the Python 3.11 environment everything else runs in.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# The bpy wheels on PyPI that we test against; 4.5 LTS is the main target.
BPY_PINS = {"4.5": "4.5.4", "4.2": "4.2.15", "5.0": "5.0.1"}
MAIN_BPY = "4.5"


def venv_dir(bpy: str) -> Path:
    return ROOT / (".venv" if bpy == MAIN_BPY else f".venv-bpy{bpy.replace('.', '')}")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_python311() -> str:
    """A Python 3.11 interpreter: bpy wheels for 4.2-5.0 exist for cp311 only."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    for name in ("python3.11", "py -3.11"):
        found = shutil.which(name.split()[0])
        if found:
            return found
    sys.exit("build.py: Python 3.11 is required for the bpy module (install python3.11 and retry)")


def run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def setup_stamp(bpy: str) -> str:
    """What the environment depends on: the pin files and the bpy version."""
    h = hashlib.sha256()
    for f in ("backend/pyproject.toml", "build.py"):
        h.update((ROOT / f).read_bytes())
    h.update(BPY_PINS[bpy].encode())
    return h.hexdigest()


def setup(bpy: str = MAIN_BPY) -> Path:
    venv = venv_dir(bpy)
    py = venv_python(venv)
    stamp_file = venv / ".irmogen-setup"
    stamp = setup_stamp(bpy)
    if py.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        print(f"setup: {venv.name} is up to date")
        return py
    t0 = time.time()
    if not py.exists():
        run([find_python311(), "-m", "venv", venv])
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    # torch first and alone, so the pinned CPU/CUDA wheel is chosen before anything pulls a newer one.
    run(pip + ["torch==2.13.0"])
    run(pip + ["-e", f"{ROOT / 'backend'}[test]"])
    run(pip + [f"bpy=={BPY_PINS[bpy]}"])
    stamp_file.write_text(stamp)
    print(f"setup: {venv.name} ready in {time.time() - t0:.0f} s")
    return py


def test(py: Path, args: list[str]) -> int:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.call([str(py), "-m", "pytest", str(ROOT / "tests"), *args], cwd=ROOT, env=env)


def shared_data() -> Path:
    env = os.environ.get("IRMOGEN_DATA")
    d = Path(env) if env else ROOT.parent / "shared" / "data"
    if not (d / "README.md").is_file():
        sys.exit(f"build.py demo: the motion-capture folder {d} is missing (set IRMOGEN_DATA)")
    return d


def closest_cmu_take(data: Path, text: str) -> tuple[Path, str]:
    """The CMU take whose database label shares the most words with the text."""
    import csv
    import re

    words = set(re.findall(r"[a-z]+", text.lower()))
    best = (-1.0, None, "")
    with open(data / "cmu" / "cmu_descriptions.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            path = data / "cmu" / "bvh_cc" / f"{int(row['Subject']):03d}_{int(row['Trial #']):02d}.bvh.gz"
            if not path.is_file():
                continue
            label = row["Motion Description"]
            label_words = set(re.findall(r"[a-z]+", label.lower()))
            stems = {w[:4] for w in words}
            score = sum(w[:4] in stems for w in label_words) / (1 + len(label_words))
            if score > best[0]:
                best = (score, path, label)
    return best[1], best[2]


DEFAULT_MODEL = ROOT / "backend" / "irmogen" / "models" / "default"
# Lines Blender's renderer and GPU probing print for every frame; the demo hides them.
BLENDER_NOISE = ("Fra:", "Saved: ", "Time: ", " Time: ", "EGL Error", "Warning: EGL", "Read blend:",
                 "Info: Saved", "FBX export starting", "(bpy.data.", "export finished in", "BVH Exported")


def run_filtered(cmd: list) -> int:
    """Run a command, streaming its output as it comes, minus Blender's per-frame noise."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env, text=True, errors="replace") as proc:
        for line in proc.stdout:
            if line.strip() and not line.startswith(BLENDER_NOISE):
                print(line, end="", flush=True)
    return proc.returncode


def demo(py: Path, text: str) -> int:
    """The main job headless: the shipped default model generates (or, while none is installed, the
    real mocap take closest to the text stands in, and says so), then the add-on, installed from the
    built zip into the bpy module, puts the motion on a mannequin and writes out/."""
    t0 = time.time()
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    blender = [py, ROOT / "tests" / "e2e" / "demo_blender.py", "--out", out, "--text", text]
    if (DEFAULT_MODEL / "config.json").is_file():
        print(f"demo: generating with the shipped default model ({DEFAULT_MODEL.relative_to(ROOT)})", flush=True)
        blender += ["--model", "default"]
    else:
        print("demo: NO DEFAULT MODEL IS INSTALLED YET (backend/irmogen/models/default/config.json is missing),\n"
              "demo: so nothing is generated: the real motion-capture take closest to the text stands in for\n"
              "demo: the model's output, with no reasoning rounds. Everything after that is the real add-on.",
              flush=True)
        take, label = closest_cmu_take(shared_data(), text)
        print(f'demo: "{text}" -> CMU take {take.name} ("{label}")', flush=True)
        clip = out / f"mocap_{take.name.split('.')[0]}.npz"
        rc = subprocess.call([str(py), "-m", "irmogen", "motion", "import", str(take), "--out", str(clip)])
        if rc != 0:
            return rc
        blender += ["--clip", clip, "--source-label", f"CMU {take.name.split('.')[0]}: {label}"]
    zip_path = package(py)
    rc = run_filtered(blender + ["--zip", zip_path])
    state = "done" if rc == 0 else f"FAILED (exit status {rc})"
    print(f"demo: {state} in {time.time() - t0:.1f} s after set-up; outputs in {out}", flush=True)
    return rc


def blender_ext_tool(py: Path) -> Path:
    """Blender's own extension tool (validate/build), shipped inside the bpy wheel."""
    venv = py.parent.parent
    for pattern in ("lib/python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py",
                    "Lib/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"):
        found = sorted(venv.glob(pattern))
        if found:
            return found[-1]
    sys.exit(f"build.py package: Blender's blender_ext.py was not found under {venv} (is bpy installed?)")


def stage_extension(stage: Path) -> Path:
    """Lay out the extension: manifest + add-on at the top, the protocol copy, rigs, the backend."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
    if stage.exists():
        shutil.rmtree(stage)
    shutil.copytree(ROOT / "addon", stage, ignore=skip)
    shutil.copy2(ROOT / "blender_manifest.toml", stage / "blender_manifest.toml")
    # The add-on imports `from . import protocol`; the one source of truth lives in the backend.
    shutil.copy2(ROOT / "backend" / "irmogen" / "protocol.py", stage / "protocol.py")
    shutil.copytree(ROOT / "rigs", stage / "rigs", ignore=skip)
    # The backend source, for "Set up backend" to pip-install; of the models only the default ships.
    models = ROOT / "backend" / "irmogen" / "models"

    def skip_backend(folder: str, names: list[str]) -> set[str]:
        ignored = set(skip(folder, names))
        if Path(folder).resolve() == models.resolve():
            ignored |= {n for n in names if n != "default"}
        return ignored

    shutil.copytree(ROOT / "backend", stage / "backend", ignore=skip_backend)
    return stage


def build_zip(py: Path, stage: Path, dist: Path) -> Path:
    """Run Blender's extension builder on a staged folder; returns the zip it wrote in `dist`."""
    dist.mkdir(parents=True, exist_ok=True)
    before = set(dist.glob("irmogen-*.zip"))
    run([py, blender_ext_tool(py), "build", "--source-dir", stage, "--output-dir", dist])
    zips = sorted(dist.glob("irmogen-*.zip"), key=lambda p: (p not in before, p.stat().st_mtime))
    return zips[-1]


def package(py: Path, dist: Path = ROOT / "dist") -> Path:
    """Build the extension zip into dist/ with Blender's own tool; returns the zip's path."""
    zip_path = build_zip(py, stage_extension(ROOT / "build" / "extension"), dist)
    print(f"package: wrote {zip_path}")
    return zip_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("command", choices=["setup", "test", "demo", "package"])
    ap.add_argument("--bpy", choices=sorted(BPY_PINS), default=MAIN_BPY,
                    help="Blender module version for this environment (default 4.5 LTS)")
    # Everything else (anywhere on the line) is the demo text or extra pytest arguments.
    a, a.rest = ap.parse_known_args()
    t0 = time.time()
    py = setup(a.bpy)
    print(f"setup took {time.time() - t0:.1f} s")
    if a.command == "setup":
        return 0
    if a.command == "test":
        return test(py, a.rest)
    if a.command == "demo":
        return demo(py, " ".join(a.rest) or "a person walks forward")
    package(py)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The demo's Blender part: the add-on, installed from its zip into the bpy module, animates a mannequin.

    python tests/e2e/demo_blender.py --zip dist/irmogen-0.1.0.zip --out out --text "a person walks" \
        (--model default | --model MODEL_DIR | --clip CLIP.npz [--source-label TEXT]) [--backend-python PY]

Run it with the Python of the bpy environment (`python build.py demo` does). Each step goes
through the add-on as a user would drive it: install and enable the extension (Blender's user
folder is OUT/blender-user, so the takes' clips stay beside the .blend), add the mannequin
(`irmogen.add_mannequin`), then either generate against the real backend process
(`irmogen.generate`, with `--model`) or apply a clip (`irmogen.apply_clip`, with `--clip`), save
OUT/demo.blend with the take on the NLA, export OUT/demo.fbx and OUT/demo.bvh
(`irmogen.export_fbx` / `export_bvh`), render OUT/contact_sheet.png, write OUT/transcript.json and
print the transcript as text. Exit status 0 when everything was written.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

PACKAGE = "bl_ext.user_default.irmogen"
T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f} s] {message}", flush=True)


def install(zip_path: Path):
    """Install and enable the extension from its zip into the user_default repository."""
    import addon_utils
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                      enable_on_install=True)
    if result != {"FINISHED"} or not addon_utils.check(PACKAGE)[1]:
        sys.exit(f"demo: installing {zip_path} into Blender failed ({result})")
    return importlib.import_module(PACKAGE)


def watch(bridge, stop: threading.Event) -> None:
    """Print the backend jobs' progress while the operator waits (reads plain job data; no bpy)."""
    seen = set()
    while not stop.wait(0.5):
        for job in list(bridge.BRIDGE.jobs.values()):
            marks = [("analysis", bool(job.analysis), "goal analysed")]
            for r in job.rounds:
                k = r.get("round")
                marks.append((f"motion {k}", bool(r.get("clip") or r.get("motion")), f"round {k}: motion generated"))
                marks.append((f"assess {k}", "assessment" in r, f"round {k}: assessed -> "
                              f"{(r.get('refinement') or '').strip()[:70] or 'done'}"))
            for key, done, text in marks:
                if done and (job.id, key) not in seen:
                    seen.add((job.id, key))
                    say(f"  {text}")


def generate(addon, text: str, model: str, python: str, seconds: float, max_rounds: int):
    """`irmogen.generate` against the real backend process started by the add-on's bridge."""
    import bpy

    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.python_path, prefs.device = python, "auto"
    if model == "default":
        prefs.model_kind = "DEFAULT"
    else:
        prefs.model_kind, prefs.model_dir = "DIRECTORY", str(Path(model).resolve())
    s = bpy.context.scene.irmogen
    s.prompt, s.seconds, s.max_rounds, s.variations, s.seed = text, seconds, max_rounds, 1, 0
    say(f"generating with the backend {python} -m irmogen serve (model: {model}); the model loads first")
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(addon.bridge, stop), daemon=True)
    watcher.start()
    try:
        bpy.ops.irmogen.generate()
    except RuntimeError:
        sys.exit(f"demo: generation failed: {_reason(s)}")
    finally:
        stop.set()
        watcher.join()
        addon.bridge.BRIDGE.stop()


def _reason(live) -> str:
    """The add-on's error as the panel shows it (message and hint), or a pointer to the traceback."""
    if not live.error_message:
        return "an unexpected error in the add-on (the traceback is above)"
    return f"{live.error_message}. {live.error_hint}" if live.error_hint else live.error_message


def apply_clip(clip: Path) -> None:
    import bpy

    say(f"retargeting {clip.name} onto the mannequin (irmogen.apply_clip)")
    try:
        bpy.ops.irmogen.apply_clip(filepath=str(clip))
    except RuntimeError:
        sys.exit(f"demo: applying {clip} failed: {_reason(bpy.context.scene.irmogen)}")


def transcript_of(addon, take, args, frame_range, rig) -> dict:
    """What happened, as data: the prompt, where the motion came from, the reasoning rounds, the take."""
    info = addon.takes.read_info(take)
    try:
        reasoning = json.loads(info.transcript or "{}")
    except ValueError:
        reasoning = {}
    reasoning = reasoning if isinstance(reasoning, dict) else {}
    source = ({"kind": "model", "model": args.model} if args.clip is None else
              {"kind": "motion capture", "file": str(args.clip), "label": args.source_label})
    return {"text": args.text, "source": source, "model": info.model, "take": take.name,
            "armature": rig.name, "rig_map": info.extra.get("rig", ""), "frames": list(frame_range),
            "scene_fps": rig.users_scene[0].render.fps if rig.users_scene else None,
            "analysis": reasoning.get("analysis", ""),
            "rounds": [{k: r.get(k) for k in ("round", "assessment", "refinement", "clip") if k in r}
                       for r in reasoning.get("rounds", [])]}


def readable(t: dict) -> str:
    """The transcript as the text a person reads."""
    lines = [f'Prompt: "{t["text"]}"']
    if t["source"]["kind"] == "model":
        lines.append(f"Model: {t['model'] or t['source']['model']}")
        lines.append(f"Goal analysis: {t['analysis'] or '(none)'}")
        for r in t["rounds"]:
            lines.append(f"Round {r.get('round')}: motion {'ready' if r.get('clip') else 'missing'}")
            lines.append(f"  assessment: {r.get('assessment') or '(none)'}")
            lines.append(f"  refinement: {r.get('refinement') or '(none)'}")
    else:
        label = f' ("{t["source"]["label"]}")' if t["source"].get("label") else ""
        lines.append(f"No model ran: the motion is the real motion-capture take {Path(t['source']['file']).name}"
                     f"{label}, chosen as the closest to the prompt; there are no reasoning rounds.")
    lines.append(f"Take '{t['take']}' on '{t['armature']}' (bone map: {t['rig_map']}), "
                 f"frames {t['frames'][0]}-{t['frames'][1]} at {t['scene_fps']} fps")
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h or w)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", type=Path, required=True, help="the extension zip (python build.py package)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--text", required=True)
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--model", help="'default' (the shipped model) or a model directory")
    how.add_argument("--clip", type=Path, help="a clip .npz or BVH to apply instead of generating")
    ap.add_argument("--source-label", default="", help="what the --clip is (printed and kept in the transcript)")
    ap.add_argument("--backend-python", default=sys.executable, help="Python with irmogen installed")
    ap.add_argument("--seconds", type=float, default=0.0, help="motion length (0: the model decides)")
    ap.add_argument("--max-rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=12, help="tiles of the contact sheet")
    ap.add_argument("--tile", type=_size, default=(320, 240), help="tile size of the contact sheet, WxH pixels")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    # Blender's user folder (preferences, extensions, the add-on's takes) goes under OUT, read
    # before bpy starts: the demo never touches the user's own Blender set-up.
    user = out / "blender-user"
    if user.exists():
        shutil.rmtree(user)
    os.environ["BLENDER_USER_RESOURCES"] = str(user)
    say("starting Blender (bpy module)")
    import bpy

    say(f"installing the extension {args.zip.name} (Blender user folder {user})")
    addon = install(args.zip.resolve())
    sheet_module = importlib.import_module(PACKAGE + ".contact_sheet")
    bpy.ops.irmogen.add_mannequin(name="Mannequin")
    rig = bpy.context.view_layer.objects.active
    scene = bpy.context.scene
    scene.frame_set(1)
    say(f"added the mannequin '{rig.name}' ({len(rig.data.bones)} bones, skinned capsule body)")

    if args.clip is not None:
        apply_clip(args.clip.resolve())
    else:
        generate(addon, args.text, args.model, args.backend_python, args.seconds, args.max_rounds)
    take = addon.takes.current_take(rig)
    start, end = (int(round(v)) for v in addon.keying.frame_range(take))
    scene.frame_start, scene.frame_end = start, end
    strip = addon.takes.take_strip(rig, take)
    say(f"take '{take.name}': frames {start}-{end}, NLA strip at frame {strip.frame_start:g} "
        f"(blend {strip.blend_type}, extrapolation {strip.extrapolation})")

    bpy.context.view_layer.objects.active = rig
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "demo.blend"))
    say(f"saved {out / 'demo.blend'}")
    bpy.ops.irmogen.export_fbx(filepath=str(out / "demo.fbx"))
    bpy.ops.irmogen.export_bvh(filepath=str(out / "demo.bvh"))
    say(f"exported {out / 'demo.fbx'} and {out / 'demo.bvh'}")

    say(f"rendering the contact sheet ({args.frames} frames, Workbench)")
    sheet = sheet_module.render_contact_sheet(scene, rig, out / "contact_sheet.png", (start, end),
                                              count=args.frames, tile_size=args.tile, note=args.text)
    say(f"wrote {sheet.path} ({sheet.size[0]}x{sheet.size[1]}, frames {', '.join(map(str, sheet.frames))})")

    transcript = transcript_of(addon, take, args, (start, end), rig)
    transcript["outputs"] = {name: str(out / name) for name in
                             ("demo.blend", "demo.fbx", "demo.bvh", "contact_sheet.png", "transcript.json")}
    (out / "transcript.json").write_text(json.dumps(transcript, indent=1, ensure_ascii=False), encoding="utf-8")
    print("\n" + readable(transcript) + "\n", flush=True)
    say(f"wrote {out / 'transcript.json'}; done")
    return 0


if __name__ == "__main__":
    sys.exit(main())

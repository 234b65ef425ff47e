"""Extend: the selected take continues with new motion, as a new take.

The backend's `extend` job gets the take's clip and the text of what happens next; the new motion
starts from the take's last frame (same place, facing and pose), and the answer is the take's own
frames, unchanged, followed by the new ones. It lands as a new take of kind "extended" at the
take's start frame, its parent the take, which stays as it was. Range refine lives in `jobs`
(`start_refine`) with its arithmetic in `timeline`. Imports bpy and the add-on's modules only.
"""
from __future__ import annotations

import bpy

from . import bridge, jobs, operators, protocol, takes


def start_extend(context, take) -> bridge.Job:
    """Send the take's clip and the extension text (scene.irmogen.extend_text / extend_seconds)."""
    p = context.scene.irmogen
    obj = jobs.usable_armature(context)
    text = " ".join(p.extend_text.split())
    if not text:
        raise jobs.JobError("say what happens next", "Type it in the Extend field, e.g. 'then he waves'")
    parent = takes.read_info(take)
    clip = jobs.take_clip(take)
    params = {"clip": protocol.encode_clip(clip["fps"], clip["offsets"], clip["rotations"],
                                           clip["root_translation"], clip["positions"], parent.prompt),
              "text": text, "max_rounds": p.max_rounds, "cleanup": p.cleanup_feet}
    if p.extend_seconds > 0:
        params["seconds"] = min(max(p.extend_seconds, protocol.MIN_SECONDS), protocol.MAX_SEQUENCE_SECONDS)
    jobs.check_request_size(take.name, len(clip["positions"]) / clip["fps"], params)
    prompt = f"{parent.prompt}, {text}" if parent.prompt else text
    info = takes.TakeInfo(prompt=prompt, kind="extend", seed=parent.seed, parent=take.name,
                          extra={"extension": text, "take_frames": len(clip["positions"])})
    strip = takes.take_strip(obj, take)
    start = int(strip.frame_start) if strip is not None else context.scene.frame_current
    job = jobs.submit("extend", params, jobs.Target(obj.name, context.scene.name, start), info)
    jobs.begin_live(context.scene, "Extending", jobs.prompt_warnings(text))
    return job


class IRMOGEN_OT_extend(operators.JobOperator, bpy.types.Operator):
    """Continue the selected take with what happens next: the new motion starts from its last frame
    and lands as a new take (the selected take stays as it is)"""
    bl_idname = "irmogen.extend"
    bl_label = "Extend"

    def start(self, context):
        take = operators.take_to_work_on(context, "extend")
        return [start_extend(context, take)]


classes = (IRMOGEN_OT_extend,)

"""Clean Up Feet: the selected take (generated, refined or an imported BVH/clip) with its planted
feet locked, foot sliding and ground penetration removed, as a new take.

The backend's `clean` job (no model needed) runs the same foot contact cleanup that generate and
refine apply when "Clean Up Feet" is ticked. The answer lands as a new take of kind "cleaned" at
the selected take's start frame, its parent the selected take, which stays as it was (and so do
the animator's own keys: `jobs.take_from_clip`). Imports bpy and the add-on's modules only.
"""
from __future__ import annotations

import bpy

from . import bridge, jobs, operators, protocol, takes


def start_clean(context, take) -> bridge.Job:
    """Send the take's clip to the backend's `clean` job; the result becomes the new take."""
    obj = jobs.usable_armature(context)
    parent = takes.read_info(take)
    clip = jobs.take_clip(take)
    params = {"clip": protocol.encode_clip(clip["fps"], clip["offsets"], clip["rotations"],
                                           clip["root_translation"], clip["positions"], parent.prompt)}
    jobs.check_request_size(take.name, len(clip["positions"]) / clip["fps"], params)
    info = takes.TakeInfo(prompt=parent.prompt or take.name, kind="cleaned", seed=parent.seed, parent=take.name,
                          model=parent.model or "foot cleanup")
    strip = takes.take_strip(obj, take)
    start = int(strip.frame_start) if strip is not None else context.scene.frame_current
    job = jobs.submit("clean", params, jobs.Target(obj.name, context.scene.name, start), info)
    jobs.begin_live(context.scene, "Cleaning up feet")
    return job


class IRMOGEN_OT_clean_feet(operators.JobOperator, bpy.types.Operator):
    """Lock the selected take's planted feet and remove foot sliding and ground penetration; the
    result is a new take (the selected take stays as it is)"""
    bl_idname = "irmogen.clean_feet"
    bl_label = "Clean Up Feet"

    def start(self, context):
        take = operators.take_to_work_on(context, "clean up")
        return [start_clean(context, take)]

    def _finish(self, context):
        for job in self._jobs:      # the backend's before/after figures, e.g. "skate 40.8 -> 2.4 cm/s"
            if job.status == "done" and (job.result or {}).get("report"):
                self.report({"INFO"}, f"IRMoGen: {job.result['report']}")
        return super()._finish(context)


classes = (IRMOGEN_OT_clean_feet,)

"""The add-on's operators. Each is thin: read `scene.irmogen` into a `Settings`, call one function
in `jobs` / `exporting` / `backend_setup`, translate its error into `self.report` (and the panel's error box).

Generate and refine are modal in the UI (a window timer drains the bridge; the take is made when
the result arrives, so the whole generation is one undo step) and synchronous in background runs,
where they pump the bridge until the result arrives. Imports bpy and the add-on's modules only.
"""
from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import backend_setup, bridge, exporting, jobs, properties, takes


def _fail(op, context, message: str, hint: str = "", fix: str = "") -> set:
    properties.show_error(context.scene, message, hint, fix)
    op.report({"ERROR"}, f"{message}. {hint}" if hint else message)
    return {"CANCELLED"}


def selected_take(context):
    """The take picked in the panel's list, else the one that plays on the active armature."""
    obj = context.active_object
    index = context.scene.irmogen.take_index
    actions = bpy.data.actions
    if 0 <= index < len(actions) and takes.is_take(actions[index]) and obj is not None \
            and actions[index].get(takes.PREFIX + "armature") == obj.name:
        return actions[index]
    return takes.current_take(obj)


def take_to_work_on(context, doing: str):
    """The selected take, or a JobError saying there is none to `doing` (refine, extend, ...)."""
    take = selected_take(context)
    if take is None:
        raise jobs.JobError(f"no take to {doing}", "Select a take of the active armature in the list")
    return take


class JobOperator:
    """Shared run loop of the backend jobs (generate, refine, extend, clean up feet): start jobs,
    then wait (background) or go modal. One job at a time per scene."""
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return not context.scene.irmogen.running

    def start(self, context) -> list:
        raise NotImplementedError

    def execute(self, context):
        try:
            self._jobs = self.start(context)
        except jobs.JobError as e:
            return _fail(self, context, str(e), e.hint, e.fix)
        if bpy.app.background or context.window is None:
            jobs.wait(self._jobs)
            return self._finish(context)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            jobs.cancel_all()
        if event.type == "TIMER":
            jobs.poll()
            if all(job.finished for job in self._jobs):
                context.window_manager.event_timer_remove(self._timer)
                return self._finish(context)
        return {"PASS_THROUGH"}

    def _finish(self, context):
        made, errors = jobs.finish(self._jobs)
        for e in errors:
            self.report({"ERROR"}, f"{e}. {e.hint}" if e.hint else str(e))
        for note in context.scene.irmogen.warnings.splitlines():
            self.report({"WARNING"}, f"IRMoGen: {note}")
        if made:
            self.report({"INFO"}, f"IRMoGen: {len(made)} new take(s): {', '.join(a.name for a in made)}")
            return {"FINISHED"}
        if not errors:
            self.report({"WARNING"}, "IRMoGen: cancelled")
        return {"CANCELLED"}


class IRMOGEN_OT_generate(JobOperator, bpy.types.Operator):
    """Generate motion from the prompt and key it onto the active armature as a new take"""
    bl_idname = "irmogen.generate"
    bl_label = "Generate"

    def start(self, context):
        return jobs.start_generate(context, properties.read(context.scene))


class IRMOGEN_OT_refine(JobOperator, bpy.types.Operator):
    """Refine the selected take by the instruction; the result is a new take"""
    bl_idname = "irmogen.refine"
    bl_label = "Refine"

    def start(self, context):
        take = take_to_work_on(context, "refine")
        return [jobs.start_refine(context, properties.read(context.scene), take)]


class IRMOGEN_OT_cancel(bpy.types.Operator):
    """Stop the running generation"""
    bl_idname = "irmogen.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        try:
            n = jobs.cancel_all()
        except bridge.BackendError as e:
            return _fail(self, context, str(e), e.hint)
        if n == 0:
            self.report({"WARNING"}, "IRMoGen: nothing to cancel")
            return {"CANCELLED"}
        self.report({"INFO"}, f"IRMoGen: cancelling {n} job(s)")
        return {"FINISHED"}


class IRMOGEN_OT_apply_clip(bpy.types.Operator, ImportHelper):
    """Retarget a motion clip (.npz) or BVH onto the active armature as a new take"""
    bl_idname = "irmogen.apply_clip"
    bl_label = "Apply Motion Clip"
    bl_options = {"REGISTER", "UNDO"}
    filter_glob: StringProperty(default="*.npz;*.bvh;*.bvh.gz", options={"HIDDEN"})

    def invoke(self, context, event):
        if self.filepath and hasattr(self, "invoke_popup"):  # dropped on the viewport (4.2+)
            return self.invoke_popup(context)
        return ImportHelper.invoke(self, context, event)

    def execute(self, context):
        try:
            take = jobs.apply_clip_file(context, self.filepath)
        except jobs.JobError as e:
            return _fail(self, context, str(e), e.hint, e.fix)
        self.report({"INFO"}, f"IRMoGen: new take {take.name}")
        return {"FINISHED"}


class IRMOGEN_FH_clip(bpy.types.FileHandler):
    bl_idname = "IRMOGEN_FH_clip"
    bl_label = "IRMoGen motion clip"
    bl_import_operator = "irmogen.apply_clip"
    bl_file_extensions = ".npz;.bvh"

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D"


class IRMOGEN_OT_use_round(bpy.types.Operator):
    """Use this round's motion: it becomes a new take, assigned to the armature"""
    bl_idname = "irmogen.use_round"
    bl_label = "Use This Motion"
    bl_options = {"REGISTER", "UNDO"}
    take: StringProperty(name="Take", description="Name of the take whose round to use")
    round: IntProperty(name="Round", min=0)

    def execute(self, context):
        try:
            new = jobs.use_round(context, self.take, self.round)
        except jobs.JobError as e:
            return _fail(self, context, str(e), e.hint, e.fix)
        self.report({"INFO"}, f"IRMoGen: round {self.round} is now take {new.name}")
        return {"FINISHED"}


class _ExportOperator(ExportHelper):
    def execute(self, context):
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            return _fail(self, context, "select an armature first")
        try:
            start, end = self.export(context, obj, self.filepath)
        except exporting.ExportError as e:
            return _fail(self, context, str(e), e.hint)
        properties.clear_error(context.scene)
        self.report({"INFO"}, f"IRMoGen: wrote {self.filepath} (frames {start}-{end})")
        return {"FINISHED"}


class IRMOGEN_OT_export_fbx(_ExportOperator, bpy.types.Operator):
    """Export the active armature's take as FBX (baked keys, no leaf bones)"""
    bl_idname = "irmogen.export_fbx"
    bl_label = "Export Take (FBX)"
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})
    export = staticmethod(exporting.export_fbx)


class IRMOGEN_OT_export_bvh(_ExportOperator, bpy.types.Operator):
    """Export the active armature's take as BVH"""
    bl_idname = "irmogen.export_bvh"
    bl_label = "Export Take (BVH)"
    filename_ext = ".bvh"
    filter_glob: StringProperty(default="*.bvh", options={"HIDDEN"})
    export = staticmethod(exporting.export_bvh)


class IRMOGEN_OT_setup_backend(bpy.types.Operator):
    """Create a Python environment in the add-on's user folder and install the backend into it"""
    bl_idname = "irmogen.setup_backend"
    bl_label = "Set up Backend"

    def execute(self, context):
        plan = backend_setup.plan()
        if not bpy.app.online_access:
            return _fail(self, context, "online access is off, so IRMoGen will not download packages",
                         f"Run this yourself, then restart Blender: {plan.command_line()}")
        self._run = backend_setup.SetupRun(plan)
        self._run.start()
        if bpy.app.background or context.window is None:
            self._run.join()
            return self._done(context)
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        live = context.scene.irmogen
        live.running, live.progress, live.status = not self._run.finished, self._run.progress, self._run.status
        context.window_manager.progress_update(int(self._run.progress * 100))
        if not self._run.finished:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        return self._done(context)

    def _done(self, context):
        context.scene.irmogen.running = False
        if self._run.error:
            return _fail(self, context, self._run.error, f"Or run it yourself: {self._run.plan.command_line()}")
        properties.clear_error(context.scene)
        self.report({"INFO"}, f"IRMoGen: backend installed in {self._run.plan.venv}")
        return {"FINISHED"}


classes = (IRMOGEN_OT_generate, IRMOGEN_OT_refine, IRMOGEN_OT_cancel, IRMOGEN_OT_apply_clip, IRMOGEN_FH_clip,
           IRMOGEN_OT_use_round, IRMOGEN_OT_export_fbx, IRMOGEN_OT_export_bvh, IRMOGEN_OT_setup_backend)

"""A contact sheet: N frames of a take rendered headless and tiled into one PNG, for people to look at.

Blender's Workbench renders each frame from one fixed camera that frames the whole motion path
(every pose of the take, not only the sampled ones), over a floor with shadows; Blender's render
stamp writes the frame number into each tile. The camera looks across the main direction of
travel, turned toward the character's front. Temporary objects and render settings are removed
and restored afterwards. Works in the bpy module (no window). Imports bpy, mathutils, numpy.
"""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

BACKGROUND = np.array([0.93, 0.93, 0.91])  # sheet and tile background, sRGB 0..1
GAP = 4                                    # pixels between tiles
BODY_MARGIN = 0.2                          # metres added around the bones: the body's thickness
ELEVATION = np.radians(15.0)               # camera above the horizon
LENS_MM, SENSOR_MM = 50.0, 36.0


@dataclass
class Sheet:
    """What was rendered: the PNG, the scene frames of the tiles, the sheet size in pixels."""
    path: Path
    frames: list = field(default_factory=list)
    size: tuple = (0, 0)


def sample_frames(start: int, end: int, count: int) -> list[int]:
    """`count` scene frames spread evenly over [start, end], first and last included."""
    count = max(1, min(count, end - start + 1))
    return sorted({int(round(f)) for f in np.linspace(start, end, count)})


def _bone_points(obj) -> np.ndarray:
    """(2B, 3) world heads and tails of the posed bones, metres."""
    mw = np.array(obj.matrix_world)
    local = np.array([p for pb in obj.pose.bones for p in (pb.head, pb.tail)])
    return local @ mw[:3, :3].T + mw[:3, 3]


def motion_points(scene, obj, start: int, end: int, most: int = 120) -> np.ndarray:
    """(F, 2B, 3) bone points over the take (at most `most` frames evenly spread)."""
    frames = np.unique(np.linspace(start, end, min(most, end - start + 1)).round().astype(int))
    points = []
    for f in frames:
        scene.frame_set(int(f))
        points.append(_bone_points(obj))
    return np.array(points)


def view_direction(points: np.ndarray, front=(0.0, -1.0)) -> np.ndarray:
    """Unit vector from the subject toward the camera: across the main travel, toward the front.

    `points` (F, P, 3); the travel is the first-to-last change of the mean point on the floor plane.
    Of 72 azimuths, the one that sees the travel most from the side and the front a bit is chosen.
    """
    travel = points[-1].mean(0)[:2] - points[0].mean(0)[:2]
    azimuth = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    horizontal = np.stack([np.cos(azimuth), np.sin(azimuth)], -1)
    score = 0.5 * horizontal @ np.asarray(front)
    length = np.linalg.norm(travel)
    if length > 0.3:  # metres: only a clear path counts
        score = score + np.abs(horizontal[:, 0] * travel[1] - horizontal[:, 1] * travel[0]) / length
    h = horizontal[np.argmax(score)]
    return np.array([h[0] * np.cos(ELEVATION), h[1] * np.cos(ELEVATION), np.sin(ELEVATION)])


def frame_camera(points: np.ndarray, direction: np.ndarray, aspect: float):
    """Camera location (3,) and rotation (mathutils Quaternion) that fit every point in view.

    Perspective fit: with the camera looking at the box centre from `direction`, each corner at
    (x, y) across and z toward the camera needs a distance d >= z + |x| / tan(half fov).
    """
    lo = points.reshape(-1, 3).min(0) - BODY_MARGIN
    hi = points.reshape(-1, 3).max(0) + BODY_MARGIN
    lo[2] = min(lo[2], 0.0)
    centre = (lo + hi) / 2
    rotation = Vector(-direction).to_track_quat("-Z", "Y")
    basis = np.array(rotation.to_matrix())                 # columns: camera right, up, back
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    local = (corners - centre) @ basis                     # (8, 3) in camera axes
    tan_x = SENSOR_MM / 2 / LENS_MM
    tan_y = tan_x / aspect
    distance = max(np.max(local[:, 2] + np.abs(local[:, 0]) / tan_x),
                   np.max(local[:, 2] + np.abs(local[:, 1]) / tan_y)) * 1.04
    return centre + direction * distance, rotation


@contextmanager
def _saved(owner, names):
    """Restore attributes of a Blender struct on exit."""
    old = {n: getattr(owner, n) for n in names}
    try:
        yield owner
    finally:
        for n, v in old.items():
            setattr(owner, n, v)


def _stamp_names(render) -> list[str]:
    return [p.identifier for p in render.bl_rna.properties
            if p.identifier.startswith("use_stamp") and p.type == "BOOLEAN"]


@contextmanager
def _render_settings(scene, tile: tuple[int, int]):
    """Workbench, PNG, transparent film, the frame number stamped; everything restored after."""
    r = scene.render
    shading = scene.display.shading
    with _saved(r, ["engine", "resolution_x", "resolution_y", "resolution_percentage", "film_transparent",
                    "filepath", "stamp_font_size", "stamp_background", "stamp_foreground", "stamp_note_text",
                    *_stamp_names(r)]), \
            _saved(r.image_settings, ["file_format", "color_mode"]), \
            _saved(scene.view_settings, ["view_transform", "look"]), \
            _saved(shading, ["light", "color_type", "show_shadows", "show_cavity"]), \
            _saved(scene, ["camera"]):
        r.engine = "BLENDER_WORKBENCH"
        r.resolution_x, r.resolution_y = tile
        r.resolution_percentage = 100
        r.film_transparent = True
        r.image_settings.file_format, r.image_settings.color_mode = "PNG", "RGBA"
        scene.view_settings.view_transform, scene.view_settings.look = "Standard", "None"
        shading.light, shading.color_type, shading.show_shadows, shading.show_cavity = "STUDIO", "MATERIAL", True, True
        for name in _stamp_names(r):
            setattr(r, name, False)
        r.use_stamp = r.use_stamp_frame = r.use_stamp_labels = True
        r.stamp_font_size = max(12, tile[1] // 20)
        r.stamp_foreground, r.stamp_background = (0.1, 0.1, 0.1, 1.0), (1.0, 1.0, 1.0, 0.6)
        yield r


@contextmanager
def _stage(scene, location, rotation, lo, hi):
    """A temporary camera and floor (a grey plane under the whole path), removed afterwards."""
    cam = bpy.data.objects.new("IRMoGen sheet camera", bpy.data.cameras.new("IRMoGen sheet camera"))
    cam.data.lens, cam.data.sensor_width, cam.data.sensor_fit = LENS_MM, SENSOR_MM, "HORIZONTAL"
    cam.data.clip_end = 1000.0
    cam.location, cam.rotation_mode, cam.rotation_quaternion = location, "QUATERNION", rotation
    (x0, y0), (x1, y1) = lo[:2] - 1.5, hi[:2] + 1.5
    floor_mesh = bpy.data.meshes.new("IRMoGen sheet floor")
    floor_mesh.from_pydata([(x0, y0, 0), (x1, y0, 0), (x1, y1, 0), (x0, y1, 0)], [], [(0, 1, 2, 3)])
    floor = bpy.data.objects.new("IRMoGen sheet floor", floor_mesh)
    mat = bpy.data.materials.new("IRMoGen sheet floor")
    mat.diffuse_color = (0.95, 0.95, 0.93, 1.0)  # studio light seen at a grazing angle darkens it
    floor_mesh.materials.append(mat)
    for obj in (cam, floor):
        scene.collection.objects.link(obj)
    scene.camera = cam
    try:
        yield cam
    finally:
        camera_data = cam.data
        bpy.data.objects.remove(cam)
        bpy.data.objects.remove(floor)
        bpy.data.cameras.remove(camera_data)
        bpy.data.meshes.remove(floor_mesh)
        bpy.data.materials.remove(mat)


def _read_png(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 4) float pixels of a PNG, top row first."""
    image = bpy.data.images.load(str(path))
    try:
        pixels = np.empty(size[0] * size[1] * 4, np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(size[1], size[0], 4)[::-1]


def _write_png(rgb: np.ndarray, path: Path) -> None:
    """(H, W, 3) sRGB 0..1, top row first -> PNG through a Blender image."""
    h, w = rgb.shape[:2]
    image = bpy.data.images.new("IRMoGen contact sheet", w, h, alpha=False)
    try:
        rgba = np.concatenate([rgb, np.ones((h, w, 1))], -1)[::-1]
        image.pixels.foreach_set(rgba.astype(np.float32).ravel())
        image.filepath_raw, image.file_format = str(path), "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)


def tile(images: list[np.ndarray], columns: int) -> np.ndarray:
    """RGBA tiles (H, W, 4) composited over the background into a grid -> (H', W', 3)."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    sheet = np.empty((rows * h + (rows + 1) * GAP, columns * w + (columns + 1) * GAP, 3))
    sheet[:] = BACKGROUND * 0.8
    for k, img in enumerate(images):
        r, c = divmod(k, columns)
        y, x = GAP + r * (h + GAP), GAP + c * (w + GAP)
        alpha = img[..., 3:4]
        sheet[y:y + h, x:x + w] = img[..., :3] * alpha + BACKGROUND * (1 - alpha)
    return sheet


def render_contact_sheet(scene, obj, path, frame_range: tuple[int, int], count: int = 12, columns: int = 4,
                         tile_size: tuple[int, int] = (320, 320), note: str = "") -> Sheet:
    """Render `count` frames of what `scene` plays on `obj` (an armature and its meshes) into one PNG.

    `frame_range` (start, end) scene frames, inclusive; `note` is stamped on the first tile (e.g. the
    prompt). Returns the Sheet; the scene's settings, camera and current frame are left unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start, end = int(frame_range[0]), int(frame_range[1])
    frames = sample_frames(start, end, count)
    current = scene.frame_current
    points = motion_points(scene, obj, start, end)
    direction = view_direction(points)
    location, rotation = frame_camera(points, direction, tile_size[0] / tile_size[1])
    lo, hi = points.reshape(-1, 3).min(0), points.reshape(-1, 3).max(0)
    images = []
    with tempfile.TemporaryDirectory(prefix="irmogen-sheet-") as tmp, \
            _render_settings(scene, tile_size) as render, _stage(scene, location, rotation, lo, hi):
        for k, f in enumerate(frames):
            scene.frame_set(f)
            render.use_stamp_note, render.stamp_note_text = bool(note and k == 0), note[:80]
            render.filepath = str(Path(tmp) / f"frame_{f:05d}.png")
            bpy.ops.render.render(write_still=True)
            images.append(_read_png(Path(render.filepath), tile_size))
    scene.frame_set(current)
    sheet = tile(images, min(columns, len(images)))
    _write_png(sheet, path)
    return Sheet(path=path, frames=frames, size=(sheet.shape[1], sheet.shape[0]))

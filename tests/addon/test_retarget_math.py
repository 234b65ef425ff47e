"""Retargeting math without Blender: an independent numpy FK of Blender's pose rule checks the tracks."""
from __future__ import annotations

import numpy as np
import pytest

from irmogen.quaternions import qfrom_euler, qmul, qrot, qto_matrix  
from irmogen.rotations import forward_kinematics  
from irmogen.skeleton import JOINT_NAMES, PARENTS, REST_OFFSETS  
from rigs import (MIXAMO, MIXAMO_OBJECT_MATRIX, UE5, Y_TO_Z_UP, addon_module, mixamo_layout,  
                  rest_from_layout, smpl_layout, ue5_layout)

rt = addon_module("retarget")

SMPL_MAP = {n: n for n in JOINT_NAMES}


def synthetic_clip(frames: int = 40, seed: int = 0) -> dict:
    """Smoothly varying local rotations (up to ~70 degrees) and a root walking forward, 20 fps."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 20.0
    amp, freq, phase = rng.uniform(0, 40, (1, 22, 3)), rng.uniform(0.3, 1.5, (1, 22, 3)), rng.uniform(0, 6, (1, 22, 3))
    rot = qfrom_euler(amp * np.sin(2 * np.pi * freq * t + phase), "XYZ")
    root = np.stack([0.1 * np.sin(t[:, 0, 0]), 0.92 + 0.03 * np.sin(5 * t[:, 0, 0]), 1.2 * t[:, 0, 0]], -1)
    offsets = np.array(REST_OFFSETS)
    return {"fps": 20.0, "offsets": offsets, "rotations": rot, "root_translation": root,
            "positions": forward_kinematics(offsets, rot, root)}


def posed_from_tracks(rig: rt.RigRest, tracks: rt.BoneTracks, k: int) -> np.ndarray:
    """(N, 4, 4) world matrices of every bone at frame k: Blender's rule, written independently."""
    posed = np.zeros_like(rig.rest)
    depth = [0] * len(rig.names)
    for i in range(len(rig.names)):
        b = i
        while rig.parents[b] >= 0:
            b, depth[i] = rig.parents[b], depth[i] + 1
    for i in np.argsort(depth, kind="stable"):
        name = rig.names[i]
        basis = np.eye(4)
        if name in tracks.rotations:
            basis[:3, :3] = qto_matrix(tracks.rotations[name][k])
        if name in tracks.locations:
            basis[:3, 3] = tracks.locations[name][k]
        p = rig.parents[i]
        base = rig.rest[i] if p < 0 else posed[p] @ np.linalg.inv(rig.rest[p]) @ rig.rest[i]
        posed[i] = base @ basis
    return rig.object_matrix @ posed


def source_directions(clip: dict, yaw: float = 0.0) -> np.ndarray:
    """(T, 22, 3) world direction of each SMPL joint's bone in Blender axes, from the clip."""
    p = clip["positions"]
    world_q = np.zeros_like(clip["rotations"])
    for j, par in enumerate(PARENTS):
        world_q[:, j] = clip["rotations"][:, j] if par < 0 else qmul(world_q[:, par], clip["rotations"][:, j])
    d = np.zeros_like(p)
    for j in range(22):
        child = rt.PRIMARY_CHILD.get(j)
        d[:, j] = p[:, child] - p[:, j] if child is not None else qrot(world_q[:, j], np.broadcast_to(clip["offsets"][j], p[:, j].shape))
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    c, s = np.cos(yaw), np.sin(yaw)
    return d @ (np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ Y_TO_Z_UP).T


def direction_errors(rig, tracks, clip, mapping, yaw=0.0) -> np.ndarray:
    """(T, mapped) angle in degrees between each mapped bone's posed direction and the source's."""
    src = source_directions(clip, yaw)
    index = rig.index()
    errs = []
    for k in range(tracks.num_frames):
        posed = posed_from_tracks(rig, tracks, k)
        row = []
        for joint, bone in mapping.items():
            y = posed[index[bone], :3, 1]
            cos = np.dot(y / np.linalg.norm(y), src[k, JOINT_NAMES.index(joint)])
            row.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
        errs.append(row)
    return np.array(errs)


RIGS = {
    "smpl": lambda: (rest_from_layout(smpl_layout()), SMPL_MAP),
    "mixamo_fbx_like": lambda: (rest_from_layout(mixamo_layout(), MIXAMO_OBJECT_MATRIX),
                                {j: "mixamorig:" + b for j, b in MIXAMO.items()}),
    "ue5_apose": lambda: (rest_from_layout(ue5_layout()), dict(UE5)),
}


@pytest.mark.parametrize("rig_name", sorted(RIGS))
def test_bone_directions_follow_the_source(rig_name):
    rig, mapping = RIGS[rig_name]()
    clip = synthetic_clip()
    tracks = rt.retarget_clip(rig, clip, mapping, rt.RetargetOptions(scene_fps=20.0))
    err = direction_errors(rig, tracks, clip, mapping)
    assert tracks.num_frames == 40 and err.shape == (40, 22)
    assert err.max() < 1e-3, f"{rig_name}: max {err.max():.4f} deg"


def test_tpose_transfer_is_the_rest_delta_whatever_the_rolls():
    """On a T-pose rig the posed world rotation is exactly source_world * target_rest (any roll)."""
    layout = smpl_layout()
    rng = np.random.default_rng(3)
    for b in layout:
        b.roll = rng.uniform(-np.pi, np.pi)
    rig = rest_from_layout(layout)
    clip = synthetic_clip(frames=10)
    tracks = rt.retarget_clip(rig, clip, SMPL_MAP, rt.RetargetOptions(scene_fps=20.0))
    world_q = np.zeros_like(clip["rotations"])
    for j, par in enumerate(PARENTS):
        world_q[:, j] = clip["rotations"][:, j] if par < 0 else qmul(world_q[:, par], clip["rotations"][:, j])
    src = Y_TO_Z_UP @ qto_matrix(world_q) @ Y_TO_Z_UP.T
    for k in (0, 5, 9):
        posed = posed_from_tracks(rig, tracks, k)
        for j in set(range(22)) - {10, 11}:  # toe bones lie along the floor: calibrated
            expect = src[k, j] @ rig.rest[j, :3, :3]
            assert np.abs(posed[j, :3, :3] - expect).max() < 1e-4, JOINT_NAMES[j]


def test_root_motion_modes():
    rig = rest_from_layout(ue5_layout())
    clip = synthetic_clip()
    opts = dict(scene_fps=20.0)
    hips = rt.retarget_clip(rig, clip, UE5, rt.RetargetOptions(**opts))
    in_place = rt.retarget_clip(rig, clip, UE5, rt.RetargetOptions(root_motion="in_place", **opts))
    on_root = rt.retarget_clip(rig, clip, UE5, rt.RetargetOptions(root_motion="root_bone", root_bone="root", **opts))
    pelvis = rig.index()["pelvis"]
    head = {name: np.array([posed_from_tracks(rig, tr, k)[pelvis, :3, 3] for k in range(40)])
            for name, tr in (("hips", hips), ("in_place", in_place), ("root", on_root))}
    src = clip["root_translation"] @ Y_TO_Z_UP.T * hips.scale
    # Hips mode: the hips travel like the source root, scaled by the hip-height ratio.
    assert np.allclose(head["hips"] - head["hips"][0], src - src[0], atol=1e-6)
    assert 0.8 < hips.scale < 1.3
    # In place: horizontal position constant, height still moves with the source.
    assert np.abs(head["in_place"][:, :2] - head["in_place"][0, :2]).max() < 1e-9
    assert np.allclose(head["in_place"][:, 2], head["hips"][:, 2])
    # Root bone: the hips end where hips mode puts them; the root carries the horizontal travel.
    assert np.allclose(head["root"], head["hips"], atol=1e-6)
    root_loc = on_root.locations["root"]
    travel = np.array([posed_from_tracks(rig, on_root, k)[rig.index()["root"], :3, 3] for k in range(40)])
    assert np.allclose(travel[:, :2] - travel[0, :2], src[:, :2] - src[0, :2], atol=1e-6)
    assert np.abs(travel[:, 2]).max() < 1e-9 and np.abs(root_loc).max() > 0.5
    assert np.ptp(on_root.locations["pelvis"][:, :2], axis=0).max() < np.ptp(hips.locations["pelvis"], axis=0).max()


def test_resampling_and_untouched_bones():
    rig = rest_from_layout(mixamo_layout(), MIXAMO_OBJECT_MATRIX)
    mapping = {j: "mixamorig:" + b for j, b in MIXAMO.items()}
    clip = synthetic_clip(frames=40)                           # 2 s at 20 fps
    tracks = rt.retarget_clip(rig, clip, mapping, rt.RetargetOptions(scene_fps=30.0, frame_start=5))
    assert tracks.num_frames == 60 and tracks.frames[0] == 5 and tracks.frames[-1] == 64
    assert set(tracks.rotations) == set(mapping.values())
    assert set(tracks.locations) == {"mixamorig:Hips"}
    # Every other 20 fps frame coincides with every third 30 fps frame: same pose there.
    at20 = rt.retarget_clip(rig, clip, mapping, rt.RetargetOptions(scene_fps=20.0))
    for name, q in tracks.rotations.items():
        assert np.allclose(np.abs(np.sum(q[::3] * at20.rotations[name][::2], -1)), 1.0, atol=1e-9), name


def test_facing_follows_the_rig():
    """A rig turned to face +Y gets the motion turned with it, so directions still match."""
    layout = smpl_layout()
    for b in layout:                                           # 180 degrees about Z
        b.head, b.tail = b.head * [-1, -1, 1], b.tail * [-1, -1, 1]
    rig = rest_from_layout(layout)
    clip = synthetic_clip(frames=12)
    tracks = rt.retarget_clip(rig, clip, SMPL_MAP, rt.RetargetOptions(scene_fps=20.0))
    assert abs(abs(tracks.yaw) - np.pi) < 1e-6
    assert direction_errors(rig, tracks, clip, SMPL_MAP, yaw=np.pi).max() < 1e-3


def test_rotation_helpers():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(200, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    back = rt.matrix_to_quat(rt.quat_to_matrix(q))
    assert np.allclose(np.abs(np.sum(back * q, -1)), 1.0, atol=1e-12)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    r = rt.rotation_between(a, b)
    assert np.allclose(np.einsum("nij,nj->ni", r, a / np.linalg.norm(a, axis=-1, keepdims=True)),
                       b / np.linalg.norm(b, axis=-1, keepdims=True), atol=1e-12)
    assert np.allclose(rt.rotation_between(np.array([0, 0, 1.0]), np.array([0, 0, -1.0])) @ [0, 0, 1], [0, 0, -1])


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
def test_quat_to_euler_matches_blender_convention(order):
    """Blender's Euler 'ABC' applies A first: R = R_C @ R_B @ R_A. Rebuild R from the angles."""
    rng = np.random.default_rng(2)
    q = rng.normal(size=(100, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    e = rt.quat_to_euler(q, order)
    axes = {"X": np.array([1.0, 0, 0]), "Y": np.array([0, 1.0, 0]), "Z": np.array([0, 0, 1.0])}
    from rigs import _about
    for k in range(100):
        r = np.eye(3)
        for c in order:
            r = _about(axes[c], e[k, "XYZ".index(c)]) @ r
        assert np.allclose(r, rt.quat_to_matrix(q[k]), atol=1e-9)


def test_bad_inputs_name_the_fault():
    rig = rest_from_layout(smpl_layout())
    clip = synthetic_clip(frames=5)
    with pytest.raises(rt.RetargetError, match="pelvis"):
        rt.retarget_clip(rig, clip, {k: v for k, v in SMPL_MAP.items() if k != "pelvis"})
    with pytest.raises(rt.RetargetError, match="not_a_bone"):
        rt.retarget_clip(rig, clip, {**SMPL_MAP, "head": "not_a_bone"})
    with pytest.raises(rt.RetargetError, match="root_motion"):
        rt.retarget_clip(rig, clip, SMPL_MAP, rt.RetargetOptions(root_motion="sideways"))
    with pytest.raises(rt.RetargetError, match="root bone"):
        rt.retarget_clip(rig, clip, SMPL_MAP, rt.RetargetOptions(root_motion="root_bone", root_bone="spine1"))
    with pytest.raises(rt.RetargetError, match="rotations"):
        rt.retarget_clip(rig, {**clip, "rotations": clip["rotations"][:, :21]}, SMPL_MAP)

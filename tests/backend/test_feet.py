"""Foot contact cleanup on real motion capture: a clean walk is left almost as it was, a walk made to
slide is fixed, no standing foot stays more than 2 cm in the floor (uneven ground, jumps, a body
made to sink), jumps keep their flight, lying and crawling bodies are not stood up, and the
cleaned clip keeps the clip contract (FK of its rotations reproduces its positions)."""
import subprocess
import sys

import numpy as np
import pytest

from irmogen import protocol as P
from irmogen.clip import Clip
from irmogen.errors import IrmogenError
from irmogen.feet import LEG_JOINTS, cleanup_if, clean_feet, foot_metrics, joint_change
from irmogen.io import load_motion
from irmogen.rotations import forward_kinematics

pytestmark = pytest.mark.realdata

WALK = "cmu/bvh_cc/002_01.bvh.gz"
OTHER = [j for j in range(22) if j not in LEG_JOINTS]


def feet_y(p):
    return p[:, [7, 8, 10, 11], 1]


def flight(p) -> np.ndarray:
    """Frames where every foot joint is more than 5 cm above its lowest height."""
    y = feet_y(p)
    return np.all(y - y.min(axis=0) > 0.05, axis=1)


def slid(clip: Clip, factor: float) -> Clip:
    """The same steps with the body travelling `factor` times as far: planted feet skate."""
    r = clip.root_translation.copy()
    r[:, [0, 2]] = r[0, [0, 2]] + factor * (r[:, [0, 2]] - r[0, [0, 2]])
    return clip.with_(root_translation=r, positions=forward_kinematics(clip.offsets, clip.rotations, r))


def assert_contract(before: Clip, after: Clip):
    fk = forward_kinematics(after.offsets, after.rotations, after.root_translation)
    assert np.abs(fk - after.positions).max() < 1e-6
    # Only the legs' rotations change; the root only in height, by at most 8 cm.
    np.testing.assert_array_equal(after.rotations[:, OTHER], before.rotations[:, OTHER])
    np.testing.assert_array_equal(after.root_translation[:, [0, 2]], before.root_translation[:, [0, 2]])
    assert np.abs(after.root_translation[:, 1] - before.root_translation[:, 1]).max() <= 0.08 + 1e-9


def test_a_clean_real_walk_is_left_almost_unchanged(data_dir):
    walk = load_motion(data_dir / WALK)
    out, report = clean_feet(walk)
    assert_contract(walk, out)
    change = joint_change(walk.positions, out.positions)
    print(report.summary(), change)
    assert change["mean_m"] < 0.01
    assert report.contacts["left"] and report.contacts["right"]
    assert report.after["skate_m_s"] <= report.before["skate_m_s"]


def test_a_walk_with_added_sliding_is_fixed(data_dir):
    walk = load_motion(data_dir / WALK)
    skating = slid(walk, 1.3)
    before = foot_metrics(skating.positions, skating.fps)
    real = foot_metrics(walk.positions, walk.fps)
    assert before["skate_m_s"] > 4 * real["skate_m_s"]  # the damage is real
    out, report = clean_feet(skating)
    assert_contract(skating, out)
    after = foot_metrics(out.positions, out.fps)
    print(report.summary())
    assert after["skate_m_s"] <= 1.3 * real["skate_m_s"]
    assert after["sliding_share"] < 0.5 * before["sliding_share"]
    assert after["penetration_m"] <= 0.02
    # The body still travels the (faster) way it was made to.
    np.testing.assert_array_equal(out.root_translation[:, [0, 2]], skating.root_translation[:, [0, 2]])


@pytest.mark.parametrize("source", ["cmu/bvh_cc/003_01.bvh.gz",          # walk on uneven terrain
                                    "cmu/bvh_cc/001_01.bvh.gz",          # playground: forward jumps
                                    "deepmimic/humanoid3d_roll.txt", "deepmimic/humanoid3d_dance_b.txt",
                                    "deepmimic/humanoid3d_run.txt", WALK])
def test_no_standing_foot_stays_in_the_floor(data_dir, source):
    clip = load_motion(data_dir / source)
    out, report = clean_feet(clip)
    assert_contract(clip, out)
    print(report.summary())
    assert report.after["penetration_m"] <= 0.02
    assert report.after["penetration_m"] <= report.before["penetration_m"] + 1e-9


def test_a_body_that_sinks_into_the_floor_is_lifted_out(data_dir):
    """Generated motions sink for a frame or two: the whole body 6 cm down on two frames (0.1 s)
    of a real walk where both feet are on the ground. The root comes back up there (bending both
    knees instead would squat), and only there."""
    walk = load_motion(data_dir / WALK)
    r = walk.root_translation.copy()
    r[31:33, 1] -= 0.06
    sunk = walk.with_(root_translation=r, positions=forward_kinematics(walk.offsets, walk.rotations, r))
    out, report = clean_feet(sunk)
    assert_contract(sunk, out)
    print(report.summary())
    assert report.before["penetration_m"] > 0.05 and report.after["penetration_m"] <= 0.02
    assert np.all(out.root_translation[31:33, 1] - sunk.root_translation[31:33, 1] > 0.02)
    far = np.r_[0:21, 43:walk.num_frames]
    assert np.all(out.root_translation[far, 1] <= sunk.root_translation[far, 1])


def test_a_skip_into_a_kick_keeps_its_steps(data_dir):
    """DeepMimic's kick: the standing foot shuffles forward about half a metre, low and slow, on
    its way into the kick. Each stance is held on its own, so the body is not pulled down to
    reach one average place for all of them."""
    clip = load_motion(data_dir / "deepmimic/humanoid3d_kick.txt")
    out, report = clean_feet(clip)
    assert_contract(clip, out)
    print(report.summary(), report.contacts)
    assert len(report.contacts["left"]) >= 2
    assert report.root_drop_max_m < 0.01
    assert joint_change(clip.positions, out.positions)["other_max_m"] < 0.01
    assert report.after["skate_m_s"] < report.before["skate_m_s"]


@pytest.mark.parametrize("source", ["deepmimic/humanoid3d_jump.txt",
                                    "hdm05/test/4/HDM_mm_hopBothLegs1hops_031_120.amc"])
def test_jumps_keep_their_flight(data_dir, source):
    clip = load_motion(data_dir / source)
    air = flight(clip.positions)
    assert air.sum() >= 3, "the clip has a flight phase"
    out, _ = clean_feet(clip)
    assert_contract(clip, out)
    np.testing.assert_array_equal(flight(out.positions), air)
    # In the air the body rises exactly as high as before.
    np.testing.assert_allclose(out.root_translation[air, 1], clip.root_translation[air, 1], atol=1e-9)


@pytest.mark.parametrize("pattern", ["deepmimic/humanoid3d_crawl.txt", "hdm05/*/*/*lieDownFloor*_120.amc"])
def test_crawling_and_lying_are_not_forced_onto_the_feet(data_dir, pattern):
    path = sorted(data_dir.glob(pattern))[0]
    clip = load_motion(path)
    out, report = clean_feet(clip)
    assert_contract(clip, out)
    low = clip.positions[:, 0, 1] < 0.5   # the pelvis below half a standing height: on the floor
    assert low.sum() >= 5
    # While the body is on the floor the pelvis stays where it is and the body keeps its pose
    # (feet resting on the floor while sitting may still be held still).
    np.testing.assert_array_equal(out.root_translation[low], clip.root_translation[low])
    d = np.linalg.norm(out.positions[low] - clip.positions[low], axis=-1)
    print(report.contacts, d.mean(), d.max())
    assert d.mean() < 0.005 and d[:, OTHER].max() == 0.0


def test_without_contacts_or_disabled_the_clip_is_returned_as_is(data_dir):
    clip = load_motion(data_dir / "deepmimic/humanoid3d_crawl.txt")
    assert cleanup_if(clip, enabled=False) is clip
    out, report = clean_feet(clip)
    assert not any(report.contacts.values())
    np.testing.assert_array_equal(out.positions, clip.positions)
    np.testing.assert_array_equal(out.rotations, clip.rotations)


def test_the_metric_on_a_standing_body_and_on_a_sliding_one():
    from irmogen.skeleton import rest_positions

    stand = np.repeat(rest_positions()[None], 20, axis=0)
    stand[..., 1] -= stand[..., 1].min()
    m = foot_metrics(stand, 20.0)
    assert m["planted_share"] == 1.0 and m["skate_m_s"] == 0.0 and m["penetration_m"] == 0.0
    glide = stand + np.arange(20)[:, None, None] * np.array([0.0, 0.0, 0.02])  # 40 cm/s
    m = foot_metrics(glide, 20.0)
    assert m["skate_m_s"] == pytest.approx(0.4) and m["sliding_share"] == 1.0


def test_too_short_a_clip_is_refused_with_a_clear_error(data_dir):
    clip = load_motion(data_dir / WALK)
    short = clip.with_(positions=clip.positions[:2], rotations=clip.rotations[:2],
                       root_translation=clip.root_translation[:2])
    with pytest.raises(IrmogenError, match="at least 3"):
        clean_feet(short)


def test_the_server_request_carries_the_cleanup_switch():
    base = {"id": 1, "method": "generate", "params": {"text": "a person walks"}}
    assert P.parse_request(base).params.cleanup is True
    base["params"]["cleanup"] = False
    assert P.parse_request(base).params.cleanup is False
    base["params"]["cleanup"] = "no"
    with pytest.raises(P.ProtocolError, match="params.cleanup"):
        P.parse_request(base)
    refine = {"id": 2, "method": "refine", "params": {"codes": [1, 2], "text": "walk", "cleanup": False}}
    assert P.parse_request(refine).params.cleanup is False


def test_motion_clean_command(workdir, data_dir):
    r = subprocess.run([sys.executable, "-m", "irmogen", "motion", "clean", str(data_dir / WALK), "--out", "c.npz"],
                       cwd=workdir, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "skate" in r.stdout
    out = Clip.load(workdir / "c.npz")
    assert np.abs(forward_kinematics(out.offsets, out.rotations, out.root_translation) - out.positions).max() < 1e-5
    r = subprocess.run([sys.executable, "-m", "irmogen", "motion", "clean", "missing.npz", "--out", "c2.npz"],
                       cwd=workdir, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "missing.npz" in r.stderr and "Traceback" not in r.stderr
    assert not (workdir / "c2.npz").exists()


@pytest.mark.slow
def test_the_server_cleans_a_clip_and_generates_with_and_without_cleanup(data_dir, tmp_path):
    """A real `irmogen serve` process: `clean` cleans a real walk with no model loaded; a tiny
    model's generate answers the same motion with cleanup on (default) and off."""
    from irmogen.client import BackendClient
    from irmogen.llm.testing import tiny_motionllm

    walk = load_motion(data_dir / WALK)
    payload = P.encode_clip(walk.fps, walk.offsets, walk.rotations, walk.root_translation, walk.positions)
    expected, _ = clean_feet(walk)
    model_dir = tiny_motionllm(0).save_pretrained(tmp_path / "tiny")
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with BackendClient(model=model_dir, device="cpu", env=env) as backend:
        r = backend.call("clean", {"clip": payload}, timeout=60)
        assert r["event"] == "result", r
        got = P.decode_clip(r["data"]["clip"])
        np.testing.assert_allclose(got.positions.to_numpy(), expected.positions, atol=1e-5)
        assert "skate" in r["data"]["report"]
        bad = backend.call("clean", {"clip": {"fps": 20}}, timeout=60)
        assert bad["event"] == "error" and "params.clip" in bad["data"]["message"]
        quick = {"text": "a person walks", "seconds": 2, "max_rounds": 1, "max_text_tokens": 4, "payload": "json"}
        raw = backend.call("generate", {**quick, "cleanup": False}, timeout=120)["data"]["clip"]
        on = backend.call("generate", quick, timeout=120)["data"]["clip"]
    raw_clip = Clip(raw["fps"], *(np.asarray(raw[k], np.float64) for k in
                                  ("offsets", "rotations", "root_translation", "positions")))
    want, _ = clean_feet(raw_clip)
    np.testing.assert_allclose(np.asarray(on["positions"]), want.positions, atol=1e-5)

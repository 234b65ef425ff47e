"""The measures that say whether a part's action is there, on real motion capture whose action is
known (DeepMimic's labelled clips, an HDM05 squat): each sign is found where the action is, and
not where it is not (a walk forward is no walk backward and no sidestep; a walk is no jump)."""
import pytest

from irmogen.io import load_motion
from irmogen.partcheck import check_parts, expected


def verdict(clip, caption):
    return check_parts(clip, [{"caption": caption, "start": 0, "frames": clip.num_frames}])[0]


@pytest.mark.parametrize("name, there, absent", [
    ("walk", ["a person walks forward"], ["a person walks backward", "a person steps to the side", "a person jumps",
                                          "a person waves with the right hand", "a person spins"]),
    ("spin", ["a person spins"], ["a person walks forward", "a person walks backward"]),
    ("jump", ["a person jumps"], ["a person kicks"]),
    ("kick", ["a person kicks"], ["a person jumps"]),
    ("punch", ["a person punches"], ["a person jumps", "a person kicks", "a person spins"]),
    ("getup_faceup", ["a person stands up"], ["a person jumps", "a person spins"]),
    ("run", ["a person runs forward"], ["a person kicks", "a person jumps", "a person runs backward"]),
])
def test_deepmimic_actions_are_found_where_they_are_and_nowhere_else(data_dir, name, there, absent):
    clip = load_motion(data_dir / "deepmimic" / f"humanoid3d_{name}.txt")
    for caption in there:
        assert verdict(clip, caption)["ok"], (caption, verdict(clip, caption))
    for caption in absent:
        assert not verdict(clip, caption)["ok"], (caption, verdict(clip, caption))


def test_a_real_squat_is_a_crouch_and_not_travel(data_dir):
    amc = sorted((data_dir / "hdm05" / "test").glob("*/*squat1Reps*.amc"))[0]
    clip = load_motion(amc, asf=next(amc.parent.glob("*.asf")))
    assert verdict(clip, "a person crouches down")["ok"]
    assert not verdict(clip, "a person walks forward")["ok"]


def test_directions_replace_plain_travel():
    assert [c[1] for c in expected("a person walks backward")] == ["back"]
    assert [c[1] for c in expected("a person steps to the side")] == ["sideways"]
    assert [c[1] for c in expected("a person jogs in a circle")] == ["turn"]
    assert [c[1] for c in expected("a person runs forward and then stops")] == ["ahead", "end_speed"]

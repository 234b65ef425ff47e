"""ASF/AMC: units, axis frames, dof subsets, bones in any order, latin-1 headers, and errors."""
from __future__ import annotations

import numpy as np
import pytest

from irmogen.errors import IrmogenError
from irmogen.io import read_source
from irmogen.io.asf_amc import INCH, read_asf_amc

# A root and a two-bone chain: `up` points +Y (6 units), `arm` points +X (4 units) and rotates
# about its own axis frame, which is turned 90 degrees about Z (so its local X is world +Y).
ASF = """# test skeleton \xe4\xf6
:version 1.10
:name TEST
:units
  mass 1.0
  length 0.45
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name up
     direction 0 1 0
     length 6
     axis 0 0 0 XYZ
    dof rz
  end
  begin
     id 2
     name arm
     direction 1 0 0
     length 4
     axis 0 0 90 XYZ
    dof rx ry
  end
:hierarchy
  begin
    root up
    up arm
  end
"""

AMC = """#!OML:ASF test \xfc
:FULLY-SPECIFIED
:DEGREES
1
root 0 10 0 0 0 0
up 0
arm 0 0
2
arm 90 0
root 1 10 0 0 90 0
up 90
"""

UNIT = INCH / 0.45  # metres per ASF length unit


def write(tmp_path, asf=ASF, amc=AMC):
    (tmp_path / "t.asf").write_bytes(asf.encode("latin-1"))
    (tmp_path / "t_01.amc").write_bytes(amc.encode("latin-1"))
    return tmp_path / "t_01.amc", tmp_path / "t.asf"


def test_forward_kinematics_of_a_tiny_skeleton(tmp_path):
    amc, asf = write(tmp_path)
    m = read_asf_amc(amc, asf)
    assert m.names == ["root", "up", "arm", "arm_end"] and m.fps == 120.0
    p = m.positions / UNIT
    # Frame 1: everything at rest.
    np.testing.assert_allclose(p[0], [[0, 10, 0], [0, 10, 0], [0, 16, 0], [4, 16, 0]], atol=1e-9)
    # Frame 2: root turned 90 deg about Y, `up` bent 90 deg about Z, `arm` turned 90 deg about its
    # local X (= world Y in its axis frame), values listed in a different bone order.
    ry, rz = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]]), np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    r_up = ry @ rz
    elbow = np.array([1, 10, 0]) + 6 * r_up @ [0, 1, 0]
    r_arm = r_up @ ry  # C Rx(90) C^-1 with C = Rz(90) is a 90 deg turn about Y
    np.testing.assert_allclose(p[1, 2], elbow, atol=1e-9)
    np.testing.assert_allclose(p[1, 3], elbow + 4 * r_arm @ [1, 0, 0], atol=1e-9)


def test_radians_and_root_axis_order(tmp_path):
    asf = ASF.replace("angle deg", "angle rad").replace("axis XYZ", "axis ZYX")
    amc = AMC.replace(":DEGREES", "").replace("root 1 10 0 0 90 0", f"root 0 10 0 {np.pi / 2} 0 {np.pi / 2}")
    amc = amc.replace("up 90", "up 0").replace("arm 90 0", "arm 0 0")
    amc_path, asf_path = write(tmp_path, asf, amc)
    p = read_asf_amc(amc_path, asf_path).positions / UNIT
    # Order ZYX applies Z first, then X: the bone (+Y) goes to -X under Z, and stays there under X.
    rx, rz = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]), np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(p[1, 2], [0, 10, 0] + 6 * (rx @ rz @ [0, 1, 0]), atol=1e-9)


@pytest.mark.parametrize("amc,line,words", [
    (AMC.replace("arm 90 0", "elbow 90 0"), 9, "unknown joint 'elbow'"),
    (AMC.replace("arm 90 0", "arm 90"), 9, "expected 2"),
    (AMC.replace("arm 90 0", "arm 90 x"), 9, "non-numeric"),
    (AMC.replace("arm 90 0", "arm 90 nan"), 9, "NaN"),
])
def test_malformed_amc_errors_name_file_and_line(tmp_path, amc, line, words):
    amc_path, asf_path = write(tmp_path, amc=amc)
    with pytest.raises(IrmogenError) as e:
        read_asf_amc(amc_path, asf_path)
    msg = str(e.value)
    assert "\n" not in msg and f"t_01.amc:{line}:" in msg and words in msg, msg


def test_truncated_amc_and_empty_asf(tmp_path):
    amc_path, asf_path = write(tmp_path, amc=AMC.rsplit("up 90", 1)[0])
    with pytest.raises(IrmogenError, match=r"t_01.amc: frame 2 has no 'up' line \(truncated"):
        read_asf_amc(amc_path, asf_path)
    amc_path, asf_path = write(tmp_path, asf="")
    with pytest.raises(IrmogenError, match="t.asf: no :bonedata"):
        read_asf_amc(amc_path, asf_path)


def test_tiny_skeleton_is_an_unknown_skeleton(tmp_path):
    amc_path, _ = write(tmp_path)
    with pytest.raises(IrmogenError, match="t_01.amc: unknown skeleton.*left_knee"):
        read_source(amc_path)  # the ASF is found by the subject prefix "t"


@pytest.mark.realdata
def test_cmu_asf_maps_to_smpl_with_rigid_groups(data_dir):
    src = read_source(data_dir / "cmu/amc/05_13.amc", fps=None)
    assert src.skeleton == "vicon_asf" and "asf_stand_in" in src.meta and src.source_fps == 120.0
    p = src.positions
    # Hips are femur heads: below and to the side of the pelvis, about 18-22 cm apart.
    width = np.linalg.norm(p[:, 1] - p[:, 2], axis=-1)
    assert np.all((width > 0.15) & (width < 0.25))
    assert np.all(p[:, 1, 1] < p[:, 0, 1]) and np.all(p[:, 3, 1] > p[:, 1, 1])

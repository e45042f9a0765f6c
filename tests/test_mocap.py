"""Motion capture in other skeletons: ASF/AMC and BVH readers, the retarget to SMPL-X, the import
command, and one-line errors for broken files."""

import math
import re

import numpy as np
import pytest
import torch

from probpose.cli import main
from probpose.data import read_info, read_split
from probpose.data.mocap import read_amc, read_asf, read_bvh
from probpose.data.rest import rest_joints
from probpose.data.retarget import MAPS, bone_agreement, load_map, rest_offset, retarget
from probpose.errors import DataError
from probpose.kinematics.forward import forward_kinematics, offsets_from_joints
from probpose.rotations import axis_angle_to_matrix, euler_to_matrix, geodesic_distance, random_rotations
from probpose.skeleton import SMPLX
from probpose.synthesis.bvh import write_bvh_tree

ASF = """# a three-bone test skeleton
:version 1.10
:name TEST
:units
  mass 1.0
  length 0.5
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name a
     direction 0 0 1
     length 10
     axis 0 0 90  XYZ
    dof rx ry rz
  end
  begin
     id 2
     name b
     direction 1 0 0
     length 5
     axis 0 0 0 XYZ
    dof rz
  end
:hierarchy
  begin
    root a
    a b
  end
"""

AMC = """#!OML:ASF test.asf
:FULLY-SPECIFIED
:DEGREES
1
root 1 2 3 0 0 0
a 30 0 0
b 45
2
root 1 2 3 0 0 0
a 0 0 0
b 0
"""


def _pair(folder, asf=ASF, amc=AMC, crlf=False, name="07_01.amc", asf_name="07.asf"):
    folder.mkdir(parents=True, exist_ok=True)
    nl = "\r\n" if crlf else "\n"
    (folder / asf_name).write_bytes(asf.replace("\n", nl).encode())
    (folder / name).write_bytes(amc.replace("\n", nl).encode())
    return folder / name


def _r(axis, deg):
    angles = torch.zeros(3, dtype=torch.float64)
    angles["xyz".index(axis)] = math.radians(deg)
    return euler_to_matrix(angles, "XYZ").numpy()


@pytest.mark.parametrize("crlf", [False, True])
def test_a_small_asf_amc_pair_reads_to_its_known_forward_kinematics(tmp_path, crlf):
    """Bone a: axis frame C = Rz(90), dof rx = 30 deg -> a rotation of 30 deg about world y
    (C M C^-1); bone b: rz = 45 below it. Lengths: 10 units / 0.5 x 0.0254 m = 0.508 m."""
    m = read_amc(_pair(tmp_path, crlf=crlf))
    assert m.bones == ("root", "a", "b") and len(m) == 2 and m.fps == 120.0 and not m.fps_stated
    np.testing.assert_allclose(m.rotations[0, 1], _r("y", 30), atol=1e-12)
    np.testing.assert_allclose(m.rotations[0, 2], _r("z", 45), atol=1e-12)
    np.testing.assert_allclose(m.rotations[1], np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-12)
    unit = 0.0254 / 0.5
    np.testing.assert_allclose(m.root_position[0], np.array([1, 2, 3]) * unit, atol=1e-12)
    heads, tails = m.positions()
    a_tail = heads[0, 1] + 10 * unit * np.array([0.5, 0.0, math.sqrt(3) / 2])
    np.testing.assert_allclose(tails[0, 1], a_tail, atol=1e-12)
    b_dir = _r("y", 30) @ _r("z", 45) @ np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(tails[0, 2], a_tail + 5 * unit * b_dir, atol=1e-12)


def test_radians_and_another_rotation_order_and_root_order(tmp_path):
    asf = ASF.replace("angle deg", "angle rad").replace("order TX TY TZ RX RY RZ", "order RX RY RZ TX TY TZ")
    asf = asf.replace("axis 0 0 90  XYZ", "axis 0 0 0 ZYX")
    amc = AMC.replace(":DEGREES\n", "").replace("root 1 2 3 0 0 0", "root 0 0 0 1 2 3")
    amc = amc.replace("a 30 0 0", "a 0.1 0.2 0")
    m = read_amc(_pair(tmp_path, asf, amc))
    # order ZYX: M = Rx Ry Rz (z first); values in the dof order rx ry rz
    want = _r("x", math.degrees(0.1)) @ _r("y", math.degrees(0.2))
    np.testing.assert_allclose(m.rotations[0, 1], want, atol=1e-12)
    np.testing.assert_allclose(m.rotations[0, 2], _r("z", math.degrees(45)), atol=1e-12)  # radians: 45 rad
    np.testing.assert_allclose(m.root_position[0], np.array([1, 2, 3]) * 0.0254 / 0.5, atol=1e-12)


def _smplx_bvh(path, n=6, seed=0):
    """SMPL-X poses written as BVH by probpose's own writer; returns the local rotations."""
    g = torch.Generator().manual_seed(seed)
    rest = rest_joints(SMPLX).numpy()
    tails = rest.copy()
    for j, name in enumerate(SMPLX.joint_names):  # leaves end 5 cm on: feet forward, others along the parent bone
        p = SMPLX.parents[j]
        d = np.array([0.0, 0.0, 1.0]) if name.endswith("_foot") else rest[j] - rest[p]
        tails[j] = rest[j] + 0.05 * d / np.linalg.norm(d)
    local = torch.from_numpy(0.35 * torch.randn(n, 55, 3, generator=g, dtype=torch.float64).numpy())
    local = axis_angle_to_matrix(local)
    local[:, 0] = random_rotations((n,), generator=g, dtype=torch.float64)
    root = torch.randn(n, 3, generator=g, dtype=torch.float64)
    write_bvh_tree(path, SMPLX.joint_names, SMPLX.parents, rest, tails, local, root, 30.0)
    return local


def test_smplx_poses_written_as_bvh_retarget_to_the_same_rotations(tmp_path):
    local = _smplx_bvh(tmp_path / "smplx.bvh")
    m = read_bvh(tmp_path / "smplx.bvh", unit_metres=1.0)
    assert m.fps == pytest.approx(30.0) and m.fps_stated
    rest = m.rest_heads[[m.index(n) for n in SMPLX.joint_names]]  # the rest joints as written (6 decimals)
    r = retarget(m, "smplx", rest=rest)
    assert r.map.name == "smplx" and not r.undriven
    got = axis_angle_to_matrix(torch.from_numpy(r.poses))
    for name in ["pelvis", *r.driven]:
        k = SMPLX.index(name)
        err = geodesic_distance(got[:, k], local[:, k]).max().item()
        assert err < 1e-5, (name, err)
    np.testing.assert_allclose(r.align, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(r.transl, m.root_position, atol=1e-9)


def test_a_map_is_chosen_by_the_bones_and_a_users_yaml_map_works(tmp_path):
    _smplx_bvh(tmp_path / "smplx.bvh", n=2)
    m = read_bvh(tmp_path / "smplx.bvh")
    assert retarget(m).map.name == "smplx"
    (tmp_path / "legs.yaml").write_text(
        "name: legs\nroot: pelvis\njoints:\n  left_hip: left_hip\n  left_knee: [left_knee]\n"
    )
    r = retarget(m, tmp_path / "legs.yaml", rest=m.rest_heads[[m.index(n) for n in SMPLX.joint_names]])
    assert r.driven == ["left_hip", "left_knee"] and len(r.undriven) == 19
    assert r.present.sum() == 3  # pelvis and the two legs' joints: the rest are not modelled
    (tmp_path / "bad.yaml").write_text("root: pelvis\njoints:\n  left_thumb9: [x]\n")
    with pytest.raises(Exception, match="not SMPL-X body joints"):
        load_map(tmp_path / "bad.yaml")


def _cmu(shared_data, trial="02_01"):
    return read_amc(shared_data / "cmu" / trial[:2] / f"{trial}.amc")


def test_the_cmu_rest_pose_retargets_near_the_smplx_zero_pose(shared_data):
    """A T-posed CMU frame (every bone at its rest) comes out at SMPL-X's zero pose for every joint
    retargeted by its rest posture (spine, neck, head, ankles, feet, wrists: exactly), and within
    the two rests' real differences for the bone-direction joints: CMU's thighs stand 20 degrees
    apart where SMPL-X's stand 5 (hips about 15), the knees and arms a few degrees."""
    m = _cmu(shared_data)
    m.rotations, m.root_position = m.rotations[:1].copy(), m.root_position[:1]
    m.rotations[:] = np.eye(3)
    r = retarget(m)
    angles = {n: math.degrees(np.linalg.norm(r.poses[0, SMPLX.index(n)])) for n in r.driven}
    by_rest = [n for n in r.driven if r.map.rule(n) == "rest"]
    assert set(by_rest) >= {"spine3", "neck", "head", "left_ankle", "left_foot", "right_wrist"}
    assert max(angles[n] for n in by_rest) < 1e-6, angles
    assert max(angles[n] for n in ("left_hip", "right_hip")) < 17, angles
    assert max(angles[n] for n in r.driven if "hip" not in n) < 13, angles


def test_bone_directions_agree_on_real_cmu_frames(shared_data):
    """Through SMPL-X forward kinematics of the retargeted rotations (not the retarget's own
    arithmetic): every limb retargeted by bone direction (hips, knees, shoulders, elbows) points
    exactly where its CMU bone points; every joint retargeted by rest posture turns its segment by
    the source bone's rotation from rest (zero offset for the trunk, whose parents are rest joints
    too), and its bone direction then differs only by the two rests' difference (the SMPL-X neck
    leans 34 degrees forward of CMU's straight one)."""
    m = _cmu(shared_data)
    r = retarget(m)
    assert r.map.name == "cmu" and [u.split()[0] for u in r.undriven] == ["left_collar", "right_collar"]
    rest = rest_joints(SMPLX)
    posed = forward_kinematics(SMPLX, axis_angle_to_matrix(torch.from_numpy(r.poses)), offsets_from_joints(SMPLX, rest))
    agree = bone_agreement(m, r, posed.positions.numpy(), posed.rotations.numpy())
    for name, angles in agree.items():
        joint = name.split()[0]
        if r.map.rule(joint) == "direction":
            assert angles.max() < 1e-4, (name, angles.max())
        else:
            assert angles.max() < 36 and np.percentile(angles, 95) < 35, (name, angles.mean())
    assert {"neck <- lowerneck", "left_elbow <- lwrist", "left_knee <- chain", "head <- chain"} <= set(agree)
    offset = rest_offset(m, r, posed.rotations.numpy())
    for joint in ("spine1", "spine2", "spine3", "neck", "head"):
        assert offset[joint].max() < 1e-4, (joint, offset[joint].max())
    assert 10 < offset["left_hip"].mean() < 20  # the thighs' rest difference, constant in time
    assert np.ptp(offset["left_hip"]) < 1e-4


def test_import_cmu_trials_fills_every_dof_and_splits_by_subject(shared_data, tmp_path, capsys):
    """The import models all 21 body joints (the collars CMU never moves held at rest with their
    documented spread); the test split is whole subjects, and with a single subject it says that
    test shares it with training instead of hiding it."""
    out = tmp_path / "cmu.h5"
    trials = [shared_data / "cmu" / s / f"{s}_0{k}.amc" for s in ("01", "02") for k in (1, 2, 3, 4)]
    assert main(["import", *map(str, trials), "--fps", "30", "--split", "50/25/25", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "whole subjects in test" in text and "retargeted to SMPL-X with the 'cmu' map" in text
    assert "held at rest with that spread: left_collar, right_collar" in text
    info = read_info(out)
    assert info.joints == "body"
    subjects: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        _, seq = read_split(out, split)
        subjects[split] = {info.sequences[s]["name"][:2] for s in set(seq.tolist())}
    assert all(subjects.values()) and not subjects["test"] & (subjects["train"] | subjects["val"]), subjects
    assert info.split_stats["test_subjects"] == sorted(subjects["test"])
    single = tmp_path / "single.h5"
    assert main(["import", *map(str, trials[4:]), "--fps", "30", "--split", "50/25/25", "--out", str(single)]) == 0
    assert "test shares subject(s) 02 with training" in capsys.readouterr().err
    assert main(["import", *map(str, trials[4:]), "--no-fill-dofs", "--out", str(tmp_path / "raw.h5")]) == 0
    assert read_info(tmp_path / "raw.h5").joints == "body-left_collar-right_collar"


def test_every_builtin_map_names_only_known_joints():
    for m in MAPS.values():
        assert m.joints and all(chain for chain in m.joints.values())


BROKEN = {
    "missing_asf": (None, AMC, "no skeleton"),
    "unknown_bone": (ASF, AMC.replace("b 45", "c 45"), "line 7: bone 'c' is not in the skeleton"),
    "value_count": (ASF, AMC.replace("a 30 0 0", "a 30 0"), "line 6: bone 'a': 2 values where the skeleton declares 3"),
    "nan": (ASF, AMC.replace("b 45", "b nan"), "line 7: bone 'b': 'nan' is not a finite number"),
    "text": (ASF, AMC.replace("b 45", "b forty"), "line 7: bone 'b': expected a number, got 'forty'"),
    "truncated": (ASF, AMC.rsplit("a 0 0 0", 1)[0], "frame 2: no values for bones ['a', 'b']: the file ends"),
    "asf_no_length": (ASF.replace("     length 5\n", ""), AMC, "bone 'b' has no length"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_files_are_one_line_errors_naming_file_and_line(tmp_path, capsys, case):
    asf, amc, message = BROKEN[case]
    folder = tmp_path / "in"
    folder.mkdir()
    if asf is not None:
        (folder / "07.asf").write_text(asf)
    (folder / "07_01.amc").write_text(amc)
    out = tmp_path / "out.h5"
    assert main(["import", str(folder / "07_01.amc"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "07_01.amc" in err or "07.asf" in err, err
    assert message in err, err
    assert not out.exists() and not list(tmp_path.glob("*.h5*"))


def test_broken_bvh_files_name_the_line(tmp_path):
    _smplx_bvh(tmp_path / "ok.bvh", n=3)
    text = (tmp_path / "ok.bvh").read_text()
    (tmp_path / "short.bvh").write_text(text.rsplit("\n", 3)[0] + "\n")
    with pytest.raises(Exception, match="Frames says 3 but 1 frame lines follow"):
        read_bvh(tmp_path / "short.bvh")
    (tmp_path / "text.bvh").write_text(text.replace("OFFSET 0.000000", "OFFSET zero", 1))
    with pytest.raises(Exception, match=r"line 4: pelvis OFFSET: expected a number, got 'zero'"):
        read_bvh(tmp_path / "text.bvh")


def test_asf_units_scale_lengths(tmp_path):
    (tmp_path / "s.asf").write_text(ASF.replace("length 0.5", "length 1.0"))
    skel = read_asf(tmp_path / "s.asf")
    assert skel.length[1] == pytest.approx(10 * 0.0254)


CGSPEED = {"root": "Hips", "lowerback": "LowerBack", "upperback": "Spine", "thorax": "Spine1", "lowerneck": "Neck",
           "upperneck": "Neck1", "head": "Head"}  # fmt: skip
for _side, _word in (("l", "Left"), ("r", "Right")):
    CGSPEED.update(
        {
            f"{_side}hipjoint": f"{_side.upper()}HipJoint",
            f"{_side}femur": f"{_word}UpLeg",
            f"{_side}tibia": f"{_word}Leg",
            f"{_side}foot": f"{_word}Foot",
            f"{_side}toes": f"{_word}ToeBase",
            f"{_side}clavicle": f"{_word}Shoulder",
            f"{_side}humerus": f"{_word}Arm",
            f"{_side}radius": f"{_word}ForeArm",
            f"{_side}wrist": f"{_word}Hand",
            f"{_side}hand": f"{_word}FingerBase",
            f"{_side}fingers": f"{_word}HandIndex1",
            f"{_side}thumb": f"{_side.upper()}Thumb",
        }
    )
"""CMU's bones under the names of the usual BVH conversions of the database (one joint per ASF bone)."""


def test_cmu_written_as_bvh_with_the_usual_names_retargets_like_the_amc(shared_data, tmp_path):
    """A CMU trial written by our BVH writer under the usual conversion's joint names (Hips,
    LHipJoint, LeftUpLeg, ..., LeftHand = CMU's lwrist, LeftFingerBase = its lhand) is recognised as
    ``cmu_bvh`` and retargets to the AMC's rotations (up to the 6 decimals the file keeps)."""
    m = _cmu(shared_data)
    m.rotations, m.root_position = m.rotations[::20].copy(), m.root_position[::20].copy()
    assert set(m.bones) == set(CGSPEED)
    tails = np.where(np.isfinite(m.rest_tails), m.rest_tails, m.rest_heads)
    write_bvh_tree(
        tmp_path / "cmu.bvh",
        [CGSPEED[b] for b in m.bones],
        m.parents,
        m.rest_heads,
        tails,
        torch.from_numpy(m.rotations),
        torch.from_numpy(m.root_position),
        30.0,
    )
    b = read_bvh(tmp_path / "cmu.bvh", unit_metres=1.0)
    from_amc, from_bvh = retarget(m), retarget(b)
    assert from_bvh.map.name == "cmu_bvh" and from_bvh.driven == from_amc.driven
    got = axis_angle_to_matrix(torch.from_numpy(from_bvh.poses))
    want = axis_angle_to_matrix(torch.from_numpy(from_amc.poses))
    for name in ["pelvis", *from_amc.driven]:
        k = SMPLX.index(name)
        assert geodesic_distance(got[:, k], want[:, k]).max().item() < 1e-3, name


def test_a_mixamo_named_rig_is_recognised_and_retargets_like_smplx_names(tmp_path):
    """SMPL-X poses written as BVH under Mixamo's names (``mixamorig:`` prefix, Spine/Spine1/Spine2,
    LeftArm, LeftHandIndex1, ...): the ``mixamo`` map is chosen and every joint gets the rotations
    the ``smplx`` map gives, the wrists too (retargeted by rest posture, so a hand with five finger
    bases and no SMPL-X-named child needs no bone direction)."""
    _smplx_bvh(tmp_path / "smplx.bvh", n=4)
    text = (tmp_path / "smplx.bvh").read_text()
    rename = {"pelvis": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2", "neck": "Neck",
              "head": "Head"}  # fmt: skip
    for side, word in (("left", "Left"), ("right", "Right")):
        rename.update(
            {
                f"{side}_hip": f"{word}UpLeg",
                f"{side}_knee": f"{word}Leg",
                f"{side}_ankle": f"{word}Foot",
                f"{side}_foot": f"{word}ToeBase",
                f"{side}_collar": f"{word}Shoulder",
                f"{side}_shoulder": f"{word}Arm",
                f"{side}_elbow": f"{word}ForeArm",
                f"{side}_wrist": f"{word}Hand",
            }
        )
        for finger in ("index", "middle", "ring", "pinky", "thumb"):
            for k in (1, 2, 3):
                rename[f"{side}_{finger}{k}"] = f"{word}Hand{finger.title()}{k}"
    for old in sorted(SMPLX.joint_names, key=len, reverse=True):
        new = rename.get(old, old)
        text = re.sub(rf"(ROOT|JOINT) {old}\n", rf"\1 mixamorig:{new}\n", text)
    (tmp_path / "mixamo.bvh").write_text(text)
    smplx_bvh, mixamo_bvh = read_bvh(tmp_path / "smplx.bvh"), read_bvh(tmp_path / "mixamo.bvh")
    rest = smplx_bvh.rest_heads[[smplx_bvh.index(n) for n in SMPLX.joint_names]]
    want, got = retarget(smplx_bvh, "smplx", rest=rest), retarget(mixamo_bvh, rest=rest)
    assert got.map.name == "mixamo" and got.driven == want.driven
    a, b = (axis_angle_to_matrix(torch.from_numpy(r.poses)) for r in (got, want))
    for name in ["pelvis", *want.driven]:
        k = SMPLX.index(name)
        err = geodesic_distance(a[:, k], b[:, k]).max().item()
        # a wrong bone in the map would be tens of degrees off
        assert err < 1e-5, (name, err)
    posed = forward_kinematics(SMPLX, a, offsets_from_joints(SMPLX, torch.from_numpy(rest)))
    agree = bone_agreement(mixamo_bvh, got, posed.positions.numpy(), posed.rotations.numpy(), rest=rest)
    assert agree["left_elbow <- chain"].max() < 1e-4 and agree["right_elbow <- chain"].max() < 1e-4
    assert got.map.rule("left_wrist") == "rest"  # its rotation from rest, whatever its bone's direction


def test_the_column_reader_equals_the_line_reader_on_a_real_trial(shared_data):
    """CMU's regular layout is read by whole columns (fast); the result equals the line-by-line
    reader's exactly, and a file it cannot take (a blank line inside) goes to the line reader."""
    from probpose.data.mocap import _amc_fast, _amc_lines, _read_lines, find_asf

    path = shared_data / "cmu" / "02" / "02_01.amc"
    skel = read_asf(find_asf(path))
    lines = _read_lines(path)
    start = next(k for k, ln in enumerate(lines) if ln.strip() == "1")
    columns = {"root": skel.root_order, **dict(zip(skel.bones[1:], skel.dofs[1:], strict=True))}
    moving = [b for b, d in columns.items() if d]
    fast = _amc_fast(lines, start, columns, moving)
    slow = _amc_lines(lines, start, columns, moving, skel, str(path))
    assert fast is not None and fast.keys() == slow.keys()
    for b in slow:
        assert np.array_equal(fast[b], slow[b]), b
    assert _amc_fast(lines[: start + 40] + [""] + lines[start + 40 :], start, columns, moving) is None


def test_a_daz_friendly_rig_is_recognised_and_retargets_by_anatomy(tmp_path):
    """SMPL-X poses written as BVH under the DAZ-friendly names of CMU's BVH conversions (hip,
    abdomen, chest, neck, head, lCollar, lShldr, lForeArm, lHand, lThigh, lShin, lFoot), with one
    spine bone more than DAZ maps (here ``lowerBack``) and toes it has not: the ``daz`` map is
    chosen; every mapped joint gets the ``smplx`` map's rotation, except SMPL-X's spine2, which
    takes the unmapped spine bone's turn too (its rotation from the pelvis), while spine1 and the
    toes are left undriven."""
    local = _smplx_bvh(tmp_path / "smplx.bvh", n=4)
    text = (tmp_path / "smplx.bvh").read_text()
    rename = {"pelvis": "hip", "spine1": "lowerBack", "spine2": "abdomen", "spine3": "chest", "neck": "neck",
              "head": "head"}  # fmt: skip
    for side, s in (("left", "l"), ("right", "r")):
        rename.update(
            {
                f"{side}_hip": f"{s}Thigh",
                f"{side}_knee": f"{s}Shin",
                f"{side}_ankle": f"{s}Foot",
                f"{side}_foot": f"{s}Toe",
                f"{side}_collar": f"{s}Collar",
                f"{side}_shoulder": f"{s}Shldr",
                f"{side}_elbow": f"{s}ForeArm",
                f"{side}_wrist": f"{s}Hand",
            }
        )
    for old in sorted(SMPLX.joint_names, key=len, reverse=True):
        text = re.sub(rf"(ROOT|JOINT) {old}\n", rf"\1 {rename.get(old, old)}\n", text)
    (tmp_path / "daz.bvh").write_text(text)
    smplx_bvh, daz_bvh = read_bvh(tmp_path / "smplx.bvh"), read_bvh(tmp_path / "daz.bvh")
    rest = smplx_bvh.rest_heads[[smplx_bvh.index(n) for n in SMPLX.joint_names]]
    want, got = retarget(smplx_bvh, "smplx", rest=rest), retarget(daz_bvh, rest=rest)
    assert got.map.name == "daz"
    assert sorted(u.split()[0] for u in got.undriven) == ["left_foot", "right_foot", "spine1"]
    a, b = (axis_angle_to_matrix(torch.from_numpy(r.poses)) for r in (got, want))
    for name in ["pelvis", *got.driven]:
        k = SMPLX.index(name)
        target = local[:, SMPLX.index("spine1")] @ local[:, k] if name == "spine2" else b[:, k]
        err = geodesic_distance(a[:, k], target).max().item()
        assert err < 1e-5, (name, err)
    assert np.abs(got.poses[:, SMPLX.index("spine1")]).max() == 0.0


LAUGHS = "name: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"l{k}: &{chr(98 + k)} [*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}]\n" for k in range(8)
)
MAP_CASES = {
    "billion_laughs": (LAUGHS.encode(), "anchors"),
    "duplicate_key": (b"root: hip\njoints:\n  neck: [neck]\n  neck: [head]\n", "duplicate key 'neck' at line 4"),
    "strip_prefix_string": (b"root: hip\nstrip_prefix: 'false'\njoints: {neck: neck}\n", "strip_prefix: expected true"),
    "two_joints_one_bone": (b"root: hip\njoints: {neck: neck, head: neck}\n", "bone 'neck' already drives neck"),
    "root_drives_a_joint": (b"root: hip\njoints: {spine1: hip}\n", "root bone 'hip' also drives spine1"),
    "utf16": ("root: hip\njoints: {neck: neck}\n".encode("utf-16"), "not UTF-8 text"),
    "binary": (b"\x00\x01root", "not text"),
    "too_large": (b"#" * 1_000_001, "larger than 1,000,000 bytes"),
    "rule_unknown": (b"root: hip\njoints: {neck: neck}\nrules: {neck: sideways}\n", "direction"),
}


@pytest.mark.parametrize("case", list(MAP_CASES))
def test_a_hostile_retarget_map_is_a_one_line_error(tmp_path, case):
    """Retarget maps are read by the one safe YAML loader (probpose.safe_yaml, shared with the
    configs): size checked before reading, UTF-8 only, no anchors or aliases, no duplicate keys;
    then checked for meaning (a boolean strip_prefix, one joint per bone, a known rule)."""
    raw, message = MAP_CASES[case]
    (tmp_path / "m.yaml").write_bytes(raw)
    with pytest.raises(DataError, match=re.escape(message)) as e:
        load_map(tmp_path / "m.yaml")
    assert "\n" not in str(e.value)


def test_a_utf8_map_with_a_byte_order_mark_reads(tmp_path):
    (tmp_path / "m.yaml").write_bytes(b"\xef\xbb\xbfroot: hip\nstrip_prefix: true\njoints: {neck: [neck]}\n")
    m = load_map(tmp_path / "m.yaml")
    assert m.root == "hip" and m.strip_prefix is True and m.joints == {"neck": ("neck",)}


def _flat_bvh(n_joints: int, frame_time: str = "0.0333333", offset: str = "0 1 0") -> str:
    """A BVH whose ``n_joints`` joints all hang from the root (one rotation channel triple each)."""
    joint = (
        "  JOINT j{k}\n  {{\n    OFFSET {offset}\n    CHANNELS 3 Zrotation Xrotation Yrotation\n"
        "    End Site\n    {{\n      OFFSET 0 1 0\n    }}\n  }}\n"
    )
    joints = "".join(joint.format(k=k, offset=offset) for k in range(n_joints - 1))
    width = 6 + 3 * (n_joints - 1)
    return (
        f"HIERARCHY\nROOT hips\n{{\n  OFFSET 0 0 0\n  CHANNELS 6 Xposition Yposition Zposition Zrotation "
        f"Xrotation Yrotation\n{joints}}}\nMOTION\nFrames: 2\nFrame Time: {frame_time}\n" + ("0 " * width + "\n") * 2
    )


def _chain_asf(n_bones: int, reverse: bool = True) -> str:
    """An ASF chain of ``n_bones`` bones, listed (in :bonedata and :hierarchy) deepest first."""
    order = range(n_bones - 1, -1, -1) if reverse else range(n_bones)
    bones = "".join(f"  begin\n     id {k + 1}\n     name b{k}\n     direction 0 1 0\n     length 1\n"
                    f"     axis 0 0 0 XYZ\n    dof rx ry rz\n  end\n" for k in order)  # fmt: skip
    links = "".join(f"    {'root' if k == 0 else f'b{k - 1}'} b{k}\n" for k in order)
    head = ASF.split(":bonedata")[0]
    return f"{head}:bonedata\n{bones}:hierarchy\n  begin\n{links}  end\n"


MOCAP_CASES = {
    "bvh_too_many_joints": ("x.bvh", lambda: _flat_bvh(100_000), "more than 1,024 joints"),
    "bvh_denormal_frame_time": ("x.bvh", lambda: _flat_bvh(3, "5e-324"), "Frame Time must be 0.0001 to 60 seconds"),
    "bvh_tiny_frame_time": ("x.bvh", lambda: _flat_bvh(3, "1e-300"), "Frame Time must be"),
    "bvh_huge_frame_time": ("x.bvh", lambda: _flat_bvh(3, "1e300"), "Frame Time must be"),
    "bvh_all_offsets_zero": ("x.bvh", lambda: _flat_bvh(3, offset="0 0 0"), "every joint's OFFSET is zero"),
    "asf_too_many_bones": ("07.asf", lambda: _chain_asf(4_000), "more than 1,024 bones"),
    "asf_zero_length": ("07.asf", lambda: ASF.replace("length 5\n", "length 0\n"), "length must be positive"),
    "asf_negative_length": ("07.asf", lambda: ASF.replace("length 5\n", "length -5\n"), "length must be positive"),
    "asf_tiny_units": ("07.asf", lambda: ASF.replace("length 0.5\n", "length 1e-300\n"), "units length must be in"),
}


@pytest.mark.parametrize("case", list(MOCAP_CASES))
def test_hostile_motion_capture_files_are_refused_in_one_line(tmp_path, case):
    """Issue 37: joint limits before the work (a 100,000-joint BVH, a 4,000-bone ASF chain listed
    deepest first), frame times that would make an infinite or absurd rate, and degenerate rest
    skeletons (zero or negative lengths, a units scale that destroys precision, all offsets zero)
    are one-line errors, never a changed rotation or a traceback."""
    name, make, message = MOCAP_CASES[case]
    path = tmp_path / name
    path.write_text(make())
    reader = read_bvh if name.endswith(".bvh") else read_asf
    with pytest.raises(DataError, match=re.escape(message)) as e:
        reader(path)
    assert "\n" not in str(e.value)


def test_large_but_valid_skeletons_read_and_a_byte_order_mark_is_accepted(tmp_path):
    """A 1,000-joint BVH and a 1,000-bone ASF chain listed deepest first read (the readers are
    linear in the file: names in a set, bone order by depth); UTF-8 with a byte-order mark reads in
    BVH, ASF and AMC alike."""
    (tmp_path / "big.bvh").write_text(_flat_bvh(1_000))
    assert len(read_bvh(tmp_path / "big.bvh").bones) == 1_000
    (tmp_path / "chain.asf").write_text(_chain_asf(1_000))
    skel = read_asf(tmp_path / "chain.asf")
    assert skel.bones[:3] == ["root", "b0", "b1"] and skel.parents[:3] == [-1, 0, 1]
    (tmp_path / "bom.bvh").write_bytes(b"\xef\xbb\xbf" + _flat_bvh(3).encode())
    assert read_bvh(tmp_path / "bom.bvh").bones == ("hips", "j0", "j1")
    folder = tmp_path / "bom"
    amc = _pair(folder)
    for f in (amc, folder / "07.asf"):
        f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    assert read_amc(amc).rotations.shape[:2] == (2, 3)


def test_skip_bad_leaves_a_corrupt_trial_of_a_folder_out(tmp_path, capsys):
    """A folder import with ``--skip-bad`` leaves out (and lists) a corrupt ``.amc`` and imports the
    rest; without it the whole import fails naming the file and line, and nothing is written."""
    folder = tmp_path / "07"
    _pair(folder, name="07_01.amc")
    (folder / "07_02.amc").write_text(AMC.replace("b 45", "b nan"))
    (tmp_path / "legs.yaml").write_text("root: root\njoints: {left_hip: a, left_knee: b}\n")
    out = tmp_path / "s.h5"
    args = ["import", str(folder), "--retarget-map", str(tmp_path / "legs.yaml"), "--no-fill-dofs", "--out", str(out)]
    assert main(args) == 1
    assert "07_02.amc" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--skip-bad"]) == 0
    text = capsys.readouterr().out
    assert "left out 07_02.amc" in text and "line 7" in text
    assert [s["name"] for s in read_info(out).sequences] == ["07_01.amc"]


@pytest.mark.parametrize("name", ["huge.bvh", "07.asf", "07_01.amc"])
def test_a_sparse_3_gb_motion_file_is_refused_before_reading(tmp_path, name):
    """Issue 37: a 3 GB sparse file was read whole (a MemoryError traceback); the size limit is
    checked before any byte is read."""
    path = tmp_path / name
    with path.open("wb") as f:
        f.truncate(3 * 1024**3)  # sparse: no disk space used
    if name.endswith(".amc"):
        (tmp_path / "07.asf").write_text(ASF)
    reader = {".bvh": read_bvh, ".asf": read_asf, ".amc": read_amc}[path.suffix]
    with pytest.raises(DataError, match="more than a motion capture file's 1,073,741,824"):
        reader(path)

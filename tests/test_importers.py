"""Each importer on the real shipped files, values compared with the raw arrays."""

import hashlib
import pickle

import numpy as np
import pytest
import torch

from probpose import rotations as R
from probpose.data import (
    DataError,
    detect_format,
    import_poses,
    load_aistpp,
    load_amass,
    load_pasyn,
    load_smplcodec,
    load_source,
)
from probpose.data.safe_pickle import UnsafePickleError, safe_load
from probpose.skeleton import SMPL, SMPLX, ZEBRA_LEGS


def same_rotations(ours, raw, atol=1e-5):
    a = R.axis_angle_to_matrix(torch.as_tensor(ours, dtype=torch.float64))
    b = R.axis_angle_to_matrix(torch.as_tensor(raw, dtype=torch.float64))
    assert (a - b).abs().max().item() < atol


def test_bundled_copies_are_the_shared_originals(smplx_files, zebra_files, shared_data):
    for folder, files in (("smplx", smplx_files), ("zebra", zebra_files)):
        for name, path in files.items():
            orig = shared_data / folder / name
            assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(orig.read_bytes()).digest()


def test_smplcodec_avatar(smplx_files):
    path = smplx_files["smplcodec_avatar.smpl"]
    raw = np.load(path)
    ps = load_smplcodec(path)
    assert ps.skeleton == SMPLX and len(ps) == 601
    assert ps.sequences[0].fps == 120 and not ps.sequences[0].fps_assumed
    assert ps.present.all()
    same_rotations(ps.poses[:, :22], raw["bodyPose"])
    same_rotations(ps.poses[:, 22:25], raw["headPose"])
    same_rotations(ps.poses[:, 25:40], raw["leftHandPose"])
    same_rotations(ps.poses[:, 40:], raw["rightHandPose"])
    # no raw angle exceeds pi here, so canonical values are the raw values themselves
    np.testing.assert_array_equal(ps.poses[:, :22], raw["bodyPose"])
    assert ps.sources[0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_amass_npz_poses_and_split_keys(smplx_files, tmp_path):
    path = smplx_files["smplcodec_apose_to_handsFront_smplx.npz"]
    raw = np.load(path)
    ps = load_amass(path)
    assert ps.skeleton == SMPLX and len(ps) == 34 and ps.present.all()
    same_rotations(ps.poses.reshape(34, 165 // 3, 3), raw["poses"].reshape(34, 55, 3))
    assert ps.sequences[0].fps_assumed  # the file states no frame rate
    # the split keys alone give the same poses
    split_only = tmp_path / "split.npz"
    np.savez(
        split_only,
        **{k: raw[k] for k in ("root_orient", "pose_body", "pose_jaw", "pose_eye", "pose_hand")},
        mocap_frame_rate=np.array(60.0),
    )
    ps2 = load_amass(split_only)
    np.testing.assert_array_equal(ps2.poses, ps.poses)
    assert ps2.sequences[0].fps == 60 and not ps2.sequences[0].fps_assumed
    # body and hands only (SMPL+H-style): jaw and eyes absent
    body_hands = tmp_path / "bh.npz"
    np.savez(body_hands, root_orient=raw["root_orient"], pose_body=raw["pose_body"], pose_hand=raw["pose_hand"])
    ps3 = load_amass(body_hands)
    assert not ps3.present[22:25].any() and ps3.present[25:].all()
    # 156 columns = SMPL+H
    smplh = tmp_path / "smplh.npz"
    np.savez(smplh, poses=np.concatenate([raw["poses"][:, :66], raw["poses"][:, 75:]], 1))
    np.testing.assert_array_equal(load_amass(smplh).poses[:, 25:], ps.poses[:, 25:])


def test_amass_inconsistent_keys_are_refused(smplx_files, tmp_path):
    raw = np.load(smplx_files["smplcodec_apose_to_handsFront_smplx.npz"])
    bad = tmp_path / "bad.npz"
    np.savez(bad, poses=raw["poses"], pose_body=raw["pose_body"] + 0.1)
    with pytest.raises(DataError, match="pose_body.*disagrees"):
        load_amass(bad)


def test_aistpp_pickle(smplx_files):
    path = smplx_files["aistpp_style_sample.pkl"]
    with open(path, "rb") as f:
        raw = pickle.load(f)  # trusted shipped file: the independent reference reader
    ps = load_aistpp(path)
    assert ps.skeleton == SMPL and len(ps) == 127 and ps.sequences[0].fps == 60
    same_rotations(ps.poses, raw["smpl_poses"].reshape(127, 24, 3))
    # to SMPL-X: the 22 shared joints, the SMPL hand roots dropped, hands absent
    sx = ps.to_skeleton("smplx")
    assert sx.present[:22].all() and not sx.present[22:].any()
    np.testing.assert_array_equal(sx.poses[:, :22], ps.poses[:, :22])


def test_pasyn_degrees_euler(zebra_files):
    path = zebra_files["test_poses_refine.npz"]
    raw = np.load(path)["poses"]
    ps = load_pasyn(path)
    assert ps.skeleton == ZEBRA_LEGS and len(ps) == 281 and not ps.sequences[0].ordered
    # independent reference: R = Rz Ry Rx from the degree columns 3..38, in NumPy
    ang = np.deg2rad(raw[:, 3:].reshape(-1, 12, 3))
    x, y, z = ang[..., 0], ang[..., 1], ang[..., 2]
    c, s = np.cos, np.sin
    one, zero = np.ones_like(x), np.zeros_like(x)
    rx = np.stack([one, zero, zero, zero, c(x), -s(x), zero, s(x), c(x)], -1).reshape(x.shape + (3, 3))
    ry = np.stack([c(y), zero, s(y), zero, one, zero, -s(y), zero, c(y)], -1).reshape(x.shape + (3, 3))
    rz = np.stack([c(z), -s(z), zero, s(z), c(z), zero, zero, zero, one], -1).reshape(x.shape + (3, 3))
    ref = rz @ ry @ rx
    ours = R.axis_angle_to_matrix(torch.as_tensor(ps.poses, dtype=torch.float64)).numpy()
    assert np.abs(ours - ref).max() < 1e-5
    assert (np.linalg.norm(ps.poses, axis=-1) <= np.pi + 1e-6).all()


def test_detect_format(smplx_files, zebra_files):
    assert detect_format(smplx_files["smplcodec_avatar.smpl"]) == "smplcodec"
    assert detect_format(smplx_files["smplcodec_apose_to_handsFront_smplx.npz"]) == "amass"
    assert detect_format(smplx_files["aistpp_style_sample.pkl"]) == "aistpp"
    assert detect_format(zebra_files["train_poses.npz"]) == "pasyn"


def test_import_poses_selection_and_refusals(smplx_files):
    files = list(smplx_files.values())
    body = import_poses(files, joints="body")
    assert body.poses.shape == (601 + 34 + 127, 21, 3)
    both = import_poses([f for f in files if f.suffix != ".pkl"])  # default body+hands
    assert both.poses.shape == (635, 51, 3)
    with pytest.raises(DataError, match=r"aistpp_style_sample.pkl.*left_index1"):
        import_poses(files)  # AIST++ has no hands: never padded with zeros


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "name, arrays, field, reason",
    [
        ("wrong_shape.npz", {"poses": np.zeros((5, 100))}, "poses", "shape (5, 100)"),
        ("wrong_rank.npz", {"poses": np.zeros((5, 55, 3))}, "poses", "unknown layout"),
        ("nan.npz", {"poses": np.where(np.arange(165) == 7, np.nan, 0.0)[None].repeat(4, 0)}, "poses", "NaN/inf"),
        ("inf.npz", {"root_orient": np.full((3, 3), np.inf), "pose_body": np.zeros((3, 63))}, "root_orient", "NaN"),
        ("empty.npz", {"poses": np.zeros((0, 165))}, None, "no frames"),
        ("pasyn_nan.npz", {"poses": np.where(np.arange(39) == 5, np.nan, 0.0)[None]}, "poses", "NaN/inf"),
        ("pasyn_empty.npz", {"poses": np.zeros((0, 39))}, "poses", "no rows"),
        ("unknown.npz", {"foo": np.zeros(3)}, None, "unknown layout"),
        ("codec_v3.smpl", {"smplVersion": np.array(3), "bodyPose": np.zeros((2, 22, 3))}, "smplVersion", "unsupported"),
        ("codec_shape.smpl", {"smplVersion": np.array(2), "bodyPose": np.zeros((2, 21, 3))}, "bodyPose", "expected"),
    ],
)
def test_bad_files_name_file_field_and_reason(tmp_path, name, arrays, field, reason):
    path = tmp_path / name
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(DataError) as e:
        load_source(path)
    assert name in str(e.value) and reason in str(e.value)
    if field:
        assert e.value.field == field


def test_missing_and_non_archive_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_source(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a NumPy .npz"):
        load_source(junk)
    text = tmp_path / "x.txt"
    text.write_text("1")
    with pytest.raises(DataError, match="unknown file type"):
        load_source(text)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /nonexistent_dir_probpose/pwned",))


def test_unsafe_pickles_are_refused_before_running(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"smpl_poses": _Evil()}))
    with pytest.raises(DataError, match="unsafe pickle.*posix.system|unsafe pickle.*os.system"):
        load_aistpp(evil)
    with pytest.raises(UnsafePickleError):
        safe_load(pickle.dumps(np.array([1, "a"], dtype=object)))
    with pytest.raises(UnsafePickleError):
        safe_load(pickle.dumps({"x": {1, 2}}))  # sets are not admitted
    not_dict = tmp_path / "list.pkl"
    not_dict.write_bytes(pickle.dumps([np.zeros((2, 72))]))
    with pytest.raises(DataError, match="expected a dict"):
        load_aistpp(not_dict)
    truncated = tmp_path / "trunc.pkl"
    truncated.write_bytes(pickle.dumps({"smpl_poses": np.zeros((3, 72))})[:-10])
    with pytest.raises(DataError, match="not a readable pickle"):
        load_aistpp(truncated)


def test_safe_pickle_reads_numpy_arrays_and_scalars():
    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.float64(2.5), 3, "x", None], "c": (1.0,)}
    back = safe_load(pickle.dumps(obj, protocol=2))
    np.testing.assert_array_equal(back["a"], obj["a"])
    assert back["b"] == obj["b"] and back["c"] == obj["c"]

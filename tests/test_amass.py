"""Importing an AMASS tree: the standard split by sub-dataset, resampling, trimming, bad files,
determinism and interruption, on a small tree built from the bundled recordings in a temp folder."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from probpose.cli import main
from probpose.data import amass_split, canonical_dataset, load_smplcodec, read_info, read_split, resample
from probpose.errors import DataError
from probpose.skeleton import SMPLX, flatten


@pytest.fixture(scope="module")
def avatar(smplx_files):
    return load_smplcodec(smplx_files["smplcodec_avatar.smpl"])  # 601 frames, 120 fps, SMPL-X


def _save(path, poses, fps, layout):
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "mocap_framerate" if layout == "smplh" else "mocap_frame_rate"
    np.savez(
        path,
        poses=flatten(poses, SMPLX, layout).astype(np.float64),
        **{key: np.array(float(fps))},
        trans=np.zeros((len(poses), 3)),
        betas=np.zeros(16),
    )


def build_tree(root, avatar):
    """Sub-datasets under their usual names and aliases, SMPL+H and SMPL-X files, a shape file, a
    text file and a corrupt motion."""
    p = avatar.poses
    _save(root / "CMU" / "01" / "01_01_poses.npz", p[:300], 120, "smplh")
    _save(root / "BioMotionLab_NTroje" / "rub001" / "walk_stageii.npz", p[300:450], 120, "smplx")
    _save(root / "humaneva" / "S1" / "jog_poses.npz", p[450:520], 120, "smplh")
    _save(root / "SSM" / "a" / "b_poses.npz", p[520:], 60, "smplh")
    np.savez(root / "CMU" / "01" / "shape.npz", betas=np.zeros(16))
    (root / "CMU" / "README.txt").write_text("notes")
    bad = root / "KIT" / "3" / "broken_poses.npz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    return root


def test_split_rule_names_and_aliases():
    for name, split in [("HumanEva", "val"), ("humaneva", "val"), ("MPI_HDM05", "val"), ("HDM05", "val"),
                        ("SFU", "val"), ("MPI_mosh", "val"), ("MoSh", "val"), ("Transitions_mocap", "test"),
                        ("Transitions", "test"), ("SSM_synced", "test"), ("ssm", "test"), ("CMU", "train"),
                        ("BMLrub", "train"), ("BioMotionLab_NTroje", "train"), ("SomethingNew", "train")]:  # fmt: skip
        assert amass_split(name) == split, name
    assert canonical_dataset("BioMotionLab_NTroje") == canonical_dataset("bml-rub") == "BMLrub"


def test_tree_import_splits_by_sub_dataset(tmp_path, avatar, capsys):
    root = build_tree(tmp_path / "amass", avatar)
    out = tmp_path / "amass.h5"
    assert main(["import", str(root), "--out", str(out), "--split", "amass", "--skip-bad", "--workers", "2"]) == 0
    captured = capsys.readouterr()
    assert "skipped CMU/01/shape.npz: shape parameters" in captured.out
    assert "skipped CMU/README.txt: not a pose file" in captured.out
    assert "KIT/3/broken_poses.npz" in captured.err and "left out 1 bad file" in captured.err
    info = read_info(out)
    by_file = {s["file"]: s for s in info.sources}
    assert {f: s["split"] for f, s in by_file.items()} == {
        "BioMotionLab_NTroje/rub001/walk_stageii.npz": "train",
        "CMU/01/01_01_poses.npz": "train",
        "SSM/a/b_poses.npz": "test",
        "humaneva/S1/jog_poses.npz": "val",
    }
    assert by_file["SSM/a/b_poses.npz"]["dataset"] == "SSM_synced"
    assert info.sizes == {"train": 450, "val": 70, "test": 81}  # whole files, no guard frames
    assert info.split_rule["name"] == "amass" and "HumanEva" in info.split_rule["val"]
    assert info.joints == "body+hands" and info.skeleton.num_joints == 51  # SMPL+H and SMPL-X together
    train, _ = read_split(out, "train")  # files in the order of their paths: BioMotionLab_NTroje, then CMU
    bh = SMPLX.selection_indices("body+hands")
    np.testing.assert_array_equal(train[:150], avatar.poses[300:450, bh])
    np.testing.assert_array_equal(train[150:], avatar.poses[:300, bh])
    for name in ("CMU", "BMLrub", "HumanEva", "SSM_synced"):
        assert name in captured.out  # the per-dataset summary


def test_a_bad_file_fails_the_import_naming_it(tmp_path, avatar, capsys):
    root = build_tree(tmp_path / "amass", avatar)
    out = tmp_path / "amass.h5"
    assert main(["import", str(root), "--out", str(out), "--split", "amass", "--workers", "0"]) == 1
    assert "KIT/3/broken_poses.npz" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["amass"]


def test_resampling_keeps_shared_time_stamps(avatar):
    poses = avatar.poses[:241]  # 2 s at 120 fps
    at30 = resample(poses, 120, 30)
    assert len(at30) == 61
    np.testing.assert_array_equal(at30, poses[::4])  # every 4th frame falls on a 30 fps time stamp
    at50 = resample(poses, 120, 50)
    assert len(at50) == 101  # floor(240 * 50 / 120) + 1
    np.testing.assert_array_equal(at50[::5], poses[::12])  # shared stamps: 0.1 s apart
    # between frames: the slerp midpoint of two rotations is halfway along the geodesic
    import torch

    from probpose.rotations import axis_angle_to_matrix, geodesic_distance

    mid = resample(poses[:2], 120, 240)[1]
    r = [axis_angle_to_matrix(torch.as_tensor(v, dtype=torch.float64)) for v in (poses[0], mid, poses[1])]
    d01, d02, d12 = geodesic_distance(r[0], r[1]), geodesic_distance(r[0], r[2]), geodesic_distance(r[1], r[2])
    assert torch.allclose(d01, d02 / 2, atol=1e-5) and torch.allclose(d12, d02 / 2, atol=1e-5)


def test_tree_import_resamples_and_trims(tmp_path, avatar):
    root = build_tree(tmp_path / "amass", avatar)
    out = tmp_path / "a30.h5"
    args = [
        "import",
        str(root),
        "--out",
        str(out),
        "--split",
        "amass",
        "--skip-bad",
        "--workers",
        "0",
        "--fps",
        "30",
        "--trim",
        "0.1",
    ]
    assert main(args) == 0
    info = read_info(out)
    frames = {s["file"]: s["frames"] for s in info.sources}
    # CMU: 300 frames at 120 fps -> 75 at 30 fps -> 10% (7 frames) trimmed at each end
    assert frames["CMU/01/01_01_poses.npz"] == 75 - 2 * 7
    assert frames["SSM/a/b_poses.npz"] == 41 - 2 * 4  # 81 frames at 60 fps -> 41 at 30 fps
    assert info.split_rule["fps"] == 30 and info.split_rule["trim"] == 0.1
    assert all(s["fps"] == 30 for s in info.sequences)


def test_the_same_tree_gives_a_byte_identical_store(tmp_path, avatar):
    root = build_tree(tmp_path / "amass", avatar)
    digests = []
    for k, workers in enumerate(("2", "0")):
        out = tmp_path / f"s{k}.h5"
        assert (
            main(["import", str(root), "--out", str(out), "--split", "amass", "--skip-bad", "--workers", workers]) == 0
        )
        digests.append(out.read_bytes())
    assert digests[0] == digests[1]


def test_duplicates_across_splits_are_dropped_from_the_later_split(tmp_path, avatar):
    root = tmp_path / "amass"
    _save(root / "CMU" / "a_poses.npz", avatar.poses[:100], 120, "smplh")
    _save(root / "SFU" / "b_poses.npz", avatar.poses[50:150], 120, "smplh")  # 50 frames shared with CMU
    out = tmp_path / "d.h5"
    assert main(["import", str(root), "--out", str(out), "--split", "amass", "--workers", "0"]) == 0
    info = read_info(out)
    assert info.sizes["train"] == 100 and info.sizes["val"] == 50
    assert info.split_stats["cross_split_duplicates_dropped"] == 50
    val, _ = read_split(out, "val")
    np.testing.assert_array_equal(val, avatar.poses[100:150, SMPLX.selection_indices("body+hands")])


def test_a_killed_import_leaves_no_store_that_looks_whole(tmp_path, avatar):
    root = build_tree(tmp_path / "amass", avatar)
    out = tmp_path / "k.h5"
    script = tmp_path / "slow.py"
    script.write_text(
        "import sys, time\n"
        "import probpose.data.store as store\n"
        "orig = store.StoreWriter.append\n"
        "def slow(self, *a):\n"
        "    orig(self, *a); print('appended', flush=True); time.sleep(30)\n"
        "store.StoreWriter.append = slow\n"
        "from probpose.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    p = subprocess.Popen(
        [
            sys.executable,
            str(script),
            "import",
            str(root),
            "--out",
            str(out),
            "--split",
            "amass",
            "--skip-bad",
            "--workers",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "appended"
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert not out.exists()  # nothing under the store's name
    leftovers = [f for f in tmp_path.iterdir() if f.name.startswith(".k.h5.")]
    assert len(leftovers) == 1 and leftovers[0].suffix == ".tmp"
    assert main(["import", str(root), "--out", str(out), "--split", "amass", "--skip-bad", "--workers", "0"]) == 0
    assert out.exists() and not any(f.name.startswith(".k.h5.") for f in tmp_path.iterdir())  # stale one removed


def test_bad_tree_arguments(tmp_path, avatar, capsys):
    root = build_tree(tmp_path / "amass", avatar)
    assert main(["import", str(root), str(tmp_path), "--out", str(tmp_path / "x.h5"), "--split", "amass"]) == 1
    assert "exactly one folder" in capsys.readouterr().err
    assert main(["import", str(root), "--out", str(root / "in.h5"), "--split", "amass"]) == 1
    assert "inside the tree" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["import", str(empty), "--out", str(tmp_path / "y.h5"), "--split", "amass"]) == 1
    assert "holds no *_poses.npz" in capsys.readouterr().err
    assert main(["import", str(root), "--out", str(tmp_path / "z.h5"), "--split", "amass", "--trim", "0.6"]) == 1
    assert "--trim" in capsys.readouterr().err


def test_a_folder_with_a_share_split_is_read_in_memory(tmp_path, avatar, capsys):
    root = build_tree(tmp_path / "amass", avatar)
    (root / "KIT" / "3" / "broken_poses.npz").unlink()
    out = tmp_path / "f.h5"
    assert main(["import", str(root), "--out", str(out)]) == 0
    assert "read 4 file(s)" in capsys.readouterr().out
    assert sum(read_info(out).sizes.values()) > 500


def test_layout_1_stores_are_still_read(tmp_path, zebra_files):
    out = tmp_path / "z.h5"
    assert main(["import", str(zebra_files["test_poses_refine.npz"]), "--out", str(out)]) == 0
    info = read_info(out)
    with h5py.File(out, "a") as f:  # rewrite as layout 1: metadata in attributes
        f.attrs["layout_version"] = 1
        f.attrs["sources"] = json.dumps(info.sources)
        f.attrs["sequences"] = json.dumps(info.sequences)
        del f["meta"]
    old = read_info(out)
    assert old.sources == info.sources and old.sizes == info.sizes


def test_tree_import_api_reports_counts(tmp_path, avatar):
    from probpose.data import import_tree

    root = build_tree(tmp_path / "amass", avatar)
    with pytest.raises(DataError, match="broken_poses.npz"):
        import_tree(root, tmp_path / "t.h5", workers=0)
    t0 = time.perf_counter()
    r = import_tree(root, tmp_path / "t.h5", joints="body", workers=0, skip_bad=True)
    assert time.perf_counter() - t0 < 60
    assert r.files == 4 and r.frames == 601 and [b[0] for b in r.bad] == ["KIT/3/broken_poses.npz"]
    assert r.datasets["CMU"] == {"split": "train", "files": 1, "frames": 300, "seconds": 2.5}
    assert read_info(r.path).skeleton.num_joints == 21

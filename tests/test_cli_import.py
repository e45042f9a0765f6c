"""`probpose import`: what it prints, and bad input failing cleanly with no file left behind."""

import subprocess
import sys

import numpy as np
import pytest

from probpose.cli import main
from probpose.data import read_info


def test_import_bundled_smplx_body(tmp_path, capsys):
    out = tmp_path / "smplx.h5"
    assert main(["import", "--bundled", "smplx", "--joints", "body", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for expected in (
        "smplcodec_avatar.smpl",
        "601 frames",
        "120 fps",
        "34 frames",
        "30 fps (assumed)",
        "127 frames",
        "762 poses, 3 sequence(s)",
        "D = 63",
        "train",
        "guard frames",
    ):
        assert expected in text, expected
    info = read_info(out)
    assert sum(info.sizes.values()) + info.split_stats["guard_frames_dropped"] == 762
    assert all(n > 0 for n in info.sizes.values())


def test_import_smplx_with_hands_and_zebra(tmp_path, smplx_files, capsys):
    hands = [str(p) for p in smplx_files.values() if p.suffix != ".pkl"]
    assert main(["import", *hands, "--out", str(tmp_path / "bh.h5")]) == 0
    assert read_info(tmp_path / "bh.h5").skeleton.num_joints == 51
    assert main(["import", "--bundled", "zebra", "--out", str(tmp_path / "z.h5"), "--split", "70/15/15"]) == 0
    text = capsys.readouterr().out
    assert "3738 duplicate poses" in text and "unordered poses" in text
    info = read_info(tmp_path / "z.h5")
    assert sum(info.sizes.values()) == 3780 and info.skeleton.num_joints == 12


def _bad(tmp_path, name, **arrays):
    p = tmp_path / name
    with open(p, "wb") as f:
        np.savez(f, **arrays)
    return str(p)


@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing", "no such file"),
        ("layout", "unknown layout"),
        ("shape", "shape (4, 99)"),
        ("nan", "NaN/inf"),
        ("empty", "no frames"),
        ("joints", "needs joints the source does not record"),
        ("selection", "unknown joint selection"),
        ("split", "split"),
    ],
)
def test_bad_input_fails_cleanly(tmp_path, smplx_files, case, expect, capsys):
    out = tmp_path / "out" / "data.h5"
    good = str(smplx_files["smplcodec_avatar.smpl"])
    args = {
        "missing": [str(tmp_path / "nope.npz")],
        "layout": [_bad(tmp_path, "l.npz", trans=np.zeros((4, 3)))],
        "shape": [_bad(tmp_path, "s.npz", poses=np.zeros((4, 99)))],
        "nan": [good, _bad(tmp_path, "n.npz", poses=np.full((4, 165), np.nan))],
        "empty": [_bad(tmp_path, "e.npz", poses=np.zeros((0, 156)))],
        "joints": [good, str(smplx_files["aistpp_style_sample.pkl"])],
        "selection": [good, "--joints", "torso"],
        "split": [good, "--split", "80/20"],
    }[case]
    code = main(["import", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code != 0
    assert expect in err and "probpose import: error:" in err
    if case in ("missing", "layout", "shape", "nan", "empty"):
        bad_file = args[-1] if case != "nan" else args[1]
        assert bad_file in err  # names the file
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_console_script_exit_code(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "probpose", "import", str(tmp_path / "x.npz"), "--out", str(tmp_path / "o.h5")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "no such file" in r.stderr and not (tmp_path / "o.h5").exists()


def test_empty_split_is_warned_about(tmp_path, smplx_files, capsys):
    out = tmp_path / "a.h5"
    assert main(["import", str(smplx_files["aistpp_style_sample.pkl"]), "--joints", "body", "--out", str(out)]) == 0
    assert "warning: test empty" in capsys.readouterr().err
    assert read_info(out).sizes["test"] == 0


def test_skip_incomplete_leaves_out_and_lists_files(tmp_path, capsys):
    out = tmp_path / "hands.h5"
    assert main(["import", "--bundled", "smplx", "--joints", "right_hand", "--skip-incomplete", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "left out aistpp_style_sample.pkl" in text and "read 2 file(s)" in text
    assert read_info(out).skeleton.num_joints == 15

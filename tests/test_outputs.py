"""Outputs are never lost (issue 22, "data loss"): a symbolic link given as an output is followed,
never replaced; a folder output is never put over a folder another process filled meanwhile; two
training runs started at once with the same name get two folders (real processes)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from probpose.errors import DataError
from probpose.files import atomic_folder, atomic_path, check_output_path
from probpose.training.run import CLAIM, run_folder


def test_a_symlinked_output_file_is_followed_and_the_link_kept(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    with atomic_path(link) as tmp:
        tmp.write_text("new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "real.txt"]  # no stray temporary


def test_a_symlinked_output_folder_is_followed_and_the_link_kept(tmp_path):
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "out"
    link.symlink_to(target, target_is_directory=True)
    with atomic_folder(link) as tmp:
        (tmp / "frame.png").write_bytes(b"x")
    assert link.is_symlink() and (target / "frame.png").read_bytes() == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "real"]


def test_a_symlink_to_an_input_is_refused_as_an_output(tmp_path):
    data = tmp_path / "data.npz"
    data.write_bytes(b"precious")
    link = tmp_path / "out.npz"
    link.symlink_to(data)
    with pytest.raises(DataError, match="is also an input"):
        check_output_path(link, [data])
    assert data.read_bytes() == b"precious"


def test_a_folder_filled_by_another_process_meanwhile_is_kept(tmp_path):
    final = tmp_path / "frames"
    with pytest.raises(DataError, match="filled by another process"):
        with atomic_folder(final) as tmp:
            (tmp / "mine.png").write_bytes(b"mine")
            final.mkdir()  # the other process commits first
            (final / "theirs.png").write_bytes(b"theirs")
    assert sorted(p.name for p in final.iterdir()) == ["theirs.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # ours removed, nothing half-written


def test_an_empty_folder_made_meanwhile_is_used(tmp_path):
    final = tmp_path / "frames"
    with atomic_folder(final) as tmp:
        (tmp / "mine.png").write_bytes(b"mine")
        final.mkdir()
    assert sorted(p.name for p in final.iterdir()) == ["mine.png"]


def test_run_folders_are_claimed_once(tmp_path):
    a, _ = run_folder(tmp_path, "run")
    b, note = run_folder(tmp_path, "run")
    assert a.name == "run" and b.name == "run-2" and "already holds a run" in note
    (tmp_path / "empty").mkdir()
    c, note = run_folder(tmp_path, "empty")  # an empty folder is taken (and claimed)
    assert c.name == "empty" and note is None and (c / CLAIM).is_file()


CLAIMER = """
import sys
from probpose.training.run import run_folder
folders = [run_folder(sys.argv[1], "same")[0].name for _ in range(20)]
print(" ".join(folders))
"""


def test_two_processes_claiming_run_folders_at_once_never_share_one(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    claimed = outs[0] + outs[1]
    assert len(claimed) == 40 and len(set(claimed)) == 40  # every folder went to exactly one claimer

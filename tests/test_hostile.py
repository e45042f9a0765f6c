"""Hostile inputs, one row a case (issue 22, round 2): the input is built in the test (a recipe),
the command runs as a user would run it, and the expected outcome is one line naming the problem
(no traceback, exit 1 or argparse's 2), with every file that was there unchanged and the named
outputs absent. The classes: outputs beside inputs (data loss), files that read elsewhere (HDF5
external links, external storage, virtual datasets, FIFOs), sizes declared before allocation
(stores, checkpoints, images, resampling), values (weights, cameras, confidences, angles, JSON and
YAML nesting, tampered style models), devices. Full disks and read-only places, simulated and on
real small file systems where the test runs as root, and two real processes writing one output,
are the tests after the table."""

import errno
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from probpose.cli import main
from probpose.data import bundled
from probpose.data.amass import scan_tree
from probpose.errors import DataError
from probpose.files import json_text
from probpose.models import build_model, save_model
from probpose.skeleton import ZEBRA_LEGS
from probpose.style import StyleNet, VGGEncoder, random_vgg_weights
from probpose.style.transfer import FORMAT, StyleOptions

ROOT = Path(__file__).parents[1]
ZEBRA_STORE = Path("z.h5")  # made once for the module by the zebra_store fixture


def _run(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "probpose", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _checkpoint(path: Path, edit=None, name: str = "gaussian_full") -> Path:
    """A zebra-leg checkpoint; ``edit(state)`` tampers with its weights, ``edit(ck)`` (name "ck:...")
    with the whole checkpoint."""
    model = build_model(name, ZEBRA_LEGS)
    model.fit_closed_form(0.3 * torch.randn(200, 12, 3, generator=torch.Generator().manual_seed(0)))
    state = model.state_dict()
    if edit is not None:
        edit(state)
    save_model(path, model)
    ck = torch.load(path, weights_only=True)
    ck["model"] = state
    torch.save(ck, path)
    return path


def _edit_checkpoint(path: Path, edit) -> Path:
    _checkpoint(path)
    ck = torch.load(path, weights_only=True)
    edit(ck)
    torch.save(ck, path)
    return path


def _nan(state):
    state["loc"][0, 0] = math.nan


def _int64(state):
    state["loc"] = state["loc"].long()


def _half(state):
    state["loc"] = state["loc"].half()


def _legs(path: Path, value: float = 0.0, shape=(2, 12, 3)) -> None:
    np.save(path, np.full(shape, value, np.float32))  # zebra leg poses, radians (or PASyn degrees (n, 36))


def _obs(path: Path, **arrays) -> None:
    np.savez(path, **arrays)


def _keypoints(**changes) -> dict:
    """2D observations of two frames with a camera; ``changes`` replace members."""
    arrays = {
        "keypoints": np.full((2, 19, 2), 32.0),
        "confidence": np.ones((2, 19)),
        "K": np.diag([50.0, 50.0, 1.0]),
        "R": np.eye(3),
        "t": np.array([0.0, 0.0, 3.0]),
    }
    return {**arrays, **changes}


def _store(tmp: Path, name: str, edit) -> None:
    """A copy of the module's zebra store with its HDF5 tampered by ``edit(file)``."""
    (tmp / name).write_bytes(ZEBRA_STORE.read_bytes())
    with h5py.File(tmp / name, "a") as f:
        edit(f)


def _external_link(f, target="z.h5"):
    del f["test"]
    f["test"] = h5py.ExternalLink(target, "/test")


def _virtual(f):
    shape = f["test"]["poses"].shape
    layout = h5py.VirtualLayout(shape=shape, dtype="f4")
    layout[:] = h5py.VirtualSource("missing.h5", "test/poses", shape=shape)
    del f["test"]["poses"]
    f["test"].create_virtual_dataset("poses", layout)


def _external_raw(f):
    shape = f["test"]["poses"].shape
    del f["test"]["poses"]
    nbytes = int(np.prod(shape)) * 4
    f["test"].create_dataset("poses", shape=shape, dtype="f4", external=[("raw.bin", 0, nbytes)])


def _billion_rows(f):
    for key in ("poses", "sequence", "frame"):
        f["test"][key].resize(10**9, axis=0)


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares ``width`` x ``height`` pixels (and holds one row of data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def _frames(folder: Path, n: int = 2, size: int = 32) -> None:
    folder.mkdir()
    for i in range(n):
        Image.new("RGBA", (size, size), (200, 100, 50, 255)).save(folder / f"{i:04d}.png")


def _vgg(path: Path) -> Path:
    weights = random_vgg_weights(0)
    torch.save(
        {f"features.{i}.{k}": t for i, (w, b) in weights.tensors.items() for k, t in (("weight", w), ("bias", b))}, path
    )
    return path


def _style_model(path: Path, vgg: Path, edit=None) -> None:
    from probpose.style import load_vgg_weights

    weights = load_vgg_weights(vgg)
    net = StyleNet(VGGEncoder(weights, "pool2"), 0.5)
    ck = {
        "format": FORMAT,
        "version": 2,
        "decoder": net.decoder.state_dict(),
        "options": vars(StyleOptions()),
        "encoder_source": weights.source,
        "history": [],
        "seconds": 0.0,
    }
    if edit is not None:
        edit(ck)
    torch.save(ck, path)


def _style_setup(tmp: Path, edit=None) -> None:
    _frames(tmp / "c")
    Image.new("RGB", (40, 40), (10, 200, 30)).save(tmp / "photo.png")
    _style_model(tmp / "s.pt", _vgg(tmp / "vgg.pth"), edit)


def _deep_config(path: Path) -> None:
    path.write_text("model: " + "[" * 5000 + "]" * 5000 + "\n")


def _chain(ck):
    n = 40_000
    ck["skeleton"] = {"name": "chain", "joint_names": [f"j{i}" for i in range(n)], "parents": list(range(-1, n - 1))}


STYLE = ["--vgg", "vgg.pth"]
FIT = ["fit", "--prior", "cmu/gaussian_full", "--observations", "obs.npz", "--out", "fit.npz"]
EVAL = ["evaluate", "--model", "m.pt"]

# (id, recipe making the inputs in the test folder, command, message fragment, outputs that must stay absent)
CASES = [
    # devices, sizes and counts given on the command line
    ("synth --device foo", lambda t: _legs(t / "legs.npy"), ["synth", "--poses", "legs.npy", "--n-frames", "2",
     "--out", "frames", "--device", "foo"], "'foo' is not a device; cpu, cuda or cuda:N", ["frames"]),
    ("bench --device cuda without a GPU", None, ["bench", "--device", "cuda:99" if torch.cuda.is_available() else
     "cuda", "--out", "b"], "CUDA device", ["b"]),
    ("train --override training.device=tpu", None, ["train", "--config", "gaussian_prior", "--override",
     "training.device=tpu"], "training.device: 'tpu' is not a device", ["runs"]),
    ("synth --width 20000 --height 20000", lambda t: _legs(t / "legs.npy"), ["synth", "--poses", "legs.npy",
     "--width", "20000", "--height", "20000", "--out", "frames"], "exceeds 16,777,216 pixels a frame", ["frames"]),
    ("synth --n-frames 10^12", lambda t: _legs(t / "legs.npy"), ["synth", "--poses", "legs.npy", "--n-frames",
     "1000000000000", "--out", "frames"], "--n-frames: 1000000000000 is outside the valid range [1, 10,000,000]",
     ["frames"]),
    ("sample --n 10^12", lambda t: _checkpoint(t / "m.pt"), ["sample", "--model", "m.pt", "--n", "1000000000000",
     "--out", "s.npy"], "--n: 1000000000000 is outside the valid range [1, 10,000,000]", ["s.npy"]),
    ("evaluate --worst -5", lambda t: _checkpoint(t / "m.pt"), [*EVAL, "legs.npy", "--worst", "-5"],
     "--worst: -5 is outside the valid range [0, 10,000,000]", ["evaluation"]),
    ("import --split 1e308/1e308/1e308", None, ["import", "--bundled", "zebra", "--split", "1e308/1e308/1e308",
     "--out", "s.h5"], "too large to add up", ["s.h5"]),
    # outputs beside inputs: nothing a command writes may be one of its inputs, checked before work
    ("fit --out naming the observations", lambda t: _obs(t / "obs.npz", joints=np.zeros((2, 19, 3))),
     [*FIT[:-1], "obs.json"], "obs.npz: is also an input", []),
    ("evaluate --out naming a file", lambda t: (_checkpoint(t / "m.pt"), _legs(t / "legs.npy")),
     [*EVAL, "legs.npy", "--out", "m.pt"], "m.pt: is a file; give a folder", []),
    ("style train: the loss plot beside --out is the style photo", _style_setup, ["style", "train", "--content", "c",
     "--style", "photo.png", "--out", "photo.pt", *STYLE], "photo.png: is also an input", ["photo.pt"]),
    ("style apply --overwrite over the folder holding the style", _style_setup, ["style", "apply", "--model", "s.pt",
     "--content", "c", "--style", "c/0000.png", "--out", "c", "--overwrite", *STYLE], "holds the input", []),
    ("bench writing its data.h5 over --data", lambda t: (t / "d").mkdir() or (t / "d" / "data.h5").write_bytes(
     ZEBRA_STORE.read_bytes()), ["bench", "--data", "d/data.h5", "--out", "d", "--models", "gaussian"],
     "d/data.h5: is also an input", []),
    # files that read elsewhere
    ("fit reading a FIFO", lambda t: os.mkfifo(t / "obs.npz"), FIT,
     "obs.npz: is a FIFO, not a regular file (observations)", ["fit.npz"]),
    ("train --config a FIFO", lambda t: os.mkfifo(t / "c.yaml"), ["train", "--config", "c.yaml"],
     "c.yaml: is a FIFO, not a regular file", ["runs"]),
    ("style train --style a FIFO", lambda t: (_frames(t / "c"), os.mkfifo(t / "p.png")), ["style", "train",
     "--content", "c", "--style", "p.png", "--out", "s.pt"], "p.png: is a FIFO, not a regular file", ["s.pt"]),
    ("a store whose split is an external link", lambda t: (_checkpoint(t / "m.pt"), _store(t, "x.h5",
     _external_link)), [*EVAL, "x.h5", "--out", "ev"], "test: is an external link to 'z.h5'", ["ev"]),
    ("an external link to a file that is not HDF5", lambda t: (_checkpoint(t / "m.pt"), _store(t, "x.h5",
     lambda f: _external_link(f, "m.pt"))), [*EVAL, "x.h5", "--out", "ev"], "is an external link to 'm.pt'", ["ev"]),
    ("a store whose poses are a virtual dataset of a missing file", lambda t: (_checkpoint(t / "m.pt"),
     _store(t, "x.h5", _virtual)), [*EVAL, "x.h5", "--out", "ev"], "test/poses: is a virtual dataset", ["ev"]),
    ("a store whose poses are external raw storage", lambda t: (_checkpoint(t / "m.pt"), _store(t, "x.h5",
     _external_raw)), [*EVAL, "x.h5", "--out", "ev"], "test/poses: keeps its data in external files", ["ev"]),
    # declared sizes checked before allocating
    ("a 300 KB store declaring 10^9 rows", lambda t: (_checkpoint(t / "m.pt"), _store(t, "x.h5", _billion_rows)),
     [*EVAL, "x.h5", "--out", "ev"], "holds 1 of its 244,141 chunks", ["ev"]),
    ("a checkpoint asking for hidden 40000", lambda t: _edit_checkpoint(t / "m.pt", lambda ck: ck.update(
     model_name="joint_flow", model_options={"hidden": 40000})), ["sample", "--model", "m.pt", "--n", "2", "--out",
     "s.npy"], "hidden: 40000 is outside the valid range [1, 8,192]", ["s.npy"]),
    ("a checkpoint with a 40,000-joint chain", lambda t: _edit_checkpoint(t / "m.pt", _chain), ["sample", "--model",
     "m.pt", "--n", "2", "--out", "s.npy"], "40,000 joints, more than the 1,024", ["s.npy"]),
    ("a PNG declaring 100000 x 100000 pixels", lambda t: (_frames(t / "c"), _png_claiming(t / "big.png", 100_000,
     100_000)), ["style", "train", "--content", "c", "--style", "big.png", "--out", "s.pt", "--vgg", "nowhere.pth"],
     "declares 100,000 x 100,000 pixels", ["s.pt"]),
    ("--fps upsampling a file that claims 10^-6 fps", lambda t: np.savez(t / "slow_poses.npz",
     poses=np.zeros((3, 156)), mocap_framerate=np.array(1e-6), trans=np.zeros((3, 3)), betas=np.zeros(16),
     gender="male"), ["import", "slow_poses.npz", "--fps", "120", "--out", "s.h5"],
     "would be 240,000,001 frames, more than 10,000,000", ["s.h5"]),
    # values
    ("fit on complex joints", lambda t: _obs(t / "obs.npz", joints=np.zeros((2, 19, 3)) + 1j), FIT,
     "joints: holds complex numbers", ["fit.npz"]),
    ("fit with names as one string", lambda t: _obs(t / "obs.npz", joints=np.zeros((2, 19, 3)),
     names=np.array("pelvis")), FIT, "names: must be a list of point names", ["fit.npz"]),
    ("fit with a singular camera K", lambda t: _obs(t / "obs.npz", **_keypoints(K=np.zeros((3, 3)))), FIT,
     "K: frame 0: not a pinhole camera matrix", ["fit.npz"]),
    ("fit with a camera R that is no rotation", lambda t: _obs(t / "obs.npz", **_keypoints(R=2 * np.eye(3))), FIT,
     "R: frame 0: not a rotation matrix", ["fit.npz"]),
    ("fit with a NaN in the one shared t", lambda t: _obs(t / "obs.npz", **_keypoints(t=np.array([0, math.nan, 3]))),
     FIT, "t: holds NaN or infinite values", ["fit.npz"]),
    ("fit with every confidence 0", lambda t: _obs(t / "obs.npz", **_keypoints(confidence=np.zeros((2, 19)))), FIT,
     "confidence: nothing is observed", ["fit.npz"]),
    ("fit with init_orient of 100 radians", lambda t: _obs(t / "obs.npz", joints=np.zeros((2, 19, 3)),
     init_orient=np.full((2, 3), 100.0), init_transl=np.zeros((2, 3))), FIT, "init_orient: axis-angle rotations",
     ["fit.npz"]),
    ("synth on PASyn angles of 10^30 degrees", lambda t: _legs(t / "legs.npy", 1e30, (2, 36)), ["synth", "--poses",
     "legs.npy", "--out", "frames"], "Euler angles beyond +-360 degrees", ["frames"]),
    ("synth on axis-angle poses of 50 radians", lambda t: _legs(t / "legs.npy", 50.0), ["synth", "--poses",
     "legs.npy", "--out", "frames"], "more than a full turn", ["frames"]),
    ("a config nested 5,000 deep", lambda t: _deep_config(t / "c.yaml"), ["train", "--config", "c.yaml"],
     "nested too deeply", ["runs"]),
    ("a store attribute of JSON nested 100,000 deep", lambda t: (_checkpoint(t / "m.pt"), _store(t, "x.h5",
     lambda f: f.attrs.__setitem__("split_stats", "[" * 100_000))), [*EVAL, "x.h5", "--out", "ev"],
     "split_stats: JSON nested too deeply", ["ev"]),
    ("sample from a checkpoint with NaN weights", lambda t: _checkpoint(t / "nan.pt", _nan), ["sample", "--model",
     "nan.pt", "--n", "5", "--out", "s.npy"], "model.loc: holds NaN or infinite weights", ["s.npy"]),
    ("sample from int64 weights", lambda t: _checkpoint(t / "int.pt", _int64), ["sample", "--model", "int.pt", "--n",
     "5", "--out", "s.npy"], "weights of dtype torch.int64", ["s.npy"]),
    ("sample from float16 weights", lambda t: _checkpoint(t / "half.pt", _half), ["sample", "--model", "half.pt",
     "--n", "5", "--out", "s.npy"], "weights of dtype torch.float16", ["s.npy"]),
    ("train --override training.seed=10^23 (issue 37)", None, ["train", "--config", "gaussian_prior", "--override",
     "training.seed=99999999999999999999999"], "training.seed: 99999999999999999999999 is outside the valid range",
     ["runs"]),
    ("style apply --seed 10^23 (issue 37)", _style_setup, ["style", "apply", "--model", "s.pt", "--content", "c",
     "--style", "photo.png", "--out", "o", "--seed", "99999999999999999999999", *STYLE],
     "--seed: 99999999999999999999999 is outside the valid range [0, 9,223,372,036,854,775,807]", ["o"]),
    ("a style model with tampered options", lambda t: _style_setup(t, lambda ck: ck["options"].update(depth="foo")),
     ["style", "apply", "--model", "s.pt", "--content", "c", "--style", "photo.png", "--out", "o", *STYLE],
     "s.pt: options:", ["o"]),
    ("a style model with NaN decoder weights", lambda t: _style_setup(t, lambda ck: next(iter(
     ck["decoder"].values())).fill_(math.nan)), ["style", "apply", "--model", "s.pt", "--content", "c", "--style",
     "photo.png", "--out", "o", *STYLE], "holds NaN or infinite weights", ["o"]),
    ("a style model whose decoder has other shapes", lambda t: _style_setup(t, lambda ck: ck["decoder"].update(
     {k: v[:1] if v.ndim else v for k, v in ck["decoder"].items()})), ["style", "apply", "--model", "s.pt",
     "--content", "c", "--style", "photo.png", "--out", "o", *STYLE], "do not fit a depth-pool2 resize decoder", ["o"]),
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def zebra_store(tmp_path_factory):
    global ZEBRA_STORE
    ZEBRA_STORE = tmp_path_factory.mktemp("store") / "z.h5"
    assert main(["-q", "import", "--bundled", "zebra", "--out", str(ZEBRA_STORE)]) == 0
    return ZEBRA_STORE


@pytest.mark.parametrize(("make", "command", "message", "absent"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_and_leaves_nothing(tmp_path, make, command, message, absent):
    if make is not None:
        make(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}  # (FIFOs unread)
    res = _run(command, tmp_path)
    assert res.returncode in (1, 2), res.stderr  # 2: argparse's usage error (its usage lines, then one error line)
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.strip().splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], res.stderr
    if res.returncode == 1:
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    for name in absent:
        assert not (tmp_path / name).exists(), name
    assert {p: p.read_bytes() for p in before if p.exists()} == before
    assert all(p.exists() for p in before)
    assert not [p for p in tmp_path.rglob(".*.tmp")], "a temporary was left behind"


def _enospc_on(suffix: str):
    """An ``open`` that fails with ENOSPC when a temporary for a file ending in ``suffix`` is written."""
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.endswith(".tmp") and suffix in self.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)

    return write_text


def test_a_full_disk_while_evaluate_writes_its_pair_keeps_the_old_pair(tmp_path, monkeypatch, capsys):
    """Simulated ENOSPC on the second file of evaluate's report pair: one line naming the file (not
    our temporary), and the previous evaluation.json and evaluation.md both kept as they were."""
    _checkpoint(tmp_path / "m.pt")
    out = tmp_path / "ev"
    out.mkdir()
    (out / "evaluation.json").write_text("old json")
    (out / "evaluation.md").write_text("old md")
    monkeypatch.setattr(Path, "write_text", _enospc_on("evaluation.md"))
    rc = main(["-q", "evaluate", "--model", str(tmp_path / "m.pt"), str(ZEBRA_STORE), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.count("\n") == 0 and "Traceback" not in err
    assert f"{out / 'evaluation.md'}: No space left on device; nothing was kept" in err
    assert (out / "evaluation.json").read_text() == "old json" and (out / "evaluation.md").read_text() == "old md"
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.json", "evaluation.md"]


def test_a_read_only_place_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """Simulated EROFS: the writability probe fails, so fit refuses before loading a prior or fitting."""
    import probpose.files as files

    _obs(tmp_path / "obs.npz", joints=np.zeros((2, 19, 3)))
    real = os.open

    def read_only(path, flags, *args):
        if ".probpose-write-check" in str(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(files.os, "open", read_only)
    import probpose.models as models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("work started before the check"))
    rc = main(
        [
            "-q",
            "fit",
            "--prior",
            "cmu/gaussian_full",
            "--observations",
            str(tmp_path / "obs.npz"),
            "--out",
            str(tmp_path / "fit.npz"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "fit.npz: cannot be written: Read-only file system" in err and err.count("\n") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obs.npz"]


@pytest.fixture
def small_mount(tmp_path):
    """A real 1 MiB tmpfs (read-write) and a read-only one, where the test runs as root and may mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root; the simulated ENOSPC/EROFS tests cover this case")
    full, ro = tmp_path / "full", tmp_path / "ro"
    full.mkdir()
    ro.mkdir()
    mounted = []
    for where, options in ((full, "size=1m"), (ro, "ro,size=1m")):
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
        if res.returncode != 0:
            for m in mounted:
                subprocess.run(["umount", str(m)])
            pytest.skip(f"cannot mount a tmpfs here ({res.stderr.decode().strip()[:80]})")
        mounted.append(where)
    yield full, ro
    for m in mounted:
        subprocess.run(["umount", str(m)])


def test_full_and_read_only_file_systems_for_real(small_mount, tmp_path):
    """The import that used to end in HDF5 tracebacks and a segfault (rc 139) on a full disk, and
    read-only outputs of several commands: one line each, nothing left behind."""
    full, ro = small_mount
    res = _run(["import", "--bundled", "cmu", "--out", str(full / "c.h5")], tmp_path)
    assert res.returncode == 1 and "c.h5: no space left on the device" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert list(full.iterdir()) == []
    _checkpoint(tmp_path / "m.pt")
    _legs(tmp_path / "legs.npy")
    for args in (
        ["import", "--bundled", "zebra", "--out", str(ro / "z.h5")],
        ["sample", "--model", "m.pt", "--n", "3", "--out", str(ro / "s.npy")],
        ["evaluate", "--model", "m.pt", "legs.npy", "--out", str(ro / "ev")],
        ["synth", "--poses", "legs.npy", "--out", str(ro / "frames")],
        ["train", "--config", "gaussian_prior", "--override", f"output.dir={ro}"],
    ):
        res = _run(args, tmp_path)
        assert res.returncode == 1 and "Read-only file system" in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


SYNTH = """
import sys
from probpose.cli import main
sys.exit(main(["-q", "synth", "--poses", sys.argv[1], "--n-frames", "6", "--sequence-frames", "3", "--out",
               sys.argv[2]]))
"""


def test_two_processes_writing_one_synth_folder_never_mix(tmp_path):
    """Two real `synth --out X` at once: exactly one succeeds, the other says why, and X holds one
    complete output (its manifest names every frame in it)."""
    legs = next(p for p in bundled("zebra") if p.name == "train_poses.npz")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SYNTH, str(legs), str(tmp_path / "X")], env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 1], results
    loser = next(err for rc, err in results if rc == 1)
    assert "another process" in loser or "exists and is not empty" in loser, loser
    manifest = json.loads((tmp_path / "X" / "manifest.json").read_text())
    frames = sorted(p.name for p in (tmp_path / "X" / "frames").iterdir())
    assert len(frames) == 6 and manifest["frames"] == 6
    assert [p.name for p in tmp_path.iterdir()] == ["X"]  # no temporary left by the loser


def test_an_unreadable_folder_in_a_tree_is_an_error_or_listed(tmp_path, monkeypatch):
    """Simulated EACCES on one folder (root reads every folder, so permissions cannot make one here)."""
    (tmp_path / "A" / "locked").mkdir(parents=True)
    np.savez(tmp_path / "A" / "s1_poses.npz", poses=np.zeros((2, 156)))
    real = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataError, match="locked: folder cannot be read .*Permission denied.*`skip_bad`"):
        scan_tree(tmp_path)
    files, skipped = scan_tree(tmp_path, skip_bad=True)
    assert [f.relpath for f in files] == ["A/s1_poses.npz"]
    assert ("A/locked", "an unreadable folder (Permission denied)") in skipped


def test_images_are_checked_by_header_and_16_bit_greys_keep_their_values(tmp_path):
    from probpose.style.images import ImageBank, read_rgb

    grey = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16
    Image.fromarray(grey).save(tmp_path / "g16.png")
    rgb = read_rgb(tmp_path / "g16.png")
    assert torch.allclose(rgb[0].double(), torch.from_numpy(grey / 65535.0), atol=1e-6)
    assert torch.equal(rgb[0], rgb[2])  # grey: three equal planes (PIL's convert would give white)
    _png_claiming(tmp_path / "big.png", 50_000, 50_000)
    with pytest.raises(DataError, match="declares 50,000 x 50,000 pixels"):
        ImageBank([tmp_path / "g16.png", tmp_path / "big.png"])  # refused when listed, before any decoding
    bank = ImageBank([tmp_path / "g16.png"])
    assert torch.allclose(bank[0], rgb, atol=1 / 255) and len(bank._decoded) == 1


def test_reports_are_strict_json_with_non_finite_values_named():
    text = json_text({"nll": math.nan, "rows": [{"bpd": math.inf}, {"bpd": 1.5}], "n": 3})
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert data["nll"] is None and data["rows"][0]["bpd"] is None and data["rows"][1]["bpd"] == 1.5
    assert data["non_finite"] == ["nll", "rows[0].bpd"]
    assert json.loads(json_text({"a": 1.0})) == {"a": 1.0}  # nothing added when all is finite
    assert json.loads(json_text([float(np.float64(2.0))])) == [2.0]


def test_a_short_numpy_write_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    """Issue 37: on a full disk NumPy's ``tofile`` (behind ``np.save`` to a real file) raises an
    ``OSError`` without an errno ("N requested and M written"): ``sample`` gave its traceback. Now
    one line, and nothing is kept."""
    _checkpoint(tmp_path / "m.pt")

    def short_write(self, fid, *args, **kwargs):
        raise OSError(f"{self.nbytes} requested and 0 written")

    monkeypatch.setattr(np.lib.format, "write_array", lambda fp, array, *a, **k: short_write(array, fp))
    rc = main(["sample", "--model", str(tmp_path / "m.pt"), "--n", "4", "--out", str(tmp_path / "s.npy")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.count("\n") == 0 and "Traceback" not in err
    assert "could not write every byte" in err and not (tmp_path / "s.npy").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_a_full_disk_on_the_sheet_alone_says_what_was_kept(tmp_path, monkeypatch, capsys):
    """Issue 37: when only the contact sheet fails (drawn after the fit's files are written), the
    message says the sheet was not written and names the files that were, instead of "nothing was
    kept"; those files are complete."""
    import matplotlib.figure

    monkeypatch.chdir(tmp_path)
    prior = _checkpoint(tmp_path / "m.pt")
    from probpose.fitting import make_body

    body = make_body("zebra_legs", build_model("gaussian_full", ZEBRA_LEGS).modelled_names)
    pts = body.points(torch.zeros(2, 12, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64),
                      torch.zeros(2, 3, dtype=torch.float64))  # fmt: skip
    np.savez(tmp_path / "o.npz", joints=pts.numpy())

    def enospc(self, fname, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fname))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", enospc)
    args = ["-q", "fit", "--prior", str(prior), "--observations", "o.npz", "--out", "f.npz", "--steps", "5",
            "--sheet", "f.png"]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "nothing was kept" not in err
    assert "f.png: No space left on device; this picture was not written, but f.npz, f.md, f.json were" in err
    assert np.load(tmp_path / "f.npz")["pose"].shape[0] == 2 and not (tmp_path / "f.png").exists()

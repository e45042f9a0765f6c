"""Issue 8's reliability items, each tried as a careless or hostile user would: no lost checkpoint,
no destroyed file, no traceback for a user error, nonsense settings refused at load, stores that
check their data, constant joints warned about and still evaluable, model names that build their
model, and no Pyro parameter store leak."""

import gc
import json
import math
import os
import pickle
import resource
import signal
import subprocess
import sys
import time
import weakref
import zipfile

import h5py
import numpy as np
import pyro
import pytest
import torch

from probpose.cli import main
from probpose.data import read_info, read_split
from probpose.errors import ConfigError, DataError, TrainingError
from probpose.evaluation import evaluate
from probpose.files import atomic_path, remove_stale_temporaries
from probpose.models import PerJointGaussianModel, build_model, load_model, read_checkpoint
from probpose.skeleton import SMPLX
from probpose.training import Trainer, TrainingConfig, load_config
from probpose.training.config import parse_override

SKEL = SMPLX.select(["left_hip", "left_knee", "left_ankle"])


def poses(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 3, generator=g) * torch.tensor([0.2, 0.3, 0.1]) + 0.1


def run_cli(*args, cwd=None):
    """``probpose`` in a fresh process: exit code and stderr."""
    r = subprocess.run(
        [sys.executable, "-m", "probpose", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    return r.returncode, r.stderr


# ---------------------------------------------------------------------- 1. best weights are never lost
class _Poison:
    """Makes the model's loss NaN from a given step on, as a diverging learning rate would."""

    def __init__(self, trainer, step):
        self.loss, self.trainer, self.step = trainer.loss, trainer, step

    def __call__(self, batch):
        loss = self.loss(batch)
        return loss * math.nan if self.trainer.step >= self.step else loss


def test_nan_at_step_12_keeps_the_best_weights_on_disk(tmp_path):
    """Validation every 5 steps improves at 5 and 10; a NaN at step 12 must leave the step-10 weights
    in the file the message names (today's main had the step-7 file, or none)."""
    train, val = poses(), poses(200, seed=1)
    cfg = TrainingConfig(lr=0.05, max_steps=100, eval_every=5, patience=0, batch_size=400)
    t = Trainer(PerJointGaussianModel(SKEL), cfg, tmp_path, tensorboard=False, checkpoint_every=7)
    t.loss = _Poison(t, 12)
    with pytest.raises(TrainingError, match=r"at step 12.*best weights so far \(step 10\) are in .*checkpoint.pt") as e:
        t.fit(train, val)
    path = tmp_path / "checkpoint.pt"
    assert str(path) in str(e.value) and path.is_file()
    ck = read_checkpoint(path)
    assert ck["best_step"] == 10
    best = load_model(path)
    assert torch.isfinite(best.log_prob(val)).all()
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporaries left


def test_lr_10_on_global_flow_names_a_checkpoint_that_exists(tmp_path):
    train, val = poses(), poses(200, seed=1)
    model = build_model("global_flow", SKEL, {"K": 2, "hidden": 16})
    cfg = TrainingConfig(lr=10.0, max_steps=200, eval_every=10, patience=0)
    with pytest.raises(TrainingError) as e:
        Trainer(model, cfg, tmp_path, tensorboard=False).fit(train, val)
    named = str(e.value).split(" are in ")[-1]
    assert named == str(tmp_path / "checkpoint.pt") and (tmp_path / "checkpoint.pt").is_file()
    assert torch.isfinite(load_model(named).log_prob(val)).all()


def test_nan_in_validation_stops_and_names_the_file(tmp_path):
    train, val = poses(), poses(200, seed=1)
    cfg = TrainingConfig(lr=0.05, max_steps=100, eval_every=10, patience=0)
    t = Trainer(PerJointGaussianModel(SKEL), cfg, tmp_path, tensorboard=False)
    bad_val = val.clone()
    bad_val[3, 0, 0] = 1e30  # overflows float32: -inf log-density for that pose
    with pytest.raises(TrainingError, match=r"validation at step 0 failed.*not finite") as e:
        t.fit(train, bad_val)
    assert "checkpoint" not in str(e.value) or (tmp_path / "checkpoint.pt").is_file()


def test_training_twice_into_a_run_never_replaces_it(tmp_path, capsys):
    args = [
        "train",
        "--config",
        "gaussian_prior",
        "--override",
        f"output.dir={tmp_path}",
        "--override",
        "training.fit=closed_form",
        "--override",
        "output.tensorboard=false",
    ]
    assert main(args) == 0
    first = (tmp_path / "gaussian_prior" / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main([*args, "--override", "model.covariance=diag"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'gaussian_prior'} already holds a run; writing {tmp_path / 'gaussian_prior-2'}" in out
    assert (tmp_path / "gaussian_prior" / "checkpoint.pt").read_bytes() == first
    assert load_model(tmp_path / "gaussian_prior-2" / "checkpoint.pt").options.covariance == "diag"


# ---------------------------------------------------------------------- 2. nonsense settings refused at load
@pytest.mark.parametrize(
    "override, message",
    [
        ("training.clip_norm=0", "training.clip_norm: 0.0 is outside the valid range (0, inf)"),
        ("training.clip_norm=-1", "training.clip_norm"),
        ("training.gamma=0", "training.gamma: 0.0 is outside the valid range (0, 1]"),
        ("training.gamma=1.5", "training.gamma: 1.5 is outside"),
        ("training.patience=-1", "training.patience: -1 is outside the valid range [0, inf)"),
        ("training.max_seconds=0", "training.max_seconds"),
        ("training.lr=.inf", "training.lr: must be a finite number"),
        ("training.lr=.nan", "training.lr: must be a finite number"),
        ("training.batch_size=0", "training.batch_size"),
        ("model.K=0", "model.K"),
        ("data.segment_seconds=-1", "data.segment_seconds"),
        ("name=../../x", "is not a run name"),
        ("name=/tmp/x", "is not a run name"),
    ],
)
def test_nonsense_settings_are_refused_naming_key_and_range(override, message):
    with pytest.raises(ConfigError) as e:
        load_config("global_flow", [override])
    assert message in str(e.value)


def test_alias_bombs_and_huge_configs_are_refused_quickly(tmp_path):
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, 9):
        prev = chr(ord("a") + k - 1)
        bomb.append(f"{chr(ord('a') + k)}: &{chr(ord('a') + k)} [{','.join([f'*{prev}'] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(bomb) + "\nname: x\n")
    assert path.stat().st_size < 600
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="anchors") as e:
        load_config(str(path))
    assert time.perf_counter() - t0 < 1 and len(str(e.value)) < 300
    with pytest.raises(ConfigError, match="aliases|anchors"):
        parse_override("training.lr=[&x 1, *x]")
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: " + "x" * 200_000 + "\n")
    with pytest.raises(ConfigError, match="larger than") as e:
        load_config(str(huge))
    assert len(str(e.value)) < 300
    with pytest.raises(ConfigError, match="longer than") as e:
        parse_override("name=" + "y" * 100_000)
    assert len(str(e.value)) < 300
    with pytest.raises(ConfigError) as e:  # a long but legal override: the message is cut short
        load_config("global_flow", ["training.lr=" + "9" * 900])
    assert len(str(e.value)) < 400


# ---------------------------------------------------------------------- 3. import never destroys or half-writes
def test_out_equal_to_an_input_is_refused(tmp_path, zebra_files, capsys):
    src = tmp_path / "poses.npz"
    src.write_bytes(zebra_files["test_poses_refine.npz"].read_bytes())
    before = src.read_bytes()
    assert main(["import", str(src), "--out", str(src)]) == 1
    assert "is also an input" in capsys.readouterr().err and src.read_bytes() == before
    link = tmp_path / "link.npz"
    link.symlink_to(src)
    assert main(["import", str(src), "--out", str(link)]) == 1
    assert src.read_bytes() == before


def test_ctrl_c_during_the_store_write_aborts_with_130_and_keeps_the_old_file(tmp_path, zebra_files, monkeypatch):
    out = tmp_path / "z.h5"
    src = str(zebra_files["test_poses_refine.npz"])
    assert main(["import", src, "--out", str(out)]) == 0
    before = out.read_bytes()
    original = h5py.Group.create_dataset

    def swallowing(self, *args, **kwargs):  # a library that catches KeyboardInterrupt and goes on
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        except KeyboardInterrupt:
            pass
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", swallowing)
    assert main(["import", str(zebra_files["test_poses.npz"]), "--out", str(out)]) == 130
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["z.h5"]


def test_sigterm_mid_import_leaves_no_store_and_no_temporary(tmp_path):
    """A real process, terminated while it writes: no store, no temporary file, exit code 143."""
    script = tmp_path / "slow_import.py"
    script.write_text(
        "import sys, time, h5py\n"
        "from probpose.cli import main\n"
        "orig = h5py.Group.create_dataset\n"
        "def slow(self, *a, **k):\n"
        "    print('writing', flush=True); time.sleep(30); return orig(self, *a, **k)\n"
        "h5py.Group.create_dataset = slow\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "z.h5"
    p = subprocess.Popen(
        [sys.executable, str(script), "import", "--bundled", "zebra", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "writing"
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == [script]


def test_stale_temporaries_of_killed_runs_are_removed(tmp_path):
    final = tmp_path / "store.h5"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:40]
    stale = tmp_path / f".store.h5.{host}.{dead.pid}.deadbeef.tmp"
    alive = tmp_path / f".store.h5.{host}.{os.getppid()}.cafebabe.tmp"
    other = tmp_path / ".store.h5.notes.tmp"  # not one of ours: left alone
    for f in (stale, alive, other):
        f.write_bytes(b"partial")
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"done")
    assert final.read_bytes() == b"done"
    assert not stale.exists() and alive.exists() and other.exists()
    assert remove_stale_temporaries(final) == []


def test_a_pickle_of_shared_nested_lists_is_refused_quickly(tmp_path, capsys):
    nested = []
    for _ in range(60):
        nested = [nested, nested]  # 2^60 leaves when walked naively; 1.5 KB pickled
    path = tmp_path / "shared.pkl"
    path.write_bytes(pickle.dumps({"smpl_poses": nested}))
    t0 = time.perf_counter()
    assert main(["import", str(path), "--joints", "body", "--out", str(tmp_path / "o.h5")]) == 1
    assert time.perf_counter() - t0 < 5
    assert "smpl_poses" in capsys.readouterr().err
    deep = []
    for _ in range(200):
        deep = [deep]
    from probpose.data.safe_pickle import UnsafePickleError, safe_load

    with pytest.raises(UnsafePickleError, match="deeper than"):
        safe_load(pickle.dumps({"x": deep}))


def _npz_with_header(path, shape, payload=b"\0" * 64):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("poses.npy", buf.getvalue() + payload)


def test_npz_headers_are_checked_before_allocating(tmp_path, capsys):
    huge = tmp_path / "huge.npz"
    _npz_with_header(huge, (10**12, 165))
    assert main(["import", str(huge), "--out", str(tmp_path / "o.h5")]) == 1
    assert "declares shape (1000000000000, 165)" in capsys.readouterr().err
    lying = tmp_path / "lying.npz"
    _npz_with_header(lying, (1000, 165))  # declares 1.3 MB, holds 64 bytes
    assert main(["import", str(lying), "--out", str(tmp_path / "o.h5")]) == 1
    assert "but holds 64 bytes" in capsys.readouterr().err


def test_import_memory_stays_proportional_to_the_data(tmp_path):
    """A small compressed file of 150,000 x 165 zeros (198 MB as float64): peak memory of the whole
    import stays within a few times the raw array (today's main took about 7 times)."""
    n = 150_000
    path = tmp_path / "zeros.npz"
    rng = np.random.default_rng(0)
    data = np.zeros((n, 165))
    data[:, 3:66] = rng.normal(0, 0.1, (n, 63)).round(1)  # a body that moves; compresses well
    np.savez_compressed(path, poses=data, mocap_frame_rate=np.array(120.0))
    raw = data.nbytes
    del data
    code = (
        "import resource, sys; from probpose.cli import main; "
        "import probpose.data, probpose.models; base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
        f"rc = main(['import', {str(path)!r}, '--joints', 'body', '--out', {str(tmp_path / 'o.h5')!r}]); "
        "print(rc, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    rc, base, peak = map(int, r.stdout.split()[-3:])
    assert rc == 0, r.stderr
    used = (peak - base) * 1024  # ru_maxrss is in KiB on Linux
    assert used < 4 * raw, (used / raw, used)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


# ---------------------------------------------------------------------- 4. no traceback for a user error
def _codec(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _corrupt_npz(path):
    np.savez_compressed(path, poses=np.random.default_rng(0).normal(size=(50, 165)))
    b = bytearray(path.read_bytes())
    for i in range(200, 260):
        b[i] ^= 0xFF
    path.write_bytes(bytes(b))
    return path


@pytest.mark.parametrize(
    "case",
    [
        "corrupt_deflate",
        "empty_version",
        "text_version",
        "nan_frame_count",
        "fps_inf",
        "out_under_file",
        "out_is_folder",
        "config_missing",
        "ckpt_unsafe",
        "ckpt_empty",
        "ckpt_list",
        "ckpt_text",
        "store_no_sequence",
        "pasyn_on_human_model",
        "bad_split",
        "bad_selection",
    ],
)
def test_user_errors_print_one_line_naming_file_and_field(tmp_path, case, zebra_files):
    t = tmp_path
    zebra = zebra_files["test_poses_refine.npz"]
    good_ckpt = t / "g" / "checkpoint.pt"
    if case in ("pasyn_on_human_model",):
        overrides = [f"output.dir={t}", "name=g", "training.fit=closed_form", "output.tensorboard=false"]
        assert main(["train", "--config", "gaussian_prior", *(a for o in overrides for a in ("--override", o))]) == 0
    if case == "store_no_sequence":
        assert main(["import", str(zebra), "--out", str(t / "s.h5")]) == 0
        with h5py.File(t / "s.h5", "a") as f:
            del f["test/sequence"]
    unsafe = t / "unsafe.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    if case == "ckpt_unsafe":
        torch.save({"model": Evil()}, unsafe)
    (t / "empty.pt").write_bytes(b"")
    torch.save([1, 2, 3], t / "list.pt")
    (t / "text.pt").write_text("[]")
    (t / "afile").write_text("x")
    (t / "afolder").mkdir()
    args, expect = {
        "corrupt_deflate": (["import", _corrupt_npz(t / "c.npz"), "--out", t / "o.h5"], "c.npz: poses: "),
        "empty_version": (
            [
                "import",
                _codec(t / "e.smpl", smplVersion=np.array([]), bodyPose=np.zeros((3, 22, 3))),
                "--out",
                t / "o.h5",
            ],
            "e.smpl: smplVersion: expected one integer",
        ),
        "text_version": (
            [
                "import",
                _codec(t / "v.smpl", smplVersion=np.array("abc"), bodyPose=np.zeros((3, 22, 3))),
                "--out",
                t / "o.h5",
            ],
            "v.smpl: smplVersion: expected one integer, got 'abc'",
        ),
        "nan_frame_count": (
            [
                "import",
                _codec(
                    t / "f.smpl", smplVersion=np.array(2), frameCount=np.array(np.nan), bodyPose=np.zeros((3, 22, 3))
                ),
                "--out",
                t / "o.h5",
            ],
            "f.smpl: frameCount: expected one integer, got nan",
        ),
        "fps_inf": (["import", zebra, "--fps", "inf", "--out", t / "o.h5"], "--fps"),
        "out_under_file": (["import", zebra, "--out", t / "afile" / "o.h5"], "afile is a file, not a folder"),
        "out_is_folder": (["import", zebra, "--out", t / "afolder"], "afolder: is a folder"),
        "config_missing": (["train", "--config", "missing.yaml"], "missing.yaml: no such file (config)"),
        "ckpt_unsafe": (["sample", "--model", unsafe, "--out", t / "p.npy"], "unsafe.pt: holds objects"),
        "ckpt_empty": (["sample", "--model", t / "empty.pt", "--out", t / "p.npy"], "empty.pt: not a readable"),
        "ckpt_list": (["sample", "--model", t / "list.pt", "--out", t / "p.npy"], "list.pt: expected a dict"),
        "ckpt_text": (["sample", "--model", t / "text.pt", "--out", t / "p.npy"], "text.pt: not a torch checkpoint"),
        "store_no_sequence": (
            ["bench", "--data", t / "s.h5", "--out", t / "b", "--models", "gaussian"],
            "s.h5: test/sequence: missing dataset",
        ),
        "pasyn_on_human_model": (
            ["sample", "--model", good_ckpt, "--pasyn", "--out", t / "p.npy"],
            "checkpoint.pt: joints: --pasyn needs",
        ),
        "bad_split": (["import", zebra, "--split", "80/20", "--out", t / "o.h5"], "split needs three"),
        "bad_selection": (["import", zebra, "--joints", "torso", "--out", t / "o.h5"], "unknown joint selection"),
    }[case]
    before = sorted(p.name for p in t.rglob("*"))
    code, err = run_cli(*args, cwd=t)
    assert code != 0
    assert "Traceback" not in err and "weights_only=False" not in err, err
    assert err.startswith(f"probpose {args[0]}: error: ") or case == "fps_inf", err
    assert expect in err, err
    assert "yaml.yaml" not in err
    if case in ("pasyn_on_human_model", "ckpt_unsafe"):
        assert not (t / "p.npy").exists() and not (t / "p_pasyn.npy").exists()
    assert sorted(p.name for p in t.rglob("*")) == before  # nothing written, not even a temporary


def test_internal_errors_keep_their_traceback(monkeypatch):
    import probpose.data.importing as importing

    def broken(*a, **k):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(importing, "bundled", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["import", "--bundled", "zebra", "--out", "never.h5"])


# ---------------------------------------------------------------------- 5. the store reader checks its data
@pytest.fixture()
def zebra_store(tmp_path, zebra_files):
    out = tmp_path / "z.h5"
    assert main(["import", str(zebra_files["test_poses_refine.npz"]), "--out", str(out)]) == 0
    return out


def test_nan_in_a_stored_split_names_file_split_and_row(zebra_store):
    with h5py.File(zebra_store, "a") as f:
        f["train/poses"][5, 2, 1] = np.nan
    with pytest.raises(DataError, match=r"z.h5: train/poses: 1 pose\(s\) with NaN/inf values \(first at row 5\)"):
        read_split(zebra_store, "train")
    from probpose.data import PoseDataset

    ds = PoseDataset(zebra_store, "train")
    with pytest.raises(DataError, match="train/poses"):
        ds.__getitems__([1, 5, 9])


def test_integer_poses_and_tampered_skeletons_are_refused(zebra_store):
    with h5py.File(zebra_store, "a") as f:
        data = f["val/poses"][...]
        del f["val/poses"]
        f["val/poses"] = data.astype(np.int32)
    with pytest.raises(DataError, match="val/poses: expected float axis-angle poses, got dtype int32"):
        read_info(zebra_store)


@pytest.mark.parametrize(
    "attr, edit, field",
    [
        ("skeleton", lambda d: {**d, "parents": [-1] * len(d["parents"])}, "skeleton"),
        ("skeleton", lambda d: {**d, "joint_names": d["joint_names"][::-1]}, "joint_names"),
        ("joints", lambda v: "front_legs", "skeleton"),
        ("joint_names", lambda names: names[:-1], "joint_names"),
    ],
)
def test_inconsistent_skeleton_attributes_are_refused(zebra_store, attr, edit, field):
    with h5py.File(zebra_store, "a") as f:
        value = f.attrs[attr]
        parsed = json.loads(value) if attr in ("skeleton", "joint_names") else value
        new = edit(parsed)
        f.attrs[attr] = json.dumps(new) if attr in ("skeleton", "joint_names") else new
    with pytest.raises(DataError) as e:
        read_info(zebra_store)
    assert e.value.field == field and "z.h5" in str(e.value)


# ---------------------------------------------------------------------- 6. constant dimensions
def test_evaluating_data_with_constant_joints_works_but_fitting_refuses():
    from probpose.errors import ConstantDimensionError

    model = PerJointGaussianModel(SKEL)
    Trainer(model, TrainingConfig(fit="closed_form")).fit(poses())
    x = poses(100, seed=2)
    x[:, 2] = 0.0  # left_ankle constant, as real files hold unposed joints
    ev = evaluate(model, x)
    assert math.isfinite(ev.nll) and ev.n == 100
    with pytest.raises(ConstantDimensionError, match="left_ankle"):
        Trainer(PerJointGaussianModel(SKEL), TrainingConfig(fit="closed_form")).fit(x)


def test_import_warns_about_barely_moving_joints_by_name(tmp_path, capsys):
    assert main(["import", "--bundled", "smplx", "--joints", "body", "--out", str(tmp_path / "b.h5")]) == 0
    err = capsys.readouterr().err
    assert "left_foot (moves in 127 of 608)" in err and "right_foot (moves in" in err
    assert "Consider --joints 'body-feet'" in err
    assert main(["import", "--bundled", "smplx", "--joints", "body-feet", "--out", str(tmp_path / "c.h5")]) == 0
    assert "hold one value" not in capsys.readouterr().err


# ---------------------------------------------------------------------- 7. config usability
def test_data_path_override_alone_takes_the_stores_joints(tmp_path):
    store = tmp_path / "hands.h5"
    assert (
        main(["import", "--bundled", "smplx", "--joints", "right_hand", "--skip-incomplete", "--out", str(store)]) == 0
    )
    cfg = load_config(
        "gaussian_prior",
        [f"data.path={store}", f"output.dir={tmp_path}", "training.fit=closed_form", "output.tensorboard=false"],
    )
    assert cfg.data.joints is None
    from probpose.training import run_experiment

    summary = run_experiment(cfg)
    assert summary.data.joints == "right_hand" and summary.test.dim == 45
    with pytest.raises(DataError, match="store holds joints 'right_hand' but 'body' were asked for"):
        run_experiment(
            load_config("gaussian_prior", [f"data.path={store}", "data.joints=body", f"output.dir={tmp_path}"])
        )


@pytest.mark.parametrize(
    "config, name, check",
    [
        ("gaussian_prior", "gaussian_diag", lambda m: m.options.covariance == "diag" and m.offdiag is None),
        (
            "global_flow",
            "global_flow_spline",
            lambda m: m.options.coupling == "spline" and m.options.K == 8,
        ),  # file: K 8
        ("hand_vae", "vae_so3", lambda m: m.options.type == "so3" and m.options.kl_anneal_steps == 500),
        ("global_flow", "joint_flow", lambda m: type(m).__name__ == "JointFlowModel"),
    ],
)
def test_a_model_name_builds_that_model(config, name, check):
    cfg = load_config(config, [f"model.name={name}"])
    assert cfg.model.name == name and cfg.name == f"{config}-{name}"  # runs of different models never collide
    skel = SMPLX.select("right_hand")
    assert check(build_model(name, skel, cfg.model.options))


def test_contradicting_a_models_name_or_an_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match="model.covariance: model 'gaussian_diag' is covariance='diag'"):
        load_config("gaussian_prior", ["model.name=gaussian_diag", "model.covariance=full"])
    with pytest.raises(ConfigError, match="unknown key 'model.coupling'.*valid keys: name, covariance"):
        load_config("global_flow", ["model.name=gaussian", "model.coupling=spline"])


# ---------------------------------------------------------------------- 8. Pyro's parameter store
def test_training_many_models_leaves_nothing_in_the_param_store():
    pyro.clear_param_store()
    refs = []
    for name in ("gaussian", "global_flow", "vae"):
        opts = {"K": 1, "hidden": 8} if name == "global_flow" else {"hidden": 8, "z_dim": 2} if name == "vae" else {}
        model = build_model(name, SKEL, opts)
        Trainer(model, TrainingConfig(max_steps=3, eval_every=3)).fit(poses(), poses(50, seed=1))
        refs.append(weakref.ref(model))
        del model
    assert len(pyro.get_param_store()) == 0
    gc.collect()
    assert all(r() is None for r in refs)  # nothing keeps the fitted models alive


ENV_CASES = [
    ("PROBPOSE_MAX_JOINTS", "text", "expected an integer in [55, 100,000]"),
    ("PROBPOSE_MAX_JOINTS", "7", "expected an integer in [55, 100,000]"),
    ("PROBPOSE_MAX_JOINTS", "", "expected an integer in [55, 100,000]"),
    ("PROBPOSE_MAX_COUNT", "nan", "expected an integer in [1, 1,000,000,000,000]"),
    ("PROBPOSE_MAX_COUNT", "-5", "expected an integer in [1, 1,000,000,000,000]"),
    ("PROBPOSE_MAX_COUNT", "1" + "0" * 32, "expected an integer in [1, 1,000,000,000,000]"),
    ("PROBPOSE_MAX_WIDTH", "1e6", "expected an integer in [1, 65,536]"),
]


@pytest.mark.parametrize(("var", "value", "message"), ENV_CASES)
def test_a_malformed_environment_limit_is_one_line_even_for_help(var, value, message):
    """Issue 37: every PROBPOSE_<LIMIT> is an integer in a stated range; anything else stops every
    command, ``--help`` included, with one line naming the variable and its range (exit 2)."""
    env = {**os.environ, var: value}
    runs = [["--help"]]
    if value == "text":  # a real command too, once
        runs.append(["sample", "--model", "cmu/gaussian_full", "--n", "2", "--out", "never.npy"])
    for args in runs:
        r = subprocess.run([sys.executable, "-m", "probpose", *args], env=env, capture_output=True, text=True)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0 and var in r.stderr and message in r.stderr, r.stderr


@pytest.mark.parametrize(("var", "value"), [("PROBPOSE_DIST_TIMEOUT", "inf"), ("PROBPOSE_DIST_TIMEOUT", "1e308"),
                                            ("WORLD_SIZE", "99999999999999999999")])  # fmt: skip
def test_a_distributed_environment_out_of_range_is_a_distributed_error(monkeypatch, var, value):
    from probpose.errors import DistributedError
    from probpose.parallel import from_environment

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv(var, value)
    with pytest.raises(DistributedError, match="PROBPOSE_DIST_TIMEOUT|WORLD_SIZE") as e:
        from_environment()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "args",
    [
        ["sample", "--model", "cmu/gaussian_full", "--n", "2", "--seed", "9" * 23, "--out", "s.npy"],
        ["fit", "--prior", "cmu/gaussian_full", "--observations", "o.npz", "--seed", "9" * 23, "--out", "f.npz"],
        ["import", "--bundled", "zebra", "--seed", "9" * 23, "--out", "z.h5"],
    ],
)
def test_a_seed_beyond_64_bits_is_one_line(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "--seed" in err and "outside the valid range [0, 9,223,372,036,854,775,807]" in err
    assert not any(tmp_path.iterdir())


def test_sample_refuses_an_output_it_would_not_write(tmp_path, monkeypatch, capsys):
    """``sample --out s.npz`` used to write ``s.npy``: a file the user did not name."""
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--model", "cmu/gaussian_full", "--n", "2", "--out", "s.npz"]) == 1
    assert "must end in .npy" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_pictures_and_spaces_the_command_would_get_wrong_are_refused(tmp_path, monkeypatch, capsys):
    """``fit --sheet base.npz`` once replaced an earlier fit with PNG bytes; ``--space base`` with
    no prior was silently ignored; an empty or NUL-bearing model name gave a misleading or bare error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.npz").write_bytes(b"an earlier fit")
    fit = ["fit", "--prior", "cmu/gaussian_full", "--observations", "o.npz", "--out", "f.npz"]
    assert main([*fit, "--sheet", "base.npz"]) == 1
    assert "must end in .png" in capsys.readouterr().err
    assert (tmp_path / "base.npz").read_bytes() == b"an earlier fit"
    assert main(["sample", "--model", "cmu/gaussian_full", "--n", "2", "--out", "s.npy", "--sheet", "s.jpg"]) == 1
    assert "must end in .png" in capsys.readouterr().err and not (tmp_path / "s.npy").exists()
    assert main(["fit", "--prior", "none", "--space", "base", "--observations", "o.npz", "--out", "f.npz"]) == 1
    assert "with prior 'none' there is none" in capsys.readouterr().err
    assert main(["sample", "--model", "", "--n", "2", "--out", "s.npy"]) == 1
    assert "not a file name or a shipped prior's name" in capsys.readouterr().err
    with pytest.raises(Exception, match="not a file name") as e:
        load_model("cmu/joint\x00flow")
    assert "\n" not in str(e.value)


def test_a_failed_run_leaves_no_claim_and_its_name_stays_free(tmp_path, capsys):
    """Issue 37: a train that fails before any checkpoint (here: a data store that is not there,
    then garbage in its place) leaves no run folder, so the next run gets the name itself (not
    ``NAME-2`` with a note pointing ``--resume`` at a folder holding nothing to resume)."""
    args = ["train", "--config", "gaussian_prior", "--override", f"output.dir={tmp_path / 'runs'}",
            "--override", "training.fit=closed_form", "--override", "output.tensorboard=false"]  # fmt: skip
    assert main([*args, "--override", f"data.path={tmp_path / 'missing.h5'}"]) == 1
    (tmp_path / "garbage.h5").write_bytes(b"not hdf5")
    assert main([*args, "--override", f"data.path={tmp_path / 'garbage.h5'}"]) == 1
    capsys.readouterr()
    assert not (tmp_path / "runs" / "gaussian_prior").exists()
    assert main(args) == 0
    assert "already holds a run" not in capsys.readouterr().out
    assert (tmp_path / "runs" / "gaussian_prior" / "checkpoint.pt").is_file()
    assert not (tmp_path / "runs" / "gaussian_prior-2").exists()


REST_CASES = {
    "strings": (lambda: np.array([["a", "b", "c"]] * 55), "expected real numbers"),
    "complex": (lambda: np.ones((55, 3), dtype=complex), "expected real numbers"),
    "bool": (lambda: np.ones((55, 3), dtype=bool), "expected real numbers"),
    "all_zero": (lambda: np.zeros((55, 3)), "every joint within 1 cm of the others"),
    "scaled_1e300": (lambda: 1e300 * np.random.default_rng(0).standard_normal((55, 3)), "beyond 100 m"),
}


@pytest.mark.parametrize("case", list(REST_CASES))
def test_rest_joints_that_are_not_a_skeleton_in_metres_are_refused(tmp_path, case):
    from probpose.data.rest import load_rest_joints

    make, message = REST_CASES[case]
    np.save(tmp_path / "rest.npy", make())
    with pytest.raises(DataError, match=message) as e:
        load_rest_joints(tmp_path / "rest.npy", SMPLX)
    assert "\n" not in str(e.value)


def test_rest_joints_from_a_fifo_are_refused_without_blocking(tmp_path):
    from probpose.data.rest import load_rest_joints

    os.mkfifo(tmp_path / "rest.npy")
    with pytest.raises(DataError, match="is a FIFO, not a regular file"):
        load_rest_joints(tmp_path / "rest.npy", SMPLX)

"""Splits are deterministic and leak-free; the HDF5 store round-trips, checks itself and is atomic."""

import json

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from probpose.data import (
    DataError,
    PoseDataset,
    import_poses,
    parse_fractions,
    read_info,
    read_split,
    split_poses,
    write_store,
)
from probpose.data import store as store_module


@pytest.fixture(scope="module")
def smplx_body(smplx_files):
    return import_poses(list(smplx_files.values()), joints="body")


@pytest.fixture(scope="module")
def zebra(zebra_files):
    return import_poses(list(zebra_files.values()))


def _row_set(poses, idx):
    return {poses.poses[i].tobytes() for i in idx}


def test_parse_fractions():
    assert parse_fractions("80/10/10") == pytest.approx((0.8, 0.1, 0.1))
    assert parse_fractions("2/1/1") == pytest.approx((0.5, 0.25, 0.25))
    for bad in ("80/20", "a/b/c", "0/50/50", "80/-10/30"):
        with pytest.raises(ValueError):
            parse_fractions(bad)


def test_sequence_split_is_deterministic_and_leak_free(smplx_body):
    a = split_poses(smplx_body)
    b = split_poses(smplx_body)
    for name in a.indices:
        np.testing.assert_array_equal(a.indices[name], b.indices[name])
    all_idx = np.concatenate(list(a.indices.values()))
    assert len(all_idx) == len(np.unique(all_idx))  # no frame in two splits
    for name in ("val", "test"):
        assert len(a.indices[name]) > 0  # every split gets real motion from the three sequences
        assert not _row_set(smplx_body, a.indices["train"]) & _row_set(smplx_body, a.indices[name])
    assert not _row_set(smplx_body, a.indices["val"]) & _row_set(smplx_body, a.indices["test"])
    # whole segments: within each sequence, an evaluation frame is never within the guard of train
    for name in ("val", "test"):
        for i in a.indices[name]:
            seq, frame = smplx_body.sequence[i], smplx_body.frame[i]
            guard = int(round(0.1 * smplx_body.sequences[seq].fps))
            near = (smplx_body.sequence[a.indices["train"]] == seq) & (
                np.abs(smplx_body.frame[a.indices["train"]] - frame) <= guard
            )
            assert not near.any()
    # a different seed gives a different (still valid) split
    c = split_poses(smplx_body, seed=1)
    assert any(not np.array_equal(a.indices[k], c.indices[k]) for k in a.indices)


def test_pasyn_rows_are_deduplicated_then_split(zebra):
    sp = split_poses(zebra)
    sizes = {k: len(v) for k, v in sp.indices.items()}
    assert sum(sizes.values()) == 3780  # distinct rows among the 7518 (shared/data/README.md)
    assert sp.stats["duplicates_dropped"] == 7518 - 3780
    sets = {k: _row_set(zebra, v) for k, v in sp.indices.items()}
    assert sum(len(s) for s in sets.values()) == 3780  # no pose repeated, within or across splits
    assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"]) and not (sets["val"] & sets["test"])
    assert sizes["train"] == pytest.approx(0.8 * 3780, abs=2) and sizes["test"] == pytest.approx(378, abs=2)


def test_pasyn_split_ignores_file_order(zebra_files):
    # the split a pose lands in depends on the pose and the seed, not on the order of the files
    files = list(zebra_files.values())
    a, b = import_poses(files), import_poses(files[::-1])
    sa, sb = split_poses(a), split_poses(b)
    for name in sa.indices:
        assert _row_set(a, sa.indices[name]) == _row_set(b, sb.indices[name])


def test_store_round_trip_and_attributes(tmp_path, smplx_body):
    sp = split_poses(smplx_body)
    path = write_store(tmp_path / "s.h5", smplx_body, sp, joints="body", base_skeleton="smplx")
    info = read_info(path)
    assert info.skeleton == smplx_body.skeleton and info.joints == "body" and info.base_skeleton == "smplx"
    assert info.sizes == {k: len(v) for k, v in sp.indices.items()}
    assert [s["file"] for s in info.sources] == [s["file"] for s in smplx_body.sources]
    assert all(len(s["sha256"]) == 64 for s in info.sources)
    assert info.split_rule["seed"] == 0 and info.split_rule["segment_seconds"] == 1.0
    for name, idx in sp.indices.items():
        poses, seq = read_split(path, name)
        assert poses.dtype == np.float32 and poses.shape == (len(idx), 21, 3)
        np.testing.assert_array_equal(poses, smplx_body.poses[idx])
        np.testing.assert_array_equal(seq, smplx_body.sequence[idx])
    with h5py.File(path) as f:
        assert f["train/poses"].chunks is not None and f["train/poses"].compression == "gzip"
        assert json.loads(f.attrs["joint_names"])[0] == "left_hip"
    # the same import twice gives byte-identical data
    path2 = write_store(tmp_path / "s2.h5", smplx_body, split_poses(smplx_body), joints="body", base_skeleton="smplx")
    for name in sp.indices:
        np.testing.assert_array_equal(read_split(path, name)[0], read_split(path2, name)[0])


def test_store_readers_check_attributes(tmp_path, smplx_body):
    path = write_store(tmp_path / "s.h5", smplx_body, split_poses(smplx_body), joints="body", base_skeleton="smplx")
    with pytest.raises(DataError, match="holds joints 'body', expected 'body\\+hands'"):
        read_split(path, "train", joints="body+hands")
    with pytest.raises(DataError, match="expected 'zebra_legs'"):
        read_split(path, "train", skeleton="zebra_legs")
    with h5py.File(path, "a") as f:
        f.attrs["layout_version"] = 99
    with pytest.raises(DataError, match="layout_version"):
        read_info(path)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataError, match="not a probpose pose store"):
        read_info(plain)
    noth5 = tmp_path / "n.h5"
    noth5.write_text("hello")
    with pytest.raises(DataError, match="not an HDF5 file"):
        read_info(noth5)


def test_interrupted_write_leaves_no_file(tmp_path, smplx_body, monkeypatch):
    sp = split_poses(smplx_body)
    target = tmp_path / "out.h5"
    original = h5py.Group.create_dataset
    calls = {"n": 0}

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # after the train split is written
            raise KeyboardInterrupt("simulated interruption")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(KeyboardInterrupt):
        write_store(target, smplx_body, sp, joints="body", base_skeleton="smplx")
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file
    # an existing store survives a failed overwrite untouched
    monkeypatch.setattr(h5py.Group, "create_dataset", original)
    write_store(target, smplx_body, sp, joints="body", base_skeleton="smplx")
    before = target.read_bytes()
    calls["n"] = 0
    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(KeyboardInterrupt):
        write_store(target, smplx_body, sp, joints="body", base_skeleton="smplx")
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.h5"]
    assert store_module.LAYOUT_VERSION == 2


def test_dataset_lazy_per_worker(tmp_path, zebra):
    sp = split_poses(zebra)
    path = write_store(tmp_path / "z.h5", zebra, sp, joints="legs", base_skeleton="zebra_legs")
    ds = PoseDataset(path, "test", dtype=torch.float64)
    assert ds._file is None  # nothing opened until first access
    ref = torch.as_tensor(zebra.poses[sp.indices["test"]], dtype=torch.float64)
    assert len(ds) == len(ref)
    assert torch.equal(ds[3], ref[3]) and torch.equal(ds[-1], ref[-1])
    got = torch.stack(ds.__getitems__([7, 2, 7, 0]))
    assert torch.equal(got, ref[[7, 2, 7, 0]])
    with pytest.raises(IndexError):
        ds[len(ds)]
    loader = DataLoader(ds, batch_size=64, num_workers=2, shuffle=False)
    batches = torch.cat(list(loader))
    assert torch.equal(batches, ref)
    with pytest.raises(ValueError, match="unknown split"):
        PoseDataset(path, "dev")


def test_few_segments_still_fill_every_split_or_say_so(smplx_files):
    avatar = import_poses([smplx_files["smplcodec_avatar.smpl"]])  # 601 frames at 120 fps: 5 segments
    sp = split_poses(avatar)
    assert all(len(v) > 0 for v in sp.indices.values()) and sp.stats["empty_splits"] == []
    aist = import_poses([smplx_files["aistpp_style_sample.pkl"]], joints="body")  # 2 segments
    sp = split_poses(aist)
    assert sp.stats["empty_splits"] == ["test"] and len(sp.indices["val"]) > 0
    assert split_poses(aist, "100/0/0").stats["empty_splits"] == []


def test_one_chunk_source_reads_tensors_stores_and_sources_alike(tmp_path, zebra):
    from probpose.data import StoreSplit
    from probpose.models.chunks import as_chunks, pose_chunks

    sp = split_poses(zebra)
    path = write_store(tmp_path / "z.h5", zebra, sp, joints="legs", base_skeleton="zebra_legs")
    ref = torch.as_tensor(zebra.poses[sp.indices["train"]], dtype=torch.float32)
    store = StoreSplit(path, "train")
    for source in (ref, store, as_chunks(ref, 100), as_chunks(store, 100)):
        chunks = list(pose_chunks(source, 100))
        assert torch.equal(torch.cat(chunks), ref)
        assert all(len(c) == 100 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 100
    with pytest.raises(TypeError, match="chunk source"):
        list(pose_chunks([1, 2, 3]))

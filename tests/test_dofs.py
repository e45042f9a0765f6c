"""Every degree of freedom covered (probpose.data.dofs): the spread floors, the world orientations
the source recorded kept, determinism, and a clear error for a map that drives too little."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from probpose.data import PoseSet, import_poses
from probpose.data.dofs import MAX_ABSENT, SPREAD_DEGREES, fill_dofs, principal_spread_degrees
from probpose.data.formats import load_source
from probpose.errors import DataError
from probpose.rotations import axis_angle_to_matrix, geodesic_distance
from probpose.skeleton import SMPLX


def _trials(shared_data, subject="02", k=(1, 2, 3, 4, 5, 6, 7)):
    return [shared_data / "cmu" / subject / f"{subject}_{i:02d}.amc" for i in k]


def _world(poses: np.ndarray) -> torch.Tensor:
    """World orientations ``(N, 55, 3, 3)`` of SMPL-X local rotations (axis-angle)."""
    local = axis_angle_to_matrix(torch.from_numpy(poses.astype(np.float64)))
    world = [local[:, 0]]
    for j in range(1, SMPLX.num_joints):
        world.append(world[SMPLX.parents[j]] @ local[:, j])
    return torch.stack(world, 1)


@pytest.fixture(scope="module")
def raw_and_filled(shared_data):
    paths = _trials(shared_data)
    raw = PoseSet.concatenate([load_source(p).resampled(30.0) for p in paths])  # all 55 joints, collars absent
    filled = fill_dofs(raw, seed=0)
    imported = import_poses(paths, joints="global+body", fps=30)  # what `probpose import` does
    np.testing.assert_array_equal(imported.poses, filled.poses[:, SMPLX.selection_indices("global+body")])
    return raw, filled


def test_the_raw_cmu_knee_is_a_hinge_and_the_filled_one_has_every_dof(raw_and_filled):
    raw, filled = raw_and_filled
    knee, collar = SMPLX.index("left_knee"), SMPLX.index("left_collar")
    body = [SMPLX.index(n) for n in SPREAD_DEGREES]  # the 21 body joints
    assert len(body) == 21 and not raw.present[collar] and filled.present[body].all()
    before = principal_spread_degrees(raw.poses[:, knee])
    after = principal_spread_degrees(filled.poses[:, knee])
    assert before[0] > 20 and before[2] < 0.5  # CMU's tibia: one rotational dof
    # the flexion is kept; the missing axes get the floor (8 degrees; finite-sample noise of smooth
    # noise over ~1,500 frames is ~10%, so 0.8 of it is a 2-3 sigma bound)
    assert abs(after[0] - before[0]) < 0.1 * before[0] + 2
    assert after[2] > 0.8 * SPREAD_DEGREES["left_knee"]
    spreads = principal_spread_degrees(filled.poses[:, body])
    floors = np.array(list(SPREAD_DEGREES.values()))
    assert (spreads[:, 2] > 0.8 * floors).all(), dict(zip(SPREAD_DEGREES, spreads[:, 2].round(1), strict=True))
    col = principal_spread_degrees(filled.poses[:, collar])  # absent: the full floor on every axis
    assert col.max() < 1.25 * SPREAD_DEGREES["left_collar"] and col.min() > 0.8 * SPREAD_DEGREES["left_collar"]
    assert any("not recorded, so held at rest" in n for n in filled.sources[0]["notes"])


def test_the_fill_turns_each_segment_by_its_own_noise_only(raw_and_filled):
    """Filling only the knee: the knee's segment turns (its missing dofs), the ankle below it and
    everything else keeps the world orientation the source recorded, exactly."""
    raw, _ = raw_and_filled
    one = fill_dofs(raw, seed=3, spread={"left_knee": 8.0})
    before, after = _world(raw.poses), _world(one.poses)
    turned = geodesic_distance(before, after).numpy()  # (N, 55)
    knee = SMPLX.index("left_knee")
    assert np.degrees(turned[:, knee]).std() > 4
    others = [j for j in range(SMPLX.num_joints) if j != knee and raw.present[j]]
    assert turned[:, others].max() < 1e-6  # float32 storage: 1e-7 rad rounding
    assert not one.present[SMPLX.index("left_collar")]  # not in the spread: left as it was


def test_the_fill_is_deterministic_per_seed(raw_and_filled):
    raw, filled = raw_and_filled
    again = fill_dofs(raw, seed=0)
    np.testing.assert_array_equal(again.poses, filled.poses)
    other = fill_dofs(raw, seed=1)
    assert np.abs(other.poses - filled.poses).max() > 1e-3


def test_a_map_that_drives_too_little_is_an_error(raw_and_filled):
    raw, _ = raw_and_filled
    bare = raw.poses.copy()
    absent = raw.present.copy()
    drop = [SMPLX.index(n) for n in ("spine1", "spine2", "spine3", "neck", "head")]
    absent[drop] = False
    bare[:, drop] = 0.0
    with pytest.raises(DataError, match=f"{len(drop) + 2} of 21 body joints are not driven"):
        fill_dofs(replace(raw, poses=bare, present=absent))
    assert len(drop) + 2 > MAX_ABSENT
    with pytest.raises(DataError, match="spreads in"):
        fill_dofs(raw, spread={"left_knee": 0.0})
    with pytest.raises(DataError, match="spreads in"):
        fill_dofs(raw, spread={"left_thumb1": 5.0})

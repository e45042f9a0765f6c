import numpy as np
import pytest

from probpose.skeleton import (
    HAND_LEFT,
    LAYOUTS,
    SELECTIONS,
    SKELETONS,
    SMPL,
    SMPLH,
    SMPLX,
    ZEBRA_LEGS,
    Skeleton,
    flatten,
    layout_for_size,
    unflatten,
)

# Parent lists from shared/data/README.md (checked there against each other).
README_SMPLX = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
                20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
                21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]  # fmt: skip
README_SMPLH = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
                20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35,
                21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50]  # fmt: skip
README_SMPL = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def test_presets_match_reference_trees():
    assert list(SMPLX.parents) == README_SMPLX
    assert list(SMPLH.parents) == README_SMPLH
    assert list(SMPL.parents) == README_SMPL
    assert list(ZEBRA_LEGS.parents) == [-1, 0, 1, -1, 3, 4, -1, 6, 7, -1, 9, 10]
    assert SMPLX.joint_names[22:25] == ("jaw", "left_eye", "right_eye")
    assert SMPLX.joint_names[25] == "left_index1" and SMPLX.joint_names[-1] == "right_thumb3"
    assert len(ZEBRA_LEGS.roots) == 4 and len(HAND_LEFT.roots) == 5


@pytest.mark.parametrize("skel", list(SKELETONS.values()), ids=list(SKELETONS))
def test_levels_and_topological_order(skel):
    order = skel.topological_order
    assert sorted(order) == list(range(skel.num_joints))
    pos = {j: k for k, j in enumerate(order)}
    for j, p in enumerate(skel.parents):
        if p >= 0:
            assert pos[p] < pos[j]
            assert skel.depth[j] == skel.depth[p] + 1
        else:
            assert skel.depth[j] == 0
    for k, level in enumerate(skel.levels):
        assert all(skel.depth[j] == k for j in level)


def test_selection_sizes_and_reparenting():
    sizes = {"body": 21, "left_hand": 15, "right_hand": 15, "hands": 30, "body+hands": 51,
             "jaw": 1, "eyes": 2, "global": 1, "global+body+hands": 52, "all": 55}  # fmt: skip
    for sel, n in sizes.items():
        assert len(SMPLX.selection_indices(sel)) == n, sel
    bh = SMPLX.select("body+hands")
    assert bh.num_joints == 51
    # hips and spine1 lose their parent (pelvis is not selected) and become roots
    assert {bh.joint_names[r] for r in bh.roots} == {"left_hip", "right_hip", "spine1"}
    assert bh.joint_names[bh.parents[bh.index("left_index1")]] == "left_wrist"
    assert bh.joint_names[bh.parents[bh.index("right_thumb2")]] == "right_thumb1"
    hands = SMPLX.select("hands")
    assert len(hands.roots) == 10
    # nearest selected ancestor: left_index3 hangs off left_wrist; neck and left_wrist have none selected
    s = SMPLX.select(["neck", "left_wrist", "left_index3"])
    assert s.parents == (-1, -1, 1)


@pytest.mark.parametrize(
    "chain, selection",
    [
        (("body", "left_hip+left_knee"), "left_hip+left_knee"),
        (("body+hands", "hands"), "hands"),
        (("body+hands-feet", "left_hand+right_wrist"), "left_hand+right_wrist"),
        (("body", "all"), "+".join(SMPLX.select("body").joint_names)),  # "all" of the body is not all of SMPL-X
        (("hands", "body"), None),  # the body is empty within the hands
        ((["neck", "head"], "head"), "head"),
    ],
)
def test_a_selection_is_data_and_chains_validly(chain, selection):
    """The selection of a selection is an expression on the preset itself (today's main gave the
    string 'body][left_hip+left_knee')."""
    if selection is None:
        with pytest.raises(KeyError, match="empty"):
            SMPLX.select(chain[0]).select(chain[1])
        return
    sub = SMPLX.select(chain[0]).select(chain[1])
    assert sub.base_name == "smplx" and sub.selection == selection and "][" not in sub.name
    direct = SMPLX.select(selection)
    assert (direct.joint_names, direct.parents) == (sub.joint_names, sub.parents)
    assert Skeleton.from_dict(sub.to_dict()) == sub


def test_selection_errors():
    with pytest.raises(KeyError, match="valid: all, global, body"):
        SMPLX.selection_indices("bodyy")
    with pytest.raises(KeyError):
        SMPLX.selection_indices([55])
    with pytest.raises(KeyError, match="no joint"):
        SMPLX.index("tail")
    for name in SELECTIONS:
        assert name in SKELETONS


def test_invalid_skeletons_are_refused():
    with pytest.raises(ValueError, match="cycle"):
        Skeleton("bad", ("a", "b"), (1, 0))
    with pytest.raises(ValueError, match="unique"):
        Skeleton("bad", ("a", "a"), (-1, 0))
    with pytest.raises(ValueError, match="parents"):
        Skeleton("bad", ("a", "b"), (-1,))
    assert Skeleton.from_dict(SMPLX.to_dict()) == SMPLX


@pytest.mark.parametrize("size", [165, 156, 72, 159, 63, 90])
def test_flat_layouts_round_trip(size):
    rng = np.random.default_rng(size)
    flat = rng.normal(size=(7, size))
    lay = layout_for_size(size)
    skel = SMPL if lay.name == "smpl" else SMPLX
    poses, present = unflatten(flat, skel)
    assert poses.shape == (7, skel.num_joints, 3)
    assert present.sum() == size // 3
    np.testing.assert_array_equal(flatten(poses, skel, lay), flat)
    # absent joints are zero, present ones are the exact source values
    assert not poses[:, ~present].any()
    for k, name in enumerate(lay.joints):
        np.testing.assert_array_equal(poses[:, skel.index(name)], flat[:, 3 * k : 3 * k + 3])


def test_one_hand_layout_needs_side_and_smplx_to_smplh():
    with pytest.raises(ValueError, match="hand='left'"):
        layout_for_size(45)
    flat = np.arange(45.0)[None]
    poses, present = unflatten(flat, SMPLX, hand="right")
    assert present.sum() == 15 and present[SMPLX.index("right_index1")]
    np.testing.assert_array_equal(poses[0, 40], [0, 1, 2])
    with pytest.raises(ValueError, match="known sizes"):
        layout_for_size(100)
    # 165 -> 156 drops jaw and eyes
    flat165 = np.random.default_rng(0).normal(size=(3, 165))
    p55, _ = unflatten(flat165, SMPLX)
    flat156 = flatten(p55, SMPLX, "smplh")
    np.testing.assert_array_equal(flat156[:, :66], flat165[:, :66])
    np.testing.assert_array_equal(flat156[:, 66:], flat165[:, 75:])
    assert LAYOUTS["smplx53"].size == 159

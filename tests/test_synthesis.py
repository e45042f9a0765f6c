"""PASyn synthesis: forward kinematics, camera, renderer, ground truth (PASyn, COCO), BVH, and the
``probpose synth`` command (outputs, reproducibility, bad arguments)."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from probpose.cli import main
from probpose.data import bundled, import_recording
from probpose.kinematics import ZEBRA_RIG, Camera, Posed, forward_kinematics, intrinsics, look_at, offsets_from_joints
from probpose.rotations import axis_angle_to_matrix, geodesic_distance
from probpose.skeleton import SMPLX, ZEBRA_LEGS, Skeleton
from probpose.synthesis import SceneOptions, animate, cast_rays, load_leg_poses, render
from probpose.synthesis.groundtruth import keypoints_2d
from probpose.synthesis.render import _nearest, _nearest_tiled, _scene

RIG = ZEBRA_RIG


def _random_rotations(shape, seed, scale=0.6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return axis_angle_to_matrix(scale * torch.randn(*shape, 3, generator=g, dtype=dtype))


@pytest.fixture(scope="module")
def zebra_legs():
    """Real PASyn leg poses (the bundled recording), (n, 12, 3) radians."""
    poses, _ = import_recording(bundled("zebra"))
    return torch.from_numpy(poses.poses).double()


@pytest.fixture(scope="module")
def zebra_npz():
    return next(p for p in bundled("zebra") if p.name == "train_poses.npz")


# ---------------------------------------------------------------------- forward kinematics
def _fk_one_joint_at_a_time(skeleton, rotations, offsets, rest, root_rotation, root_position):
    """The reference: each joint's world frame from its parent's, in topological order."""
    g, p = {}, {}
    for j in skeleton.topological_order:
        local = rotations[..., j, :, :] if rest is None else rest[j] @ rotations[..., j, :, :]
        parent = skeleton.parents[j]
        frame, origin = (root_rotation, root_position) if parent < 0 else (g[parent], p[parent])
        g[j] = frame @ local
        p[j] = origin + (frame @ offsets[j].unsqueeze(-1)).squeeze(-1)
    n = skeleton.num_joints
    return Posed(torch.stack([g[j] for j in range(n)], dim=-3), torch.stack([p[j] for j in range(n)], dim=-2))


def test_rest_pose_gives_rest_joints_and_tails():
    eye = torch.eye(3, dtype=torch.float64).expand(RIG.num_bones, 3, 3)
    posed = RIG.pose(eye)
    assert torch.allclose(posed.positions, RIG.heads, atol=1e-12)
    assert torch.allclose(RIG.tails_of(posed), RIG.tails, atol=1e-12)
    assert torch.allclose(posed.rotations, RIG.frames, atol=1e-12)
    # the SMPL family: world-aligned rest frames, offsets from rest joint locations
    joints = torch.randn(SMPLX.num_joints, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    posed = forward_kinematics(
        SMPLX, torch.eye(3, dtype=torch.float64).expand(SMPLX.num_joints, 3, 3), offsets_from_joints(SMPLX, joints)
    )
    assert torch.allclose(posed.positions, joints, atol=1e-12)


@pytest.mark.parametrize("tree", ["zebra", "smplx", "unordered"])
def test_batched_fk_equals_per_bone_loop(tree):
    g = torch.Generator().manual_seed(1)
    if tree == "zebra":
        skel, offsets, rest = RIG.skeleton, RIG.offsets, RIG.rest
    elif tree == "smplx":
        skel, rest = SMPLX, None
        offsets = offsets_from_joints(SMPLX, torch.randn(SMPLX.num_joints, 3, generator=g, dtype=torch.float64))
    else:  # parents after children: the levels, not the order, must decide
        skel = Skeleton("unordered", ("c", "b", "root", "d"), (1, 2, -1, 2))
        offsets = torch.randn(4, 3, generator=g, dtype=torch.float64)
        rest = _random_rotations((4,), 5)
    rot = _random_rotations((7, 2, skel.num_joints), 2)
    rr = _random_rotations((7, 2), 3)
    rp = torch.randn(7, 2, 3, generator=g, dtype=torch.float64)
    a = forward_kinematics(skel, rot, offsets, rest, rr, rp)
    b = _fk_one_joint_at_a_time(skel, rot, offsets, rest, rr, rp)
    assert a.positions.shape == (7, 2, skel.num_joints, 3) and a.rotations.shape == (7, 2, skel.num_joints, 3, 3)
    assert (a.positions - b.positions).abs().max() < 1e-10
    assert (a.rotations - b.rotations).abs().max() < 1e-10
    # float32 agrees with float64 to float32 precision
    c = forward_kinematics(
        skel, rot.float(), offsets.float(), None if rest is None else rest.float(), rr.float(), rp.float()
    )
    assert c.positions.dtype == torch.float32 and (c.positions.double() - a.positions).abs().max() < 1e-4


def test_gradients_flow_through_fk():
    aa = 0.4 * torch.randn(2, RIG.num_bones, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    aa.requires_grad_(True)
    root = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64, requires_grad=True)

    def f(aa, root):
        posed = RIG.pose(axis_angle_to_matrix(aa), root_position=root)
        return RIG.keypoints_of(posed)

    assert torch.autograd.gradcheck(f, (aa, root), eps=1e-6, atol=1e-6)
    loss = f(aa, root).square().sum()
    loss.backward()
    assert aa.grad is not None and aa.grad.abs().sum() > 0 and torch.isfinite(aa.grad).all()


# ---------------------------------------------------------------------- camera
def test_optical_axis_projects_to_principal_point():
    eye = torch.tensor([[3.0, 1.5, -4.0], [-2.0, 0.5, 1.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 1.0, 0.0], [0.5, 1.2, -0.3]], dtype=torch.float64)
    r, t = look_at(eye, target)
    k = intrinsics(96, 48, 50.0).expand(2, 3, 3)
    cam = Camera(k, r, t, 96, 48)
    pts = torch.stack([eye + s * (target - eye) for s in (0.5, 1.0, 3.0)], 1)  # (2, 3, 3)
    pix, z = cam.project(pts)
    assert torch.allclose(pix, torch.tensor([48.0, 24.0], dtype=torch.float64).expand_as(pix), atol=1e-9)
    assert (z > 0).all()
    assert torch.allclose(cam.centre, eye, atol=1e-12)
    assert abs(cam.fov_degrees - 50.0) < 1e-9
    # up in the world is up in the image (smaller y), right is right
    up = cam.project((target + torch.tensor([0.0, 0.3, 0.0], dtype=torch.float64)).unsqueeze(1))[0]
    assert (up[..., 1] < 24).all()


# ---------------------------------------------------------------------- rendering and visibility
@pytest.fixture(scope="module")
def filmed(zebra_legs):
    legs = zebra_legs[::50][:48]
    anim = animate(RIG, legs, 64, 48, SceneOptions(sequence_frames=8), torch.Generator().manual_seed(0))
    frames = render(RIG, anim.posed, anim.camera)
    kp, world = keypoints_2d(RIG, anim.posed, anim.camera, frames)
    return anim, frames, kp, world


def test_visible_keypoints_lie_on_rendered_pixels(filmed):
    anim, frames, kp, world = filmed
    assert frames.rgba.shape == (48, 48, 64, 4) and frames.rgba.dtype == torch.uint8
    alpha = frames.rgba[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any()  # transparent background, opaque body
    vis = kp[..., 2]
    assert (vis == 2).sum() > 0.5 * vis.numel() and (vis == 1).sum() > 0.05 * vis.numel()
    n, k = torch.nonzero(vis == 2, as_tuple=True)
    x, y = kp[n, k, 0].floor().long(), kp[n, k, 1].floor().long()
    assert (alpha[n, y, x] > 0).all()
    # occluded keypoints: something of the body lies clearly in front of them along their ray
    n, k = torch.nonzero(vis == 1, as_tuple=True)
    depth, bone = cast_rays(RIG, anim.posed, anim.camera, kp[..., :2])
    z = anim.camera.project(world)[1]
    in_front = (bone[n, k] >= 0) & (depth[n, k] < z[n, k])
    assert in_front.float().mean() > 0.9


def test_joint_behind_torso_is_occluded():
    # the animal at rest, filmed from its right side at the height of its back
    eye = torch.eye(3, dtype=torch.float64).expand(RIG.num_bones, 3, 3)
    posed = RIG.pose(eye.unsqueeze(0))
    target = torch.tensor([[0.1, 1.1, 0.0]], dtype=torch.float64)
    r, t = look_at(target + torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64), target)
    cam = Camera(intrinsics(128, 128, 40.0).unsqueeze(0), r, t, 128, 128)
    frames = render(RIG, posed, cam)
    kp, _ = keypoints_2d(RIG, posed, cam, frames)
    names = [k.name for k in RIG.keypoints]
    vis = dict(zip(names, kp[0, :, 2].tolist(), strict=True))
    # the left shoulder and hip joints sit behind the torso; their right twins face the camera
    for side_hidden, side_seen in (("upperleg.L", "upperleg.R"), ("pelvis.L", "pelvis.R")):
        assert vis[side_hidden] == 1, (side_hidden, vis)
        assert vis[side_seen] == 2, (side_seen, vis)
    assert vis["righteye"] == 2 and vis["lefteye"] == 1


def test_tiled_renderer_equals_dense_ray_casting(filmed):
    anim, *_ = filmed
    sl = slice(0, 6)
    cam = Camera(anim.camera.K[sl], anim.camera.R[sl], anim.camera.t[sl], 64, 48)
    scene = _scene(RIG, Posed(anim.posed.rotations[sl], anim.posed.positions[sl]), cam, torch.float64)
    ss = 2
    zt, bt = _nearest_tiled(scene, 64, 48, ss)
    offs = (torch.arange(ss, dtype=torch.float64) + 0.5) / ss
    ys = (torch.arange(48, dtype=torch.float64).unsqueeze(1) + offs).reshape(-1)
    xs = (torch.arange(64, dtype=torch.float64).unsqueeze(1) + offs).reshape(-1)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pix = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1).expand(6, -1, 2)
    zd, bd = _nearest(scene, pix)
    assert torch.equal(bt, bd)
    hit = bd >= 0
    assert hit.any() and (zt[hit] - zd[hit]).abs().max() < 1e-9


def test_default_cameras_keep_keypoints_inside_the_image(zebra_legs):
    legs = zebra_legs[torch.randperm(len(zebra_legs), generator=torch.Generator().manual_seed(0))[:3000]]
    anim = animate(RIG, legs, 64, 64, SceneOptions(sequence_frames=30), torch.Generator().manual_seed(1))
    pix, z = anim.camera.project(RIG.keypoints_of(anim.posed))
    inside = (z > 0) & (pix >= 0).all(-1) & (pix[..., 0] < 64) & (pix[..., 1] < 64)
    assert inside.float().mean() >= 0.95
    # the animal stands on the ground: its lowest hoof touches y = 0 in every frame
    tails = RIG.tails_of(anim.posed)[..., list(RIG.hooves), 1]
    assert tails.min(-1).values.abs().max() < 1e-6


@pytest.mark.parametrize("size, frames, per_camera", [(64, 300, 10), (256, 30, 1)])
def test_crop_framing_fills_the_frame_like_a_detector_crop(tmp_path, zebra_legs, size, frames, per_camera):
    """30 cameras: the larger side of the rendered silhouette's box is a median 70-90% of the frame
    and never under 50%, every keypoint is inside, and the crop is recorded (cameras.npz, COCO)."""
    from probpose.kinematics.camera import crop_intrinsics
    from probpose.synthesis import synthesize

    legs = zebra_legs[torch.randperm(len(zebra_legs), generator=torch.Generator().manual_seed(4))[:frames]]
    synthesize(legs, tmp_path / "o", size, size, seed=7, scene=SceneOptions(sequence_frames=per_camera), progress=False)
    coco = json.loads((tmp_path / "o" / "coco.json").read_text())
    fill = np.array([max(a["bbox"][2:]) / size for a in coco["annotations"]])
    assert len(fill) == frames and 0.70 <= np.median(fill) <= 0.90 and fill.min() >= 0.5, (np.median(fill), fill.min())
    kp = np.load(tmp_path / "o" / "keypoints_2d.npy")
    assert (kp[..., 2] > 0).all() and (kp[..., :2] >= 0).all() and (kp[..., :2] < size).all()
    cams = np.load(tmp_path / "o" / "cameras.npz")
    assert str(cams["framing"]) == "crop" and len(np.unique(cams["sequence"])) == 30
    k = crop_intrinsics(torch.from_numpy(cams["scene_K"]), torch.from_numpy(cams["crop"]), size).numpy()
    assert np.abs(k - cams["K"]).max() < 1e-9
    windows = np.array([im["crop_window"] for im in coco["images"]])
    assert np.abs(windows - cams["crop"]).max() < 1e-3


def test_crop_is_a_crop_of_the_scene_camera_and_scene_framing_is_unchanged(zebra_legs):
    """The crop only changes intrinsics: the same draws give the same tracking cameras; a point's
    pixel in the crop is the scene pixel moved into the window and scaled."""
    legs = zebra_legs[:40]
    a = animate(RIG, legs, 64, 48, SceneOptions(sequence_frames=10), torch.Generator().manual_seed(2))
    b = animate(RIG, legs, 64, 48, SceneOptions(sequence_frames=10, framing="scene"), torch.Generator().manual_seed(2))
    assert torch.equal(a.camera.R, b.camera.R) and torch.equal(a.camera.t, b.camera.t)
    assert torch.equal(a.posed.positions, b.posed.positions) and torch.equal(a.scene_K, b.camera.K)
    assert torch.equal(b.crop, torch.tensor([0.0, 0.0, 64.0, 48.0], dtype=torch.float64).expand(40, 4))
    world = RIG.keypoints_of(a.posed)
    pa, _ = a.camera.project(world)
    pb, _ = b.camera.project(world)
    scale = 64 / (a.crop[:, 2] - a.crop[:, 0])
    expected = (pb - a.crop[:, None, :2]) * scale[:, None, None]
    assert (pa - expected).abs().max() < 1e-9
    assert torch.allclose(
        (a.crop[:, 3] - a.crop[:, 1]) / (a.crop[:, 2] - a.crop[:, 0]), torch.full((40,), 48 / 64, dtype=torch.float64)
    )
    with pytest.raises(Exception, match="framing"):
        SceneOptions(framing="zoom")
    with pytest.raises(Exception, match="fill_min"):
        SceneOptions(fill_min=0.9, fill_max=0.8)


def test_leg_file_layouts_agree(tmp_path, zebra_npz):
    raw = np.load(zebra_npz)["poses"][:20]
    np.save(tmp_path / "p39.npy", raw)
    np.save(tmp_path / "p36.npy", raw[:, 3:])
    a, src = load_leg_poses(tmp_path / "p39.npy")
    b, _ = load_leg_poses(tmp_path / "p36.npy")
    c, _ = load_leg_poses(zebra_npz)
    np.save(tmp_path / "aa.npy", a.numpy())
    d, _ = load_leg_poses(tmp_path / "aa.npy")
    ra = axis_angle_to_matrix(a)
    for other in (b, c[:20], d):
        assert geodesic_distance(ra, axis_angle_to_matrix(other)).max() < 1e-9
    assert a.shape == (20, 12, 3) and src.layout.startswith("pasyn 39")


# ---------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def synth_out(tmp_path_factory, zebra_npz):
    out = tmp_path_factory.mktemp("synth") / "run"
    assert (
        main(
            [
                "synth",
                "--poses",
                str(zebra_npz),
                "--n-frames",
                "60",
                "--width",
                "80",
                "--height",
                "48",
                "--sequence-frames",
                "20",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_synth_writes_everything_with_the_asked_shapes(synth_out):
    out = synth_out
    pngs = sorted((out / "frames").glob("*.png"))
    assert len(pngs) == 60 and pngs[0].name == "000000.png"
    with Image.open(pngs[7]) as im:
        assert im.size == (80, 48) and im.mode == "RGBA"
    shapes = {"keypoints_2d.npy": (60, 19, 3), "blender_gt.npy": (60, 38), "keypoints_3d.npy": (60, 19, 3),
              "joints_3d.npy": (60, 27, 3), "poses.npy": (60, 12, 3), "poses_pasyn.npy": (60, 36)}  # fmt: skip
    for name, shape in shapes.items():
        assert np.load(out / name).shape == shape, name
    cams = np.load(out / "cameras.npz")
    assert cams["K"].shape == (60, 3, 3) and cams["R"].shape == (60, 3, 3) and cams["t"].shape == (60, 3)
    assert cams["sequence"].tolist() == [i // 20 for i in range(60)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["frames"] == 60 and manifest["width"] == 80 and manifest["height"] == 48
    assert "non-commercial" in manifest["licence"] and manifest["leg_source"]["kind"] == "file"
    with Image.open(out / "preview.png") as im:
        assert im.size[0] > 80
    # the 3D keypoints project with the stored cameras to the 2D keypoints
    kp3, kp2 = np.load(out / "keypoints_3d.npy"), np.load(out / "keypoints_2d.npy")
    cam = np.einsum("nij,nkj->nki", cams["R"], kp3) + cams["t"][:, None]
    uv = np.einsum("nij,nkj->nki", cams["K"], cam)
    assert np.abs(uv[..., :2] / uv[..., 2:] - kp2[..., :2]).max() < 1e-3
    # the poses used are the file's first 60, in both layouts
    pasyn = np.load(out / "poses_pasyn.npy")
    back, _ = load_leg_poses_from_array(out, pasyn)
    assert (
        geodesic_distance(
            axis_angle_to_matrix(back), axis_angle_to_matrix(torch.from_numpy(np.load(out / "poses.npy")).double())
        ).max()
        < 1e-4
    )


def load_leg_poses_from_array(folder: Path, array: np.ndarray):
    path = folder.parent / "roundtrip_pasyn.npy"
    np.save(path, array)
    return load_leg_poses(path)


def test_blender_gt_is_pasyn_formula_of_our_projections(synth_out):
    kp = np.load(synth_out / "keypoints_2d.npy").astype(np.float64)
    gt = np.load(synth_out / "blender_gt.npy")
    w, h = 80, 48
    expected = []
    for frame in kp:
        row = []
        for x, y, _ in frame:
            u, v = x / w, 1.0 - y / h  # Blender's world_to_camera_view: origin bottom-left
            row += [round(u * w), h - round(v * h)]
        expected.append(row)
    assert gt.dtype == np.int64 and np.array_equal(gt, np.array(expected))


def test_coco_json_loads_with_pycocotools_and_round_trips(synth_out):
    coco_mod = pytest.importorskip("pycocotools.coco")
    coco = coco_mod.COCO(str(synth_out / "coco.json"))
    kp = np.load(synth_out / "keypoints_2d.npy")
    cat = coco.loadCats(coco.getCatIds())[0]
    assert cat["keypoints"] == [k.name for k in RIG.keypoints] and len(cat["skeleton"]) == len(RIG.edges)
    assert all(1 <= a <= 19 and 1 <= b <= 19 for a, b in cat["skeleton"])
    img_ids = sorted(coco.getImgIds())
    assert len(img_ids) == 60
    for n, img_id in enumerate(img_ids):
        img = coco.loadImgs(img_id)[0]
        assert (synth_out / img["file_name"]).is_file() and (img["width"], img["height"]) == (80, 48)
        (ann,) = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        tri = np.array(ann["keypoints"], dtype=np.float64).reshape(19, 3)
        v = kp[n, :, 2]
        assert np.array_equal(tri[:, 2], v) and ann["num_keypoints"] == int((v > 0).sum())
        assert np.abs(tri[v > 0, :2] - kp[n, v > 0, :2]).max(initial=0) < 1e-3
        assert (tri[v == 0, :2] == 0).all()
        x, y, bw, bh = ann["bbox"]
        assert 0 <= x and 0 <= y and x + bw <= 80 and y + bh <= 48 and 0 < ann["area"] <= bw * bh
        mask = np.asarray(Image.open(synth_out / img["file_name"]))[..., 3] > 0
        assert ann["area"] == mask.sum()


def test_bvh_read_by_an_independent_reader_gives_our_joints(synth_out):
    bvhio = pytest.importorskip("bvhio")
    root = bvhio.readAsHierarchy(str(synth_out / "animation.bvh"))
    joints = np.load(synth_out / "joints_3d.npy")
    scale = float(RIG.heads[:, 1].max())  # about the animal's height, metres
    for frame in (0, 1, 19, 20, 41, 59):
        root.loadPose(frame)
        got = {j.Name: np.array(j.PositionWorld) for j, _, _ in root.layout()}
        assert sorted(got) == sorted(RIG.names)
        ours = {name: joints[frame, i] for i, name in enumerate(RIG.names)}
        err = max(np.abs(got[n] - ours[n]).max() for n in RIG.names)
        assert err < 1e-4 * scale, (frame, err)


BLENDER_SCRIPT = textwrap.dedent("""
    import builtins, json, sys
    import bpy
    import io_anim_bvh.import_bvh as ib
    def _open(path, mode="r", *args, **kwargs):  # Debian's 3.4 importer opens with "rU" (Python 3.11 refuses)
        return builtins.open(path, mode.replace("U", ""), *args, **kwargs)
    ib.open = _open
    bvh, out, frames = sys.argv[sys.argv.index("--") + 1:]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=bvh, global_scale=1.0, rotate_mode="NATIVE", axis_forward="-Z", axis_up="Y",
                            update_scene_fps=False, update_scene_duration=True, use_fps_scale=False)
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    result = {}
    start = bpy.context.scene.frame_start
    for f in json.loads(frames):
        bpy.context.scene.frame_set(start + f)
        result[f] = {b.name: list(arm.matrix_world @ b.head) for b in arm.pose.bones}
    json.dump(result, open(out, "w"))
""")


@pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not on PATH (apt-get install blender)")
def test_blender_imports_the_bvh_with_our_joints(synth_out, tmp_path):
    script = tmp_path / "read_bvh.py"
    script.write_text(BLENDER_SCRIPT)
    frames = [0, 5, 20, 59]
    res = subprocess.run(
        [
            "blender",
            "--background",
            "--factory-startup",
            "--python-exit-code",
            "1",
            "--python",
            str(script),
            "--",
            str(synth_out / "animation.bvh"),
            str(tmp_path / "joints.json"),
            json.dumps(frames),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    got = json.loads((tmp_path / "joints.json").read_text())
    joints = np.load(synth_out / "joints_3d.npy")
    # Blender is z up: the importer maps BVH (x, y, z) (y up) to Blender (x, -z, y)
    for f in frames:
        for i, name in enumerate(RIG.names):
            bx, by, bz = got[str(f)][name]
            assert np.abs(np.array([bx, bz, -by]) - joints[f, i]).max() < 1e-4 * 2.0, (f, name)


def test_synth_is_reproducible(tmp_path, zebra_npz, synth_out):
    out = tmp_path / "again"
    assert (
        main(
            [
                "synth",
                "--poses",
                str(zebra_npz),
                "--n-frames",
                "60",
                "--width",
                "80",
                "--height",
                "48",
                "--sequence-frames",
                "20",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    for name in ("keypoints_2d.npy", "cameras.npz", "joints_3d.npy", "blender_gt.npy", "frames/000033.png"):
        assert (out / name).read_bytes() == (synth_out / name).read_bytes(), name
    other = tmp_path / "other"
    assert (
        main(
            [
                "synth",
                "--poses",
                str(zebra_npz),
                "--n-frames",
                "60",
                "--width",
                "80",
                "--height",
                "48",
                "--sequence-frames",
                "20",
                "--seed",
                "1",
                "--out",
                str(other),
            ]
        )
        == 0
    )
    assert not np.array_equal(np.load(other / "cameras.npz")["R"], np.load(synth_out / "cameras.npz")["R"])


def _vae(path, skeleton):
    from probpose.models import PoseVAE, VAEOptions, save_model

    return save_model(path, PoseVAE(skeleton, VAEOptions(hidden=16, z_dim=4)))


def test_synth_from_a_leg_vae(tmp_path):
    ck = _vae(tmp_path / "legs.pt", ZEBRA_LEGS)
    out = tmp_path / "out"
    assert main(["synth", "--model", str(ck), "--n-frames", "12", "--out", str(out)]) == 0
    assert np.load(out / "poses.npy").shape == (12, 12, 3) and len(list((out / "frames").iterdir())) == 12
    assert json.loads((out / "manifest.json").read_text())["leg_source"]["kind"] == "model"


def _no_partial(folder: Path, allowed: set[str]):
    assert {p.name for p in folder.iterdir()} == allowed


def test_synth_bad_arguments_are_clear_errors_with_no_output(tmp_path, zebra_npz, capsys):
    from probpose.models import save_model
    from probpose.models.per_joint_gaussian import PerJointGaussianModel, PerJointGaussianOptions
    from probpose.skeleton import HAND_RIGHT

    assert main(["synth", "--poses", str(zebra_npz), "--n-frames", "0", "--out", str(tmp_path / "o")]) == 1
    assert "--n-frames: 0 is outside the valid range [1, 10,000,000]" in capsys.readouterr().err
    np.save(tmp_path / "wide.npy", np.zeros((10, 35)))
    np.save(tmp_path / "empty.npy", np.zeros((0, 36)))
    np.save(tmp_path / "nan.npy", np.full((4, 36), np.nan))
    hand = _vae(tmp_path / "hand.pt", HAND_RIGHT)
    gauss = save_model(tmp_path / "gauss.pt", PerJointGaussianModel(ZEBRA_LEGS, PerJointGaussianOptions()))
    cases = [
        (["--poses", str(tmp_path / "missing.npy")], "no such file"),
        (["--poses", str(tmp_path / "wide.npy")], "shape (10, 35)"),
        (["--poses", str(tmp_path / "empty.npy")], "no poses"),
        (["--poses", str(tmp_path / "nan.npy")], "NaN"),
        (["--poses", str(zebra_npz), "--n-frames", "999999"], "--n-frames 999999"),
        (["--model", str(hand)], "not a zebra leg model"),
        (["--model", str(gauss)], "not a VAE"),
        (["--poses", str(zebra_npz), "--fov", "200"], "fov"),
    ]
    for extra, message in cases:
        rc = main(["synth", *extra, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert rc == 1 and message in err and "Traceback" not in err, (extra, err)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert main(["synth", "--poses", str(zebra_npz), "--n-frames", "3", "--out", str(full)]) == 1
    assert "--overwrite" in capsys.readouterr().err and (full / "keep.txt").read_text() == "mine"
    _no_partial(tmp_path, {"wide.npy", "empty.npy", "nan.npy", "hand.pt", "gauss.pt", "full"})
    # --overwrite replaces it, only once complete
    assert main(["synth", "--poses", str(zebra_npz), "--n-frames", "3", "--out", str(full), "--overwrite"]) == 0
    assert not (full / "keep.txt").exists() and len(list((full / "frames").iterdir())) == 3
    _no_partial(tmp_path, {"wide.npy", "empty.npy", "nan.npy", "hand.pt", "gauss.pt", "full"})


def test_synth_failure_midway_leaves_no_folder(tmp_path, zebra_npz, monkeypatch):
    import probpose.synthesis.synth as synth

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth, "write_bvh", boom)
    with pytest.raises(RuntimeError):
        main(["synth", "--poses", str(zebra_npz), "--n-frames", "4", "--out", str(tmp_path / "o")])
    assert list(tmp_path.iterdir()) == []


def test_synth_command_runs_as_a_script(tmp_path, zebra_npz):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "probpose",
            "synth",
            "--poses",
            str(zebra_npz),
            "--n-frames",
            "2",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "2 frames 64x64" in res.stdout

"""Does a prior help a fit, and by how much? Pose fitting with every trained prior, on real held-out poses.

**Human** (the bench's bundled SMPL-X data, joints body+hands-feet, the bench's test split, N = 40
real poses): observations from forward kinematics of the true pose (the approximate rest skeleton
of :mod:`probpose.data.rest`), a random global orientation and translation, and noise:

- ``3d-arm``: 3D joints, 1 cm Gaussian noise, the left elbow, wrist and whole left hand unseen;
- ``3d-hand``: 3D joints, 1 cm noise, the right hand's 15 finger joints unseen;
- ``2d-arm``: 2D keypoints through a 1000 px pinhole camera 3 m away, 2 px noise, left arm and hand
  unseen; the root starts 0.1 rad / 5 cm from the truth (2D alone does not fix it).

Each prior from ``--models`` (the bench's checkpoints) and no prior fit every scenario by MAP
(L-BFGS per frame, 400 iterations). Reported: MPJPE (mm) of unseen and of seen points against the noise-free
truth, and the mean geodesic error (degrees) of the joints whose rotation moves unseen points
(parents of unseen points) and of the others. Calibration (``3d-arm``, ``gaussian_full`` and
``global_flow``): the fraction of true rotations of those joints inside the posterior's 90% ball,
for the Laplace approximation at the MAP, the per-frame full-covariance guide started from it and
AutoNormal (300 SVI steps, 4 particles, 200 samples), and for NUTS on the first 4 frames (the
reference posterior; the SVI rows also report their coverage on those 4 frames).

**Zebra** (PASyn loop): held-out zebra leg poses (the first 64 of the zebra bench's test split) animate the rig
(non-leg bones at rest), the synthesis camera films them at 256x256, 2D keypoints get 1 px noise
and the lower keypoints of one hind leg are dropped; each zebra prior fits the 12 leg joints
(root started 0.1 rad / 10 cm from the truth). Reported: centred 3D keypoint error (mm, depth
removed), geodesic leg-joint error (degrees), reprojection error (px).

**Speed**: batched MAP of 1,000 frames (the test poses repeated with new roots, ``3d-arm``) with the
best flow prior (L-BFGS per frame, ``--speed-steps`` iterations, float32); frames/s.

    python benchmarks/fitting.py --human-models benchmarks/results/smplx_cpu/models \\
        --zebra-models benchmarks/results/zebra_cpu/models --out benchmarks/results/fitting_cpu
"""

from __future__ import annotations

import argparse
import copy
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.data import prepare_data, read_info, read_split
from probpose.fitting import (
    Joints3D,
    Keypoints2D,
    PoseFit,
    RigBody,
    SkeletonBody,
    fit_map,
    fit_nuts,
    fit_posterior,
    geodesic_error_deg,
    rest_joints,
)
from probpose.kinematics import ZEBRA_RIG, intrinsics, look_at
from probpose.models import LatentPoseModel, load_model
from probpose.rotations import matrix_to_axis_angle
from probpose.skeleton import SMPLX
from probpose.synthesis import SceneOptions, animate

NUTS_FRAMES, NUTS_SAMPLES = 4, 200
GUIDES = {
    "mvn": "per-frame full Gaussian (from Laplace, 300 SVI steps)",
    "laplace": "Laplace at the MAP",
    "normal": "AutoNormal (300 SVI steps)",
    "nuts": f"NUTS, Laplace-whitened ({NUTS_SAMPLES} + {NUTS_SAMPLES} warm-up, first {NUTS_FRAMES} frames)",
}
ORDER = ["gaussian", "gaussian_diag", "gaussian_full", "gmm", "global_flow", "global_flow_spline", "joint_flow",
         "vae", "vae_so3"]  # fmt: skip


def _models(folder: Path) -> dict:
    found = {p.stem: p for p in folder.glob("*.pt")}
    return {"none": None, **{n: load_model(found[n]).double() for n in ORDER if n in found}}


LEFT_ARM = [
    SMPLX.index(s)
    for s in SMPLX.joint_names
    if s.startswith("left_") and any(k in s for k in ("elbow", "wrist", "index", "middle", "ring", "pinky", "thumb"))
]
"""SMPL-X indices of the left elbow, wrist and hand: the points hidden in the arm scenarios."""


def _human_data() -> tuple[torch.Tensor, list[str], SkeletonBody]:
    """The bench's bundled test split (float64), its joint names and the approximate SMPL-X body."""
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_data(None, joints="body+hands-feet", segment_seconds=0.25, guard_seconds=0.05, workdir=Path(tmp))
        test = data.test.double()
    names = list(data.skeleton.joint_names)
    return test, names, SkeletonBody(SMPLX, rest_joints(SMPLX), names)


def _unseen_parents(tree, names, hidden_points):
    """Modelled joints whose rotation moves a hidden point: the hidden points' parents."""
    hidden = {tree.joint_names[i] for i in hidden_points}
    moving = {tree.joint_names[tree.parents[tree.index(n)]] for n in hidden if tree.parents[tree.index(n)] >= 0}
    return [i for i, n in enumerate(names) if n in moving]


def _human_setup(models_dir: Path):
    """The human data, priors and the three scenarios' observations (seeded), and the generator."""
    test, names, body = _human_data()
    priors = _models(models_dir)
    n = len(test)
    g = torch.Generator().manual_seed(0)
    orient = 0.4 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    transl = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([0.3, 0.1, 0.3], dtype=torch.float64)
    clean = body.points(test, orient, transl)
    arm = LEFT_ARM
    hand = [
        SMPLX.index(s)
        for s in SMPLX.joint_names
        if s.startswith("right_") and any(k in s for k in ("index", "middle", "ring", "pinky", "thumb"))
    ]
    # a camera 3 m in front of the person (+z), looking at them
    eye = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    r, t = look_at(eye, torch.zeros(3, dtype=torch.float64))
    k = intrinsics(1000, 1000, 2 * math.degrees(math.atan(500 / 1000)))
    scenarios = {}
    for name, hidden in (("3d-arm", arm), ("3d-hand", hand)):
        mask = torch.ones(n, SMPLX.num_joints, dtype=torch.bool)
        mask[:, hidden] = False
        noisy = clean + 0.01 * torch.randn(clean.shape, generator=g, dtype=torch.float64)
        scenarios[name] = (Joints3D(noisy, mask, sigma=0.01), hidden)
    pix = Keypoints2D(torch.zeros(n, SMPLX.num_joints, 2), torch.ones(n, SMPLX.num_joints), k, r, t).predict(clean)
    conf = torch.ones(n, SMPLX.num_joints, dtype=torch.float64)
    conf[:, arm] = 0.0
    init_o = orient + 0.1 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    init_t = transl + 0.05 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    noisy2d = pix + 2.0 * torch.randn(pix.shape, generator=g, dtype=torch.float64)
    scenarios["2d-arm"] = (Keypoints2D(noisy2d, conf, k, r, t, sigma=2.0, init_orient=init_o, init_transl=init_t), arm)
    return test, names, body, priors, clean, scenarios, g


def human(models_dir: Path, steps: int, speed_steps: int) -> tuple[list[dict], list[dict], list[dict]]:
    test, names, body, priors, clean, scenarios, g = _human_setup(models_dir)
    rows = []
    for scen, (obs, hidden) in scenarios.items():
        seen = [i for i in range(SMPLX.num_joints) if i not in hidden]
        moving = _unseen_parents(SMPLX, names, hidden)
        still = [i for i in range(len(names)) if i not in moving]
        for pname, prior in priors.items():
            fit = PoseFit(prior, body, obs, joint_names=names)
            start = time.perf_counter()
            res = fit_map(fit, steps=steps)
            sec = time.perf_counter() - start
            err = (res.points - clean).norm(dim=-1) * 1000
            geo = geodesic_error_deg(res.pose, test)
            rows.append(
                {
                    "scenario": scen,
                    "prior": pname,
                    "mpjpe_unseen_mm": err[:, hidden].mean().item(),
                    "mpjpe_seen_mm": err[:, seen].mean().item(),
                    "geo_moving_deg": geo[:, moving].mean().item(),
                    "geo_other_deg": geo[:, still].mean().item(),
                    "residual": res.residual.mean().item(),
                    "seconds": sec,
                }
            )
            print(
                f"human {scen:8s} {pname:18s} unseen {rows[-1]['mpjpe_unseen_mm']:8.1f} mm  seen "
                f"{rows[-1]['mpjpe_seen_mm']:6.1f} mm  geo {rows[-1]['geo_moving_deg']:6.1f} deg  {sec:5.1f} s",
                flush=True,
            )
    calib = calibration(priors, test, names, body, scenarios, steps)
    return rows, calib, speed_test(priors, test, names, body, g, rows, speed_steps)


def speed_test(
    priors: dict,
    test: torch.Tensor,
    names: list[str],
    body: SkeletonBody,
    g: torch.Generator,
    rows: list[dict],
    speed_steps: int,
) -> list[dict]:
    """Batched MAP of 1,000 frames (``3d-arm``, new roots) with the flow prior best on ``rows``
    (40 frames, float64, 400 iterations) and with ``global_flow``."""
    flows = [
        r
        for r in rows
        if r["scenario"] == "3d-arm" and r["prior"] in ("global_flow", "global_flow_spline", "joint_flow")
    ]
    best = min(flows, key=lambda r: r["mpjpe_unseen_mm"])["prior"] if flows else "gaussian_full"
    state = g.get_state()
    out = []
    for name in dict.fromkeys([best, "global_flow"]):
        if name in priors:
            g.set_state(state)  # the same 1,000 frames for each prior
            out.append(_speed_one(priors[name], name, test, names, body, g, speed_steps))
    return out


def _speed_one(
    prior, best: str, test: torch.Tensor, names: list[str], body: SkeletonBody, g: torch.Generator, speed_steps: int
) -> dict:
    n = len(test)
    arm = LEFT_ARM
    reps = math.ceil(1000 / n)
    big_truth = test.repeat(reps, 1, 1)[:1000]
    o = 0.4 * torch.randn(1000, 3, generator=g, dtype=torch.float64)
    tr = 0.3 * torch.randn(1000, 3, generator=g, dtype=torch.float64)
    pts = body.points(big_truth, o, tr)
    mask = torch.ones(1000, SMPLX.num_joints, dtype=torch.bool)
    mask[:, arm] = False
    obs = Joints3D(pts + 0.01 * torch.randn(pts.shape, generator=g, dtype=torch.float64), mask, sigma=0.01)
    prior = copy.deepcopy(prior).float()
    fit = PoseFit(prior, body, Joints3D(obs.points.float(), mask, sigma=0.01), joint_names=names)
    start = time.perf_counter()
    res = fit_map(fit, steps=speed_steps)
    sec = time.perf_counter() - start
    speed = {
        "prior": best,
        "frames": 1000,
        "seconds": sec,
        "frames_per_s": 1000 / sec,
        "steps": speed_steps,
        "iterations": len(res.losses) - 1,
        "mpjpe_unseen_mm": 1000 * (res.points.double() - pts)[:, arm].norm(dim=-1).mean().item(),
        "dtype": "float32",
    }
    print(
        f"speed: 1000 frames with {best} in {sec:.1f} s ({1000 / sec:.0f} frames/s), MPJPE unseen "
        f"{speed['mpjpe_unseen_mm']:.1f} mm",
        flush=True,
    )
    return speed


def calibration(
    priors: dict, test: torch.Tensor, names: list[str], body: SkeletonBody, scenarios: dict, steps: int
) -> list[dict]:
    """Posterior calibration on ``3d-arm`` (see the module docstring)."""
    calib = []
    obs, hidden = scenarios["3d-arm"]
    moving = _unseen_parents(SMPLX, names, hidden)
    few = slice(0, NUTS_FRAMES)
    for pname in ("gaussian_full", "global_flow"):
        if pname not in priors:
            continue
        for guide in ("mvn", "laplace", "normal", "nuts"):
            start = time.perf_counter()
            if guide == "nuts":
                fit = PoseFit(priors[pname], body, obs.select(few), joint_names=names)
                res = fit_nuts(fit, samples=NUTS_SAMPLES, warmup=NUTS_SAMPLES, max_tree_depth=6)
                truth = test[few]
            else:
                fit = PoseFit(priors[pname], body, obs, joint_names=names)
                res = fit_posterior(fit, guide=guide, steps=300, particles=4, samples=200, map_steps=steps)
                truth = test
            covered = res.posterior.covers(truth)[:, moving].double()
            calib.append(
                {
                    "prior": pname,
                    "guide": GUIDES[guide],
                    "frames": len(truth),
                    "coverage90": covered.mean().item(),
                    "coverage90_nuts_frames": covered[few].mean().item(),
                    "std_deg": res.posterior.std_deg[:, moving].mean().item(),
                    "seconds": time.perf_counter() - start,
                }
            )
            print(
                f"calibration {pname:18s} {guide:7s} coverage {calib[-1]['coverage90']:.2f} (first "
                f"{NUTS_FRAMES} frames {calib[-1]['coverage90_nuts_frames']:.2f}), std "
                f"{calib[-1]['std_deg']:.1f} deg, {calib[-1]['seconds']:.0f} s",
                flush=True,
            )
    return calib


def base_space(models_dir: Path, steps: int) -> list[dict]:
    """``3d-arm`` with each flow prior, fitted in pose space and in the flow's base space."""
    test, names, body = _human_data()
    priors = _models(models_dir)
    n = len(test)
    g = torch.Generator().manual_seed(0)
    orient = 0.4 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    transl = 0.3 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    clean = body.points(test, orient, transl)
    arm = LEFT_ARM
    mask = torch.ones(n, SMPLX.num_joints, dtype=torch.bool)
    mask[:, arm] = False
    obs = Joints3D(clean + 0.01 * torch.randn(clean.shape, generator=g, dtype=torch.float64), mask, sigma=0.01)
    rows = []
    for pname in ("global_flow", "global_flow_spline", "joint_flow"):
        if pname not in priors:
            continue
        for space in ("pose", "base"):
            fit = PoseFit(priors[pname], body, obs, space=space, joint_names=names)
            start = time.perf_counter()
            res = fit_map(fit, steps=steps)
            sec = time.perf_counter() - start
            err = (res.points - clean).norm(dim=-1) * 1000
            rows.append(
                {
                    "prior": pname,
                    "space": space,
                    "mpjpe_unseen_mm": err[:, arm].mean().item(),
                    "final_loss": res.losses[-1],
                    "iterations": len(res.losses),
                    "seconds": sec,
                }
            )
            print(
                f"base-space {pname:18s} {space}: unseen {rows[-1]['mpjpe_unseen_mm']:.1f} mm, loss "
                f"{res.losses[-1]:.1f}, {sec:.1f} s",
                flush=True,
            )
    return rows


def zebra(models_dir: Path, steps: int) -> list[dict]:
    # the zebra bench's store and test split (`probpose import --bundled zebra` is deterministic)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "zebra.h5"
        subprocess.run(
            [sys.executable, "-m", "probpose", "import", "--bundled", "zebra", "--out", str(store)],
            check=True,
            capture_output=True,
        )
        test_np, _ = read_split(store, "test")
        skeleton = read_info(store).skeleton
    test = torch.from_numpy(test_np).double()[:64]
    priors = _models(models_dir)
    body = RigBody(ZEBRA_RIG)
    anim = animate(
        ZEBRA_RIG, test, 256, 256, SceneOptions(motion_scale=0.0, sequence_frames=8), torch.Generator().manual_seed(0)
    )
    orient = matrix_to_axis_angle(anim.root_rotation)
    kp3 = body.points(anim.legs, orient, anim.root_position)
    cam = anim.camera
    g = torch.Generator().manual_seed(1)
    pix = cam.project(kp3)[0]
    noisy = pix + torch.randn(pix.shape, generator=g, dtype=torch.float64)
    conf = torch.ones(pix.shape[:2], dtype=torch.float64)
    conf[:, [11, 12]] = 0.0
    init_o = orient + 0.1 * torch.randn(orient.shape, generator=g, dtype=torch.float64)
    init_t = anim.root_position + 0.1 * torch.randn(orient.shape, generator=g, dtype=torch.float64)
    obs = Keypoints2D(noisy, conf, cam.K, cam.R, cam.t, sigma=1.0, init_orient=init_o, init_transl=init_t)
    rows = []
    for pname, prior in priors.items():
        fit = PoseFit(prior, body, obs, joint_names=skeleton.joint_names)
        start = time.perf_counter()
        res = fit_map(fit, steps=steps)
        sec = time.perf_counter() - start
        centred = (res.points - res.points.mean(1, keepdim=True)) - (kp3 - kp3.mean(1, keepdim=True))
        rows.append(
            {
                "prior": pname,
                "kp3d_centred_mm": 1000 * centred.norm(dim=-1).mean().item(),
                "geo_deg": geodesic_error_deg(res.pose, anim.legs).mean().item(),
                "reprojection_px": res.residual.mean().item(),
                "seconds": sec,
                "latent": "z" if isinstance(prior, LatentPoseModel) else "pose",
            }
        )
        print(
            f"zebra {pname:18s} 3D {rows[-1]['kp3d_centred_mm']:6.1f} mm geo {rows[-1]['geo_deg']:5.1f} deg "
            f"reproj {rows[-1]['reprojection_px']:.2f} px {sec:5.1f} s",
            flush=True,
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--human-models", type=Path, default=Path("benchmarks/results/smplx_cpu/models"))
    ap.add_argument("--zebra-models", type=Path, default=Path("benchmarks/results/zebra_cpu/models"))
    ap.add_argument("--steps", type=int, default=400, help="L-BFGS iterations of every MAP fit")
    ap.add_argument("--speed-steps", type=int, default=300, help="L-BFGS iterations of the 1,000-frame fit")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fitting_cpu"))
    ap.add_argument(
        "--only",
        nargs="+",
        choices=["calibration", "speed", "zebra"],
        default=None,
        help="recompute only these parts, into the existing results in --out",
    )
    ap.add_argument(
        "--base-space", action="store_true", help="only compare pose-space and base-space MAP for the flows (3d-arm)"
    )
    args = ap.parse_args()
    threads = set_threads(args.threads)
    if args.base_space:
        rows = base_space(args.human_models, args.steps)
        table = markdown_table([
            Column("prior", "prior"), Column("space", "fitted in"),
            Column("mpjpe_unseen_mm", "MPJPE unseen (mm)", "{:.1f}"),
            Column("final_loss", "final -log p (nats)", "{:.1f}"), Column("iterations", "L-BFGS iterations"),
            Column("seconds", "fit s", "{:.1f}"),
        ], rows)  # fmt: skip
        intro = (
            f"3d-arm (40 real held-out poses, 1 cm noise, left arm and hand unseen); MAP by L-BFGS per "
            f"frame ({args.steps} iterations), float64, {threads} thread(s). Base space: z ~ N(0, I), "
            "pose = flow(z); its objective is -log p(obs, z), not -log p(obs, pose): the final losses of the "
            "two spaces differ by the flow's log-determinant and are not comparable."
        )
        write_results(
            args.out,
            "fitting_base_space",
            "Fitting flows in pose space or in base space",
            intro,
            table,
            {"rows": rows, "threads": threads},
            machine_description("cpu"),
        )
        print(f"wrote {args.out}")
        return
    if args.only:
        import json

        results = json.loads((args.out / "fitting.json").read_text())
        test, names, body, priors, _, scenarios, g = _human_setup(args.human_models)
        if "calibration" in args.only:
            results["calibration"] = calibration(priors, test, names, body, scenarios, args.steps)
        if "zebra" in args.only:
            results["zebra"] = zebra(args.zebra_models, args.steps)
        if "speed" in args.only:
            results["speed"] = speed_test(priors, test, names, body, g, results["human"], args.speed_steps)
        _write(args, threads, results["human"], results["calibration"], results["zebra"], results["speed"])
        return
    rows, calib, speed = human(args.human_models, args.steps, args.speed_steps)
    zrows = zebra(args.zebra_models, args.steps)
    _write(args, threads, rows, calib, zrows, speed)


def _write(
    args: argparse.Namespace, threads: int, rows: list[dict], calib: list[dict], zrows: list[dict], speed: list[dict]
) -> None:
    table = markdown_table([
        Column("scenario", "scenario"), Column("prior", "prior"),
        Column("mpjpe_unseen_mm", "MPJPE unseen (mm)", "{:.1f}"), Column("mpjpe_seen_mm", "MPJPE seen (mm)", "{:.1f}"),
        Column("geo_moving_deg", "geodesic, joints moving unseen points (deg)", "{:.1f}"),
        Column("geo_other_deg", "geodesic, other joints (deg)", "{:.1f}"),
        Column("residual", "residual (m or px)", "{:.4f}"), Column("seconds", "fit s", "{:.1f}"),
    ], rows)  # fmt: skip
    ctable = markdown_table([
        Column("prior", "prior"), Column("guide", "posterior"), Column("frames", "frames"),
        Column("coverage90", "coverage of 90% balls", "{:.2f}"),
        Column("coverage90_nuts_frames", f"coverage, first {NUTS_FRAMES} frames", "{:.2f}"),
        Column("std_deg", "posterior std (deg)", "{:.1f}"), Column("seconds", "s", "{:.1f}"),
    ], calib)  # fmt: skip
    ztable = markdown_table([
        Column("prior", "prior"), Column("latent", "fitted latent"),
        Column("kp3d_centred_mm", "3D keypoints, centred (mm)", "{:.1f}"),
        Column("geo_deg", "leg joints geodesic (deg)", "{:.1f}"),
        Column("reprojection_px", "reprojection (px)", "{:.2f}"), Column("seconds", "fit s", "{:.1f}"),
    ], zrows)  # fmt: skip
    intro = (
        f"MAP by L-BFGS per frame ({args.steps} iterations), float64, {threads} thread(s). Human: the "
        "bench's bundled test split (40 real poses, body+hands-feet), priors = the bench's checkpoints; "
        "points from the approximate rest skeleton. See benchmarks/fitting.py for the scenarios."
    )
    text = (
        f"{table}\n\n## Posterior calibration (3d-arm, joints moving unseen points)\n\n{ctable}\n\n"
        f"## Zebra: PASyn loop, 2D keypoints (64 held-out poses, 256x256, 1 px noise, one hind leg's lower "
        f"keypoints dropped)\n\n{ztable}\n\n## Speed\n\nBatched MAP of 1,000 frames (3d-arm, float32, "
        f"L-BFGS per frame):\n\n"
        + "\n".join(
            f"- {sp['prior']}: {sp['seconds']:.1f} s, {sp['frames_per_s']:.0f} frames/s ({sp['steps']} "
            f"iterations); MPJPE unseen {sp['mpjpe_unseen_mm']:.1f} mm"
            for sp in speed
        )
    )
    write_results(
        args.out,
        "fitting",
        "Fitting with priors: human and zebra",
        intro,
        text,
        {"human": rows, "calibration": calib, "zebra": zrows, "speed": speed, "threads": threads},
        machine_description("cpu"),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Train the pretrained human priors shipped with probpose, on the bundled CMU body data, and
write each as a slim checkpoint with a model card into probpose/models/pretrained/cmu/.

    python experiments/train_pretrained.py --models gaussian_full gmm global_flow_spline joint_flow vae --threads 1

Data: ``probpose import --bundled cmu`` (CMU motion capture from three sources, retargeted to SMPL-X
by ``probpose.data.retarget``, missing degrees of freedom filled by ``probpose.data.dofs``, 30 fps:
the global orientation and all 21 body joints; see probpose/data/bundled/README.md), with the
default split for motion capture: the test split is whole subjects (about 10% of the poses), the
rest 80/10 of whole trials, seed 0. Each SVI model trains until its validation NLL
stops improving (``patience`` evaluations) or its step budget or time cap ends; the best weights
are kept. The card's held-out NLL is ``probpose.evaluation.evaluate`` on the test split, seeded
(``torch.manual_seed(0)``) for the VAE's importance-weighted bound.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from probpose import __version__
from probpose.bench import machine_description, set_threads
from probpose.data import bundled, import_poses, split_poses
from probpose.evaluation import evaluate
from probpose.models import build_model, save_model
from probpose.training import Trainer, TrainingConfig

OUT = Path(__file__).resolve().parents[1] / "probpose" / "models" / "pretrained" / "cmu"
SETTINGS = {
    "gaussian_full": {"fit": "closed_form"},
    "gmm": {"fit": "closed_form"},
    "global_flow_spline": {"lr": 3e-4, "batch_size": 512, "max_steps": 12000, "eval_every": 100, "patience": 15,
                           "noise": 1e-3},
    "joint_flow": {"lr": 3e-3, "batch_size": 512, "max_steps": 12000, "eval_every": 100, "patience": 15,
                   "noise": 1e-3},
    "vae": {"lr": 1e-3, "batch_size": 512, "max_steps": 30000, "eval_every": 250, "patience": 12},
}  # fmt: skip
OPTIONS = {"gmm": {"folds": 5}}
"""Model options that differ from the registry's defaults: the GMM chooses its number of components by
blocked cross-validation (whole trials and mostly whole performers held out), which on unseen performers
beats the default's choice on validation trials of the training performers (benchmarks/gmm_subjects.py)."""
ACK = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with funding "
    "from NSF EIA-0196217."
)


def cmu_splits():
    """The bundled CMU body data and its default split (what ``probpose import --bundled cmu`` writes)."""
    poses = import_poses(bundled("cmu"))
    split = split_poses(poses, "80/10/10", seed=0, by="subject")
    parts = {k: torch.from_numpy(poses.poses[v]) for k, v in split.indices.items()}
    trials = {k: sorted({poses.sequences[s].name for s in poses.sequence[v]}) for k, v in split.indices.items()}
    return poses, parts, trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=1200.0, help="time cap per SVI model")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    poses, parts, trials = cmu_splits()
    skeleton = poses.skeleton
    for name in args.models:
        settings = {**SETTINGS[name], "seed": 0, "val_poses": 0}
        if settings.get("fit") != "closed_form":
            settings["max_seconds"] = args.max_seconds
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = build_model(name, skeleton, OPTIONS.get(name))
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = Trainer(model, TrainingConfig(**settings), run_dir=tmp, tensorboard=False).fit(
                parts["train"], parts["val"]
            )
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            ev = evaluate(model, parts["test"])
        card = {
            "name": f"cmu/{name}",
            "model": name,
            "probpose_version": __version__,
            "parameters": model.num_parameters(),
            "data": "CMU Graphics Lab Motion Capture Database: subjects 01-03 (ASF/AMC), 05-16 (BVH, "
            "github.com/Przestr/motion-capture c200c31), salsa, Indian dance and martial arts trials (BVH, "
            "github.com/papagina/Auto_Conditioned_RNN_motion fbb7f64); retargeted to SMPL-X by "
            "probpose.data.retarget (maps 'cmu' and 'daz'), missing dofs and collars filled by probpose.data.dofs "
            f"(seed 0), 30 fps; {len(poses.sequences)} trials, {len(poses)} poses: probpose import --bundled cmu "
            f"(probpose {__version__})",
            "split": {
                "rule": "test: whole subjects (about 10% of poses); train/val: 80/10 of the other subjects' whole "
                "trials; hashed with seed 0",
                **{k: len(v) for k, v in parts.items()},
                "trials": trials,
            },
            "joints": skeleton.selection,
            "joint_names": list(model.modelled_names),
            "dim": ev.dim,
            "training": {
                **settings,
                "steps": result.steps,
                "best_step": result.best_step,
                "stopped": result.stopped,
                "seconds": round(seconds, 1),
                "threads": threads,
                **(
                    {
                        "options": OPTIONS.get(name, {}),
                        "components_chosen": model.chosen_components,
                        "components_chosen_by": "blocked cross-validation"
                        if model.options.folds
                        else "validation log-likelihood",
                        "ll_per_components": model.selection,
                    }
                    if hasattr(model, "chosen_components")
                    else {}
                ),
            },
            "held_out": {
                "split": "test",
                "n": ev.n,
                "nll": ev.nll,
                "bpd": ev.bpd,
                "nll_haar": ev.nll_haar,
                "exact": ev.exact,
                "seed": 0,
            },
            "machine": machine_description("cpu"),
            "licence": "weights: MIT (probpose); data: CMU's terms, free for research and commercial use",
            "acknowledgement": ACK,
        }
        card = json.loads(json.dumps(card, default=str))  # plain types only (weights_only loading)
        args.out.mkdir(parents=True, exist_ok=True)
        save_model(args.out / f"{name}.pt", model, card=card)
        (args.out / f"{name}.json").write_text(json.dumps(card, indent=2))
        print(
            f"{name}: {result.steps} steps ({result.stopped}), {seconds:.0f} s, test NLL {ev.nll:.3f} "
            f"({'exact' if ev.exact else 'IWAE bound'})",
            flush=True,
        )


if __name__ == "__main__":
    main()

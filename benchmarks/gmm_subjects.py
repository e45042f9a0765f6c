"""How the GMM's number of components is chosen, judged on performers no model saw (issue 35).

Data: the bundled CMU body data (REAL motion capture) with ``probpose bench``'s split: whole
subjects in test (4,340 poses of 7 performers), the other subjects' whole trials 80/10 in train and
val. Rows, each scored on the test subjects (NLL, nats/pose):

- ``gaussian_full``: the closed form a mixture must not lose to;
- ``gmm``, K chosen on the validation split (``folds: 0``, the default before 5 blocks: other trials of the
  training performers);
- ``gmm`` with ``folds`` = 3, 5, 10: K chosen by blocked cross-validation over contiguous blocks of
  the training poses (in storage order, so a block holds whole trials and mostly whole performers);
- ``gmm`` with K fixed at 1, 2, 4, 8 (no choice), to show what each K gives.

A second table: the choice made on a validation split of **one** held-out training performer
(train on the others), for each performer in turn: how noisy one performer is as a validation set.

    python benchmarks/gmm_subjects.py --threads 2 --out benchmarks/results/gmm_subjects_cmu
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.data import bundled, import_poses, split_poses
from probpose.data.splits import subject_of
from probpose.models import build_model


def nll(model, poses: torch.Tensor) -> float:
    with torch.no_grad():
        return -model().log_prob(poses).double().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gmm_subjects_cmu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)
    poses = import_poses(bundled("cmu"))
    split = split_poses(poses, "80/10/10", seed=0, by="subject")  # probpose bench's split of the bundled data
    x = torch.from_numpy(poses.poses)
    train, val, test = (x[np.sort(split.indices[k])] for k in ("train", "val", "test"))  # storage order
    skel = poses.skeleton

    rows = []

    def run(label: str, name: str, options: dict, with_val: bool) -> None:
        model = build_model(name, skel, options)
        t0 = time.perf_counter()
        model.fit_closed_form(train, val_poses=val if with_val else None)
        seconds = time.perf_counter() - t0
        k = getattr(model, "chosen_components", None)
        scores = getattr(model, "selection", {})
        rows.append(
            {
                "model": label,
                "components": "-" if k is None else k,
                "scores": ", ".join(f"{c}: {s:.2f}" for c, s in scores.items()) or "-",
                "seconds": seconds,
                "test_nll": nll(model, test),
            }
        )
        print(rows[-1], flush=True)

    run("gaussian_full", "gaussian_full", {}, False)
    run("gmm, K on validation (folds: 0)", "gmm", {"folds": 0}, True)
    for folds in (3, 5, 10):
        run(f"gmm, K by blocked cross-validation, {folds} folds", "gmm", {"folds": folds}, False)
    for k in (1, 2, 4, 8):
        run(f"gmm, K = {k} fixed", "gmm", {"components": k, "select": False}, False)

    # one training performer as the validation set, for each in turn
    rest = np.sort(np.concatenate([split.indices["train"], split.indices["val"]]))
    subject = np.array([subject_of(poses.sequences[s].name) for s in poses.sequence[rest]])
    single = []
    for name in sorted(set(subject)):
        own = subject == name
        tr, va = x[rest[~own]], x[rest[own]]
        full = build_model("gaussian_full", skel)
        full.fit_closed_form(tr)
        gmm = build_model("gmm", skel)
        gmm.fit_closed_form(tr, val_poses=va)
        single.append(
            {
                "subject": name,
                "val_poses": int(own.sum()),
                "components": gmm.chosen_components,
                "gmm_nll": nll(gmm, test),
                "full_nll": nll(full, test),
            }
        )
        print(single[-1], flush=True)

    cols = [
        Column("model", "model"),
        Column("components", "K"),
        Column("scores", "score per K tried (mean held-out log-lik., nats/pose)"),
        Column("seconds", "fit s", "{:.1f}"),
        Column("test_nll", "test NLL (nats/pose)", "{:.2f}"),
    ]
    single_cols = [
        Column("subject", "validation performer"),
        Column("val_poses", "val poses", "{:,}"),
        Column("components", "K chosen"),
        Column("gmm_nll", "gmm test NLL", "{:.2f}"),
        Column("full_nll", "gaussian_full test NLL", "{:.2f}"),
    ]
    intro = (
        f"Bundled CMU body data (REAL), probpose bench's split: train {len(train):,} / val {len(val):,} / test "
        f"{len(test):,} poses (test: whole subjects {', '.join(split.stats['test_subjects'])}). Test NLL on the "
        f"unseen subjects, nats/pose (lower is better); fits on {threads} thread(s). Second table: the validation "
        "split one training performer (trained on the other performers' poses of train and val), each in turn."
    )
    table = markdown_table(cols, rows) + "\n\n" + markdown_table(single_cols, single)
    write_results(
        args.out,
        "gmm_subjects",
        "Choosing the GMM's number of components for unseen performers",
        intro,
        table,
        {"threads": threads, "rows": rows, "single_performer_validation": single},
        machine_description(),
    )
    print(table)


if __name__ == "__main__":
    main()

"""Trained on CMU, scored elsewhere: the shipped CMU priors' NLL on the held-out CMU test subjects and
on every frame of the three real SMPL-family recordings bundled with probpose (other labs, skeletons
and kinds of motion; in no training set): the SMPL codec avatar (601 frames, seated), the SMPL-X
A-pose to hands-front clip (34 frames) and the AIST++ dance (127 frames, SMPL body), read on the
priors' 21 body joints. NLL in nats/pose (VAE: its importance-weighted bound, seeded); for priors
that factorise over joints (joint_flow), a second table gives the NLL per joint on the real clips.

    python benchmarks/cross_dataset.py --threads 2 --out benchmarks/results/cross_dataset_cmu
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.data import bundled, prepare_data
from probpose.evaluation import evaluate
from probpose.evaluation.report import evaluate_files
from probpose.models import load_model, pretrained

CLIPS = (
    ("cmu", None),
    ("avatar", "smplcodec_avatar.smpl"),
    ("apose", "smplcodec_apose_to_handsFront_smplx.npz"),
    ("aist", "aistpp_style_sample.pkl"),
)
TITLES = {
    "cmu": "CMU test subjects",
    "avatar": "SMPL codec avatar",
    "apose": "SMPL-X A-pose clip",
    "aist": "AIST++ dance",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/cross_dataset_cmu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)
    files = {p.name: p for p in bundled("smplx")}
    with tempfile.TemporaryDirectory() as tmp:
        test = prepare_data(bundled="cmu", workdir=tmp).test
    rows: list[dict] = []
    per_joint: dict[str, dict[str, dict[str, float]]] = {}
    for name, path in pretrained().items():
        model = load_model(path).eval()
        row = {"prior": name}
        for key, data in CLIPS:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                if data is None:
                    ev = evaluate(model, test)
                else:
                    report = evaluate_files(model, [files[data]])
                    ev = report.evaluation
                    row[key + "_worst"] = report.worst[0][1] if report.worst else None
                    if report.per_joint_nll:
                        per_joint.setdefault(name, {})[key] = report.per_joint_nll
            row[key] = ev.nll
            row["exact"] = ev.exact
        rows.append(row)
        print(row, flush=True)
    base = next(r for r in rows if r["prior"] == "cmu/gaussian_full")

    def nll(key):
        return lambda r: f"{r[key]:,.1f}" + ("" if r["exact"] else " (bound)")

    cols = [Column("prior", "prior")]
    for key, title in TITLES.items():
        cols += [Column(key, f"NLL {title}", nll(key)), Column(key + "_ratio", "vs gaussian_full", "{:.2f}x")]
        for r in rows:
            r[key + "_ratio"] = r[key] / base[key] if base[key] > 0 else None
    table = markdown_table(cols, rows)
    table += "\n\nThe worst single pose of each clip (nats; VAE: its bound):\n\n"
    table += markdown_table(
        [Column("prior", "prior")] + [Column(k + "_worst", t, "{:,.1f}") for k, t in TITLES.items() if k != "cmu"],
        rows,
    )
    joint_rows = []
    for name, by_clip in per_joint.items():
        joints = next(iter(by_clip.values()))
        for j in sorted(joints, key=lambda j: -max(v[j] for v in by_clip.values())):
            joint_rows.append({"prior": name, "joint": j, **{k: v[j] for k, v in by_clip.items()}})
    if joint_rows:
        table += "\n\nNLL per joint (nats/pose, worst first) where the prior factorises over joints:\n\n"
        table += markdown_table(
            [Column("prior", "prior"), Column("joint", "joint")]
            + [Column(k, t, "{:,.2f}") for k, t in TITLES.items() if k != "cmu"],
            joint_rows,
        )
    intro = (
        "NLL in nats/pose on the priors' 21 body joints; ratios only where gaussian_full's NLL is positive; "
        f"{threads} torch thread(s). The three clips are real SMPL-family fits, kept out of every training set."
    )
    md, js = write_results(
        args.out,
        "cross_dataset",
        "Trained on CMU, scored on other recordings",
        intro,
        table,
        {"rows": rows, "per_joint": per_joint},
        machine_description("cpu"),
    )
    print(table)
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()

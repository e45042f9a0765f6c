"""Trained on CMU, scored elsewhere: the shipped CMU priors' NLL on the held-out CMU test trials and
on every frame of the two other bundled human recordings (another lab, another skeleton, another
kind of motion): the SMPL codec avatar (601 frames, seated) and the AIST++ dance (127 frames), read
on the priors' 19 body joints. NLL in nats/pose (VAE: its importance-weighted bound, seeded).

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/cross_dataset_cmu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)
    files = {p.name: p for p in bundled("smplx")}
    with tempfile.TemporaryDirectory() as tmp:
        test = prepare_data(bundled="cmu", workdir=tmp).test
    rows = []
    for name, path in pretrained().items():
        model = load_model(path).eval()
        row = {"prior": name}
        for key, data in (("cmu", None), ("avatar", "smplcodec_avatar.smpl"), ("aist", "aistpp_style_sample.pkl")):
            with torch.random.fork_rng():
                torch.manual_seed(0)
                ev = evaluate(model, test) if data is None else evaluate_files(model, [files[data]]).evaluation
            row[key] = ev.nll
            row["exact"] = ev.exact
        rows.append(row)
        print(row, flush=True)
    base = next(r for r in rows if r["prior"] == "cmu/gaussian_full")

    def nll(key):
        return lambda r: f"{r[key]:,.1f}" + ("" if r["exact"] else " (bound)")

    cols = [Column("prior", "prior")]
    for key, title in (("cmu", "CMU test trials"), ("avatar", "SMPL codec avatar"), ("aist", "AIST++ dance")):
        cols += [Column(key, f"NLL {title}", nll(key)), Column(key + "_ratio", "vs gaussian_full", "{:.2f}x")]
        for r in rows:
            r[key + "_ratio"] = r[key] / base[key] if base[key] > 0 else None
    table = markdown_table(cols, rows)
    intro = (
        f"NLL in nats/pose on the priors' 19 body joints; ratios only where gaussian_full's NLL is positive; "
        f"{threads} torch thread(s)."
    )
    md, js = write_results(
        args.out,
        "cross_dataset",
        "Trained on CMU, scored on other recordings",
        intro,
        table,
        {"rows": rows},
        machine_description("cpu"),
    )
    print(table)
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()

"""Why the shipped VAE's bound trails the full Gaussian on unseen performers (issue 35, item 2).

On 800 poses of the bundled CMU data's training subjects and 800 of its held-out subjects:
``cmu/gaussian_full``'s NLL against ``cmu/vae``'s importance-weighted bound for K = 1 (the ELBO) to
5,000 samples (how loose the reported K = 1,000 bound is), the encoder's KL per latent dimension on
the held-out poses (posterior collapse: dimensions with less than 0.01 nats), the decoder's
standard deviations against the data's, and the reconstruction error.

    python benchmarks/vae_diagnosis.py --threads 2 --out benchmarks/results/vae_diagnosis_cpu
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from probpose.bench import Column, machine_description, markdown_table, set_threads, write_results
from probpose.data import prepare_data
from probpose.models import load_model

KS = (1, 10, 100, 1000, 5000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--poses", type=int, default=800)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/vae_diagnosis_cpu"))
    args = ap.parse_args()
    threads = set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_data(bundled="cmu", workdir=tmp)
    g = torch.Generator().manual_seed(0)
    sets = {
        "training subjects (train split)": data.train[torch.randperm(len(data.train), generator=g)[: args.poses]],
        "held-out subjects (test split)": data.test[torch.randperm(len(data.test), generator=g)[: args.poses]],
    }
    vae, gauss = load_model("cmu/vae"), load_model("cmu/gaussian_full")
    rows = []
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        for name, x in sets.items():
            row: dict = {"poses": name, "gaussian_full": -gauss().log_prob(x).mean().item()}
            for k in KS:
                row[f"k{k}"] = -vae.iwae(x, k, chunk=16 if k >= 1000 else 64).mean().item()
            rows.append(row)
            print(row, flush=True)
        held = sets["held-out subjects (test split)"]
        loc, scale = vae.encode(held)
        kl = (0.5 * (loc**2 + scale**2 - 1) - scale.log()).mean(0)  # (z_dim,) nats
        decoder_std = vae.log_scale.exp()
        summary = {
            "kl_per_dim": kl.tolist(),
            "active_dims": int((kl > 0.01).sum()),
            "z_dim": len(kl),
            "total_kl": kl.sum().item(),
            "decoder_std_median": decoder_std.median().item(),
            "data_std_median": data.train.flatten(1).std(0).median().item(),
            "reconstruction_error_deg": vae.reconstruction_error(held).mean().item(),
        }
    print(summary)
    columns = [Column("poses", "poses"), Column("gaussian_full", "gaussian_full NLL", "{:.2f}")]
    columns += [Column(f"k{k}", "VAE bound K = 1 (ELBO)" if k == 1 else f"VAE bound K = {k:,}", "{:.2f}") for k in KS]
    s = summary
    intro = (
        f"NLL in nats/pose (the VAE's: upper bounds), {args.poses} poses of each split of `probpose import --bundled "
        f"cmu`; {threads} thread(s). Held-out poses: {s['active_dims']} of {s['z_dim']} latent dimensions active "
        f"(KL > 0.01 nats; total KL {s['total_kl']:.1f} nats), decoder standard deviation median "
        f"{s['decoder_std_median']:.3f} rad against the data's {s['data_std_median']:.3f}, reconstruction error "
        f"{s['reconstruction_error_deg']:.1f} degrees."
    )
    table = markdown_table(columns, rows)
    write_results(
        args.out,
        "vae_diagnosis",
        "The shipped VAE against the full Gaussian",
        intro,
        table,
        {"threads": threads, "rows": rows, **summary},
        machine_description(),
    )
    print(table)


if __name__ == "__main__":
    main()

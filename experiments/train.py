"""Train a model from a YAML config: the same as `probpose train`.

python experiments/train.py --config gaussian_prior --override training.lr=5e-3
"""

import sys

from probpose.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

"""Writes the bundled Twemoji, or a seeded random share of them, as a folder of PNGs (docs/quality.md).

Usage: python reports/twemoji_folder.py OUT [--num 500] [--seed 0]

`train --dataset OUT --image-size 64` then trains on them as on any user's folder, through
the folder pipeline.
"""

import argparse
import os

import numpy as np
from PIL import Image

from dcgan_keras.data import load_twemoji


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--num", type=int, default=None, help="how many (default: all 3,491)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    images = load_twemoji()["images"]
    chosen = np.arange(len(images)) if args.num is None else np.random.default_rng(args.seed).choice(
        len(images), args.num, replace=False)
    os.makedirs(args.out, exist_ok=True)
    for i in chosen:
        Image.fromarray(images[i]).save(os.path.join(args.out, f"{i:04d}.png"))
    print(f"{len(chosen)} PNGs in {args.out}")


if __name__ == "__main__":
    main()

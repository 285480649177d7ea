"""Two or more Twemoji generators over the same draws of noise (docs/quality.md, "64x64 colour").

Usage: python reports/twemoji_draws.py EXPORT [EXPORT ...] [--draws 20] [--seed 0]

For each generator (an export folder or a checkpoint), samples `--draws` sets of 672 from the
same z (N(0, I) draws from `--seed`, so paired across generators) and prints one JSON line: the
Twemoji judge's Fréchet distance of each set, their mean and median, and the distance of all
the samples at once, which has far less noise than any one set of 672.
"""

import argparse
import json

import numpy as np

from dcgan_keras.checkpoints import load_generator
from dcgan_keras.distances import frechet_distance
from dcgan_keras.metrics import sample_images
from dcgan_keras.twemoji_judge import held_out_split, judge_context, real_twemoji


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    _, _, features = judge_context()
    images, _ = real_twemoji()
    train, held = held_out_split()
    real = features(images[train])
    mean, cov = real.mean(axis=0), np.cov(real, rowvar=False)

    def distance(f):
        return frechet_distance(mean, cov, f.mean(axis=0), np.cov(f, rowvar=False))

    for path in args.models:
        found = features(sample_images(load_generator(path), len(held) * args.draws, seed=args.seed))
        each = [distance(f) for f in np.split(found, args.draws)]
        print(json.dumps({
            "model": path, "draws": [round(d, 2) for d in each], "mean": round(float(np.mean(each)), 3),
            "median": round(float(np.median(each)), 3), "all_samples": round(distance(found), 3),
        }), flush=True)


if __name__ == "__main__":
    main()

"""Two or more Twemoji generators over the same draws of noise (docs/quality.md, "64x64 colour").

Usage: python reports/twemoji_draws.py EXPORT [EXPORT ...] [--draws 20] [--seed 0] [--repeats 1]

For each generator (an export folder or a checkpoint), samples `--draws` sets of 672 from the
same z (N(0, I) draws from `--seed`, so paired across generators) and prints one JSON line: the
Twemoji judge's Fréchet distance of each set, their mean and median, and the distance of all
the samples at once, which has far less noise than any one set of 672.

With `--repeats K`, it does so for the noise seeds `--seed` to `--seed + K - 1` and adds the
distance of all the samples of each seed (`all_samples_by_seed`), their standard deviation, and
the distance of all K seeds' samples at once (`pooled`): even 20 x 672 samples move by a few
hundredths with the noise seed, as much as many levers do.
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
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args(argv)
    _, _, features = judge_context()
    images, _ = real_twemoji()
    train, held = held_out_split()
    real = features(images[train])
    mean, cov = real.mean(axis=0), np.cov(real, rowvar=False)

    def distance(f):
        return float(frechet_distance(mean, cov, f.mean(axis=0), np.cov(f, rowvar=False)))

    for path in args.models:
        generator = load_generator(path)
        found = [features(sample_images(generator, len(held) * args.draws, seed=args.seed + k))
                 for k in range(args.repeats)]
        each = [distance(f) for f in np.split(found[0], args.draws)]
        row = {
            "model": path, "draws": [round(d, 2) for d in each], "mean": round(float(np.mean(each)), 3),
            "median": round(float(np.median(each)), 3), "all_samples": round(distance(found[0]), 3),
        }
        if args.repeats > 1:
            by_seed = [distance(f) for f in found]
            row.update(
                all_samples_by_seed=[round(d, 3) for d in by_seed],
                all_samples_sd=round(float(np.std(by_seed, ddof=1)), 3),
                pooled=round(distance(np.concatenate(found)), 3),
            )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

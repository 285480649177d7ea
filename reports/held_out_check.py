"""Are a run's samples nearer the training digits than held-out real digits are? (docs/quality.md)

Usage: python reports/held_out_check.py [RUN_DIR ...] [--subset 4000] [--subset-seed 0] [--random-splits 10]

Each run must have been trained on a balanced subset of the bundled digits, N/10 of each class
(`python reports/quality_run.py --subset N [--subset-seed S]`, with the same N and S as here:
`quality_run.balanced_subset`); the other digits are held out, real
digits the generator never saw. For 1,000 samples (seed 0) and for the held-out digits it
prints, against the same training subset:

- the memorisation ratio (`dcgan_keras.distances.memorisation_ratio`);
- the distance to the nearest training digit: mean, and the share of images nearer than the
  held-out digits' 1st, 5th and 10th percentiles. Copies of training digits would pile up
  below those (held-out digits: 1%, 5% and 10% by definition).

`--random-splits K` also prints the memorisation ratio of 1,000 random digits held out against
the other 4,000, for K random splits (seeds 0 to K-1): the range real digits give.
"""

import argparse
import json

import numpy as np

import dcgan_keras as dk
from dcgan_keras.distances import memorisation_ratio, nearest_neighbours
from dcgan_keras.export import load_checkpoint
from dcgan_keras.metrics import sample_images
from quality_run import balanced_subset  # the same subset as the runs trained on

PERCENTILES = (1, 5, 10)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*")
    p.add_argument("--subset", type=int, default=4000)
    p.add_argument("--subset-seed", type=int, default=None)
    p.add_argument("--random-splits", type=int, default=0)
    a = p.parse_args(argv)
    images, labels = dk.load_digits()
    digits = dk.data.preprocess(images[..., None], 32, 1).numpy()
    if a.random_splits:
        ratios = []
        for seed in range(a.random_splits):
            order = np.random.default_rng(seed).permutation(len(digits))
            ratios.append(round(memorisation_ratio(digits[order[:1000]], digits[order[1000:]]), 3))
        print(json.dumps({"held_out_ratio_random_splits": ratios, "mean": round(float(np.mean(ratios)), 3)}))
    train_idx = balanced_subset(labels, a.subset, a.subset_seed)
    train, held_out = digits[train_idx], np.delete(digits, train_idx, axis=0)
    held_distance = nearest_neighbours(held_out, train, k=1).distances[:, 0]
    cuts = np.percentile(held_distance, PERCENTILES)

    def row(name, images):
        distance = nearest_neighbours(images, train, k=1).distances[:, 0]
        return {"images": name, "count": len(images), "memorisation_ratio": round(memorisation_ratio(images, train), 3),
                "mean_nearest": round(float(distance.mean()), 3),
                **{f"nearer_than_held_out_p{q}": round(float((distance < cut).mean()), 3) for q, cut in zip(PERCENTILES, cuts)}}

    print(json.dumps(row("held-out real digits", held_out)))
    for run in a.runs:
        print(json.dumps(row(run, sample_images(load_checkpoint(f"{run}/ckpt.keras").sampler, 1000, seed=0))))


if __name__ == "__main__":
    main()

"""Trains the digits job with one set of levers and scores it with the digit judge (docs/quality.md).

Usage: python reports/quality_run.py --name NAME [--recipe default] [--epochs 60] [--batch-size 64]
           [--base-width 64] [--learning-rate 2e-4] [--g-learning-rate 4e-4] [--beta1 0] [--beta2 0.99]
           [--augment translation,cutout]
           [--augment-target 0.6] [--ema 0.999] [--label-smoothing 0.1] [--r1 1] [--r1-every 4]
           [--latent-modes 10] [--mode-offset 4] [--precision float32] [--seed 0] [--subset 500] [--subset-seed 0] [--keep-best digit_fd]
           [--out runs/quality] [--results runs/quality/results.jsonl]

Prints one JSON line (and appends it to --results): the judge's classifier score, confident
share, coverage, class shares, digit FD, precision/recall and memorisation ratio of 1,000
samples, the wall time and the last epoch's losses. `--subset N` trains on N digits, N/10 of
each class (the first ones, or with `--subset-seed S` a random draw), and adds the memorisation
ratio against those N (`balanced_subset`). `--keep-best` scores the best
epoch's checkpoint and prints the last epoch's scores too.
"""

import argparse
import json
import os
import shutil

import numpy as np

import dcgan_keras as dk
from dcgan_keras.distances import memorisation_ratio
from dcgan_keras.export import load_checkpoint
from dcgan_keras.judge import evaluate_digits, judge_context
from dcgan_keras.sampling import batched_forward, latent_vectors_for

def balanced_subset(labels, size: int, seed: int | None = None) -> np.ndarray:
    """Indices of `size` digits, `size / 10` of each class: the first ones, or a random draw with `seed`."""
    rng = None if seed is None else np.random.default_rng(seed)
    chosen = []
    for c in range(10):
        members = np.flatnonzero(labels == c)
        chosen.append(members[: size // 10] if rng is None else np.sort(rng.permutation(members)[: size // 10]))
    return np.concatenate(chosen)


KEYS = ("classifier_score", "confident_fraction", "coverage", "digit_fd", "precision", "recall", "memorisation_ratio")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--recipe", default="default", choices=tuple(dk.config.RECIPES))
    p.add_argument("--epochs", type=int, default=dk.config.DEFAULT_EPOCHS)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--base-width", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--g-learning-rate", type=float)
    p.add_argument("--beta1", type=float)
    p.add_argument("--beta2", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--augment")
    p.add_argument("--augment-target", type=float)
    p.add_argument("--ema", type=float)
    p.add_argument("--r1", type=float)
    p.add_argument("--r1-every", type=int)
    p.add_argument("--latent-modes", type=int)
    p.add_argument("--mode-offset", type=float)
    p.add_argument("--precision")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=0, help="a balanced subset of this many digits")
    p.add_argument("--subset-seed", type=int, default=None, help="draw the subset at random with this seed")
    p.add_argument("--keep-best", default=None)
    p.add_argument("--out", default="runs/quality")
    p.add_argument("--results", default="runs/quality/results.jsonl")
    a = p.parse_args(argv)

    given = {"batch_size": a.batch_size, "base_width": a.base_width, "learning_rate": a.learning_rate,
             "g_learning_rate": a.g_learning_rate, "beta_1": a.beta1, "beta_2": a.beta2,
             "label_smoothing": a.label_smoothing, "augment": a.augment, "augment_target": a.augment_target,
             "precision": a.precision, "r1_gamma": a.r1, "r1_every": a.r1_every,
             "latent_modes": a.latent_modes, "mode_offset": a.mode_offset}
    settings = {k: v for k, v in given.items() if v is not None}
    if a.ema is not None:
        settings["ema_decay"] = a.ema or None
    config = dk.Config.from_recipe(a.recipe, image_size=32, channels=1, seed=a.seed, **settings)
    dataset = "digits"
    if a.subset:
        images, labels = dk.load_digits()
        dataset = images[balanced_subset(labels, a.subset, a.subset_seed)]
    run_dir = os.path.join(a.out, a.name)
    shutil.rmtree(run_dir, ignore_errors=True)
    extra = {"keep_best": a.keep_best, "evaluate_every": 2} if a.keep_best else {}
    summary = dk.train(config, run_dir, dataset, epochs=a.epochs, export_dir=None, verbose=0, **extra)
    context = judge_context(32)
    sampler = summary["model"].sampler
    out = {"name": a.name, "config": config.to_dict(), "epochs": a.epochs, "seconds": round(summary["seconds"], 1)}
    if a.keep_best:
        last = evaluate_digits(sampler, num=1000, seed=0, context=context)
        out["last_epoch"] = {k: last[k] for k in KEYS}
        out["best_epoch"] = summary["best_epoch"]
        out["history"] = summary["history"][a.keep_best]
        sampler = load_checkpoint(os.path.join(run_dir, "best.keras")).sampler
    report = evaluate_digits(sampler, num=1000, seed=0, context=context)
    out.update({k: report[k] for k in KEYS}, class_shares=report["class_shares"],
               last_losses={k: v[-1] for k, v in summary["history"].items()})
    if a.subset:
        train_images = dk.data.preprocess(dataset[..., None], 32, 1).numpy()
        samples = batched_forward(sampler, latent_vectors_for(sampler, len(train_images), seed=0))
        out["memorisation_ratio_subset"] = memorisation_ratio(samples, train_images)
    print(json.dumps(out))
    os.makedirs(os.path.dirname(a.results) or ".", exist_ok=True)
    with open(a.results, "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()

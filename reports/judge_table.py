"""Judge scores table: real digits, an untrained generator and each given checkpoint.

Usage: python reports/judge_table.py [CHECKPOINT_OR_SAVEDMODEL ...] [--num 1000] [--seed 0] [--json]

Each row is `dcgan_keras.judge.evaluate_digits` of `--num` images: the
judge's classifier score, confident fraction and coverage, the digit
Fréchet distance on the judge's features, k-NN precision/recall and the
memorisation ratio. The "real digits" row scores `--num` random bundled
digits (they are in the training set, so its memorisation ratio is 0).
The judge is trained on first use (about 2 minutes on 2 cores) and cached.
"""

import argparse
import json

import numpy as np

import dcgan_keras as dk
from dcgan_keras.judge import evaluate_digits, judge_context, real_digits

COLUMNS = ("classifier_score", "confident_fraction", "coverage", "digit_fd", "precision", "recall", "memorisation_ratio")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help=".keras checkpoints or SavedModel version folders")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=32, help="of the real and untrained rows")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    context = judge_context(args.image_size)
    real = real_digits(args.image_size)
    rows = {}
    chosen = np.random.default_rng(args.seed + 1).choice(len(real), min(args.num, len(real)), replace=False)
    rows["real digits"] = evaluate_digits(real[chosen], seed=args.seed, context=context)
    untrained = dk.DCGAN.from_settings(dk.Config(image_size=args.image_size, channels=1, seed=args.seed))
    rows["untrained generator"] = evaluate_digits(untrained, num=args.num, seed=args.seed, context=context)
    for path in args.models:
        generator = dk.load_generator(path)
        size = generator.output_shape[1]
        ctx = context if size == args.image_size else judge_context(size)
        rows[path] = evaluate_digits(generator, num=args.num, seed=args.seed, context=ctx)

    if args.json:
        print(json.dumps(rows, indent=1))
        return
    width = max(len(name) for name in rows)
    print(f"judge held-out accuracy: {rows['real digits']['judge_accuracy']:.4f}, {args.num} images per row")
    print(" " * width + "".join(f"  {c:>18}" for c in COLUMNS))
    for name, report in rows.items():
        print(f"{name:<{width}}" + "".join(f"  {report[c]:>18.4f}" for c in COLUMNS))


if __name__ == "__main__":
    main()

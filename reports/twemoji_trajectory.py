"""The Twemoji judge's Fréchet distance along one training run, every N epochs (docs/quality.md).

Usage: python reports/twemoji_trajectory.py RUN_DIR [--epochs 40] [--every 10] [--draws 2]
           [--seed 0] [--base-width 64] [--r1 10]

Trains the default recipe on the bundled Twemoji at 64x64 (`train_lib.train`, with the flags
above overriding the recipe) and, every `--every` epochs and after the last, prints one JSON line:
the epoch, the seconds so far, D's mean outputs on real and generated emoji, and the judge's
FD, recall and confident share of the sampling generator, means over `--draws` draws of 672.
"""

import argparse
import json
import time

import keras

from dcgan_keras.config import Config
from dcgan_keras.train_lib import train
from dcgan_keras.twemoji_judge import evaluate_twemoji, judge_context


class TwemojiTrajectory(keras.callbacks.Callback):
    def __init__(self, every: int, draws: int):
        super().__init__()
        self.every, self.draws, self.context = every, draws, judge_context()

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every and epoch + 1 != self.params["epochs"]:
            return
        report = evaluate_twemoji(self.model, draws=self.draws, context=self.context)["samples"]
        print(json.dumps({
            "epoch": epoch + 1, "seconds": round(time.perf_counter() - self.start),
            "d_real": round(float(logs["d_real"]), 3), "d_fake": round(float(logs["d_fake"]), 3),
            **{key: round(report[key], 3) for key in ("twemoji_fd", "twemoji_fd_sd", "recall", "confident_fraction")},
        }), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--draws", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base-width", type=int, default=None)
    p.add_argument("--r1", type=float, default=None)
    args = p.parse_args(argv)
    overrides = {k: v for k, v in (("base_width", args.base_width), ("r1_gamma", args.r1)) if v is not None}
    config = Config.from_recipe("default", image_size=64, channels=3, seed=args.seed, **overrides)
    train(config, args.run_dir, dataset="twemoji", epochs=args.epochs, export_dir=None, verbose=0,
          callbacks=[TwemojiTrajectory(args.every, args.draws)])


if __name__ == "__main__":
    main()

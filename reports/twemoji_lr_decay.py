"""The Twemoji default with both learning rates decayed linearly to 0 over the second half of its steps.

Usage: python reports/twemoji_lr_decay.py RUN_DIR EXPORT_DIR [--seed 0]

Trains the default recipe on the bundled Twemoji at 64x64 for its 87 epochs (4,698 steps), with
a callback that scales both Adam learning rates by min(1, 2 (1 - step / steps)), and exports the
generator; compare it with the default's export by `reports/twemoji_draws.py` (docs/quality.md).
"""

import argparse

import keras

from dcgan_keras.config import Config, default_epochs
from dcgan_keras.train_lib import train

STEPS_PER_EPOCH = 3491 // 64


class LinearDecay(keras.callbacks.Callback):
    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_begin(self, logs=None):
        self.base = [float(o.learning_rate.numpy()) for o in (self.model.g_optimizer, self.model.d_optimizer)]

    def on_train_batch_begin(self, batch, logs=None):
        factor = min(1.0, 2.0 * (1.0 - int(self.model.g_optimizer.iterations.numpy()) / self.steps))
        for optimizer, rate in zip((self.model.g_optimizer, self.model.d_optimizer), self.base):
            optimizer.learning_rate.assign(rate * factor)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("export_dir")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    epochs = default_epochs(STEPS_PER_EPOCH)
    config = Config.from_recipe("default", image_size=64, channels=3, seed=args.seed)
    train(config, args.run_dir, dataset="twemoji", epochs=epochs, export_dir=args.export_dir, verbose=2,
          callbacks=[LinearDecay(epochs * STEPS_PER_EPOCH)])


if __name__ == "__main__":
    main()

"""The Twemoji default trained with one change to its optimisation, for docs/quality.md's levers.

Usage: python reports/twemoji_variants.py {lr-decay,swa} RUN_DIR EXPORT_DIR [--seed 0]

Trains the default recipe on the bundled Twemoji at 64x64 for its 87 epochs (4,698 steps) with:
- `lr-decay`: both Adam learning rates scaled by min(1, 2 (1 - step / steps)), a linear decay
  to 0 over the second half; the generator is exported to EXPORT_DIR.
- `swa`: the generator's weights also averaged uniformly over the last third of the steps
  (stochastic weight averaging), beside the default's moving average, whose warm-up
  min(0.999, (1 + t) / (10 + t)) weighs about the last tenth. The default's EMA generator is
  exported to EXPORT_DIR/ema; then the uniform average is put into it, given batch-norm
  statistics of its own (`DCGAN.recalibrate_batch_norm`) and exported to EXPORT_DIR/swa.
Compare the exports with the default's over the same draws by `reports/twemoji_draws.py`.
"""

import argparse
import os

import keras
import tensorflow as tf

from dcgan_keras.config import Config, default_epochs
from dcgan_keras.export import export_generator
from dcgan_keras.train_lib import train

STEPS_PER_EPOCH = 3491 // 64


class LinearDecay(keras.callbacks.Callback):
    """Scales both learning rates by min(1, 2 (1 - step / steps))."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_begin(self, logs=None):
        self.base = [float(o.learning_rate.numpy()) for o in (self.model.g_optimizer, self.model.d_optimizer)]

    def on_train_batch_begin(self, batch, logs=None):
        factor = min(1.0, 2.0 * (1.0 - int(self.model.g_optimizer.iterations.numpy()) / self.steps))
        for optimizer, rate in zip((self.model.g_optimizer, self.model.d_optimizer), self.base):
            optimizer.learning_rate.assign(rate * factor)


class UniformAverage(keras.callbacks.Callback):
    """The running mean of the generator's weights after step `start`."""

    def __init__(self, start: int):
        super().__init__()
        self.start = start

    def on_train_begin(self, logs=None):
        self.average = [tf.Variable(w) for w in self.model.generator.trainable_variables]
        self.count = tf.Variable(0.0)
        self.update = tf.function(self._update)

    def _update(self):
        self.count.assign_add(1.0)
        for a, w in zip(self.average, self.model.generator.trainable_variables):
            a.assign(a + (w - a) / self.count)

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.g_optimizer.iterations.numpy()) > self.start:
            self.update()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variant", choices=["lr-decay", "swa"])
    p.add_argument("run_dir")
    p.add_argument("export_dir")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    epochs = default_epochs(STEPS_PER_EPOCH)
    steps = epochs * STEPS_PER_EPOCH
    config = Config.from_recipe("default", image_size=64, channels=3, seed=args.seed)
    change = LinearDecay(steps) if args.variant == "lr-decay" else UniformAverage(start=2 * steps // 3)
    export_dir = args.export_dir if args.variant == "lr-decay" else os.path.join(args.export_dir, "ema")
    train(config, args.run_dir, dataset="twemoji", epochs=epochs, export_dir=export_dir, verbose=2, callbacks=[change])
    if args.variant == "swa":
        gan = change.model
        for target, w in zip(gan.ema_generator.trainable_variables, change.average):
            target.assign(w)
        gan.recalibrate_batch_norm()
        print(export_generator(gan, os.path.join(args.export_dir, "swa")), flush=True)


if __name__ == "__main__":
    main()

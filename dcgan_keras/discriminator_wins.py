"""A warning, in plain words, when the discriminator ends a run far surer of itself than the generator can answer."""

from __future__ import annotations

import logging

import keras

logger = logging.getLogger("dcgan_keras")

D_WINS_REMEDIES = (
    "What to try: the best epoch rather than the last (--keep-best d_fd; digit_fd for digits), or fewer "
    "epochs; more images; a stronger R1 penalty (--r1 2 or more); augmenting what D sees, adaptively "
    "(--augment translation,color,cutout --augment-target 0.6), which keeps D from memorising a small data "
    "set but did not improve the samples on the bundled Twemoji (docs/quality.md)."
)


class DiscriminatorWinsWarning(keras.callbacks.Callback):
    """Warns when, over the run's last epochs, D tells real from fake images nearly without error.

    In a balanced game D's mean output (a probability) on real images
    (`d_real`) and on fakes (`d_fake`) stay close: near 0.5 each, or a gap of
    about 0.3 with the R1 penalty. When D wins, `d_real` goes to 1 and
    `d_fake` to 0, the generator's gradients fade, and the samples stop
    improving or get worse; on a small data set it usually means D has
    memorised the real images. At the end of training this callback averages
    the gap `d_real - d_fake` over the last `window` epochs and warns once
    (the `dcgan_keras` logger), with what to try, when it is at least `gap`.

    Args:
        gap: the mean `d_real - d_fake` from which it warns (0.6: e.g. 0.8 against 0.2).
        window: the epochs the gap is averaged over.

    Example:

    ```python
    gan.fit(dataset, epochs=60, callbacks=[DiscriminatorWinsWarning()])
    ```
    """

    def __init__(self, gap: float = 0.6, window: int = 3):
        super().__init__()
        if not 0.0 < gap < 1.0:
            raise ValueError(f"gap must be in (0, 1). Received: gap={gap}")
        if not (isinstance(window, int) and window >= 1):
            raise ValueError(f"window must be a positive integer. Received: window={window!r}")
        self.gap, self.window = gap, window
        self.recent: list[tuple[float, float]] = []
        self.warned = False

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if "d_real" in logs and "d_fake" in logs:
            self.recent = [*self.recent, (float(logs["d_real"]), float(logs["d_fake"]))][-self.window :]

    def on_train_end(self, logs=None):
        if not self.recent:
            return
        real = sum(r for r, _ in self.recent) / len(self.recent)
        fake = sum(f for _, f in self.recent) / len(self.recent)
        if real - fake >= self.gap:
            self.warned = True
            logger.warning(
                "The discriminator won this run: over its last %d epoch(s) it gave the real images %.2f "
                "and the generated ones %.2f on average (1 = sure it is real), so the generator learns "
                "little from it any more and the samples stop improving, or worsen. %s",
                len(self.recent), real, fake, D_WINS_REMEDIES,
            )

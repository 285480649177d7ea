"""One line per epoch: training progress for output that is not a terminal.

Keras' progress bar redraws itself with carriage returns many times an
epoch; in a log file (CI, `nohup`, a notebook's saved output) every redraw
stays. `progress_for` keeps the bar on a terminal and otherwise turns it
into an `EpochLog`: one line per epoch.
"""

from __future__ import annotations

import sys
import time

import keras


class EpochLog(keras.callbacks.Callback):
    """Prints one line at the end of each epoch: its number, its logs and its seconds.

    Args:
        stream: a text file to print to; `None` for `sys.stdout` as it is
            at each print.
        prefix: text before the line, e.g. `"digit judge: "`.

    Example:

    ```python
    model.fit(dataset, epochs=3, verbose=0, callbacks=[EpochLog()])
    # epoch 1/3: d_loss 1.286, g_loss 0.8009, d_fake 0.4887, d_real 0.5496 (9.3 s)
    ```
    """

    def __init__(self, stream=None, prefix: str = ""):
        super().__init__()
        self.stream = stream
        self.prefix = prefix
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start if self._start is not None else float("nan")
        logs = logs or {}
        # The losses first, then the other values, each group by name.
        names = sorted(logs, key=lambda name: (not name.endswith("loss"), name))
        values = ", ".join(f"{name} {_number(logs[name])}" for name in names)
        epochs = self.params.get("epochs") if self.params else None
        count = f"{epoch + 1}/{epochs}" if epochs else f"{epoch + 1}"
        line = f"{self.prefix}epoch {count}: {values} ({seconds:.1f} s)" if values else \
            f"{self.prefix}epoch {count} ({seconds:.1f} s)"
        print(line, file=self.stream or sys.stdout, flush=True)


def _number(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def progress_for(verbose, callbacks: list, stream=None) -> tuple:
    """`fit`'s `verbose` and `callbacks`: Keras' bar on a terminal, else one line per epoch.

    Only `verbose="auto"` is changed: when `stream` (default `sys.stdout`)
    is not a terminal it becomes 0 and an `EpochLog` is added last (after
    the callbacks that add values to the logs).

    Returns:
        `(verbose, callbacks)` to pass to `fit`.
    """
    stream = stream or sys.stdout
    if verbose != "auto" or _is_terminal(stream):
        return verbose, callbacks
    return 0, [*callbacks, EpochLog(stream=None if stream is sys.stdout else stream)]


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False

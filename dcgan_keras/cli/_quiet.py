"""TensorFlow's start-up log, kept off the command line's stderr unless asked for.

Importing TensorFlow writes its start-up lines (oneDNN, CUDA found or not,
"All log messages before absl::InitializeLog() ...", each once per shared
library) straight to file descriptor 2, before `TF_CPP_MIN_LOG_LEVEL` is
read; finding the devices adds `failed call to cuInit` on a machine with
CUDA's libraries and no GPU. So the command line imports TensorFlow and
lists the devices with descriptor 2 pointing to a temporary file, then puts
stderr back and passes on every line of that file that is not such a log
line (a Python warning, a traceback). Later, `TF_CPP_MIN_LOG_LEVEL=3` (unless
the user set it) keeps TensorFlow's C++ log quiet, among it grappler's
`remapper failed ... LeakyReluGrad ... BiasAdd` on CPUs: grappler's remapper
fuses the discriminator's first layer (convolution, bias, LeakyReLU; no batch
norm) into one op although LeakyReLU's gradient still reads the bias output,
so it rejects its own rewrite, and that graph runs without the remapper's
fusions, as written.

`--verbose` (or `DCGAN_KERAS_VERBOSE=1`) leaves all of it as TensorFlow writes
it, at the level the library sets (`TF_CPP_MIN_LOG_LEVEL=2`: errors, such as
those two, but no info lines).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

VERBOSE_ENV = "DCGAN_KERAS_VERBOSE"

# A line of TensorFlow's (absl's) C++ log: "I0000 00:00:1796417993.721649    4241 port.cc:153] ...".
_LOG_LINE = re.compile(r"^[IWE]\d{4} [\d:.]+\s+\d+ [\w.+-]+:\d+\] ")
_START_UP_LINES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions:",  # the second line of cpu_feature_guard's message
)


def verbose_requested(flag: bool) -> bool:
    """`--verbose`, or the environment variable `DCGAN_KERAS_VERBOSE` set to anything but "" or "0"."""
    return flag or os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def is_start_up_line(line: str) -> bool:
    """Whether a line of stderr is TensorFlow's log rather than Python's own output."""
    return bool(_LOG_LINE.match(line)) or line.startswith(_START_UP_LINES)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and finds its devices without their start-up log.

    Sets `TF_CPP_MIN_LOG_LEVEL=3` unless the user set it. Lines on stderr
    meanwhile that are not TensorFlow's log are written to stderr afterwards.
    """
    import dcgan_keras

    if not dcgan_keras._tf_log_level_given:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "tensorflow" in sys.modules:
        return  # started already (e.g. in-process tests): nothing left to hide
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA's start-up (cuInit); the runtime stays unstarted
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines(keepends=True) if not is_start_up_line(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()

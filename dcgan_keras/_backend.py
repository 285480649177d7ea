"""Makes sure Keras runs on the TensorFlow backend before anything imports it.

Cheap to import (it imports neither Keras nor TensorFlow), so that the package
and its command line can start without them.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _check(backend: str) -> None:
    if backend != "tensorflow":
        raise ImportError(
            "dcgan_keras needs Keras on the TensorFlow backend (its train_step uses "
            "tf.GradientTape and it exports TensorFlow SavedModels), but Keras is "
            f"running on '{backend}'. Set the environment variable "
            "KERAS_BACKEND=tensorflow (or remove it) before importing Keras. "
            f"Received: KERAS_BACKEND={os.environ.get('KERAS_BACKEND')}"
        )


# Keras reads KERAS_BACKEND when it is first imported; if it already was, ask it.
_check(sys.modules["keras"].backend.backend() if "keras" in sys.modules else os.environ["KERAS_BACKEND"])

"""Makes sure Keras runs on the TensorFlow backend before anything imports it."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "dcgan_keras needs Keras on the TensorFlow backend (its train_step uses "
        "tf.GradientTape and it exports TensorFlow SavedModels), but Keras is "
        f"running on '{keras.backend.backend()}'. Set the environment variable "
        "KERAS_BACKEND=tensorflow (or remove it) before importing Keras. "
        f"Received: KERAS_BACKEND={os.environ.get('KERAS_BACKEND')}"
    )

"""Scores a trained digits generator with the offline digit judge.

Usage: python benchmarks/judge_run.py RUN_DIR/ckpt.keras [NUM_SAMPLES]
Prints the judge's held-out accuracy and its scores of real digits and of samples.
"""

import json
import sys

import dcgan_keras as dk
from dcgan_keras.judge import digit_scores, load_digit_classifier
import keras

path = sys.argv[1]
num = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
gan = keras.models.load_model(path)
classifier, accuracy = load_digit_classifier(gan.generator.output_shape[1])
real = next(iter(dk.make_dataset("digits", image_size=gan.generator.output_shape[1], batch_size=num, seed=1))).numpy()
report = {"judge_test_accuracy": round(accuracy, 4), "real": digit_scores(classifier, real)}
report["samples"] = digit_scores(classifier, gan.generate(num, seed=123))
if gan.ema_generator is not None:
    report["samples_without_ema"] = digit_scores(classifier, gan.generator.predict(gan.noise(num, 123), verbose=0))
print(json.dumps(report, indent=1))

"""Scores a trained digits generator with the offline digit judge.

Usage: python reports/judge_run.py RUN_DIR/ckpt.keras [NUM_SAMPLES]
Prints the judge's held-out accuracy and its scores of real digits and of samples.
"""

import json
import sys

import dcgan_keras as dk
from dcgan_keras.judge import digit_scores, load_digit_classifier
from dcgan_keras.export import load_checkpoint
from dcgan_keras.sampling import batched_forward

path = sys.argv[1]
num = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
gan = load_checkpoint(path)
classifier, accuracy = load_digit_classifier(gan.generator.output_shape[1])
real = next(iter(dk.make_dataset("digits", image_size=gan.generator.output_shape[1], batch_size=num, seed=1))).numpy()
report = {"judge_test_accuracy": round(accuracy, 4), "real": digit_scores(classifier, real)}
report["samples"] = digit_scores(classifier, gan.generate(num, seed=123))
if gan.ema_generator is not None:
    report["samples_without_ema"] = digit_scores(classifier, batched_forward(gan.generator, gan.noise(num, 123)))
print(json.dumps(report, indent=1))

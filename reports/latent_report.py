"""Latent space report of a trained digits generator: walk smoothness and "thick minus thin" arithmetic.

Usage: python reports/latent_report.py RUN_DIR/ckpt.keras [SEED]

Prints JSON with
- the smoothness (largest step over mean step, 1.0 = even) of 4 closed slerp
  walks of the trained generator and of an untrained one of the same
  architecture (fresh weights), in pixel space and in the judge's feature space;
- a "thick minus thin" experiment: of 64 samples, the class the judge assigns
  most often gives its 3 thickest and 3 thinnest samples (by ink mass); their
  difference of means is added to the z of the 8 thinnest samples of the other
  classes; reported are the mean ink mass before and after and the fraction of
  those samples whose predicted class stays the same.
"""

import json
import sys

import numpy as np

import dcgan_keras as dk
import keras
from dcgan_keras.export import load_checkpoint
from dcgan_keras.experiments import latent
from dcgan_keras.judge import load_digit_classifier

path = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
model = load_checkpoint(path)
trained = getattr(model, "sampler", model)
keras.utils.set_random_seed(seed)
untrained = keras.models.clone_model(trained)  # same architecture, fresh initial weights
image_size = trained.output_shape[1]
classifier, accuracy = load_digit_classifier(image_size)
features = keras.Model(classifier.inputs, classifier.get_layer("features").output)


def walks(generator):
    scores = [latent.smoothness(latent.walk_loop(generator, 4, 8, seed=seed + i)[0], features=features, closed=True)
              for i in range(4)]
    return {
        "pixel": [round(s["smoothness"], 3) for s in scores],
        "feature": [round(s["feature_smoothness"], 3) for s in scores],
        "mean_pixel": round(float(np.mean([s["smoothness"] for s in scores])), 3),
        "mean_feature": round(float(np.mean([s["feature_smoothness"] for s in scores])), 3),
    }


def predict(images):
    return dk.batched_forward(classifier, images).argmax(axis=1)


report = {"judge_test_accuracy": round(accuracy, 4),
          "walks_untrained": walks(untrained), "walks_trained": walks(trained)}

z = dk.latent_vectors_for(trained, 64, seed)
images = latent.render(trained, z)
ink, classes = latent.ink_mass(images), predict(images)
counts = np.bincount(classes, minlength=10)
digit = int(counts.argmax())
members = np.flatnonzero(classes == digit)
if len(members) < 6:
    report["thick_minus_thin"] = {"error": f"only {len(members)} samples of the most common class {digit}"}
else:
    by_ink = members[np.argsort(ink[members])]
    thin, thick = by_ink[:3], by_ink[-3:]
    vector = latent.direction(z[thin], z[thick])  # mean(thick) - mean(thin)
    others = np.flatnonzero(classes != digit)
    targets = others[np.argsort(ink[others])][:8]
    after = latent.render(trained, z[targets] + vector)
    ink_after = latent.ink_mass(after)
    report["thick_minus_thin"] = {
        "exemplar_class": digit,
        "exemplar_class_count": int(len(members)),
        "thick_ink": round(float(ink[thick].mean()), 4),
        "thin_ink": round(float(ink[thin].mean()), 4),
        "targets": int(len(targets)),
        "ink_before": round(float(ink[targets].mean()), 4),
        "ink_after": round(float(ink_after.mean()), 4),
        "thicker_fraction": round(float((ink_after > ink[targets]).mean()), 4),
        "class_kept_fraction": round(float((predict(after) == classes[targets]).mean()), 4),
    }
print(json.dumps(report, indent=1))

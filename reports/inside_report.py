"""Inside the networks on a trained digits DCGAN: guided backprop, filter ablation, de-duplication.

Usage: python reports/inside_report.py [RUN_DIR/ckpt.keras] [OUT_DIR]

Writes OUT_DIR/inside_guided.png (default OUT_DIR: docs/images) and
OUT_DIR/inside_ablation.png, and prints JSON with
- guided backprop: the layer and the images that excite its first 6 maps most,
  for the trained and a random-init discriminator;
- filter ablation: the maps of the generator's last hidden layer picked by the
  box regression, the change inside vs outside the box, and the same for as
  many randomly chosen maps (3 draws) as a control;
- de-duplication: precision and recall of the hashing autoencoder on the 5,000
  bundled digits with 100 exact, 100 one-pixel-shifted and 100 noisy copies
  injected, after 10 and 20 epochs.
"""

import json
import os
import sys
import time

import numpy as np

import dcgan_keras as dk
from dcgan_keras.experiments import ablation, dedup, features, guided
from dcgan_keras.export import load_checkpoint

path = sys.argv[1] if len(sys.argv) > 1 else "runs/digits/ckpt.keras"
out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join("docs", "images")
os.makedirs(out_dir, exist_ok=True)
model = load_checkpoint(path)
discriminator, generator = model.discriminator, model.sampler
report = {"checkpoint": path}

# 1. Guided backprop: the first 6 maps of D's last conv layer, trained vs random init (figure 5).
start = time.time()
images, _ = dedup.load_images("digits", image_size=discriminator.input_shape[1],
                              channels=discriminator.input_shape[-1])
images = images[np.random.default_rng(0).permutation(len(images))[:2000]]
random_d = features.random_discriminator(discriminator, seed=0)
fig = guided.guided_figure(discriminator, random_d, images, channels=range(6), k=6, with_inputs=True, dpi=110)
fig.savefig(os.path.join(out_dir, "inside_guided.png"))
top = {name: guided.top_activating(d, images, None, k=6, channels=range(6))
       for name, d in (("trained", discriminator), ("random", random_d))}
report["guided"] = {
    "layer": top["trained"]["layer"],
    "images_searched": len(images),
    # How much of the map lies on the digit: share of |gradient| on pixels with ink.
    "share_of_gradient_on_ink": {
        name: round(float(np.mean([
            (np.abs(g) * (images[idx] > -0.5)).sum() / np.abs(g).sum()
            for c, row in zip(t["channels"], t["indices"])
            for idx, g in [(row, guided.guided_backprop(d, images[row], None, c))]
        ])), 3)
        for name, d, t in (("trained", discriminator, top["trained"]), ("random", random_d, top["random"]))
    },
    "ink_share_of_pixels": round(float((images > -0.5).mean()), 3),
    "seconds": round(time.time() - start, 1),
}

# 2. Filter ablation: "forgetting to draw" the top half of the digits (figure 6).
start = time.time()
box = (4, 4, 16, 28)
fit = ablation.fit_box_filters(generator, None, box=box, num_samples=150, seed=1)
ablated = ablation.ablate_filters(generator, fit["layer"], fit["filters"])
z = dk.latent_vectors_for(generator, 256, seed=0)
before = np.asarray(generator(z, training=False))
after = np.asarray(ablated(z, training=False))
change = ablation.ablation_change(before, after, box=box)
controls = []
total = ablation.num_filters(generator, fit["layer"])
for seed in range(3):
    pick = np.random.default_rng(seed).permutation(total)[: len(fit["filters"])]
    control = np.asarray(ablation.ablate_filters(generator, fit["layer"], pick)(z, training=False))
    controls.append(ablation.ablation_change(before, control, box=box))
fig = ablation.ablation_figure(before[:10], after[:10], box=box, columns=10, dpi=110)
fig.savefig(os.path.join(out_dir, "inside_ablation.png"))
report["ablation"] = {
    "layer": fit["layer"], "box": box, "filters_dropped": len(fit["filters"]), "filters_total": total,
    "regression_balanced_accuracy": round(fit["accuracy"], 3),
    "box_filters": {k: round(v, 3) for k, v in change.items()},
    "random_filters_mean_of_3": {k: round(float(np.mean([c[k] for c in controls])), 3) for k in change},
    "images": len(z), "seconds": round(time.time() - start, 1),
}

# 3. De-duplication with injected exact, shifted and noisy copies (section 4.1.1).
digits, _ = dedup.load_images("digits")
data, pairs, kinds = dedup.inject_duplicates(digits, 100, 100, 100, shift=1, noise=0.05, seed=0)
injected = {b for _, b in pairs}
report["dedup"] = {"images": len(data), "injected": {"exact": 100, "shifted_1px": 100, "noise_0.05": 100}}
for epochs in (10, 20):
    start = time.time()
    encoder, history = dedup.train_hash_autoencoder(data, epochs=epochs, seed=0)
    result = dedup.find_duplicates(encoder, data)
    scores = dedup.pair_scores(result["group_indices"], pairs)
    by_kind = {k: round(dedup.pair_scores(result["group_indices"],
                                          [p for p, kk in zip(pairs, kinds) if kk == k])["recall"], 3)
               for k in ("exact", "shifted", "noisy")}
    report["dedup"][f"epochs_{epochs}"] = {
        "pair_precision": round(scores["precision"], 3), "pair_recall": round(scores["recall"], 3),
        "recall_by_kind": by_kind, "predicted_pairs": scores["predicted_pairs"],
        "groups": result["counts"]["groups"], "dropped": result["counts"]["duplicates"],
        "dropped_that_were_injected": round(len(injected & set(result["drop"])) / max(len(result["drop"]), 1), 3),
        "final_loss": round(float(history.history["loss"][-1]), 4), "seconds": round(time.time() - start, 1),
    }

print(json.dumps(report, indent=1))

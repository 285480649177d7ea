"""The paper's section 6 on a 64x64 Twemoji DCGAN: walks, arithmetic by label, guided backprop, forgetting to draw.

Usage: python reports/colour_report.py RUN_DIR/ckpt.keras [OUT_DIR]

Writes to OUT_DIR (default docs/images): twemoji_walks.png and .gif,
twemoji_arithmetic_tone.png and twemoji_arithmetic_gender.png (the paper's
figure 7 layout), twemoji_guided.png and twemoji_ablation.png; prints JSON with
- walks: the smoothness (largest step / mean step) of 4 closed slerp walks of the
  trained generator and of an untrained one (fresh weights, the same z), in pixel
  space and in the Twemoji judge's feature space;
- arithmetic: mean(tone 5) - mean(tone 1) and mean(female) - mean(male), exemplars
  picked by classifiers among 1,024 samples, added to 64 other source samples,
  against a random vector of the same norm, seeds 0, 1, 2 (`arithmetic --by-tone`,
  `--by-gender`); the figure-7 results' classes;
- guided: the share of |gradient| on drawn pixels and the category / emoji purity
  of the top 9 images of every map of D's last convolution, trained vs random D;
- ablation: the maps of G's last hidden layer that draw "Smileys & Emotion" (fitted
  on 600 samples labelled by the judge), dropped, against as many random maps.
"""

import json
import os
import sys
import time

import numpy as np

from dcgan_keras.data import load_twemoji, twemoji_categories
from dcgan_keras.experiments import ablation, guided, latent
from dcgan_keras.experiments._shared import random_like
from dcgan_keras.export import load_checkpoint
from dcgan_keras.images import image_grid
from dcgan_keras.metrics import feature_model
from dcgan_keras.sampling import batched_forward, latent_vectors_for
from dcgan_keras.twemoji_judge import load_twemoji_classifier, probabilities, real_twemoji

path = sys.argv[1]
out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join("docs", "images")
os.makedirs(out_dir, exist_ok=True)
model = load_checkpoint(path)
generator, discriminator = model.sampler, model.discriminator
judge, judge_accuracy = load_twemoji_classifier()
judge_features = feature_model(judge, "features")
report = {"checkpoint": path, "judge_held_out_accuracy": round(judge_accuracy, 4)}


def r(d):
    return {k: round(float(v), 4) if isinstance(v, (float, np.floating)) else v for k, v in d.items()}


# 1. Walks (section 6.1): trained vs untrained, same z.
start = time.time()
walks = {name: latent.walk_smoothness(g, walks=4, num_points=4, steps=8, seed=0, features=judge_features)
         for name, g in (("trained", generator), ("untrained", random_like(generator, seed=0)))}
images = walks["trained"]["images"]
latent.save_walk_grid(images, os.path.join(out_dir, "twemoji_walks.png"))
frames = np.stack([image_grid(f, rows=len(images)) for f in np.stack(images, axis=1)])
latent.save_gif(frames, os.path.join(out_dir, "twemoji_walks.gif"))
report["walks"] = {name: {k: [round(x, 3) for x in w[k]] if isinstance(w[k], list) else round(w[k], 3)
                          for k in ("pixel", "mean_pixel", "feature", "mean_feature")}
                   for name, w in walks.items()}
report["walks"]["seconds"] = round(time.time() - start, 1)

# 2. Arithmetic by label (section 6.3.2): tone 1 -> tone 5 and male -> female.
start = time.time()
report["arithmetic"] = {}
for kind, train, classes, source, target in (
        ("tone", latent.train_twemoji_tone_classifier, latent.TONE_CLASSES, "tone1", "tone5"),
        ("gender", latent.train_twemoji_gender_classifier, latent.GENDER_CLASSES, "male", "female")):
    classify, accuracy = train(seed=0)
    s, t = classes.index(source), classes.index(target)
    rows = []
    for seed in range(3):
        z = latent.latent_vectors_for(generator, 1024, seed)
        out = latent.label_arithmetic(generator, z, classify, source=s, target=t, k=3, num_bases=64, seed=seed)
        row = {"seed": seed, "pool_counts": out["pool_counts"], "bases": len(out["bases"]),
               "share_target": round(out["share_target"], 3),
               "share_target_random": round(out["share_target_random"], 3),
               "result_classes": np.bincount(out["labels"], minlength=len(classes)).tolist(),
               "random_classes": np.bincount(out["random_labels"], minlength=len(classes)).tolist(),
               "vector_norm": round(float(np.linalg.norm(out["vector"])), 2),
               "mean_z_norm": round(float(np.linalg.norm(z, axis=1).mean()), 2)}
        if kind == "tone":
            row["mean_tone"] = {
                "bases": round(float(latent.mean_tone(classify(latent.render(generator, z[out["bases"]]))).mean()), 2),
                "vector": round(float(latent.mean_tone(classify(out["images"])).mean()), 2),
                "random": round(float(latent.mean_tone(classify(out["random_images"])).mean()), 2)}
        if seed == 0:
            fig7 = latent.figure7(generator, z, classify, plus=t, minus=s, base=s, seed=0)
            latent.figure7_plot(fig7, names=(target, source, source), dpi=110).savefig(
                os.path.join(out_dir, f"twemoji_arithmetic_{kind}.png"))
            row["figure7_classes"] = np.bincount(fig7["labels"], minlength=len(classes)).tolist()
        rows.append(row)
    report["arithmetic"][kind] = {"classifier_held_out_accuracy": round(accuracy, 3), "classes": classes,
                                  "seeds": rows}
report["arithmetic"]["seconds"] = round(time.time() - start, 1)

# 3. Guided backprop (section 6.2): D's last convolution, trained vs random init, on all 3,491 emoji.
start = time.time()
real, categories = real_twemoji()
bases = load_twemoji()["base"]
random_d = random_like(discriminator, seed=0)
fig = guided.guided_figure(discriminator, random_d, real, channels=range(6), k=6, with_inputs=True, dpi=110)
fig.savefig(os.path.join(out_dir, "twemoji_guided.png"))
drawn = ablation.foreground_mask(real)[..., None]
report["guided"] = {"images_searched": len(real)}
for name, d in (("trained", discriminator), ("random", random_d)):
    top9 = guided.top_activating(d, real, None, k=9)
    top6 = guided.top_activating(d, real, None, k=6, channels=range(6))
    on_drawn = [float((np.abs(g) * drawn[idx]).sum() / np.abs(g).sum())
                for c, idx in zip(top6["channels"], top6["indices"])
                for g in [guided.guided_backprop(d, real[idx], None, c)]]
    report["guided"][name] = {
        "layer": top9["layer"], "maps": len(top9["channels"]),
        "category_purity_top9": round(float(guided.label_purity(top9["indices"], categories).mean()), 3),
        "emoji_purity_top9": round(float(guided.label_purity(top9["indices"], bases).mean()), 3),
        "share_of_gradient_on_drawn_pixels": round(float(np.mean(on_drawn)), 3),
    }
report["guided"]["drawn_share_of_pixels"] = round(float(drawn.mean()), 3)
report["guided"]["largest_category_share"] = round(float(np.bincount(categories).max() / len(categories)), 3)
report["guided"]["seconds"] = round(time.time() - start, 1)

# 4. Forgetting to draw (section 6.3.1): the maps that draw smileys.
start = time.time()
concept = twemoji_categories().index("Smileys & Emotion")


def classify_judge(x):
    return probabilities(judge, x)


fit = ablation.fit_concept_filters(generator, classify_judge, concept, None, num_samples=600, seed=1)
total = ablation.num_filters(generator, fit["layer"])
z = latent_vectors_for(generator, 1024, 0)
before = batched_forward(generator, z)
labels = classify_judge(before).argmax(axis=1)
report["ablation"] = {"layer": fit["layer"], "num_filters": total, "fit_samples": 600,
                      "fit_concept_samples": fit["concept_samples"],
                      "regression_balanced_accuracy": round(fit["accuracy"], 3),
                      "positive_maps": fit["filters"], "measured": len(z)}
for label, filters in (("all_positive", fit["filters"]), ("strongest_4", fit["filters"][:4])):
    ablated = ablation.ablate_filters(generator, fit["layer"], filters)
    after = batched_forward(ablated, z)
    controls = [ablation.concept_removal(labels, classify_judge(batched_forward(
        ablation.ablate_filters(generator, fit["layer"],
                                np.random.default_rng(draw).permutation(total)[: len(filters)]), z)).argmax(axis=1),
        concept) for draw in range(3)]
    report["ablation"][label] = {
        "dropped": len(filters),
        "fitted": r(ablation.concept_removal(labels, classify_judge(after).argmax(axis=1), concept)),
        "random_mean_of_3": r({k: np.mean([c[k] for c in controls]) for k in controls[0]}),
    }
    if label == "strongest_4":
        shown = np.flatnonzero(labels == concept)[:10]
        ablation.ablation_figure(before[shown], after[shown], columns=len(shown), dpi=110,
                                 titles=("Smileys & Emotion", "4 maps dropped")).savefig(
            os.path.join(out_dir, "twemoji_ablation.png"))
report["ablation"]["seconds"] = round(time.time() - start, 1)
print(json.dumps(report, indent=1))

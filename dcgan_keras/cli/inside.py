"""Sub-commands `guided`, `ablate` and `dedup`: inside the networks, and de-duplication.

    python -m dcgan_keras guided --checkpoint runs/digits/ckpt.keras --out runs/digits/guided
    python -m dcgan_keras ablate --model saved_models/digits/1 --box 8,8,24,24 --out runs/digits/ablate
    python -m dcgan_keras ablate --model runs/digits/ckpt.keras --layer up2_relu --filters 3,7,12 --out ...
    python -m dcgan_keras ablate --model runs/twemoji/ckpt.keras --concept "Smileys & Emotion" --out ...
    python -m dcgan_keras dedup path/to/images/ --out runs/dedup
    python -m dcgan_keras dedup twemoji --out runs/dedup_twemoji

Each prints a JSON summary; see `docs/inside.md`.
"""

from __future__ import annotations

import json
import os

import numpy as np

from dcgan_keras.cli._common import add_checkpoint, add_model, add_out, comma_ints, layer_name_or_index


def register(subparsers):
    p = subparsers.add_parser(
        "guided", help="guided backprop of D's feature maps, trained vs random-init D (paper figure 5)")
    add_checkpoint(p, help="a .keras checkpoint of a DCGAN (a SavedModel export has no discriminator)")
    p.add_argument("--dataset", default="digits",
                   help="images to search for the top activations: 'digits', a folder, or a .npy/.npz file")
    p.add_argument("--max-images", type=int, default=2000, help="search at most this many images")
    p.add_argument("--layer", default=None,
                   help="layer name (e.g. down3_lrelu) or index of D's conv outputs (default: the last)")
    p.add_argument("--channels", default="0,1,2,3,4,5", help="feature maps to show, e.g. 0,1,2")
    p.add_argument("--k", type=int, default=6, help="top activating images per feature map")
    p.add_argument("--with-inputs", action="store_true", help="show each image beside its map")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-init discriminator")
    add_out(p)
    p.set_defaults(func=_run_guided)

    p = subparsers.add_parser(
        "ablate", help="zero feature maps of a generator layer and regenerate the same z (paper figure 6)")
    add_model(p)
    p.add_argument("--layer", default=None,
                   help="feature layer, e.g. up2_relu, or its index (default: the last hidden feature maps)")
    p.add_argument("--filters", default=None, help="indices of the feature maps to zero, e.g. 3,7,12")
    p.add_argument("--box", default=None,
                   help="y0,x0,y1,x1 in output pixels (end excluded): pick the maps by logistic regression")
    p.add_argument("--concept", default=None,
                   help="64x64 Twemoji generators: a category of the Twemoji judge (e.g. 'Smileys & Emotion'); pick "
                        "the maps that draw it by logistic regression on samples the judge labels, and measure how "
                        "often it disappears against dropping as many random maps")
    p.add_argument("--num-samples", type=int, default=150, help="samples the regression is fitted on")
    p.add_argument("--num-measure", type=int, default=512,
                   help="with --concept: samples the judge classifies before and after")
    p.add_argument("--controls", type=int, default=3, help="with --concept: draws of as many random maps")
    p.add_argument("--max-filters", type=int, default=None, help="keep only the strongest positive maps")
    p.add_argument("--num-images", type=int, default=16, help="images shown and measured")
    p.add_argument("--seed", type=int, default=0, help="seed of the shown z (the fit uses seed + 1)")
    p.add_argument("--save", default=None, help="also save the ablated generator to this .keras path")
    add_out(p)
    p.set_defaults(func=_run_ablate)

    p = subparsers.add_parser(
        "dedup", help="flag near duplicates with a hashing autoencoder; writes a report, deletes nothing")
    p.add_argument("dataset", help="'digits', 'twemoji' (also scored against its skin-tone groups), "
                                    "a folder of images, or a .npy/.npz file")
    p.add_argument("--out", required=True, help="folder for dedup_report.json and keep.txt")
    p.add_argument("--channels", type=int, default=None, help="1 or 3 (default: the dataset's own)")
    p.add_argument("--code-size", type=int, default=128, help="code units = hash bits (paper: 128)")
    p.add_argument("--epochs", type=int, default=10, help="epochs of the autoencoder's training")
    p.add_argument("--batch-size", type=int, default=128, help="images per step of the autoencoder")
    p.add_argument("--noise", type=float, default=0.2, help="input noise std while training (de-noising)")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout on the code while training")
    p.add_argument("--threshold", type=float, default=0.0, help="a code unit is on above this activation")
    p.add_argument("--max-images", type=int, default=None, help="use at most this many images (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the autoencoder's weights, noise and shuffling")
    p.set_defaults(func=_run_dedup)


def _run_guided(args) -> int:
    from dcgan_keras.experiments import features, guided
    from dcgan_keras.experiments.dedup import load_images

    d = features.load_discriminator(args.checkpoint)
    size, channels = int(d.input_shape[1]), int(d.input_shape[-1])
    images, names = load_images(args.dataset, size, channels, max_images=args.max_images)
    layer = layer_name_or_index(args.layer)
    channel_list = comma_ints(args.channels, "channels")
    random_d = features.random_discriminator(d, seed=args.seed)
    fig = guided.guided_figure(d, random_d, images, layer, channel_list, args.k, args.with_inputs)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "guided.png")
    fig.savefig(path)
    top = guided.top_activating(d, images, layer, args.k, channel_list)
    print(json.dumps({
        "figure": path,
        "layer": top["layer"],
        "top_images": {str(c): [names[i] for i in row] for c, row in zip(top["channels"], top["indices"])},
    }, indent=1))
    return 0


def _run_ablate(args) -> int:
    from dcgan_keras.experiments import ablation

    if args.concept is not None:
        return _ablate_concept(args, ablation)
    if args.filters is None and args.box is None:
        raise ValueError(
            "Pass --filters (feature maps to zero), --box or --concept (to pick them by logistic regression; "
            f"with --filters, the box is only measured). Received: --filters=None, --box=None"
        )
    return _ablate(args, ablation)


def _ablate_concept(args, ablation) -> int:
    from dcgan_keras.data import twemoji_categories
    from dcgan_keras.sampling import batched_forward, latent_vectors_for
    from dcgan_keras.twemoji_judge import load_twemoji_classifier, probabilities

    categories = twemoji_categories()
    if args.concept not in categories:
        raise ValueError(f"--concept must be one of the Twemoji judge's categories {categories}. "
                         f"Received: --concept {args.concept!r}")
    generator = ablation.load_keras_generator(args.model)
    if tuple(generator.output_shape[1:]) != (64, 64, 3):
        raise ValueError("--concept needs a generator of 64x64 colour images, trained on Twemoji (the judge is "
                         f"trained on them). Received: a generator of {tuple(generator.output_shape[1:])} images")
    judge, _ = load_twemoji_classifier()
    classify = lambda x: probabilities(judge, x)  # noqa: E731
    concept = categories.index(args.concept)
    layer = layer_name_or_index(args.layer)
    fit = ablation.fit_concept_filters(generator, classify, concept, layer, num_samples=args.num_samples,
                                       seed=args.seed + 1, max_filters=args.max_filters)
    ablated = ablation.ablate_filters(generator, fit["layer"], fit["filters"])
    z = latent_vectors_for(generator, args.num_measure, args.seed)
    before = batched_forward(generator, z)
    labels = classify(before).argmax(axis=1)
    after = batched_forward(ablated, z)
    scores = ablation.concept_removal(labels, classify(after).argmax(axis=1), concept)
    total = ablation.num_filters(generator, fit["layer"])
    controls = []
    for draw in range(args.controls):
        pick = np.random.default_rng(draw).permutation(total)[: len(fit["filters"])]
        control = batched_forward(ablation.ablate_filters(generator, fit["layer"], pick), z)
        controls.append(ablation.concept_removal(labels, classify(control).argmax(axis=1), concept))
    shown = np.flatnonzero(labels == concept)[: args.num_images]  # samples of the concept, before and after
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ablation.png")
    if len(shown):
        ablation.ablation_figure(before[shown], after[shown], columns=len(shown),
                                 titles=(args.concept, "maps dropped")).savefig(path)
    summary = {
        "figure": path if len(shown) else None, "layer": fit["layer"], "concept": args.concept,
        "filters": fit["filters"], "num_filters": total, "fit_samples": args.num_samples,
        "fit_concept_samples": fit["concept_samples"],
        "regression_balanced_accuracy": round(fit["accuracy"], 4), "measured": args.num_measure,
        "fitted_maps": {k: round(v, 4) for k, v in scores.items()},
        "random_maps_mean": {k: round(float(np.nanmean([c[k] for c in controls])), 4) for k in scores}
        if controls else None,
    }
    if args.save:
        ablated.save(args.save)
        summary["saved"] = args.save
    print(json.dumps(summary, indent=1))
    return 0


def _ablate(args, ablation) -> int:
    from dcgan_keras.sampling import latent_vectors_for

    generator = ablation.load_keras_generator(args.model)
    layer = layer_name_or_index(args.layer)
    box = comma_ints(args.box, "box")
    fit = None
    if args.filters is not None:
        filters = comma_ints(args.filters, "filters")
    else:
        fit = ablation.fit_box_filters(generator, layer, box=box, num_samples=args.num_samples,
                                       seed=args.seed + 1, max_filters=args.max_filters)
        filters = fit["filters"]
    ablated = ablation.ablate_filters(generator, layer, filters)
    z = latent_vectors_for(generator, args.num_images, args.seed)
    before = np.asarray(generator(z, training=False))
    after = np.asarray(ablated(z, training=False))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ablation.png")
    ablation.ablation_figure(before, after, box=box).savefig(path)
    summary = {"figure": path, "layer": ablated.ablated["layer"], "filters": filters,
               "num_filters": ablation.num_filters(generator, layer)}
    if fit is not None:
        summary["regression_balanced_accuracy"] = round(fit["accuracy"], 4)
    if box is not None:
        summary["change"] = {k: round(v, 4) for k, v in ablation.ablation_change(before, after, box=box).items()}
    else:
        summary["mean_abs_change"] = round(float(np.abs(after - before).mean()), 4)
    if args.save:
        ablated.save(args.save)
        summary["saved"] = args.save
    print(json.dumps(summary, indent=1))
    return 0


def _run_dedup(args) -> int:
    import time

    from dcgan_keras.experiments import dedup

    start = time.time()
    images, names = dedup.load_images(args.dataset, dedup.HASH_SIZE, args.channels, args.max_images)
    encoder, history = dedup.train_hash_autoencoder(
        images, code_size=args.code_size, epochs=args.epochs, batch_size=args.batch_size,
        noise=args.noise, dropout=args.dropout, seed=args.seed,
    )
    result = dedup.find_duplicates(encoder, images, args.threshold)
    extra = {
        "dataset": os.fspath(args.dataset),
        "autoencoder": {"input": int(np.prod(images.shape[1:])), "code": args.code_size, "epochs": args.epochs,
                        "noise": args.noise, "dropout": args.dropout,
                        "final_loss": round(float(history.history["loss"][-1]), 5)},
    }
    scores = {}
    if os.fspath(args.dataset) == "twemoji" and args.max_images is None:
        scores = {"tone_group_scores": dedup.twemoji_tone_scores(result["group_indices"])}
    paths = dedup.write_report(result, args.out, names, {**extra, **scores})
    print(json.dumps({**paths, "counts": result["counts"], "threshold": result["threshold"], **scores,
                      "seconds": round(time.time() - start, 1)}, indent=1))
    return 0

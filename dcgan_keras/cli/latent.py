"""Sub-commands `walk` and `arithmetic`: latent space walks and vector arithmetic.

    python -m dcgan_keras walk --model runs/digits/ckpt.keras --out runs/digits/walks
    python -m dcgan_keras arithmetic --model saved_models/digits/1 --out runs/digits/arith
    python -m dcgan_keras arithmetic --model ... --out ... --plus 3,17,40 --minus 5,9,21 --base 1,2,60
    python -m dcgan_keras arithmetic --model runs/twemoji/ckpt.keras --out ... --by-gender --grid-size 1024
    python -m dcgan_keras arithmetic --model runs/twemoji/ckpt.keras --out ... --by-tone --grid-size 1024
    python -m dcgan_keras walk --model runs/twemoji/ckpt.keras --out runs/twemoji/walks --untrained
"""

from __future__ import annotations

import json
import os

import numpy as np

from dcgan_keras.cli._common import add_model, add_out, comma_ints


def register(subparsers):
    p = subparsers.add_parser("walk", help="latent space walks (closed loops) as a PNG grid and a GIF")
    add_model(p)
    p.add_argument("--walks", type=int, default=4, help="number of walks (rows of the grid)")
    p.add_argument("--points", type=int, default=4, help="random points each walk loops through")
    p.add_argument("--steps", type=int, default=8, help="frames between two points")
    p.add_argument("--method", default="slerp", choices=("slerp", "lerp"),
                   help="spherical or straight-line interpolation between the points")
    p.add_argument("--seed", type=int, default=0, help="walk i uses seed + i")
    p.add_argument("--duration-ms", type=int, default=100, help="GIF frame duration")
    p.add_argument("--untrained", action="store_true",
                   help="also walk an untrained generator of the same architecture (fresh weights) through the "
                        "same z and print its smoothness, the baseline of section 6.1 (.keras checkpoints only)")
    add_out(p)
    p.set_defaults(func=_run_walk)

    p = subparsers.add_parser(
        "arithmetic",
        help="latent vector arithmetic: without indices, a numbered grid to pick exemplars from",
    )
    add_model(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the numbered samples")
    p.add_argument("--grid-size", type=int, default=64, help="number of numbered samples")
    p.add_argument("--plus", default=None, help="indices of exemplars to add, e.g. 3,17,40")
    p.add_argument("--minus", default=None, help="indices of exemplars to subtract")
    p.add_argument("--base", default=None, help="indices of exemplars to start from")
    p.add_argument("--noise-scale", type=float, default=0.25,
                   help="scale of the uniform noise added to the result for more samples (paper: 0.25)")
    p.add_argument("--by-gender", action="store_true",
                   help="64x64 Twemoji generators: a classifier trained on the emoji's gender labels picks 3 "
                        "female and 3 male samples among --grid-size ones, adds mean(female) - mean(male) to "
                        "other male samples, and scores how many turn female against random vectors of the same norm")
    p.add_argument("--by-tone", action="store_true",
                   help="as --by-gender with a skin-tone classifier: mean(tone 5) - mean(tone 1) added to other "
                        "tone-1 samples, scored by how many turn tone 5 and by their mean tone")
    p.add_argument("--num-bases", type=int, default=64,
                   help="with --by-gender / --by-tone: samples the vector is added to")
    add_out(p)
    p.set_defaults(func=_run_arithmetic)


def _load(path):
    from dcgan_keras.checkpoints import load_generator

    try:
        return load_generator(path)
    except (FileNotFoundError, OSError) as error:
        raise ValueError(str(error)) from error


def _run_walk(args) -> int:
    from dcgan_keras.experiments import latent
    from dcgan_keras.images import image_grid

    latent.check_walk_size(args.walks, args.points, args.steps, names=("--walks", "--points", "--steps"))
    if args.duration_ms < 10:
        raise ValueError(
            "--duration-ms must be at least 10: GIF frame times are whole hundredths of a second "
            f"(100 is 10 frames a second). Received: --duration-ms {args.duration_ms}"
        )
    if args.untrained and not os.fspath(args.model).endswith(".keras"):
        raise ValueError("--untrained rebuilds the generator with fresh weights and needs a .keras checkpoint, "
                         f"e.g. runs/NAME/ckpt.keras. Received: --model {args.model}")
    generator = _load(args.model)
    walks, scores = [], []
    for i in range(args.walks):
        images, _ = latent.walk_loop(generator, num_points=args.points, steps=args.steps,
                                     seed=args.seed + i, method=args.method)
        walks.append(images)
        scores.append(latent.smoothness(images, closed=True))
    untrained = {}
    if args.untrained:
        from dcgan_keras.experiments._shared import random_like

        baseline = latent.walk_smoothness(random_like(generator, seed=args.seed), args.walks, args.points,
                                          args.steps, args.seed, args.method)
        untrained = {"untrained_smoothness": [round(v, 4) for v in baseline["pixel"]],
                     "untrained_mean_smoothness": round(baseline["mean_pixel"], 4)}
    os.makedirs(args.out, exist_ok=True)
    grid_path = latent.save_walk_grid(walks, os.path.join(args.out, f"walks_{args.method}.png"))
    # One GIF frame per step: the walks side by side, in one column.
    stacked = np.stack(walks, axis=1)  # (frames, walks, H, W, C)
    frames = np.stack([image_grid(f, rows=len(walks)) for f in stacked])
    gif_path = latent.save_gif(frames, os.path.join(args.out, f"walks_{args.method}.gif"),
                               duration_ms=args.duration_ms)
    print(json.dumps({
        "grid": grid_path,
        "gif": gif_path,
        "frames": len(frames),
        "method": args.method,
        "smoothness": [round(s["smoothness"], 4) for s in scores],
        "mean_smoothness": round(float(np.mean([s["smoothness"] for s in scores])), 4),
        **untrained,
        "walks": scores,
    }, indent=1))
    return 0


def _indices(text, name, limit):
    if not text:
        return None
    idx = comma_ints(text, name)
    bad = [i for i in idx if not 0 <= i < limit]
    if bad or not idx:
        raise ValueError(f"--{name} indices must be in 0..{limit - 1}. Received: {text!r}")
    return idx


def _run_arithmetic(args) -> int:
    from dcgan_keras.experiments import latent
    from dcgan_keras.images import image_grid, numbered_grid, save_png

    if not 1 <= args.grid_size <= latent.MAX_PICK_IMAGES:
        raise ValueError(
            f"--grid-size must be in 1..{latent.MAX_PICK_IMAGES}: the number of numbered samples to pick "
            f"exemplars from (dcgan_keras.experiments.latent.MAX_PICK_IMAGES). Received: --grid-size {args.grid_size}"
        )
    generator = _load(args.model)
    z = latent.latent_vectors_for(generator, args.grid_size, args.seed)
    if args.by_gender and args.by_tone:
        raise ValueError("Pass one of --by-gender and --by-tone. Received: --by-gender --by-tone")
    if args.by_gender or args.by_tone:
        return _by_label(args, generator, z, "gender" if args.by_gender else "tone")
    plus = _indices(args.plus, "plus", args.grid_size)
    minus = _indices(args.minus, "minus", args.grid_size)
    base = _indices(args.base, "base", args.grid_size)
    os.makedirs(args.out, exist_ok=True)
    if plus is None and minus is None and base is None:
        path = numbered_grid(latent.render(generator, z), os.path.join(args.out, f"pick_seed{args.seed}.png"))
        print(json.dumps({
            "grid": path,
            "hint": "pick ~3 exemplars per concept and rerun with --plus i,j,k --minus i,j,k --base i,j,k",
        }, indent=1))
        return 0
    result = latent.arithmetic(
        generator, plus=z[plus] if plus else None, minus=z[minus] if minus else None,
        base=z[base] if base else None, noise_scale=args.noise_scale, seed=args.seed,
    )
    fan_path = save_png(image_grid(result["images"], rows=3), os.path.join(args.out, "arithmetic_fan.png"))
    # The terms as in the paper's figure 7: the exemplars' mean images, then the result.
    terms = [latent.concept_vector(z[idx]) for idx in (base, plus, minus) if idx]
    terms_path = save_png(
        image_grid(np.concatenate([latent.render(generator, np.stack(terms)), result["images"][:1]]), rows=1),
        os.path.join(args.out, "arithmetic_terms.png"),
    )
    np.save(os.path.join(args.out, "arithmetic_z.npy"), result["zs"])
    print(json.dumps({
        "fan": fan_path,
        "terms": terms_path,
        "plus": plus, "minus": minus, "base": base,
        "result_ink_mass": round(float(latent.ink_mass(result["images"][:1])[0]), 4),
    }, indent=1))
    return 0


# What --by-gender and --by-tone move: (source, target) classes and the classifier.
_LABELS = {
    "gender": {"source": "male", "target": "female", "classes": "GENDER_CLASSES",
               "train": "train_twemoji_gender_classifier"},
    "tone": {"source": "tone1", "target": "tone5", "classes": "TONE_CLASSES",
             "train": "train_twemoji_tone_classifier"},
}


def _by_label(args, generator, z, kind) -> int:
    from dcgan_keras.experiments import latent
    from dcgan_keras.images import image_grid, save_png

    spec = _LABELS[kind]
    shape = tuple(int(s) for s in latent.render(generator, z[:1]).shape[1:])
    if shape != (64, 64, 3):
        raise ValueError(f"--by-{kind} needs a generator of 64x64 colour images, trained on Twemoji (its classifier "
                         f"is trained on them). Received: a generator of {shape} images")
    os.makedirs(args.out, exist_ok=True)
    classes = getattr(latent, spec["classes"])
    classify, accuracy = getattr(latent, spec["train"])(seed=0)  # one classifier for every --seed
    source, target = classes.index(spec["source"]), classes.index(spec["target"])
    out = latent.label_arithmetic(generator, z, classify, source=source, target=target, k=3,
                                  num_bases=args.num_bases, seed=args.seed)
    shown = out["bases"][:8]
    rows = [latent.render(generator, z[shown]), out["images"][:8], out["random_images"][:8]]
    path = save_png(image_grid(np.concatenate(rows), rows=3), os.path.join(args.out, f"arithmetic_by_{kind}.png"))
    # The paper's figure 7: 3 target - 3 source + 3 other source exemplars, the result and 8 noisy variants.
    fig7 = latent.figure7(generator, z, classify, plus=target, minus=source, base=source,
                          noise_scale=args.noise_scale, seed=args.seed)
    names = (spec["target"], spec["source"], spec["source"])
    fig7_path = os.path.join(args.out, f"arithmetic_by_{kind}_figure7.png")
    latent.figure7_plot(fig7, names=names).savefig(fig7_path)
    summary = {
        "figure": path,
        "rows": f"{spec['source']} samples; + mean({spec['target']}) - mean({spec['source']}); "
                "+ a random vector of the same norm",
        "figure7": fig7_path,
        "classifier_held_out_accuracy": round(accuracy, 4),
        "classes": classes,
        "pool_counts": out["pool_counts"],
        f"{spec['target']}_exemplars": out["target_exemplars"].tolist(),
        f"{spec['source']}_exemplars": out["source_exemplars"].tolist(),
        "vector_norm": round(float(np.linalg.norm(out["vector"])), 3),
        "mean_z_norm": round(float(np.linalg.norm(z, axis=1).mean()), 3),
        "num_bases": len(out["bases"]),
        f"share_{spec['target']}": round(out["share_target"], 4),
        f"share_{spec['target']}_random": round(out["share_target_random"], 4),
        "result_classes": np.bincount(out["labels"], minlength=len(classes)).tolist(),
        "random_classes": np.bincount(out["random_labels"], minlength=len(classes)).tolist(),
        f"figure7_share_{spec['target']}": round(fig7["share_plus"], 4),
    }
    if kind == "tone":
        summary["mean_tone"] = {
            "bases": round(float(latent.mean_tone(classify(latent.render(generator, z[out["bases"]]))).mean()), 3),
            "vector": round(float(latent.mean_tone(classify(out["images"])).mean()), 3),
            "random": round(float(latent.mean_tone(classify(out["random_images"])).mean()), 3),
        }
    print(json.dumps(summary, indent=1))
    return 0

"""Sub-command `evaluate`: sample quality and memorisation of a trained generator.

    python -m dcgan_keras evaluate --model saved_models/digits/1 --dataset digits
    python -m dcgan_keras evaluate --model runs/digits/ckpt.keras --num 1000 --seed 0 --json
    python -m dcgan_keras evaluate --model saved_models/twemoji/1 --dataset twemoji

For the bundled digits it prints the offline judge's scores (classifier
score, coverage, class shares), the digit Fréchet distance on the judge's
features, k-NN precision/recall and the memorisation ratio (pixel nearest
neighbours in the training digits; well below 1 means copying). For the
bundled Twemoji it prints the Twemoji judge's numbers for the samples (means
over 5 draws of noise) beside those of held-out real emoji
(`dcgan_keras.twemoji_judge`).
"""

from __future__ import annotations

import json

from dcgan_keras.cli._common import add_model


def register(subparsers):
    p = subparsers.add_parser("evaluate", help="score a generator's samples (judge, digit FD, precision/recall, memorisation)")
    add_model(p, help="a .keras checkpoint or an exported SavedModel folder")
    p.add_argument("--dataset", default="digits", choices=("digits", "twemoji"),
                   help="the bundled data the generator was trained on, whose judge scores it (default: digits)")
    p.add_argument("--num", type=int, default=None,
                   help="number of samples (default: 1000 for digits, 672 for twemoji: as many as its held-out emoji)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples' noise")
    p.add_argument("--k", type=int, default=3, help="neighbours of the precision/recall manifolds")
    p.add_argument("--draws", type=int, default=None,
                   help="twemoji: sets of --num samples to score, from seeds --seed, --seed + 1, ...; "
                        "the numbers are their means (default: 5; one draw's Fréchet distance is noisy)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_evaluate)


def format_table(report: dict) -> str:
    """The report as a two-column text table."""
    rows = []
    for key, value in report.items():
        if isinstance(value, float):
            text = f"{value:.4f}"
        elif isinstance(value, list):
            text = " ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)
        else:
            text = str(value)
        rows.append((key, text))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _twemoji_table(report: dict) -> str:
    """The Twemoji report as a table: one row per number, samples beside held-out real emoji."""
    samples, real = report["samples"], report["real_held_out"]
    rows = [("", "samples", "real held-out")]
    rows += [(key, f"{value:.4f}", f"{real[key]:.4f}" if key in real else "")
             for key, value in samples.items() if isinstance(value, float)]
    rows += [("num_images", f"{samples['num_images']} x {samples['draws']} draws", str(real["num_images"]))]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"model           {report['model']}", f"judge_accuracy  {report['judge_accuracy']:.4f} (held-out emoji)"]
    return "\n".join(lines + ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows])


def _run_evaluate(args) -> int:
    if args.num is not None and args.num < 2:
        raise ValueError(f"--num must be at least 2. Received: --num {args.num}")
    from dcgan_keras.checkpoints import load_generator

    if args.draws is not None and (args.draws < 1 or (args.dataset == "digits" and args.draws != 1)):
        raise ValueError(f"--draws must be 1 or more, and only --dataset twemoji averages draws. "
                         f"Received: --draws {args.draws} --dataset {args.dataset}")
    generator = load_generator(args.model)
    if args.dataset == "twemoji":
        from dcgan_keras.twemoji_judge import evaluate_twemoji

        report = {"model": args.model,
                  **evaluate_twemoji(generator, num=args.num, seed=args.seed, k=args.k, draws=args.draws)}
        print(json.dumps(report, indent=2) if args.json else _twemoji_table(report))
        return 0
    from dcgan_keras.judge import evaluate_digits

    num = 1000 if args.num is None else args.num
    report = {"model": args.model, **evaluate_digits(generator, num=num, seed=args.seed, k=args.k)}
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0

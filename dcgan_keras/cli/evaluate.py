"""Sub-command `evaluate`: sample quality and memorisation of a trained generator.

    python -m dcgan_keras evaluate --model saved_models/digits/1 --dataset digits
    python -m dcgan_keras evaluate --model runs/digits/ckpt.keras --num 1000 --seed 0 --json

For the bundled digits it prints the offline judge's scores (classifier
score, coverage, class shares), the digit Fréchet distance on the judge's
features, k-NN precision/recall and the memorisation ratio (pixel nearest
neighbours in the training digits; well below 1 means copying).
"""

from __future__ import annotations

import json

from dcgan_keras.cli._common import add_model


def register(subparsers):
    p = subparsers.add_parser("evaluate", help="score a generator's samples (judge, digit FD, precision/recall, memorisation)")
    add_model(p, help="a .keras checkpoint or an exported SavedModel folder")
    p.add_argument("--dataset", default="digits", help="the training data to compare with (only 'digits')")
    p.add_argument("--num", type=int, default=1000, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples' noise")
    p.add_argument("--k", type=int, default=3, help="neighbours of the precision/recall manifolds")
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


def _run_evaluate(args) -> int:
    if args.num < 2:
        raise ValueError(f"--num must be at least 2. Received: {args.num}")
    if args.dataset != "digits":
        raise ValueError(
            "evaluate compares with the bundled digits only (--dataset digits); for other "
            "datasets use dcgan_keras.metrics.fid with inception_features(). "
            f"Received: --dataset {args.dataset!r}"
        )
    from dcgan_keras.export import load_generator
    from dcgan_keras.judge import evaluate_digits

    generator = load_generator(args.model)
    report = {"model": args.model, **evaluate_digits(generator, num=args.num, seed=args.seed, k=args.k)}
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0

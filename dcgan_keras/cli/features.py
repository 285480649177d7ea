"""Sub-command `features`: the discriminator as a feature extractor (paper tables 1 and 2).

    python -m dcgan_keras features --checkpoint runs/NAME/ckpt.keras --labels-per-class 100 --draws 5
    python -m dcgan_keras features --checkpoint runs/NAME/ckpt.keras --dataset tfds:svhn_cropped \\
        --labels-per-class 100 --max-examples 20000
    python -m dcgan_keras features --checkpoint runs/twemoji/ckpt.keras --dataset twemoji \
        --labels-per-class 50 --draws 2 --drop-small-classes

Prints a markdown table of linear L2-SVM test accuracy on raw pixels, random-D
features and trained-D features, and of the same D architecture trained with
the labels only. `--json PATH` also writes the full table.
"""

from __future__ import annotations

from dcgan_keras.cli._common import add_checkpoint


def register(subparsers):
    p = subparsers.add_parser(
        "features", help="few-label classification with the discriminator's features (L2-SVM)")
    add_checkpoint(p, help="a .keras checkpoint of a DCGAN (or of a bare discriminator)")
    p.add_argument("--dataset", default="digits",
                   help="'digits' (bundled, offline), 'twemoji' (bundled, offline, labelled by category; "
                        "no test emoji shares its base emoji with a labelled one) or 'tfds:NAME[:SPLIT]' "
                        "with labels, e.g. tfds:cifar10, tfds:svhn_cropped")
    p.add_argument("--labels-per-class", type=int, default=100,
                   help="labelled training examples per class for the SVM (paper, SVHN: 100)")
    p.add_argument("--draws", type=int, default=5, help="random draws of the labelled examples")
    p.add_argument("--seed", type=int, default=0, help="seed of the label draws, the random-init discriminator and the supervised baseline")
    p.add_argument("--max-examples", type=int, default=None,
                   help="use at most this many examples (digits: a fixed random subset; TFDS: the first ones)")
    p.add_argument("--supervised-epochs", type=int, default=20,
                   help="epochs of the supervised baseline (the same D trained on the labels only)")
    p.add_argument("--no-supervised", action="store_true", help="skip the supervised baseline")
    p.add_argument("--drop-small-classes", action="store_true",
                   help="leave out classes with too few examples for --labels-per-class (and say which)")
    p.add_argument("--data-dir", default=None, help="TFDS data folder")
    p.add_argument("--json", default=None, help="also write the full table as JSON to this path")
    p.set_defaults(func=_run_features)


def _run_features(args) -> int:
    import sys

    from dcgan_keras.data import load_labelled
    from dcgan_keras.experiments import features
    from dcgan_keras.files import atomic_write_json

    discriminator = features.load_discriminator(args.checkpoint)
    images, labels = load_labelled(args.dataset, args.max_examples, args.data_dir)
    groups = None
    if args.dataset == "twemoji" and not args.max_examples:  # skin-tone variants stay on one side
        from dcgan_keras.data import load_twemoji

        groups = load_twemoji()["base"]
    table = features.features_protocol(
        discriminator, images, labels, labels_per_class=args.labels_per_class, draws=args.draws,
        seed=args.seed, include_supervised=not args.no_supervised,
        supervised_epochs=args.supervised_epochs, groups=groups, drop_small=args.drop_small_classes,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    table["checkpoint"] = args.checkpoint
    table["dataset"] = args.dataset
    if args.json:
        atomic_write_json(args.json, table, indent=1)
    print(f"Dataset {args.dataset}, checkpoint {args.checkpoint}")
    print(features.markdown_table(table))
    return 0

"""Sub-command `page`: a static web page that runs the generator in the browser (onnxruntime-web).

    python -m dcgan_keras page --model saved_models/digits/1 --out site/
    python -m dcgan_keras page --model runs/digits/ckpt.keras --out site/ --ort-url ort/   # a local onnxruntime-web
    cd site && python -m http.server 8000     # then open http://localhost:8000/

The folder holds index.html, app.js, generator.onnx and generator.json; any
static file server serves it. Needs the `onnx` extra (tf2onnx) to write the ONNX file.
"""

from __future__ import annotations

import json
import os

from dcgan_keras.cli._common import add_model, add_out


def register(subparsers):
    p = subparsers.add_parser("page", help="a static web page that runs the generator in the browser")
    add_model(p)
    add_out(p, help="the page's folder, e.g. site/")
    p.add_argument(
        "--ort-url", default=None,
        help="URL of onnxruntime-web's dist/ folder, ending in '/' (default: a CDN, pinned); "
        "a relative URL is relative to the page",
    )
    p.add_argument("--title", default="DCGAN generator", help="the page's title")
    p.set_defaults(func=_run_page)


def _run_page(args) -> int:
    model = os.fspath(args.model)
    if not (model.endswith(".keras") or os.path.isdir(model)):
        raise ValueError(
            "--model must be a .keras checkpoint or a SavedModel version folder (saved_models/NAME/N). "
            f"Received: {model!r}"
        )
    from dcgan_keras.page import ORT_URL, write_page

    if model.endswith(".keras"):
        from dcgan_keras.checkpoints import load_generator

        generator = load_generator(model)
    else:
        from dcgan_keras.checkpoints import generator_from_saved_model

        generator = generator_from_saved_model(model)
    index = write_page(generator, args.out, ort_url=args.ort_url or ORT_URL, title=args.title)
    print(json.dumps({"page": index, "files": sorted(os.listdir(args.out)), "serve": f"cd {args.out} && python -m http.server"}))
    return 0

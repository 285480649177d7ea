"""A static web page that runs the generator in the browser, with onnxruntime-web.

`write_page` writes a folder that any static file server serves
(`python -m http.server`): `index.html`, `app.js`, the generator as
`generator.onnx` and its description `generator.json`. The page draws
z ~ N(0, I) itself (a seeded generator and Box-Muller), shows a grid of
samples with a "New seed" button, a latent walk between two samples on a
slider, and downloads the walk's current image as a PNG.

onnxruntime-web is loaded from `ORT_URL` (a CDN, pinned to the version in
`tests/web/package.json`) unless another `ort_url` is given, e.g. a local
copy of `onnxruntime-web/dist/` for offline use.
"""

from __future__ import annotations

import os

# onnxruntime-web's dist/ folder on a CDN, at a pinned version (the same as tests/web/package.json).
ORT_VERSION = "1.31.1"
ORT_URL = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_VERSION}/dist/"
ASSETS = ("index.html", "app.js")


def _asset(name: str) -> str:
    from importlib import resources

    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def write_page(model, out_dir, ort_url: str = ORT_URL, title: str = "DCGAN generator") -> str:
    """Writes the page folder for a generator; returns the path of its `index.html`.

    Args:
        model: a `DCGAN` (its `sampler`) or a generator model (float32 or not;
            the page runs a float32 ONNX copy, `portable.export_onnx`).
        out_dir: the folder to write (created; files of the same names are replaced).
        ort_url: the URL of onnxruntime-web's `dist/` folder, ending in "/";
            relative URLs are relative to the page.
        title: the page's title.

    Returns:
        The path of `out_dir/index.html`.

    Example:

    ```python
    write_page(generator, "site/")
    # then: cd site && python -m http.server 8000, and open http://localhost:8000/
    ```
    """
    import html

    from dcgan_keras import portable

    if not ort_url.endswith("/"):
        raise ValueError(
            "ort_url must be the URL of onnxruntime-web's dist/ folder, ending in '/' "
            f"(e.g. {ORT_URL}). Received: ort_url={ort_url!r}"
        )
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    portable.export_onnx(model, os.path.join(out_dir, portable.FILE_NAMES["onnx"]))
    portable.write_interface(model, "onnx", out_dir)
    page = _asset("index.html").replace("{{ORT_URL}}", html.escape(ort_url, quote=True))
    page = page.replace("{{TITLE}}", html.escape(title))
    with open(os.path.join(out_dir, "index.html"), "w", encoding="utf-8") as f:
        f.write(page)
    with open(os.path.join(out_dir, "app.js"), "w", encoding="utf-8") as f:
        f.write(_asset("app.js"))
    return os.path.join(out_dir, "index.html")


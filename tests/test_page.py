"""The generator's web page in a real browser: headless Chromium draws onnxruntime's images for its z.

Needs Chromium and its driver (`apt-get install -y chromium chromium-driver`) and
onnxruntime-web in tests/web/node_modules (`npm ci --prefix tests/web`); `.ci/run`
installs both. The page loads onnxruntime-web from that local copy, not the CDN.

The screenshot test writes docs/images/page.png from the model named by the
environment variable DCGAN_PAGE_MODEL (a .keras checkpoint or a SavedModel folder);
without it, from a tiny untrained generator into a temporary folder.
"""

import base64
import functools
import http.server
import io
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

import dcgan_keras as dk
from dcgan_keras.experiments.latent import slerp
from dcgan_keras.page import ORT_VERSION, write_page
from dcgan_keras.portable import OnnxGenerator
from dcgan_keras.sampling import record_prior

WEB = Path(__file__).parent / "web"
DIST = WEB / "node_modules" / "onnxruntime-web" / "dist"
REPO = Path(__file__).parent.parent
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1000,760",
)
SHAPES = {"gray32": (32, 1, (10, 5.0, "normal")), "color64": (64, 3, (0, 5.0, "uniform"))}
GRID = 4
MAX_LEVEL_DIFF = 1  # of 255: the page's pixels against onnxruntime's in Python, same z


def _chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip(
            "Chromium and chromedriver are not installed here (apt-get install -y chromium chromium-driver; "
            ".ci/run installs them)"
        )
    return browser, driver


@pytest.fixture(scope="module")
def ort_dist():
    """onnxruntime-web's dist/ folder, installed from tests/web/package.json when missing."""
    if not (DIST / "ort.wasm.min.js").is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed here, so onnxruntime-web cannot be (npm ci --prefix tests/web)")
        subprocess.run([npm, "ci", "--prefix", str(WEB), "--no-audit", "--no-fund"], check=True, capture_output=True)
    return DIST


@pytest.fixture(scope="module")
def site(tmp_path_factory, ort_dist):
    """A served folder: a page per generator shape (site/NAME/) and onnxruntime-web beside them (ort/)."""
    root = tmp_path_factory.mktemp("site")
    (root / "ort").symlink_to(ort_dist, target_is_directory=True)
    pages = {}
    for name, (size, channels, prior) in SHAPES.items():
        config = dk.Config(image_size=size, channels=channels, latent_dim=16, base_width=8, seed=3, init_stddev=0.3)
        generator = dk.build_generator(config)  # wide weights: images with contrast, untrained
        record_prior(generator, *prior)  # the page's z ~ N(0, I) goes through the map to this prior
        write_page(generator, root / name, ort_url="../ort/")
        pages[name] = OnnxGenerator(root / name / "generator.onnx")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, pages
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = _chromium()
    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _open(browser, url):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 90).until(lambda d: d.execute_script("return window.dcgan && (dcgan.ready || !!dcgan.error)"))
    assert browser.execute_script("return dcgan.error") is None


def _canvas(browser, canvas_id) -> np.ndarray:
    """A canvas's pixels, RGBA uint8, read through a PNG (lossless)."""
    url = browser.execute_script(f"return document.getElementById('{canvas_id}').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))


def _pixels(images) -> np.ndarray:
    """What the page draws: round((x + 1) * 127.5) in 0..255, as RGB (a gray image in all three)."""
    pixels = np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.int16)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def _tiles(canvas, height, width) -> np.ndarray:
    rgb = canvas[..., :3].astype(np.int16)
    return np.stack([rgb[r * height : (r + 1) * height, c * width : (c + 1) * width] for r in range(GRID) for c in range(GRID)])


def _wait_for_render(browser, before):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return dcgan.renders") > before)
    assert browser.execute_script("return dcgan.error") is None


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_page_draws_onnxruntimes_images_for_the_z_it_drew(browser, site, name):
    url, _, generators = site
    _open(browser, f"{url}/{name}/index.html")
    size, channels, _ = SHAPES[name]
    z = np.asarray(browser.execute_script("return Array.from(dcgan.lastZ)"), "float32").reshape(GRID * GRID, 16)
    assert browser.execute_script("return dcgan.seed") == 0
    np.testing.assert_array_equal(z, np.asarray(browser.execute_script("return Array.from(dcgan.standardNormal(256, 0))"), "float32").reshape(16, 16))
    drawn = _tiles(_canvas(browser, "grid"), size, size)
    expected = _pixels(generators[name](z))
    difference = np.abs(drawn - expected)
    assert drawn.shape == expected.shape == (16, size, size, 3)
    assert difference.max() <= MAX_LEVEL_DIFF, difference.max()
    assert (difference > 0).mean() < 0.01
    assert drawn.std() > 5  # not a blank canvas
    if channels == 3:  # colour: the channels are not mixed up (a gray copy would make them equal)
        assert np.abs(drawn[..., 0] - drawn[..., 2]).mean() > 1


def test_the_slider_walks_from_one_sample_to_the_next_and_new_seed_draws_new_samples(browser, site, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _, generators = site
    _open(browser, f"{url}/gray32/index.html?seed=5")
    generator = generators["gray32"]
    assert browser.execute_script("return dcgan.seed") == 5
    grid = _tiles(_canvas(browser, "grid"), 32, 32)
    np.testing.assert_array_equal(_canvas(browser, "walk")[..., :3], grid[0])  # t = 0: sample 1

    slider = browser.find_element(By.ID, "slider")
    renders = browser.execute_script("return dcgan.renders")
    slider.send_keys(Keys.END)  # t = 1: sample 2
    _wait_for_render(browser, renders)
    assert browser.execute_script("return dcgan.t") == 1
    np.testing.assert_array_equal(_canvas(browser, "walk")[..., :3], grid[1])

    renders = browser.execute_script("return dcgan.renders")
    ActionChains(browser).move_to_element(slider).click().perform()  # the middle of the slider
    _wait_for_render(browser, renders)
    t = browser.execute_script("return dcgan.t")
    assert 0.3 < t < 0.7, t
    z = np.asarray(browser.execute_script("return Array.from(dcgan.lastZ)"), "float32").reshape(16, 16)
    walk_z = np.asarray(browser.execute_script("return Array.from(dcgan.walkZ)"), "float32")
    np.testing.assert_allclose(walk_z, slerp(z[0], z[1], t), atol=1e-5)  # the same walk as experiments.latent
    walk = _canvas(browser, "walk")[..., :3].astype(np.int16)
    assert np.abs(walk - _pixels(generator(walk_z[None]))[0]).max() <= MAX_LEVEL_DIFF
    assert np.abs(walk - grid[0]).mean() > 1 and np.abs(walk - grid[1]).mean() > 1  # between the two, not either

    # Download: the walk's current image as a PNG file, the same pixels.
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.find_element(By.ID, "download").click()
    for _ in range(100):
        done = [p for p in tmp_path.glob("dcgan-seed5-1-to-2-t*.png")]
        if done:
            break
        threading.Event().wait(0.1)
    assert done, sorted(os.listdir(tmp_path))
    np.testing.assert_array_equal(np.asarray(Image.open(done[0]).convert("RGB")), walk)

    renders = browser.execute_script("return dcgan.renders")
    browser.find_element(By.ID, "new-seed").click()
    _wait_for_render(browser, renders)
    assert browser.execute_script("return dcgan.seed") == 6
    new_z = np.asarray(browser.execute_script("return Array.from(dcgan.lastZ)"), "float32").reshape(16, 16)
    assert not np.allclose(new_z, z)
    new_grid = _tiles(_canvas(browser, "grid"), 32, 32)
    assert np.abs(new_grid - _pixels(generator(new_z))).max() <= MAX_LEVEL_DIFF
    assert np.abs(new_grid - grid).mean() > 1


def test_the_page_draws_z_from_a_standard_normal_the_same_for_the_same_seed(browser, site):
    url, _, _ = site
    _open(browser, f"{url}/gray32/index.html")
    draw = np.asarray(browser.execute_script("return Array.from(dcgan.standardNormal(20001, 7))"))
    again = np.asarray(browser.execute_script("return Array.from(dcgan.standardNormal(20001, 7))"))
    other = np.asarray(browser.execute_script("return Array.from(dcgan.standardNormal(20001, 8))"))
    np.testing.assert_array_equal(draw, again)
    assert np.abs(draw - other).mean() > 0.5
    assert np.isfinite(draw).all() and len(draw) == 20001
    assert stats.kstest(draw, "norm").pvalue > 0.01
    assert abs(draw.mean()) < 0.03 and abs(draw.std() - 1) < 0.03
    assert abs(np.corrcoef(draw[:-1:2], draw[1::2])[0, 1]) < 0.05  # the pairs of Box-Muller are independent


def test_a_screenshot_of_the_page_shows_the_grid_and_the_walk(browser, site, tmp_path):
    url, root, _ = site
    model = os.environ.get("DCGAN_PAGE_MODEL")
    if model:  # docs/images/page.png, from a trained generator
        from dcgan_keras.experiments.ablation import generator_from_saved_model
        from dcgan_keras.export import load_generator

        generator = load_generator(model) if model.endswith(".keras") else generator_from_saved_model(model)
        write_page(generator, root / "docs", ort_url="../ort/", title="DCGAN generator: digits")
        out, page = REPO / "docs" / "images" / "page.png", "docs"
    else:
        out, page = tmp_path / "page.png", "color64"
    _open(browser, f"{url}/{page}/index.html")
    from selenium.webdriver.common.by import By

    renders = browser.execute_script("return dcgan.renders")
    browser.find_element(By.ID, "slider").click()  # half-way along the walk
    _wait_for_render(browser, renders)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(out))
    shot = np.asarray(Image.open(out).convert("RGB"))
    assert shot.shape[0] >= 550 and shot.shape[1] >= 900, shot.shape
    grid = browser.find_element(By.ID, "grid").rect
    region = shot[int(grid["y"]) : int(grid["y"] + grid["height"]), int(grid["x"]) : int(grid["x"] + grid["width"])]
    assert region.std() > 5  # the samples are on screen, not a blank canvas


def test_the_pinned_onnxruntime_web_is_the_one_the_tests_install():
    assert json.loads((WEB / "package.json").read_text())["dependencies"]["onnxruntime-web"] == ORT_VERSION


def test_page_command_writes_the_folder_from_a_saved_model_or_a_checkpoint(make_tiny_gan, tmp_path, capsys):
    import tensorflow as tf

    from dcgan_keras.cli import main
    from dcgan_keras.page import ORT_URL
    from dcgan_keras.sampling import latent_vectors

    gan = make_tiny_gan(0)
    checkpoint = str(tmp_path / "ckpt.keras")
    gan.save(checkpoint)
    saved_model = dk.export_generator(gan, tmp_path / "saved_models" / "digits")
    assert main(["page", "--model", saved_model, "--out", str(tmp_path / "a")]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == ["app.js", "generator.json", "generator.onnx", "index.html"]
    assert f'src="{ORT_URL}ort.wasm.min.js"' in (tmp_path / "a" / "index.html").read_text()
    assert main(["page", "--model", checkpoint, "--out", str(tmp_path / "b"), "--ort-url", "ort/"]) == 0
    assert 'src="ort/ort.wasm.min.js"' in (tmp_path / "b" / "index.html").read_text()

    z = latent_vectors(8, 16, seed=4)  # N(0, I): the page's ONNX takes what the SavedModel takes
    pixels = tf.saved_model.load(saved_model).signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    for folder in ("a", "b"):
        drawn = np.clip(np.round((OnnxGenerator(tmp_path / folder)(z) + 1) * 127.5), 0, 255)
        assert np.abs(drawn - pixels).max() <= MAX_LEVEL_DIFF, folder
    assert main(["page", "--model", str(tmp_path / "generator.onnx"), "--out", str(tmp_path / "c")]) == 2
    assert "Received: " in capsys.readouterr().err

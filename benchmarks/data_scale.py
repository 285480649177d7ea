"""Input pipeline at scale: time to the first batch, images/s and peak memory vs folder size.

For each N, a folder of N generated JPEGs (made once, kept under --root) is read
at 64x64 by `make_dataset` (cache="auto": in memory up to 512 MiB of uint8, else
read again every epoch) and, when torch and torchvision are installed, by
torchvision's ImageFolder + DataLoader(num_workers=2, batch_size=128,
shuffle=True). Only the input is timed, no training. Before each loader every
file is read once (a warm page cache for both; `--page-cache cold` empties it
instead, so both read from disk), and the loaders take turns going first.
Each measurement runs in a fresh process, so its peak memory is its own: the
main process's peak RSS plus its DataLoader workers' (each worker's VmHWM,
sampled while it runs), and the peak PSS of all of them together (shared
pages counted once).

    python benchmarks/data_scale.py --sizes 10000 50000 100000 200000 --max-batches 200 --repeats 3
    python benchmarks/data_scale.py --sizes 1000000 --max-batches 200 --repeats 2 --page-cache cold
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

IMAGE_SIZE = 64
BATCH = 128


def _write_images(args):
    folder, start, stop, side = args
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(start)
    for i in range(start, stop):
        sub = os.path.join(folder, f"{i // 1000:04d}")  # 1,000 files a folder, as datasets often come
        os.makedirs(sub, exist_ok=True)
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # smooth images: JPEG sizes like photos'
        Image.fromarray(small).resize((side, side), Image.BILINEAR).save(os.path.join(sub, f"{i:07d}.jpg"), quality=90)


def _reuse_larger(root: str, count: int, side: int, folder: str) -> bool:
    """Hard-links the first `count` files of a larger complete folder: the same images, made once."""
    sizes = []
    for name in os.listdir(root) if os.path.isdir(root) else []:
        parts = name.split("_")
        if len(parts) == 3 and parts[0] == "jpegs" and parts[2] == str(side) and parts[1].isdigit():
            if int(parts[1]) > count and os.path.exists(os.path.join(root, name + ".complete")):
                sizes.append(int(parts[1]))
    if not sizes:
        return False
    source = os.path.join(root, f"jpegs_{min(sizes)}_{side}")
    for i in range(count):
        sub = f"{i // 1000:04d}"
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        target = os.path.join(folder, sub, f"{i:07d}.jpg")
        if not os.path.exists(target):
            os.link(os.path.join(source, sub, f"{i:07d}.jpg"), target)
    return True


def make_folder(root: str, count: int, side: int) -> str:
    """A folder of `count` JPEGs of side `side`, made once and reused.

    Image i depends only on i (its chunk's seed), so a smaller folder is made of
    hard links to a larger one's first files when there is one; otherwise the
    images are written by one process per core. A marker file next to the
    folder (not in it: it is no image) records that it is complete.
    """
    folder = os.path.join(root, f"jpegs_{count}_{side}")
    done = folder + ".complete"
    if os.path.exists(os.path.join(folder, ".complete")):  # marker of an earlier version, inside
        os.replace(os.path.join(folder, ".complete"), done)
    if not os.path.exists(done):
        if not _reuse_larger(root, count, side, folder):
            chunks = [(folder, s, min(s + 2000, count), side) for s in range(0, count, 2000)]
            with multiprocessing.Pool() as pool:
                pool.map(_write_images, chunks)
        open(done, "w").close()
    return folder


def drop_page_cache() -> None:
    """Empties the kernel's page cache (Linux, as root), so that a loader reads every file from disk."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
    except OSError as error:
        sys.exit(f"--page-cache cold needs root on Linux to write /proc/sys/vm/drop_caches: {error}")


def warm_page_cache(folder: str) -> None:
    """Reads every file of `folder` once, so that no loader pays for a cold disk the other did not."""
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                while f.read(1 << 20):
                    pass


def _measure(make, max_batches: int | None, epochs: int = 2, batches=iter) -> dict:
    """First batch seconds and images/s per epoch of the loader `make()` builds (once, timed).

    Each epoch iterates `batches(loader)` anew. With `max_batches`, each epoch is
    timed over its first `max_batches` batches only (from the start of the
    epoch, so a buffer's fill counts).
    """
    result = {}
    start = time.perf_counter()
    loader = make()
    for epoch in range(epochs):
        images, count, epoch_start = 0, 0, time.perf_counter()
        for batch in batches(loader):
            if "first_batch_s" not in result:
                result["first_batch_s"] = time.perf_counter() - start
            images += int(batch.shape[0])
            count += 1
            if max_batches and count >= max_batches:
                break
        result[f"epoch{epoch + 1}_images_per_s"] = images / (time.perf_counter() - epoch_start)
        result[f"epoch{epoch + 1}_batches"] = count
    return result


def _import(loader: str) -> None:
    if loader == "torchvision":
        import torchvision  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if loader == "ours":
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import dcgan_keras  # noqa: F401
    else:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


def run_ours(folder: str, count: int, max_batches: int | None) -> dict:
    import dcgan_keras as dk

    # cache="auto" keeps the images in memory when they fit the budget: such a run
    # fills the cache in epoch 1, which is then timed in full (and epoch 2 as well).
    cached = count * IMAGE_SIZE * IMAGE_SIZE * 3 <= dk.data.CACHE_BUDGET_BYTES
    result = _measure(
        lambda: dk.make_dataset(folder, image_size=IMAGE_SIZE, channels=3, batch_size=BATCH, seed=0),
        None if cached else max_batches,
    )
    return dict(result, mode="cached in memory" if cached else "streamed")


def run_tf_data(folder: str, count: int, max_batches: int | None) -> dict:
    """The least a tf.data pipeline does: no sample check, no skipping of bad files, no cache."""
    import tensorflow as tf

    def load(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.image.resize(image, (IMAGE_SIZE, IMAGE_SIZE))  # the generated images are square

    def make():
        files = tf.data.Dataset.list_files(os.path.join(folder, "*", "*.jpg"), shuffle=True, seed=0)
        images = files.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH, drop_remainder=True)
        return images.map(lambda x: x / 127.5 - 1.0).prefetch(tf.data.AUTOTUNE)

    return dict(_measure(make, max_batches), mode="streamed")


def run_keras(folder: str, count: int, max_batches: int | None) -> dict:
    """Keras' own folder loader, `image_dataset_from_directory`, scaled to [-1, 1]."""
    import keras

    def make():
        images = keras.utils.image_dataset_from_directory(
            folder, labels=None, image_size=(IMAGE_SIZE, IMAGE_SIZE), batch_size=BATCH,
            shuffle=True, seed=0, crop_to_aspect_ratio=True, verbose=False,
        )
        return images.map(lambda x: x / 127.5 - 1.0)

    return dict(_measure(make, max_batches), mode="streamed")


def run_torchvision(folder: str, count: int, max_batches: int | None) -> dict:
    import torch
    from torchvision import datasets, transforms

    torch.set_num_threads(1)
    transform = transforms.Compose([
        transforms.Resize(IMAGE_SIZE), transforms.CenterCrop(IMAGE_SIZE), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])

    def make():
        return torch.utils.data.DataLoader(
            datasets.ImageFolder(folder, transform=transform),
            batch_size=BATCH, shuffle=True, num_workers=2, drop_last=True,
        )

    result = _measure(make, max_batches, batches=lambda loader: (images for images, _ in loader))
    return dict(result, mode="streamed")


LOADERS = {"ours": run_ours, "tf.data": run_tf_data, "keras": run_keras, "torchvision": run_torchvision}


def _children() -> list[int]:
    """Ids of this process's live children (DataLoader workers; tf.data has none: threads only)."""
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def _kb(pid: int | str, name: str, field: str) -> int:
    """A `field:  N kB` line of /proc/PID/NAME, in kB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class MemorySampler(threading.Thread):
    """Samples, every `interval` s, the peak RSS (VmHWM) of each live child and the PSS of all.

    `workers_kb`: the largest sum, over samples, of the live children's VmHWM (the
    peaks of the workers alive together; pages they share with the parent are
    counted in each). `pss_kb`: the largest sampled PSS of this process plus its
    children (shared pages split between them: counted once in all).
    """

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval, self.workers_kb, self.pss_kb = interval, 0, 0
        self._done = threading.Event()

    def sample(self) -> None:
        children = _children()
        self.workers_kb = max(self.workers_kb, sum(_kb(pid, "status", "VmHWM") for pid in children))
        pss = sum(_kb(pid, "smaps_rollup", "Pss") for pid in ["self", *children])
        self.pss_kb = max(self.pss_kb, pss)

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample()


def _peak_rss(sampler: MemorySampler) -> dict:
    main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {
        "main_rss_gb": main * 1024 / 1e9,
        "workers_rss_gb": sampler.workers_kb * 1024 / 1e9,
        "peak_rss_gb": (main + sampler.workers_kb) * 1024 / 1e9,
        "peak_pss_gb": sampler.pss_kb * 1024 / 1e9,
    }


def _median(results: list[dict]) -> dict:
    """One row of `results` (runs of one loader), each number the median of its runs."""
    row = dict(results[0], runs=len(results))
    for key, value in row.items():
        if isinstance(value, float):
            row[key] = statistics.median(r[key] for r in results)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--side", type=int, default=80, help="side of the generated JPEGs")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "dcgan_data_scale"),
                        help="where the generated folders are kept between runs")
    parser.add_argument("--loaders", nargs="+", choices=list(LOADERS), default=list(LOADERS),
                        help="tf.data: the least a pipeline does (list_files, decode, resize, batch); keras: "
                             "keras.utils.image_dataset_from_directory")
    parser.add_argument("--max-batches", type=int, default=None,
                        help="time only the first M batches of each epoch of a loader that streams "
                             "(ours when the images do not fit the cache budget, torchvision always); "
                             "a loader that fills a cache in epoch 1 still runs its epochs in full")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each loader per N (taking turns to go first); the table shows medians")
    parser.add_argument("--page-cache", choices=("warm", "cold"), default="warm",
                        help="warm: read every file once before each run (a folder larger than the "
                             "machine keeps cached ends up partly on disk anyway); cold: empty the page "
                             "cache before each run (root only), so both loaders read from disk")
    parser.add_argument("--one", nargs=3, metavar=("LOADER", "FOLDER", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        loader, folder, count = args.one
        # Imported before memory is sampled: importing TensorFlow runs short-lived
        # subprocesses (library look-ups), which are no workers of a loader.
        start = time.perf_counter()
        _import(loader)
        import_s = time.perf_counter() - start
        sampler = MemorySampler()
        sampler.start()
        result = LOADERS[loader](folder, int(count), args.max_batches)
        sampler.stop()
        result.update(_peak_rss(sampler), import_s=import_s)
        print(json.dumps(result))
        return
    rows = []
    for count in args.sizes:
        start = time.perf_counter()
        folder = make_folder(args.root, count, args.side)
        print(f"# {count} JPEGs of {args.side}x{args.side} in {folder} ({time.perf_counter() - start:.0f} s)", flush=True)
        runs = {}
        for repeat in range(args.repeats):
            # The loaders take turns going first, and the page cache is filled (or
            # emptied) before each one, so that both start from the same state.
            for loader in args.loaders if repeat % 2 == 0 else args.loaders[::-1]:
                if loader == "torchvision":
                    try:
                        import torchvision  # noqa: F401
                    except ImportError:
                        print("# torchvision is not installed: skipped", flush=True)
                        continue
                drop_page_cache() if args.page_cache == "cold" else warm_page_cache(folder)
                command = [sys.executable, __file__, "--one", loader, folder, str(count)]
                if args.max_batches:
                    command += ["--max-batches", str(args.max_batches)]
                out = subprocess.run(command, capture_output=True, text=True)
                if out.returncode:
                    print(f"# {loader} at {count} failed: {out.stderr[-2000:]}", flush=True)
                    continue
                result = {"loader": loader, "n": count, **json.loads(out.stdout.strip().splitlines()[-1])}
                runs.setdefault(loader, []).append(result)
                print(json.dumps(result), flush=True)
        rows += [_median(results) for results in runs.values()]
    full = "every batch of each epoch"
    timed = f"the first {args.max_batches} batches of each epoch when streamed, {full} when cached" if args.max_batches else full
    print(f"\nBatches of {BATCH} at {IMAGE_SIZE}x{IMAGE_SIZE}; images/s over {timed}; "
          f"each number the median of {args.repeats} run(s); page cache {args.page_cache} before each run.")
    print("Peak RSS: the main process's ru_maxrss plus the largest sum of its live worker processes' "
          "VmHWM (/proc/PID/status, sampled every 0.1 s; ours has none). Peak PSS: the largest sampled "
          "sum of /proc/PID/smaps_rollup Pss over the process and its workers.")
    print("\n| loader | N | first batch (s) | epoch 1 (img/s) | epoch 2 (img/s) | batches timed (1, 2) "
          "| peak RSS, main + workers (GB) | peak PSS (GB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['loader']} ({r['mode']}) | {r['n']:,} | {r['first_batch_s']:.2f} | "
              f"{r['epoch1_images_per_s']:,.0f} | {r['epoch2_images_per_s']:,.0f} | "
              f"{r['epoch1_batches']:,}, {r['epoch2_batches']:,} | "
              f"{r['peak_rss_gb']:.2f} = {r['main_rss_gb']:.2f} + {r['workers_rss_gb']:.2f} | {r['peak_pss_gb']:.2f} |")


if __name__ == "__main__":
    main()

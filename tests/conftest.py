import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

import dcgan_keras as dk  # noqa: E402


def pytest_configure(config):
    # Keras 3 converts TensorFlow tensors with np.array(x, copy=False), which NumPy 2 answers
    # with this warning for every tensor of every get_weights/predict call (hundreds per run);
    # it is Keras' and TensorFlow's to fix, and says nothing about this package.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras",
    )


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def judge_cache(tmp_path_factory):
    """The digit judge is cached in a temporary folder, not the home directory.

    Set in the environment, so that subprocesses (the notebook's kernel) use it too.
    """
    from dcgan_keras import judge

    folder = tmp_path_factory.mktemp("judge_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(judge.CACHE_ENV, str(folder))
        yield folder


# Normal z (not the paper's uniform z, `Config()`'s default), as the tests of walks and arithmetic were measured with.
TINY = dict(image_size=32, channels=1, latent_dim=16, base_width=8, batch_size=32, seed=1, latent_distribution="normal")


@pytest.fixture
def tiny_config():
    """A DCGAN small enough to train in seconds on 2 CPU cores."""
    return dk.Config(**TINY)


@pytest.fixture(scope="session")
def make_tiny_gan():
    """A function seed -> a compiled, untrained DCGAN of `tiny_config` (for module-scoped fixtures)."""

    def make(seed: int = 0) -> dk.DCGAN:
        import keras

        keras.utils.set_random_seed(seed)
        gan = dk.DCGAN.from_settings(dk.Config(**TINY))
        gan.compile()
        return gan

    return make

"""dcgan_keras: the DCGAN of Radford, Metz & Chintala (ICLR 2016) in Keras 3."""

from dcgan_keras import _backend  # noqa: F401  (selects the TensorFlow backend)
from dcgan_keras.callbacks import EvaluationCallback, LossPlot, SampleGrid
from dcgan_keras.config import Config
from dcgan_keras.data import load_digits, load_twemoji, make_dataset
from dcgan_keras.distribute import make_strategy
from dcgan_keras.export import export_generator, load_generator
from dcgan_keras.gan import DCGAN, paper_adam
from dcgan_keras.images import from_uint8, image_grid, save_png, to_uint8
from dcgan_keras.fast_layers import DownConv2D, UpConv2D  # version 0.1's layer names
from dcgan_keras.networks import build_discriminator, build_generator
from dcgan_keras.sampling import batched_forward, latent_vectors, latent_vectors_for
from dcgan_keras.train_lib import train

__version__ = "0.1.0"

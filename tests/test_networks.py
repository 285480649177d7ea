import numpy as np
import pytest

import dcgan_keras as dk
import keras


@pytest.mark.parametrize("image_size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_networks_map_noise_to_images_in_tanh_range_and_images_to_one_logit(image_size, channels):
    config = dk.Config(image_size=image_size, channels=channels, latent_dim=10, base_width=4)
    generator, discriminator = dk.build_generator(config), dk.build_discriminator(config)
    z = dk.latent_vectors(3, 10, seed=0)
    images = np.asarray(generator(z, training=False))
    assert images.shape == (3, image_size, image_size, channels)
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.std() > 0
    logits = np.asarray(discriminator(images, training=False))
    assert logits.shape == (3, 1)


def test_default_64px_networks_have_the_pytorch_reference_parameter_counts():
    # pytorch/examples dcgan (nz=100, ngf=ndf=64, nc=3): G 3,576,704 and
    # D 2,765,568 trainable parameters. Ours adds biases where no batch norm
    # follows: G's output layer (+3), D's input layer (+64) and logit (+1).
    config = dk.Config(image_size=64, channels=3)
    generator, discriminator = dk.build_generator(config), dk.build_discriminator(config)
    trainable = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)  # noqa: E731
    assert trainable(generator) == 3_576_704 + 3
    assert trainable(discriminator) == 2_765_568 + 64 + 1


def test_architecture_follows_the_paper_guidelines():
    config = dk.Config(image_size=64, channels=3)
    generator, discriminator = dk.build_generator(config), dk.build_discriminator(config)
    g_types = [type(l).__name__ for l in generator.layers]
    d_types = [type(l).__name__ for l in discriminator.layers]
    # No pooling and no hidden fully connected layers in either network.
    assert not any("Pool" in t for t in g_types + d_types)
    assert g_types.count("Dense") == 1 and d_types.count("Dense") == 1  # projection / logit only
    # Transposed convolutions up, strided convolutions down, doubling/halving the side.
    ups = [l for l in generator.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    downs = [l for l in discriminator.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(ups) == 4 and len(downs) == 4
    assert all(l.strides == (2, 2) and l.kernel_size == (4, 4) for l in ups + downs)
    assert [l.filters for l in ups] == [256, 128, 64, 3]
    assert [l.filters for l in downs] == [64, 128, 256, 512]
    # Batch norm everywhere but G's output and D's input layer.
    g_bn = [l.name for l in generator.layers if isinstance(l, keras.layers.BatchNormalization)]
    d_bn = [l.name for l in discriminator.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert g_bn == ["project_bn", "up1_bn", "up2_bn", "up3_bn"]
    assert d_bn == ["down2_bn", "down3_bn", "down4_bn"]
    # ReLU + Tanh in G, LeakyReLU(0.2) in D.
    assert generator.layers[-1].activation.__name__ == "tanh"
    assert g_types.count("ReLU") == 4
    slopes = [l.negative_slope for l in discriminator.layers if isinstance(l, keras.layers.LeakyReLU)]
    assert slopes == [pytest.approx(0.2)] * 4


def test_weights_are_initialised_from_normal_0_002_and_batch_norm_scales_from_normal_1_002():
    generator = dk.build_generator(dk.Config(image_size=64, channels=3))
    kernel = generator.get_layer("up1").kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and kernel.std() == pytest.approx(0.02, rel=0.05)
    gamma = generator.get_layer("up1_bn").gamma.numpy()
    assert gamma.mean() == pytest.approx(1.0, abs=0.01) and gamma.std() == pytest.approx(0.02, rel=0.3)

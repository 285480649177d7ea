"""The hyper-parameters (dcgan_keras.config.Config): invalid values are refused."""

import pytest

import dcgan_keras as dk


@pytest.mark.parametrize("bad", [16, 48, 256])
def test_unsupported_image_size_names_the_supported_ones(bad):
    with pytest.raises(ValueError, match=r"32, 64, 128.*image_size=" + str(bad)):
        dk.Config(image_size=bad)


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("channels", 2), ("latent_dim", -1), ("ema_decay", 1.0), ("mirror", "yes")])
def test_config_rejects_invalid_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dk.Config(**{field: value})

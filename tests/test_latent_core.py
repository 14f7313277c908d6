"""The explorer's computations without a window: decoding, maps, paths, ordering, encoding, projection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import latent, registry
from core.latent import LatentError


@pytest.fixture(scope="module")
def bars() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.zeros((400, 28, 28), np.float32)
    for i in range(400):
        r, c = rng.integers(4, 18, 2)
        x[i, r:r + 10, c:c + 3] = 1
    return x.reshape(400, 784)


@pytest.fixture(scope="module")
def trained_ae(bars):
    torch.manual_seed(0)
    m = registry.create("ae", (784,), "binary_image", latent=4, hidden=128, layers=1)
    m.configure_optimizer(3e-3)
    x = torch.from_numpy(bars)
    for i in range(300):
        m.train_step(x[(i % 8) * 50:(i % 8) * 50 + 50])
    return m.eval()


def test_grid_latents_sweep_two_dimensions_with_y_up():
    z = latent.grid_latents(np.array([9, 9, 9], np.float32), (2, 0), extent=2.0, n=3)
    assert z.shape == (9, 3) and (z[:, 1] == 9).all()
    # x (dim 2) increases along a row, y (dim 0) decreases down the rows
    assert z[:3, 2].tolist() == [-2, 0, 2] and z[::3, 0].tolist() == [2, 0, -2]
    with pytest.raises(LatentError, match="two different"):
        latent.grid_latents(np.zeros(3), (1, 1), 1.0, 3)


def test_decode_map_is_the_mosaic_of_the_decoded_grid(trained_ae):
    base = np.zeros(4, np.float32)
    m = latent.decode_map(trained_ae, base, (0, 1), extent=2.0, n=4)
    assert m.shape == (112, 112) and m.dtype == np.float32 and m.flags.c_contiguous
    imgs = latent.decode(trained_ae, latent.grid_latents(base, (0, 1), 2.0, 4))
    np.testing.assert_array_equal(m[28:56, 56:84], imgs[1 * 4 + 2])


def test_interpolation_ends_are_the_two_latents_linear_and_spherical():
    a, b = np.array([1.0, 0.0, 2.0], np.float32), np.array([-1.0, 3.0, 0.5], np.float32)
    for spherical in (False, True):
        path = latent.interpolate(a, b, 7, spherical)
        assert path.shape == (7, 3)
        np.testing.assert_array_equal(path[0], a)
        np.testing.assert_array_equal(path[-1], b)
    lin = latent.interpolate(a, b, 5)
    np.testing.assert_allclose(lin[2], (a + b) / 2, rtol=1e-6)
    # slerp between two latents of equal norm keeps the norm along the way (linear shrinks it)
    c = np.array([3.0, 0.0, 0.0], np.float32)
    d = np.array([0.0, 3.0, 0.0], np.float32)
    s = latent.interpolate(c, d, 9, spherical=True)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 3.0, rtol=1e-5)
    assert np.linalg.norm(latent.interpolate(c, d, 9)[4]) < 2.2
    with pytest.raises(LatentError):
        latent.interpolate(a, b, 1)


def test_decode_rejects_bad_latents_and_nan_output(trained_ae):
    with pytest.raises(LatentError, match="4 latent dimensions"):
        latent.decode(trained_ae, np.zeros((2, 3)))
    with pytest.raises(LatentError, match="finite"):
        latent.decode(trained_ae, np.array([0, np.inf, 0, 0]))
    broken = registry.create("ae", (784,), "binary_image", latent=2, hidden=8, layers=1)
    with torch.no_grad():
        broken.decoder[0].weight.fill_(float("nan"))
    with pytest.raises(LatentError, match="NaN"):
        latent.decode(broken, np.zeros(2))
    nade = registry.create("nade", (784,), "binary_image", hidden=4)
    with pytest.raises(LatentError, match="no decoder"):
        latent.decode(nade, np.zeros(2))


def test_encoding_a_drawing_and_decoding_its_code_gives_it_back(trained_ae, bars):
    x = bars[7]
    enc = latent.encode_drawing(trained_ae, x)
    assert enc.z.shape == (4,) and enc.elbo is None
    # the reconstruction agrees with the drawing on almost every pixel, unlike another drawing
    agree = ((enc.reconstruction.reshape(-1) > 0.5) == (x > 0.5)).mean()
    other = ((enc.reconstruction.reshape(-1) > 0.5) == (bars[8] > 0.5)).mean()
    assert agree > 0.97 and agree > other
    with pytest.raises(LatentError, match="empty"):
        latent.encode_drawing(trained_ae, np.zeros(784))
    with pytest.raises(LatentError, match="28x28"):
        latent.encode_drawing(trained_ae, np.ones(100))


def test_a_vae_encoding_reports_both_bounds():
    torch.manual_seed(0)
    vae = registry.create("vae", (784,), "binary_image", latent=2, hidden=16, layers=1).eval()
    x = (np.arange(784) % 3 == 0).astype(np.float32)
    enc = latent.encode_drawing(vae, x, iwae_k=200)
    assert enc.iwae_k == 200 and enc.iwae >= enc.elbo - 0.5
    cvae = registry.create("cvae", (784,), "binary_image", latent=2, hidden=16, layers=1).eval()
    with pytest.raises(LatentError, match="choose a digit"):
        latent.encode_drawing(cvae, x)
    assert latent.encode_drawing(cvae, x, digit=3).z.shape == (2,)


def test_dimension_order_puts_the_used_dimensions_first():
    torch.manual_seed(0)
    vae = registry.create("vae", (784,), "binary_image", latent=3, hidden=16, layers=1).eval()
    with torch.no_grad():  # dimension 2 carries information (wide spread of means), 0 and 1 are the prior
        w = vae.encoder[-1].weight
        w.zero_()
        vae.encoder[-1].bias.zero_()
        w[2].normal_(0, 1.0)
    x = np.random.default_rng(0).integers(0, 2, (50, 784)).astype(np.float32)
    assert latent.dimension_order(vae, x)[0] == 2
    assert latent.dimension_order(vae, None).tolist() == [0, 1, 2]


def test_projection_onto_a_generator_brings_its_image_closer_to_the_drawing():
    torch.manual_seed(0)
    gan = registry.create("dcgan", (784,), "binary_image", latent=8, channels=8).eval()
    target = latent.decode(gan, np.random.default_rng(1).normal(size=(1, 8)).astype(np.float32))[0]
    steps = list(latent.project(gan, target, steps=60, restarts=4, lr=0.1))
    assert len(steps) == 60 and steps[-1].distance < 0.5 * steps[0].distance
    # every step's image is the generator's image of its z
    np.testing.assert_allclose(latent.decode(gan, steps[-1].z)[0], steps[-1].image, atol=1e-5)
    assert all(p.requires_grad for p in gan.parameters())  # left as found

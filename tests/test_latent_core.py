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


# -- the GAN generator's inference form -----------------------------------------------------------

def test_the_subpixel_convolution_is_the_transposed_convolution():
    from core.models.dcgan import subpixel_weight
    torch.manual_seed(0)
    ct = torch.nn.ConvTranspose2d(5, 3, 4, 2, 1)
    x = torch.randn(4, 5, 7, 7)
    with torch.no_grad():
        got = torch.nn.functional.pixel_shuffle(
            torch.nn.functional.conv2d(x, subpixel_weight(ct.weight), ct.bias.repeat_interleave(4), padding=1), 2)
        np.testing.assert_allclose(got.numpy(), ct(x).numpy(), atol=1e-5)


def _gan_with_batch_norm_statistics(family: str):
    """A small GAN whose batch norms have moved away from the identity (as trained ones have)."""
    torch.manual_seed(1)
    model = registry.create(family, (784,), latent=6, channels=8)
    with torch.no_grad():
        for mod in model.generator.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.3, 3.0)
                mod.weight.normal_()
                mod.bias.normal_()
    return model.eval()


@pytest.mark.parametrize("family", ["dcgan", "cgan"])
def test_gan_decode_through_the_folded_generator_is_the_generator(family):
    model = _gan_with_batch_norm_statistics(family)
    n = 150  # more than one chunk of the folded generator
    z = torch.randn(n, 6)
    labels = torch.arange(n) % 10 if family == "cgan" else None
    with torch.no_grad():
        reference = model.generate(z, labels).reshape(n, 784)  # the trained modules, batch norm and all
    got = model.decode(z, labels=labels).reshape(n, 784)
    np.testing.assert_allclose(got.numpy(), reference.numpy(), atol=2e-6)
    assert got.dtype == torch.float32 and bool((got >= 0).all() and (got <= 1).all())
    # the explorer's single images and its map go the same way
    np.testing.assert_allclose(latent.decode(model, z.numpy()[:1], 3 if labels is not None else None)[0],
                               model.generate(z[:1], torch.tensor([3]) if labels is not None else None)[0, 0].detach(),
                               atol=2e-6)


def test_the_folded_generator_follows_the_weights_as_they_train():
    model = _gan_with_batch_norm_statistics("dcgan")
    z = torch.randn(8, 6)
    before = model.decode(z)
    assert model.generator.inference() is model.generator.inference()  # cached while nothing changes
    model.configure_optimizer(1e-2)
    model.train_step(torch.rand(16, 784).round())  # weights and batch-norm statistics move
    model.eval()
    after = model.decode(z)
    assert not torch.allclose(before, after)
    with torch.no_grad():
        np.testing.assert_allclose(after.numpy(), model.generate(z).reshape(8, 784).numpy(), atol=2e-6)
    with torch.no_grad():  # a weight changed in place (a checkpoint loaded into the model, say)
        model.generator.up[3].bias.add_(1.0)
        np.testing.assert_allclose(model.decode(z).numpy(), model.generate(z).reshape(8, 784).numpy(), atol=2e-6)
    # the cache is not part of the weights
    assert not any("folded" in k for k in model.state_dict())


def test_pinning_torch_threads_sets_this_threads_count_once():
    import concurrent.futures

    def pinned(n):
        latent.pin_torch_threads(n)
        first = torch.get_num_threads()
        latent.pin_torch_threads(n)
        return first, torch.get_num_threads()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a thread of its own: the test's is left alone
        assert pool.submit(pinned, 1).result() == (1, 1)

"""The VAE: its bounds against a brute-force likelihood, its encoder/decoder contract, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core import registry
from core.models.vae import VAE, std_normal_log_prob


def _tiny(latent: int = 1, d: int = 6, seed: int = 0, **hp) -> VAE:
    torch.manual_seed(seed)
    model = registry.create("vae", (d,), "binary_image", latent=latent, hidden=16, layers=1, **hp)
    with torch.no_grad():  # a posterior that is not the prior, so the bounds differ
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


def _brute_force_log_px(model: VAE, x: torch.Tensor, n_grid: int = 20001) -> torch.Tensor:
    """log p(x) = log integral p(x|z) p(z) dz for a 1-dimensional latent, by the trapezoid rule on
    [-10, 10]."""
    z = torch.linspace(-10, 10, n_grid, dtype=torch.float64).reshape(-1, 1)
    with torch.no_grad():
        logits = model.decoder_logits(z.float()).double()  # (G, D)
        log_px_z = -torch.nn.functional.binary_cross_entropy_with_logits(
            logits[:, None, :].expand(len(z), *x.shape), x.double()[None].expand(len(z), *x.shape),
            reduction="none").sum(-1)  # (G, N)
        log_joint = log_px_z + std_normal_log_prob(z)[:, None]
    dz = float(z[1, 0] - z[0, 0])
    w = torch.full((n_grid, 1), math.log(dz), dtype=torch.float64)
    w[0] = w[-1] = math.log(dz / 2)
    return torch.logsumexp(log_joint + w, 0)


def test_iwae_bound_is_below_log_px_and_tightens_towards_it_as_k_grows():
    model = _tiny()
    x = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.float32)
    exact = _brute_force_log_px(model, x)
    torch.manual_seed(1)

    def mean_over(fn, reps):  # the Monte Carlo mean of a bound, per row, over ``reps`` draws
        return fn(x.repeat(reps, 1)).double().reshape(reps, len(x)).mean(0)

    with torch.no_grad():
        means = {k: mean_over(lambda xs: model.iwae_bound(xs, k), 20000 // k if k < 1000 else 10) for k in (1, 5, 50)}
        means[5000] = mean_over(lambda xs: model.iwae_bound(xs, 5000), 10)
        elbo = mean_over(model.elbo, 20000)
    # L_1 is the ELBO (the one-sample estimate has the same mean up to Monte Carlo noise)
    assert torch.allclose(means[1], elbo, atol=0.1), (means[1], elbo)
    # monotone in k, and every bound below the true log-likelihood
    assert (means[5] > means[1]).all() and (means[50] > means[5]).all() and (means[5000] > means[50]).all()
    assert (means[5000] <= exact + 0.02).all()
    # and L_5000 is close to it
    assert (exact - means[5000] < 0.1).all(), (exact, means[5000])
    # the gap closed by going from k=1 to k=5000 is real (this model's posterior is not exact)
    assert (means[5000] - means[1] > 0.2).any()


def test_elbo_is_below_the_iwae_bound_on_average_for_a_trained_model(mnist_like):
    model = registry.create("vae", (784,), "binary_image", latent=4, hidden=64, layers=1)
    model.configure_optimizer(3e-3)
    x = torch.from_numpy(mnist_like[:400]).float()
    for i in range(60):
        model.train_step(x[(i * 50) % 400:(i * 50) % 400 + 50])
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = model.elbo(x[:100]).mean()
        iw = model.log_prob(x[:100], k=100).mean()
    assert iw >= elbo


def test_log_prob_uses_eval_k_and_is_a_lower_bound_model():
    model = _tiny(eval_k=7)
    from core.protocol import Likelihood

    assert VAE.info.likelihood is Likelihood.LOWER_BOUND
    x = torch.ones(2, 6)
    calls = []
    orig = model.log_weights
    model.log_weights = lambda x, k, *a, **kw: calls.append(k) or orig(x, k, *a, **kw)
    model.log_prob(x)
    assert calls == [7]
    calls.clear()
    model.log_prob(x, k=1200)  # chunks of 500
    assert calls == [500, 500, 200]


def test_encode_decode_shapes_and_bad_latents():
    model = _tiny(latent=3)
    x = torch.bernoulli(torch.full((5, 6), 0.5))
    z = model.encode(x)
    assert z.shape == (5, 3)
    p = model.decode(z)
    assert p.shape == (5, 6) and (p >= 0).all() and (p <= 1).all()
    with pytest.raises(ValueError, match="shape"):
        model.decode(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="finite"):
        model.decode(torch.tensor([[0.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="at least 1"):
        model.iwae_bound(x, 0)
    s = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 6) and set(s.unique().tolist()) <= {0.0, 1.0}


def test_kl_warm_up_rises_linearly_and_is_kept_in_the_weights():
    model = _tiny(warmup=4)
    model.configure_optimizer(1e-3)
    x = torch.bernoulli(torch.full((8, 6), 0.5))
    weights = [model.train_step(x)["kl_weight"] for _ in range(6)]
    assert weights == pytest.approx([0.5, 0.75, 1.0, 1.0, 1.0, 1.0])
    assert int(model.state_dict()["steps"]) == 6


def test_free_bits_stop_penalising_a_collapsed_dimension():
    model = _tiny(latent=2, free_bits=1.0)
    x = torch.bernoulli(torch.full((8, 6), 0.5))
    with torch.no_grad():
        torch.manual_seed(0)
        with_fb = model.loss(x)
        model.hparams["free_bits"] = 0.0
        torch.manual_seed(0)
        without = model.loss(x)
        torch.manual_seed(0)
        rec, kl = model.elbo_terms(model._flat(x))
    expected_gap = (kl.mean(0).clamp_min(1.0) - kl.mean(0)).sum()
    assert float(with_fb - without) == pytest.approx(float(expected_gap), rel=1e-4)


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_training_raises_the_held_out_bound(objective, mnist_like):
    torch.manual_seed(0)
    model = registry.create("vae", (784,), "binary_image", latent=8, hidden=128, layers=1, objective=objective, k=3)
    model.configure_optimizer(2e-3)
    train, valid = torch.from_numpy(mnist_like[:800]).float(), torch.from_numpy(mnist_like[800:1000]).float()
    with torch.no_grad():
        before = model.log_prob(valid, k=20).mean()
    for epoch in range(4):
        for i in range(0, 800, 50):
            model.train_step(train[i:i + 50])
    model.eval()
    with torch.no_grad():
        after = model.log_prob(valid, k=20).mean()
    assert after > before + 50, (before, after)


@pytest.fixture(scope="module")
def mnist_like() -> np.ndarray:
    """Digit-like binary images without the data set: strokes (bars) at a few positions."""
    rng = np.random.default_rng(0)
    imgs = np.zeros((1000, 28, 28), np.uint8)
    for i in range(1000):
        r, c = rng.integers(4, 20, 2)
        imgs[i, r:r + 8, c:c + 2] = 1
        if rng.random() < 0.5:
            imgs[i, r:r + 2, c:c + 8] = 1
    return imgs.reshape(1000, 784)


def test_conditional_vae_keeps_z_when_the_digit_changes_and_needs_labels():
    torch.manual_seed(0)
    model = registry.create("cvae", (784,), "binary_image", latent=2, hidden=32, layers=1, classes=10)
    z = torch.tensor([[0.3, -1.0]]).repeat(10, 1)
    imgs = model.decode(z, labels=torch.arange(10))
    assert imgs.shape == (10, 784)
    assert not torch.allclose(imgs[0], imgs[1])  # the digit changes the image for one z
    x = torch.bernoulli(imgs[:2])
    with pytest.raises(ValueError, match="needs labels"):
        model.encode(x)
    with pytest.raises(ValueError, match="0 .. 9"):
        model.decode(z[:1], labels=[12])
    with pytest.raises(ValueError, match="not class-conditional"):
        _tiny().encode(torch.ones(1, 6), labels=[1])
    # the mixture bound without labels is the logmeanexp of the per-class bounds
    torch.manual_seed(3)
    with torch.no_grad():
        mix = model.log_prob(x, k=1)
        torch.manual_seed(3)
        per = torch.stack([model.log_prob(x, k=1, labels=torch.full((2,), c)) for c in range(10)])
    assert torch.allclose(mix, torch.logsumexp(per, 0) - math.log(10), atol=1e-4)


def test_conditional_vae_trains_with_labels(mnist_like):
    torch.manual_seed(0)
    model = registry.create("cvae", (784,), "binary_image", latent=2, hidden=64, layers=1)
    model.configure_optimizer(3e-3)
    x = torch.from_numpy(mnist_like[:200]).float()
    y = torch.arange(200) % 10
    with pytest.raises(ValueError, match="needs labels"):
        model.train_step(x[:50])
    first = model.train_step(x[:50], labels=y[:50])["loss"]
    for _ in range(30):
        last = model.train_step(x[:50], labels=y[:50])["loss"]
    assert last < first - 50
    assert int(model.steps) == 31


def test_autoencoder_reconstructs_and_tracks_its_codes(mnist_like):
    torch.manual_seed(0)
    model = registry.create("ae", (784,), "binary_image", latent=2, hidden=64, layers=1)
    model.configure_optimizer(3e-3)
    x = torch.from_numpy(mnist_like[:200]).float()
    before = model.reconstruction_nll(x).mean()
    for i in range(60):
        model.train_step(x[(i % 4) * 50:(i % 4) * 50 + 50])
    model.eval()
    assert model.reconstruction_nll(x).mean() < before - 100
    codes = model.encode(x)
    # with the weights fixed, the running statistics converge to the codes' mean and spread
    model.train()
    with torch.no_grad():
        for _ in range(800):
            model.loss(x[:50])
    model.eval()
    assert torch.allclose(model.code_mean, codes[:50].mean(0), atol=1e-3)
    assert torch.allclose(model.code_std, codes[:50].std(0), atol=1e-3)
    assert model.decode(codes).shape == (200, 784)
    with pytest.raises(NotImplementedError):
        model.log_prob(x)
    assert model.sample(3).shape == (3, 784)


def test_eval_command_prints_the_bound_with_its_k(tmp_path, capsys, mnist_like):
    import json

    from core import cli
    from core.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = registry.create("vae", (784,), "binary_image", latent=2, hidden=16, layers=1, eval_k=7)
    ckpt = save_checkpoint(tmp_path / "vae.safetensors", model)
    data = tmp_path / "digits.npz"
    np.savez(data, test=mnist_like[:40])
    assert cli.main(["eval", "--checkpoint", str(ckpt), "--data", str(data)]) == 0
    default = json.loads(capsys.readouterr().out)
    assert default["k"] == 7 and "IWAE bound with k=7" in default["bound"] and "nll_bound_nats" in default
    assert "nll_nats" not in default  # a bound is never reported as a likelihood
    assert cli.main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--k", "300"]) == 0
    tight = json.loads(capsys.readouterr().out)
    assert tight["k"] == 300 and tight["n"] == 40
    # the tighter bound (more samples) is lower in nats, as the bound's definition says
    assert tight["nll_bound_nats"] < default["nll_bound_nats"]
    assert cli.main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--k", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    nade = save_checkpoint(tmp_path / "nade.safetensors", registry.create("nade", (784,), hidden=4))
    assert cli.main(["eval", "--checkpoint", str(nade), "--data", str(data), "--k", "10"]) == 2
    assert "exact" in capsys.readouterr().err

"""What the families share, declared once: the lr / batch_size hyperparameters (each family's
defaults kept), the ``structural`` flag, the point-dimension check, the CDF views, and the MADE
mixture assembled from MADEs trained apart (its own checks, clear errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core import registry
from core.models.made_mixture import MADEMixture
from core.protocol import HParam, batch_size_hparam, grid_points, lr_hparam

#: each family's (lr default, lr live, batch_size default), as they were before the shared declaration
TRAINING_DEFAULTS = {
    "dae": (0.003, True, 256), "cnade": (0.001, True, 64), "fvsbn": (0.001, True, 64),
    "made": (0.001, True, 100), "made-mixture": (0.001, True, 100), "nade": (0.001, True, 64),
    "pixelcnn": (0.001, True, 64), "rnade": (0.003, True, 256), "pixelrnn": (0.001, True, 100),
    "wavenet": (0.002, True, 64), "adaptive_kde": (0.001, False, 64), "gaussian": (0.001, False, 64),
    "gmm": (0.001, False, 64), "histogram": (0.001, False, 64), "inversion": (0.001, True, 64),
    "kde": (0.001, False, 64), "neural_cdf": (0.02, True, 64), "knn": (0.001, False, 64),
    "nice": (0.001, True, 256), "nsf": (0.003, True, 256), "realnvp": (0.002, True, 256), "gan": (0.001, True, 256),
    "vae": (0.001, True, 100), "cvae": (0.001, True, 100), "ae": (0.001, True, 100),
    "dcgan": (0.0002, True, 64), "cgan": (0.0002, True, 64),
}


def test_every_family_keeps_its_lr_and_batch_size_defaults():
    got = {}
    for info in registry.families():
        specs = {h.name: h for h in info.all_hparams()}
        lr, bs = specs["lr"], specs["batch_size"]
        got[info.key] = (lr.default, lr.live, bs.default)
        # one declaration: the same range, scale and flags everywhere
        assert (lr.low, lr.high, lr.log, lr.structural) == (1e-6, 1.0, True, False), info.key
        assert (bs.low, bs.high, bs.structural, bs.live) == (1, 4096, False, False), info.key
    assert got == TRAINING_DEFAULTS


def test_structural_flag():
    assert lr_hparam(0.5).default == 0.5 and not lr_hparam().structural and lr_hparam().live
    assert not lr_hparam(live=False).live and batch_size_hparam(7, help="rows").help == "rows"
    assert HParam("hidden", "int", 8).structural  # shapes the model unless declared otherwise
    with pytest.raises(ValueError, match="live"):
        HParam("rate", "float", 0.1, live=True)  # a live one changes while training: never structural
    assert not HParam("rate", "float", 0.1, live=True, structural=False).structural
    for info in registry.families():
        for h in info.all_hparams():
            assert not (h.live and h.structural), (info.key, h.name)
    made = registry.info("made")
    old = made.defaults()
    assert made.structure_changes(old, {**old, "lr": 0.5, "batch_size": 3}) == []
    assert made.structure_changes(old, {**old, "hidden": 7, "seed": 1, "lr": 0.5}) == ["hidden", "seed"]
    assert registry.info("dae").structure_changes({"burn_in": 5}, {"burn_in": 9}) == []  # live


@pytest.mark.parametrize("key, shape, needle", [
    ("kde", (3,), "KDE takes 1D or 2D points"), ("adaptive_kde", (3,), "Adaptive KDE takes 1D or 2D points"),
    ("knn", (4,), "kNN density takes 1D or 2D points"), ("histogram", (3,), "Histogram takes 1D or 2D points"),
    ("gmm", (3,), "takes 1D or 2D points"), ("dae", (5,), "the denoising autoencoder takes 1D or 2D points"),
    ("gan", (1,), "GAN takes 2D points"), ("inversion", (2,), "inversion sampling takes 1D points"),
    ("neural_cdf", (2,), "neural CDF regression takes 1D points"),
])
def test_point_families_refuse_other_dimensions(key, shape, needle):
    with pytest.raises(ValueError, match=needle) as exc:
        registry.create(key, shape)
    assert str(shape) in str(exc.value)


@pytest.mark.parametrize("key", ["inversion", "neural_cdf"])
def test_cdf_views_are_the_models_cdf_on_the_density_grid(key):
    model = registry.create(key, (1,), **({"iters": 5} if key == "neural_cdf" else {}))
    data = torch.from_numpy(np.random.default_rng(0).normal(size=(300, 1)).astype(np.float32))
    model.configure_optimizer(float(model.hparams["lr"]))
    model.train_step(data)
    bounds = ((-3.0, 3.0),)
    v = model.visuals(16, generator=torch.Generator().manual_seed(0), bounds=bounds, res=40)
    assert set(v.as_dict()) == {"samples", "density", "cdf"} and v.cdf.dtype == np.float32
    expected = model.cdf(torch.from_numpy(grid_points(bounds, 40))).numpy()
    np.testing.assert_allclose(v.cdf, expected, rtol=1e-6)
    assert set(model.visuals(16).as_dict()) == {"samples"}  # no grid, no CDF


def _made(seed: int, **hp):
    model = registry.create("made", (2, 3), **{"hidden": 8, "seed": seed, **hp})  # (H, W): mirror reads rows
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model.eval()


def test_mixture_assembles_members_by_seed_and_says_which_does_not_fit():
    members = [("c", _made(5, mirror=True)), ("a", _made(3)), ("b", _made(4))]
    mix, order = MADEMixture.assemble(members)
    assert order == [1, 2, 0] and mix.hparams["seed"] == 3 and mix.hparams["members"] == 3
    assert mix.hparams["mirror"] == 1 and mix.members[2].hparams["mirror"]
    x = torch.tensor(np.random.default_rng(0).integers(0, 2, (20, 2, 3)), dtype=torch.float32)
    lps = torch.stack([members[i][1].log_prob(x) for i in order])
    torch.testing.assert_close(mix.log_prob(x), torch.logsumexp(lps, 0) - math.log(3))

    for bad, needle in [([("a", _made(3)), ("w", _made(4, hidden=9))], "w differs from a in hidden"),
                        ([("a", _made(3)), ("g", _made(5))], "consecutive"),
                        ([("a", _made(3)), ("m", _made(4, masks=2))], "m: a mixture member is a one-mask MADE"),
                        ([("m", _made(3, mirror=True)), ("b", _made(4))], "highest seeds"),
                        ([("a", _made(3)), ("n", registry.create("nade", (2, 3), hidden=4))], "n is a NADE"),
                        ([("a", _made(3)), ("s", registry.create("made", (3, 3), hidden=8, seed=4))], "shape"),
                        ([], "at least one")]:
        with pytest.raises(ValueError, match=needle):
            MADEMixture.assemble(bad)
    # what the members may differ in besides the seed: how they were trained
    mix, _ = MADEMixture.assemble([("a", _made(3, lr=0.1)), ("b", _made(4, batch_size=7))])
    assert mix.hparams["lr"] == 0.1

"""complete_steps and pixel_log_prob of the autoregressive image families (FVSBN, NADE, MADE and
its mixture)."""

import itertools
import math

import pytest
import torch

from core import registry
from core.protocol import DataKind

SHAPE = (3, 4)

CASES = [
    ("fvsbn", {}),
    ("nade", {"hidden": 6}),
    ("made", {"hidden": 12}),
    ("made", {"hidden": 12, "masks": 3, "ensemble": 3, "order_agnostic": True}),
    ("made", {"hidden": 12, "layers": 2, "masks": 2, "order_agnostic": True}),
    ("made", {"hidden": 12, "masks": 2, "ensemble": 2, "order_agnostic": True, "direct": True}),
    ("made", {"hidden": 12, "direct": True}),
    ("made-mixture", {"hidden": 12, "members": 3, "direct": True}),
    ("made", {"hidden": 12, "masks": 3, "ensemble": 3}),  # raster ensemble: masks drawn per candidate
    ("made", {"hidden": 12, "mirror": True, "direct": True}),  # each row right to left
    ("made-mixture", {"hidden": 12, "members": 3, "mirror": 1}),
]


def _model(key, hp, seed=0):
    torch.manual_seed(seed)
    m = registry.create(key, SHAPE, registry.info(key).data_kinds[0], **hp)
    with torch.no_grad():  # random weights, so that every conditional differs from 1/2
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.7)
    return m.eval()


def _ids(case):
    key, hp = case
    return key + "".join(f"-{k}{v}" for k, v in hp.items())


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_pixel_log_prob_sums_to_log_prob(case):
    m = _model(*case)
    x = torch.bernoulli(torch.full((7, *SHAPE), 0.4), generator=torch.Generator().manual_seed(1))
    terms = m.pixel_log_prob(x)
    assert terms.shape == (7, math.prod(SHAPE))
    torch.testing.assert_close(terms.sum(1), m.log_prob(x), rtol=0, atol=1e-4)
    if m.hparams.get("ensemble", 1) == 1:
        assert (terms <= 1e-6).all()  # chain-rule terms are log-probabilities


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_complete_steps_end_where_complete_ends(case):
    m = _model(*case)
    x = torch.bernoulli(torch.full((2, *SHAPE), 0.5), generator=torch.Generator().manual_seed(2))
    known = torch.zeros(2, *SHAPE, dtype=torch.bool)
    known[:, 0] = True  # the top row known
    known[1, 1, 0] = True  # and one more pixel in the second image: two known patterns
    steps = list(m.complete_steps(x, known, 3, torch.Generator().manual_seed(5)))
    unknown = int((~known).sum()) * 3 // 3  # pixels to draw, summed over the distinct patterns
    assert steps[-1].done == steps[-1].total == len(steps)
    assert len({s.pixel for s in steps}) <= math.prod(SHAPE)
    full = m.complete(x, known, 3, torch.Generator().manual_seed(5))
    torch.testing.assert_close(steps[-1].x, full)
    flat_x = x.reshape(2, -1).repeat_interleave(3, 0)
    flat_known = known.reshape(2, -1).repeat_interleave(3, 0)
    assert torch.equal(full[flat_known], flat_x[flat_known])
    assert unknown > 0 and set(torch.unique(full).tolist()) <= {0.0, 1.0}


RASTER = CASES[:3] + [CASES[6], CASES[9]]


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_exact_normalisation(case):
    m = _model(*case)
    allx = torch.tensor(list(itertools.product([0.0, 1.0], repeat=math.prod(SHAPE)))).reshape(-1, *SHAPE)
    with torch.no_grad():
        total = torch.logsumexp(m.log_prob(allx).double(), 0)
    assert abs(float(total)) < 1e-4


@pytest.mark.parametrize("case", RASTER, ids=[_ids(c) for c in RASTER])
def test_step_probability_is_the_models_conditional(case):
    """In raster order, a drawn pixel's p is p(x_d = 1 | x_<d) of the final image."""
    m = _model(*case)
    x = torch.zeros(1, *SHAPE)
    known = torch.zeros(1, *SHAPE, dtype=torch.bool)
    probs = {}
    for s in m.complete_steps(x, known, 4, torch.Generator().manual_seed(3)):
        probs[s.pixel] = s.p.clone()
        final = s.x.clone()
    terms = m.pixel_log_prob(final.reshape(4, *SHAPE))
    for d, p in probs.items():
        expected = torch.where(final[:, d] > 0.5, p, 1 - p).log()
        torch.testing.assert_close(terms[:, d], expected, rtol=0, atol=1e-5)
    assert sorted(probs) == list(range(math.prod(SHAPE)))  # raster order, every pixel


def test_nothing_to_complete_yields_no_step():
    m = _model("nade", {"hidden": 4})
    x = torch.ones(1, *SHAPE)
    known = torch.ones(1, *SHAPE, dtype=torch.bool)
    assert list(m.complete_steps(x, known, 2)) == []
    assert torch.equal(m.complete(x, known, 2), torch.ones(2, math.prod(SHAPE)))


@pytest.mark.parametrize("key", ["fvsbn", "nade", "made"])
def test_bad_completion_arguments(key):
    m = _model(key, {"hidden": 4} if key != "fvsbn" else {})
    x = torch.zeros(1, *SHAPE)
    with pytest.raises(ValueError, match="at least 1"):
        list(m.complete_steps(x, torch.zeros_like(x, dtype=torch.bool), 0))
    with pytest.raises(ValueError, match="mask has shape"):
        list(m.complete_steps(x, torch.zeros(1, 2, 2, dtype=torch.bool), 1))
    with pytest.raises(ValueError, match="expects data of shape"):
        list(m.complete_steps(torch.zeros(1, 5), torch.zeros(1, 5, dtype=torch.bool), 1))


# --------------------------------------------------------------------------------------------
# complete(), for every family of the registry that completes binary images
# --------------------------------------------------------------------------------------------

#: small sizes for the hyperparameters a family may have (those it lacks are left out)
SMALL = {"hidden": 8, "row_hidden": 8, "channels": 8, "blocks": 2, "members": 2, "masks": 2}


def _completing_families() -> list[str]:
    return [info.key for info in registry.families()
            if DataKind.BINARY_IMAGE in info.data_kinds and "complete" in registry.model_class(info.key).capabilities()]


def _weak_random(key: str, shape=(4, 4)):
    """A small model of family ``key``, weak random weights: every conditional differs from 1/2,
    none is sure."""
    names = {h.name for h in registry.info(key).all_hparams()}
    torch.manual_seed(5)
    model = registry.create(key, shape, DataKind.BINARY_IMAGE,
                            **{name: value for name, value in SMALL.items() if name in names})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


@pytest.mark.parametrize("key", _completing_families())
def test_complete_keeps_known_pixels_and_varies_candidates(key):
    """Every completing family: known pixels kept (those after unknown ones too), the others
    drawn and varied across candidates, the input untouched."""
    info = registry.info(key)
    d, n = 16, 8
    model = _weak_random(key)
    g = torch.Generator().manual_seed(3)
    x = torch.bernoulli(torch.full((2, d), 0.5), generator=g)
    x0 = x.clone()
    known = torch.bernoulli(torch.full((2, d), 0.5), generator=g).bool()  # arbitrary, per row
    known[:, d - 1] = True  # a known pixel after unknown ones
    known[0, 0] = False  # an unknown pixel before known ones
    labels = {"labels": [1, 0]} if info.conditional else {}
    out = model.complete(x, known, n=n, generator=g, **labels)
    assert out.shape == (2 * n, d) and set(out.unique().tolist()) <= {0.0, 1.0}
    for i in range(2):
        cands, k = out[i * n:(i + 1) * n], known[i]
        assert torch.equal(cands[:, k], x[i, k].expand(n, -1)), "a known pixel was changed"
        assert len({tuple(c.tolist()) for c in cands[:, ~k]}) > 1, "all candidates are identical"
    assert torch.equal(x, x0), "the input was modified"


@pytest.mark.parametrize("key", _completing_families())
def test_complete_takes_a_single_flat_input(key):
    model = _weak_random(key)
    x = torch.bernoulli(torch.full((16,), 0.5), generator=torch.Generator().manual_seed(3))
    known = torch.zeros(16, dtype=torch.bool)
    known[:6] = True
    labels = {"labels": [1]} if registry.info(key).conditional else {}
    one = model.complete(x, known, n=3, generator=torch.Generator().manual_seed(4), **labels)
    assert one.shape == (3, 16) and torch.equal(one[:, known], x[known].expand(3, -1))

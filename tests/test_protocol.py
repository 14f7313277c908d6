"""The model protocol: hyperparameter validation, the registry and the base-class checks."""

from __future__ import annotations

import math

import pytest
import torch

from core import registry
from core.protocol import (TRAINING_HPARAMS, DataKind, GenerativeModel, HParam, Likelihood,
                           ModelInfo)

# --------------------------------------------------------------------------------------------
# HParam.validate
# --------------------------------------------------------------------------------------------

INT = HParam("hidden", "int", 8, low=1, high=64)
FLOAT = HParam("lr", "float", 1e-3, low=1e-6, high=1.0, log=True)
BOOL = HParam("flip", "bool", False)
CHOICE = HParam("act", "choice", "relu", choices=("relu", "tanh", 3))


@pytest.mark.parametrize("value, expected", [(8, 8), ("12", 12), (3.0, 3), (1, 1), (64, 64)])
def test_int_accepts_whole_numbers_in_range(value, expected):
    out = INT.validate(value)
    assert out == expected and type(out) is int


@pytest.mark.parametrize("value", [0, 65, -3, "100"])
def test_int_rejects_out_of_range(value):
    with pytest.raises(ValueError, match="hidden"):
        INT.validate(value)


def test_int_rejects_fractions():
    with pytest.raises(ValueError, match="hidden.*whole"):
        INT.validate(2.5)


@pytest.mark.parametrize("value", [0.5, "1e-2", 1e-6, 1.0, 1])
def test_float_accepts_numbers_in_range(value):
    out = FLOAT.validate(value)
    assert type(out) is float and out == pytest.approx(float(value))


@pytest.mark.parametrize("value", [1e-7, 2.0, -1.0, "5"])
def test_float_rejects_out_of_range(value):
    with pytest.raises(ValueError, match="lr"):
        FLOAT.validate(value)


@pytest.mark.parametrize("param", [INT, FLOAT, HParam("free", "float", 0.0), HParam("n", "int", 0)])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf", "-inf"])
def test_non_finite_rejected(param, value):
    # also without bounds: NaN compares False to everything, so a range check alone lets it in
    with pytest.raises(ValueError, match=param.name):
        param.validate(value)


@pytest.mark.parametrize("param", [INT, FLOAT])
@pytest.mark.parametrize("value", ["abc", None, "", [1], {"a": 1}, object()])
def test_non_numbers_rejected_naming_the_param(param, value):
    with pytest.raises(ValueError) as err:
        param.validate(value)
    assert param.name in str(err.value)


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), ("Yes", True), ("on", True), ("1", True),
    ("false", False), ("NO", False), ("off", False), ("0", False), (1, True), (0, False),
])
def test_bool(value, expected):
    assert BOOL.validate(value) is expected


def test_bool_rejects_other_strings():
    with pytest.raises(ValueError, match="flip"):
        BOOL.validate("maybe")


def test_choice():
    assert CHOICE.validate("tanh") == "tanh"
    assert CHOICE.validate(3) == 3
    with pytest.raises(ValueError, match="act") as err:
        CHOICE.validate("gelu")
    assert "relu" in str(err.value)  # the message lists what is allowed


# --------------------------------------------------------------------------------------------
# ModelInfo.validate
# --------------------------------------------------------------------------------------------

INFO = ModelInfo(key="toy", name="Toy", group="Test", description="a test family",
                 likelihood=Likelihood.EXACT, data_kinds=(DataKind.POINTS_2D,),
                 hparams=(INT, BOOL))


def test_model_info_fills_defaults_including_training_ones():
    out = INFO.validate({})
    expected = {"hidden": 8, "flip": False}
    expected.update({h.name: h.default for h in TRAINING_HPARAMS})
    assert out == expected
    assert {"lr", "batch_size"} <= set(out)


def test_model_info_converts_and_keeps_other_defaults():
    out = INFO.validate({"hidden": "16", "lr": "0.01"})
    assert out["hidden"] == 16 and out["lr"] == 0.01 and out["flip"] is False


def test_model_info_rejects_unknown_names():
    with pytest.raises(ValueError) as err:
        INFO.validate({"hiden": 3, "lr": 0.1})
    msg = str(err.value)
    assert "hiden" in msg and "hidden" in msg  # names the typo and lists the known ones


def test_model_info_rejects_bad_values():
    with pytest.raises(ValueError, match="batch_size"):
        INFO.validate({"batch_size": 0})


def test_own_hparam_overrides_training_one():
    own_lr = HParam("lr", "float", 0.5, 0.1, 0.9)
    info = ModelInfo("t2", "T2", "Test", "", Likelihood.EXACT, (DataKind.POINTS_2D,), (own_lr,))
    assert [h.name for h in info.all_hparams()].count("lr") == 1
    assert info.defaults()["lr"] == 0.5
    with pytest.raises(ValueError):
        info.validate({"lr": 1e-3})  # below the family's own minimum


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


def test_families_non_empty_sorted_and_grouped():
    fams = registry.families()
    assert fams and all(isinstance(i, ModelInfo) for i in fams)
    assert "fvsbn" in {i.key for i in fams}
    assert fams == sorted(fams, key=lambda i: (i.group, i.name))
    groups = registry.grouped()
    assert sum(len(v) for v in groups.values()) == len(fams)
    for group, infos in groups.items():
        assert infos and all(i.group == group for i in infos)
    assert "fvsbn" in {i.key for i in groups["Autoregressive"]}


def test_create_fvsbn():
    model = registry.create("fvsbn", (6,), DataKind.BINARY_IMAGE, lr="0.01", weight_decay=1e-4)
    assert isinstance(model, GenerativeModel) and model.info.key == "fvsbn"
    assert model.data_shape == (6,) and model.dim == 6
    assert model.hparams["lr"] == 0.01 and model.hparams["batch_size"] == 64
    assert model.hparams["weight_decay"] == 1e-4
    # the data kind may also be given as its string value
    assert registry.create("fvsbn", (4,), "binary_image").dim == 4


def test_create_validates_hparams():
    with pytest.raises(ValueError, match="nonsense"):
        registry.create("fvsbn", (6,), nonsense=1)
    with pytest.raises(ValueError, match="weight_decay"):
        registry.create("fvsbn", (6,), weight_decay=1.0)


def test_unknown_family_is_key_error_listing_known():
    with pytest.raises(KeyError) as err:
        registry.create("no-such-family", (6,))
    assert "fvsbn" in str(err.value)
    with pytest.raises(KeyError):
        registry.info("no-such-family")


def test_wrong_data_kind_is_value_error():
    with pytest.raises(ValueError, match="points_2d"):
        registry.create("fvsbn", (2,), DataKind.POINTS_2D)
    with pytest.raises(ValueError):
        registry.create("fvsbn", (2,), "not-a-kind")


def test_register_refuses_a_second_class_under_the_same_key():
    cls = registry.model_class("fvsbn")
    registry.register(cls)  # the same class again is harmless

    class Impostor(GenerativeModel):
        info = cls.info

    with pytest.raises(ValueError, match="fvsbn"):
        registry.register(Impostor)
    assert registry.model_class("fvsbn") is cls


# --------------------------------------------------------------------------------------------
# capabilities and check_batch
# --------------------------------------------------------------------------------------------


def test_fvsbn_capabilities():
    caps = registry.model_class("fvsbn").capabilities()
    assert {"log_prob", "sample", "complete"} <= caps
    assert "encode" not in caps and "decode" not in caps


def test_base_class_methods_raise_not_implemented():
    class Bare(GenerativeModel):
        info = INFO

    m = Bare((2,), INFO.defaults())
    assert Bare.capabilities() == set()
    assert not m.visuals(4) and m.visuals(4).as_dict() == {}
    for call in (lambda: m.log_prob(torch.zeros(1, 2)), lambda: m.sample(1),
                 lambda: m.encode(torch.zeros(1, 2)), lambda: m.decode(torch.zeros(1, 2)),
                 lambda: m.complete(torch.zeros(1, 2), torch.zeros(1, 2))):
        with pytest.raises(NotImplementedError, match="Toy"):
            call()


@pytest.mark.parametrize("shape", [(3, 5), (3,), (3, 6, 1), (3, 2, 3)])
def test_check_batch_rejects_wrong_shapes(shape):
    model = registry.create("fvsbn", (6,))
    with pytest.raises(ValueError) as err:
        model.check_batch(torch.zeros(shape))
    msg = str(err.value)
    assert "FVSBN" in msg and "(N, 6)" in msg and str(tuple(shape)) in msg
    with pytest.raises(ValueError):
        model.log_prob(torch.zeros(shape))


def test_check_batch_returns_float32():
    model = registry.create("fvsbn", (6,))
    out = model.check_batch(torch.ones(2, 6, dtype=torch.uint8))
    assert out.dtype == torch.float32 and out.shape == (2, 6)

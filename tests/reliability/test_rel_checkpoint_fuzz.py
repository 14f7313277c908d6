"""Hostile checkpoint files, property-based (Hypothesis): mutated headers, lengths, dtypes,
shapes and metadata of the real shipped checkpoints, plus random bytes, pickles and sidecars that
lie. Every case must end in the loader's own error (:class:`CheckpointError`) or a model that
fits; none may run code (a pickle payload would touch a marker file) or take more memory than
the file's size allows (the peak resident size is measured around each load).

The default profile tries a few thousand cases in all; the ``slow`` test tries many more.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import registry
from core.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_meta, read_sidecar, sidecar_path

WEIGHTS = Path(__file__).resolve().parents[2] / "resources" / "weights"
#: the small shipped checkpoints (each family's loader path differs: convolutions, RNN, tables)
SHIPPED = ["pixelcnn", "wavenet-waves", "pixelrnn", "fvsbn"]
DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "X", "", "f32"]
#: a load may take what the file holds a few times over (the file, the tensors, the model), plus slack
SLACK = 64 << 20
EXAMPLES = int(os.environ.get("GMS_FUZZ_EXAMPLES", 300))  # per property test in the default run: ~2 500 cases in all

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


class Base:
    def __init__(self, name: str, raw: bytes):
        self.name = name
        self.raw = raw
        (n,) = struct.unpack("<Q", raw[:8])
        self.header = json.loads(raw[8:8 + n])
        self.payload = raw[8 + n:]
        self.meta = json.loads(self.header["__metadata__"]["genmodel_sandbox"])
        self.tensors = sorted(k for k in self.header if k != "__metadata__")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict[str, Base]:
    """The shipped checkpoints, copied (never touched in place)."""
    folder = tmp_path_factory.mktemp("shipped")
    out = {}
    for name in SHIPPED:
        shutil.copy(WEIGHTS / f"{name}.safetensors", folder / f"{name}.safetensors")
        out[name] = Base(name, (folder / f"{name}.safetensors").read_bytes())
        load_checkpoint(folder / f"{name}.safetensors")  # warm up: imports are not the loads' memory
    return out


def assemble(header: dict, payload: bytes, length: int | None = None) -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob) if length is None else length % (1 << 64)) + blob + payload


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


class Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "unpickled!"))


def check_load(path: Path, blob: bytes, marker: Path, tally: dict) -> None:
    """Write ``blob`` to ``path``, load it: the loader's own error or a fitting model; no code
    run; the peak memory grows by no more than the file allows."""
    path.write_bytes(blob)
    before = _peak_bytes()
    tally["cases"] = tally.get("cases", 0) + 1
    try:
        model, meta = load_checkpoint(path)
    except CheckpointError as exc:
        assert str(exc), "the error says why"
        tally["refused"] = tally.get("refused", 0) + 1
    except Exception as exc:  # noqa: BLE001 - any other type is the failure under test
        tally["failures"] = tally.get("failures", 0) + 1
        raise AssertionError(f"{type(exc).__name__} instead of CheckpointError: {exc}") from exc
    else:
        own = model.state_dict()
        assert all(torch.isfinite(v).all() for v in own.values() if v.is_floating_point())
        assert meta.family in [i.key for i in registry.families()]
        tally["loaded"] = tally.get("loaded", 0) + 1
    grown = _peak_bytes() - before
    tally["worst_peak_growth_mb"] = max(tally.get("worst_peak_growth_mb", 0.0), grown / 2**20)
    assert grown <= 4 * len(blob) + SLACK, f"peak memory grew by {grown / 2**20:.0f} MB for a {len(blob)}-byte file"
    assert not marker.exists(), "nothing was unpickled"


@pytest.fixture(scope="module")
def tally(figures):
    t: dict = {}
    yield t
    figures.record("checkpoint fuzz", cases=t.get("cases", 0), failures=t.get("failures", 0),
                   refused=t.get("refused", 0), loaded=t.get("loaded", 0),
                   worst_peak_growth_mb=round(t.get("worst_peak_growth_mb", 0.0), 1))


@pytest.fixture
def where(tmp_path):
    return tmp_path / "fuzz.safetensors", tmp_path / "marker"


names = st.sampled_from(SHIPPED)
huge = st.one_of(st.integers(-3, 3), st.integers(0, 1 << 20), st.integers(1 << 30, 1 << 70),
                 st.just(2**63 - 1), st.just(2**64 - 1))
json_leaf = st.one_of(st.none(), st.booleans(), huge, st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=8)


@FUZZ
@given(name=names, data=st.data())
def test_truncated_or_cut_anywhere(shipped, where, tally, name, data):
    base = shipped[name].raw
    cut = data.draw(st.one_of(st.integers(0, 16), st.integers(0, len(base) - 1),
                              st.integers(len(base) - 64, len(base) - 1)))
    check_load(*where[:1], base[:cut], where[1], tally)


@FUZZ
@given(name=names, data=st.data())
def test_bytes_overwritten_in_the_header(shipped, where, tally, name, data):
    base = bytearray(shipped[name].raw)
    end = 8 + len(json.dumps(shipped[name].header)) + 64
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, min(end, len(base) - 1)))
        base[pos] = data.draw(st.integers(0, 255))
    check_load(where[0], bytes(base), where[1], tally)


@FUZZ
@given(name=names, data=st.data())
def test_tensor_entries_lie(shipped, where, tally, name, data):
    """dtypes, shapes and offsets of the tensors, changed or removed; tensors added."""
    base = shipped[name]
    header = json.loads(json.dumps(base.header))
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(base.tensors))
        field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "drop", "entry", "add"]))
        if not isinstance(header.get(key), dict):
            header[key] = {}
        if field == "dtype":
            header[key]["dtype"] = data.draw(st.one_of(st.sampled_from(DTYPES), json_value))
        elif field == "shape":
            header[key]["shape"] = data.draw(st.one_of(st.lists(huge, max_size=5), json_value))
        elif field == "data_offsets":
            header[key]["data_offsets"] = data.draw(st.one_of(st.lists(huge, min_size=2, max_size=2), json_value))
        elif field == "drop":
            header.pop(key, None)
        elif field == "entry":
            header[key] = data.draw(json_value)
        else:
            header[data.draw(st.text(min_size=1, max_size=6))] = {
                "dtype": data.draw(st.sampled_from(DTYPES)), "shape": data.draw(st.lists(huge, max_size=3)),
                "data_offsets": data.draw(st.lists(huge, min_size=2, max_size=2))}
    check_load(where[0], assemble(header, base.payload), where[1], tally)


META_KEYS = ["family", "data_shape", "hparams", "format", "format_version", "data", "step", "epoch",
             "metrics", "valid", "valid_nll_percentiles", "training", "app_version"]


@FUZZ
@given(name=names, data=st.data())
def test_metadata_lies(shipped, where, tally, name, data):
    """The description: another family, a data shape claiming huge tensors, hyperparameters out
    of range, damaged records, a newer format, the metadata missing or not JSON."""
    base = shipped[name]
    meta = dict(base.meta)
    header = json.loads(json.dumps(base.header))
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(META_KEYS + ["hparam"]))
        if key == "family":
            meta["family"] = data.draw(st.one_of(st.sampled_from([i.key for i in registry.families()]), json_value))
        elif key == "data_shape":
            meta["data_shape"] = data.draw(st.one_of(st.lists(huge, max_size=4), json_value))
        elif key == "hparam":
            hp = dict(meta.get("hparams") or {})
            names_ = list(hp) + ["nonexistent"]
            hp[data.draw(st.sampled_from(names_))] = data.draw(json_value)
            meta["hparams"] = hp
        else:
            meta[key] = data.draw(json_value)
    how = data.draw(st.sampled_from(["json", "json", "json", "not json", "not a string", "no metadata"]))
    if how == "json":
        header["__metadata__"]["genmodel_sandbox"] = json.dumps(meta)
    elif how == "not json":
        header["__metadata__"]["genmodel_sandbox"] = json.dumps(meta)[: data.draw(st.integers(0, 40))]
    elif how == "not a string":
        header["__metadata__"] = data.draw(st.one_of(json_value, st.fixed_dictionaries({"genmodel_sandbox": json_value})))
    else:
        header.pop("__metadata__")
    check_load(where[0], assemble(header, base.payload), where[1], tally)


@FUZZ
@given(name=names, data=st.data())
def test_header_length_lies(shipped, where, tally, name, data):
    base = shipped[name]
    n = len(json.dumps(base.header).encode())
    length = data.draw(st.one_of(st.integers(0, n + 64), huge))
    check_load(where[0], assemble(base.header, base.payload, length), where[1], tally)


@FUZZ
@given(blob=st.one_of(st.binary(max_size=4096),
                      st.binary(min_size=1, max_size=256).map(lambda b: struct.pack("<Q", len(b)) + b),
                      json_value.map(lambda v: (lambda j: struct.pack("<Q", len(j)) + j)(json.dumps(v).encode()))))
def test_random_bytes(where, tally, blob):
    check_load(where[0], blob, where[1], tally)


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_a_pickle_under_a_safetensors_name_is_never_unpickled(where, tally, protocol):
    path, marker = where
    payload = pickle.dumps(Evil(str(marker)), protocol=protocol)
    check_load(path, payload, marker, tally)
    import zipfile  # torch.save's format: a zip holding a pickle

    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
    check_load(path, path.read_bytes(), marker, tally)
    with pytest.raises(CheckpointError, match="pickle|zip"):
        load_checkpoint(path)


def test_an_empty_file(where, tally):
    check_load(where[0], b"", where[1], tally)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_data_shape_claiming_huge_tensors_is_refused_before_building(shipped, where, tally, name):
    """The model is built from the description before the weights are read: a shape of 10^6 x
    10^6 must be refused from the file's size, not discovered by allocating it."""
    base = shipped[name]
    header = json.loads(json.dumps(base.header))
    header["__metadata__"]["genmodel_sandbox"] = json.dumps(dict(base.meta, data_shape=[10**6, 10**6]))
    path, marker = where
    path.write_bytes(assemble(header, base.payload))
    before = _peak_bytes()
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert _peak_bytes() - before <= 4 * path.stat().st_size + SLACK
    tally["cases"] = tally.get("cases", 0) + 1
    tally["refused"] = tally.get("refused", 0) + 1


@pytest.mark.parametrize("name", SHIPPED)
def test_a_sidecar_missing_or_lying_about_the_family(shipped, tmp_path, tally, name):
    """The header is the truth: a missing sidecar changes nothing; one naming another family
    (or damaged) is reported as a warning, and the header's family is loaded."""
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(shipped[name].raw)
    shutil.copy(WEIGHTS / f"{name}.json", sidecar_path(path))
    model, meta = load_checkpoint(path)
    family = meta.family
    assert meta.warnings == []

    sidecar_path(path).unlink()
    model, meta = load_checkpoint(path)
    assert meta.family == family and meta.warnings == []
    with pytest.raises(CheckpointError, match="no sidecar"):
        read_sidecar(path)

    other = next(i.key for i in registry.families() if i.key != family)
    side = json.loads((WEIGHTS / f"{name}.json").read_text())
    side["family"] = other
    side["tensors_sha256"] = "0" * 64  # a sidecar of other weights
    sidecar_path(path).write_text(json.dumps(side))
    model, meta = load_checkpoint(path)
    assert meta.family == family and model.info.key == family
    assert meta.warnings and "another version" in meta.warnings[0]
    with pytest.raises(CheckpointError, match="cannot be trusted"):  # a lying sidecar is refused
        read_sidecar(path)

    sidecar_path(path).write_text("{not json")
    model, meta = load_checkpoint(path)
    assert meta.family == family and "unreadable" in meta.warnings[0]
    sidecar_path(path).write_text("[1, 2]")
    model, meta = load_checkpoint(path)
    assert meta.family == family and meta.warnings
    assert read_checkpoint_meta(path).family == family
    tally["cases"] = tally.get("cases", 0) + 5
    tally["loaded"] = tally.get("loaded", 0) + 5


@pytest.mark.slow
@settings(FUZZ, max_examples=2000)
@given(name=names, data=st.data())
def test_metadata_and_tensor_lies_at_length(shipped, where, tally, name, data):
    """The slow run: many more mutations of the description and the tensors together."""
    base = shipped[name]
    header = json.loads(json.dumps(base.header))
    meta = dict(base.meta)
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.booleans()):
            meta[data.draw(st.sampled_from(META_KEYS))] = data.draw(json_value)
        else:
            key = data.draw(st.sampled_from(base.tensors))
            header.setdefault(key, {})[data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = data.draw(
                st.one_of(st.sampled_from(DTYPES), st.lists(huge, max_size=3), json_value))
    header["__metadata__"]["genmodel_sandbox"] = json.dumps(meta)
    check_load(where[0], assemble(header, base.payload), where[1], tally)

"""Hostile data files: wrong shape, wrong dtype, values outside {0, 1} where binary data is
expected, NaN in a CSV, empty files, random bytes. Each gives a :class:`DataError` that names the
file and the problem; a property-based run over CSV text and IDX bytes finds no other outcome."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data import DataError, binarized_mnist, load_npz_array
from core.data.mnist_digits import parse_idx, read_digits
from core.data.points import read_csv

GOOD = np.zeros((4, 784), np.uint8)
NPZ_CASES = {
    "wrong shape": (dict(train=np.zeros((4, 783), np.uint8), valid=GOOD), "shape"),
    "3-D": (dict(train=np.zeros((4, 28, 28), np.uint8), valid=GOOD), "shape"),
    "strings": (dict(train=np.full((4, 784), "1"), valid=GOOD), "dtype"),
    "complex": (dict(train=np.zeros((4, 784), np.complex64), valid=GOOD), "dtype"),
    "grey levels": (dict(train=np.full((4, 784), 0.5, np.float32), valid=GOOD), "0 or 1"),
    "a 2": (dict(train=GOOD, valid=np.where(np.eye(4, 784) > 0, 2, 0).astype(np.uint8)), "0 or 1"),
    "negative": (dict(train=-np.ones((4, 784), np.int8), valid=GOOD), "0 or 1"),
    "NaN": (dict(train=np.full((4, 784), np.nan, np.float32), valid=GOOD), "NaN"),
    "no rows": (dict(train=np.zeros((0, 784), np.uint8), valid=GOOD), "empty"),
    "no valid": (dict(train=GOOD), "no array 'valid'"),
}


@pytest.fixture(scope="module")
def tally(figures):
    t = {"cases": 0, "failures": 0}
    yield t
    figures.record("data files", **t)


def expect_data_error(tally, fn, *args, match: str | None = None) -> None:
    tally["cases"] += 1
    try:
        fn(*args)
    except DataError as exc:
        if match is not None and match.lower() not in str(exc).lower():
            tally["failures"] += 1
            raise AssertionError(f"the error does not say {match!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the failure under test
        tally["failures"] += 1
        raise AssertionError(f"{type(exc).__name__} instead of DataError: {exc}") from exc
    else:
        tally["failures"] += 1
        raise AssertionError("accepted")


@pytest.mark.parametrize("case", NPZ_CASES)
def test_binarized_mnist_file_with(tmp_path, tally, case):
    arrays, words = NPZ_CASES[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    expect_data_error(tally, binarized_mnist, path, match=words)
    expect_data_error(tally, binarized_mnist, path, match=str(path))


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, b"PK\x03\x04garbage", b"\x93NUMPY"])
def test_empty_or_foreign_npz(tmp_path, tally, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    expect_data_error(tally, binarized_mnist, path, match=str(path))
    expect_data_error(tally, load_npz_array, path, match=str(path))


def test_a_pickled_object_array_is_never_unpickled(tmp_path, tally):
    path = tmp_path / "objects.npz"
    np.savez(path, train=np.array([object()] * 3, dtype=object), valid=GOOD)
    expect_data_error(tally, binarized_mnist, path, match=str(path))


CSV_CASES = {
    "": "empty", "x,y\n": "no points", "1,2\n3,nan\n": "nan", "1,2\nnan,4\n": "nan", "1,inf\n2,3\n": "nan",
    "1,2\n3\n": "ragged", "1,2,3\n4,5,6\n": "columns", "1,2\nabc,4\n": "line 2", "1e39,0\n0,0\n": "float32",
}


@pytest.mark.parametrize("text", CSV_CASES)
def test_csv_with(tmp_path, tally, text):
    path = tmp_path / "points.csv"
    path.write_text(text)
    expect_data_error(tally, read_csv, path, match=CSV_CASES[text])


def test_binary_csv_and_idx_files(tmp_path, tally):
    path = tmp_path / "points.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    expect_data_error(tally, read_csv, path, match="UTF-8")
    images, labels = tmp_path / "images.gz", tmp_path / "labels.gz"
    images.write_bytes(b"")
    labels.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02"))
    expect_data_error(tally, read_digits, images, labels, match=str(images))
    images.write_bytes(gzip.compress(b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1b" + bytes(2 * 28 * 27)))
    expect_data_error(tally, read_digits, images, labels, match="(N, 28, 28)")


FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                 st.text(alphabet="0123456789.-+eEnaif, \t;", max_size=6))


@FUZZ
@given(rows=st.lists(st.lists(cell, min_size=0, max_size=3), max_size=6), sep=st.sampled_from([",", ";", "\t", " "]))
def test_csv_fuzz(tmp_path, tally, rows, sep):
    """Any CSV text: points that are all finite float32 pairs, or a DataError."""
    path = tmp_path / "fuzz.csv"
    path.write_text("\n".join(sep.join(r) for r in rows))
    tally["cases"] += 1
    try:
        x = read_csv(path)
    except DataError as exc:
        assert str(path) in str(exc)
    except Exception as exc:  # noqa: BLE001
        tally["failures"] += 1
        raise AssertionError(f"{type(exc).__name__} instead of DataError: {exc}") from exc
    else:
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] in (1, 2) and len(x) > 0
        assert np.isfinite(x).all()


@FUZZ
@given(raw=st.one_of(st.binary(max_size=64),
                     st.tuples(st.integers(0, 255), st.integers(0, 6), st.lists(st.integers(0, 2**32 - 1), max_size=5),
                               st.binary(max_size=64)).map(
                         lambda t: bytes([0, 0, t[0], t[1]]) + b"".join(d.to_bytes(4, "big") for d in t[2]) + t[3])))
def test_idx_fuzz(tally, raw):
    """Any bytes as an IDX file: an array exactly as the header declares, or a DataError (a
    header declaring 2^32 x 2^32 bytes is refused from the length, not allocated)."""
    tally["cases"] += 1
    try:
        x = parse_idx(raw, "fuzz")
    except DataError:
        pass
    except Exception as exc:  # noqa: BLE001
        tally["failures"] += 1
        raise AssertionError(f"{type(exc).__name__} instead of DataError: {exc}") from exc
    else:
        assert x.dtype == np.uint8 and x.size <= len(raw)

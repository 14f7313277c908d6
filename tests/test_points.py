"""CSV import and export of point sets (core.data.points)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from core.data import DataError
from core.data import points
from core.data.points import read_csv, write_csv


def _write(tmp_path, text: str, name: str = "p.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


@pytest.mark.parametrize("shape", [(100, 1), (100, 2), (1, 2), (37,)])
def test_round_trip_is_exact(tmp_path, shape):
    x = (np.random.default_rng(0).standard_normal(shape) * 10 ** np.random.default_rng(1).uniform(-8, 8, shape))
    x = x.astype(np.float32)
    path = write_csv(tmp_path / "out.csv", x)
    assert path == tmp_path / "out.csv"
    first = path.read_text().splitlines()[0]
    assert first == ("x,y" if x.ndim == 2 and x.shape[1] == 2 else "x")
    back = read_csv(path)
    assert back.dtype == np.float32 and back.flags.c_contiguous
    assert np.array_equal(back, x.reshape(len(x), -1))
    assert read_csv(path, dim=back.shape[1]).shape == back.shape


def test_round_trip_of_float64_and_integers(tmp_path):
    x = np.array([[0.1, 1e-30], [123456.789, -2.5]])
    assert np.array_equal(read_csv(write_csv(tmp_path / "a.csv", x)), x.astype(np.float32))
    assert read_csv(write_csv(tmp_path / "b.csv", np.array([1, 2, 3])))[:, 0].tolist() == [1, 2, 3]


def test_write_is_atomic_and_replaces(tmp_path, monkeypatch):
    path = tmp_path / "pts.csv"
    write_csv(path, np.zeros((3, 2)))
    write_csv(path, np.ones((2, 2)))
    assert read_csv(path).tolist() == [[1, 1], [1, 1]]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(points.np, "savetxt", broken)
    with pytest.raises(OSError, match="disk full"):
        write_csv(path, np.full((5, 2), 7.0))
    assert read_csv(path).tolist() == [[1, 1], [1, 1]]  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["pts.csv"]  # no temporary file left


@pytest.mark.parametrize("x, match", [
    (np.zeros((3, 3)), "shape"), (np.zeros((2, 2, 2)), "shape"), (np.array([[1.0, np.nan]]), "NaN"),
    (np.array([np.inf]), "NaN or infinite"), (np.array(["a"]), "numbers"),
])
def test_write_rejects_bad_points(tmp_path, x, match):
    with pytest.raises(DataError, match=match):
        write_csv(tmp_path / "x.csv", x)
    assert list(tmp_path.iterdir()) == []


def test_write_to_a_missing_folder(tmp_path):
    with pytest.raises(DataError, match="cannot write"):
        write_csv(tmp_path / "no" / "such" / "x.csv", np.zeros((2, 1)))


@pytest.mark.parametrize("text, expected", [
    ("1,2\n3,4\n", [[1, 2], [3, 4]]),
    ("x,y\n1,2\n3,4\n", [[1, 2], [3, 4]]),
    ("x, y\n 1 , 2 \n3,4", [[1, 2], [3, 4]]),
    ("a;b\n1,5;2\n3;-4e1\n", [[1.5, 2], [3, -40]]),  # semicolons, decimal commas
    ("1 2\n3\t4\n\n   \n5    6\n", [[1, 2], [3, 4], [5, 6]]),
    ("# exported, by hand\nx\n1\n# a comment\n2.5\n", [[1], [2.5]]),
    ("\ufeffx,y\r\n1,2\r\n", [[1, 2]]),  # a byte-order mark and Windows line ends
    ("value\n-0.25\n", [[-0.25]]),
])
def test_read_formats(tmp_path, text, expected):
    got = read_csv(_write(tmp_path, text))
    assert got.dtype == np.float32 and got.tolist() == expected


def test_read_bom_file(tmp_path):
    assert read_csv(_write(tmp_path, "x\n3\n", encoding="utf-8-sig")).tolist() == [[3]]


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("\n  \n# only a comment\n", "empty"),
    ("x,y\n", "header .*line 1.* no points"),
    ("1,2\n3,4\n5\n", r"line 3: 1 columns where line 1 has 2 \(ragged rows\)"),
    ("x,y\n1,2\n\n3,4,5\n", "line 4: 3 columns"),
    ("1,2\n3,four\n", "line 2: 'four' is not a number"),
    ("1 2\n3 4\n", None),
    ("1,2\n3,\n", "line 2: an empty cell"),
    ("1,2\nnan,4\n", "line 2: NaN or infinite value"),
    ("x\n1\n2\n-inf\n", "line 4: NaN or infinite"),
    ("1,2,3\n4,5,6\n", "3 columns; point data have 1"),
    ("1\n1e39\n", "line 2: value too large"),
])
def test_read_errors(tmp_path, text, match):
    path = _write(tmp_path, text)
    if match is None:
        assert read_csv(path).shape == (2, 2)
        return
    with pytest.raises(DataError, match=match) as err:
        read_csv(path)
    assert "p.csv" in str(err.value)


def test_read_dimension_mismatch(tmp_path):
    path = _write(tmp_path, "1,2\n3,4\n")
    assert read_csv(path, dim=2).shape == (2, 2)
    with pytest.raises(DataError, match="2 columns; expected 1-dimensional"):
        read_csv(path, dim=1)
    with pytest.raises(DataError, match="1 column; expected 2-dimensional"):
        read_csv(_write(tmp_path, "1\n2\n", "one.csv"), dim=2)
    with pytest.raises(ValueError, match="dim"):
        read_csv(path, dim=3)


def test_read_missing_and_unreadable(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_csv(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="not found"):
        read_csv(tmp_path)  # a folder
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(DataError, match="not a text"):
        read_csv(tmp_path / "bin.csv")


def test_read_many_points_quickly(tmp_path):
    x = np.random.default_rng(0).standard_normal((50_000, 2)).astype(np.float32)
    assert np.array_equal(read_csv(write_csv(tmp_path / "big.csv", x)), x)

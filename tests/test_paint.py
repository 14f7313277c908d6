"""Painting point sets by hand (core.data.paint.PaintBuffer)."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.paint import PaintBuffer

BOX = ((-5.0, 5.0), (-5.0, 5.0))


def test_brush_adds_points_uniform_in_the_disc():
    buf = PaintBuffer(2, BOX, seed=0)
    assert len(buf) == 0 and buf.points.shape == (0, 2) and buf.points.dtype == np.float32
    assert buf.brush((1.0, -1.0), 2.0, 5000) == 5000
    x = buf.points
    assert x.shape == (5000, 2) and x.dtype == np.float32
    r2 = ((x - np.array([1.0, -1.0])) ** 2).sum(1)
    assert r2.max() <= 4.0 + 1e-5
    assert r2.mean() == pytest.approx(2.0, rel=0.05)  # uniform in a disc: E r^2 = R^2 / 2
    assert np.abs(x.mean(0) - [1, -1]).max() < 0.05
    assert buf.brush([0, 0], 0.5) == 1 and len(buf) == 5001  # intensity defaults to 1


def test_brush_in_1d():
    buf = PaintBuffer(1, [(0.0, 10.0)], seed=1)
    buf.brush(3.0, 1.0, 2000)
    x = buf.points
    assert x.shape == (2000, 1) and x.min() >= 2.0 and x.max() <= 4.0
    assert x.mean() == pytest.approx(3.0, abs=0.05)
    buf.brush([9.5], 1.0, 1000)  # the interval is cut at the bound
    y = buf.points[2000:]
    assert y.min() >= 8.5 and y.max() <= 10.0 and y.mean() == pytest.approx(9.25, abs=0.05)


def test_brush_is_clipped_to_the_bounds():
    buf = PaintBuffer(2, BOX, seed=2)
    assert buf.brush((5.0, 5.0), 1.0, 4000) == 4000  # a corner: only a quarter disc is inside
    x = buf.points
    assert (x <= 5.0).all() and (x >= 4.0 - 1e-6).all()
    assert (((x - 5.0) ** 2).sum(1) <= 1.0 + 1e-5).all()
    assert x.mean(0) == pytest.approx([5 - 4 / (3 * np.pi)] * 2, abs=0.03)  # centroid of a quarter disc
    # a brush partly outside, centred beyond the edge
    buf.brush((5.5, 0.0), 1.0, 500)
    y = buf.points[4000:]
    assert (y[:, 0] <= 5.0).all() and (((y - [5.5, 0.0]) ** 2).sum(1) <= 1.0 + 1e-5).all()


def test_brush_wholly_outside_adds_nothing():
    buf = PaintBuffer(2, BOX)
    assert buf.brush((7.0, 7.0), 1.0, 10) == 0  # the box around the disc misses the bounds
    assert buf.brush((5.9, 5.9), 1.0, 10) == 0  # the disc's box overlaps, the disc does not
    one = PaintBuffer(1, [(0.0, 1.0)])
    assert one.brush(3.0, 1.0, 10) == 0
    assert len(buf) == 0 and not buf.can_undo and len(one) == 0 and not one.can_undo


def test_brush_is_seeded():
    a, b, c = PaintBuffer(2, BOX, seed=5), PaintBuffer(2, BOX, seed=5), PaintBuffer(2, BOX, seed=6)
    for buf in (a, b, c):
        buf.brush((0, 0), 1, 50)
    assert np.array_equal(a.points, b.points) and not np.array_equal(a.points, c.points)


def test_erase():
    buf = PaintBuffer(2, BOX)
    buf.set_points([[0, 0], [0.5, 0], [1.0, 0], [3, 3]])
    assert buf.erase((0, 0), 0.75) == 2
    assert buf.points.tolist() == [[1, 0], [3, 3]]
    assert buf.erase((0, 0), 1.0) == 1  # on the circle counts as within
    assert buf.erase((-4, -4), 0.5) == 0
    assert buf.points.tolist() == [[3, 3]]


def test_undo_redo():
    buf = PaintBuffer(2, BOX, seed=0)
    assert not buf.can_undo and not buf.can_redo and buf.undo() is False and buf.redo() is False
    buf.brush((0, 0), 1, 10)
    s1 = buf.points
    buf.brush((2, 2), 1, 5)
    s2 = buf.points
    buf.erase((0, 0), 1.0)
    s3 = buf.points
    assert len(s3) == 5 and buf.can_undo and not buf.can_redo
    assert buf.undo() and np.array_equal(buf.points, s2) and buf.can_redo
    assert buf.undo() and np.array_equal(buf.points, s1)
    assert buf.undo() and len(buf) == 0 and not buf.can_undo
    assert buf.redo() and np.array_equal(buf.points, s1)
    assert buf.redo() and np.array_equal(buf.points, s2)  # redo restores exactly, no resampling
    buf.clear()
    assert len(buf) == 0 and not buf.can_redo  # a new action clears the redo history
    assert buf.undo() and np.array_equal(buf.points, s2)
    buf.set_points(np.zeros((3, 2)))
    assert not buf.can_redo and len(buf) == 3
    assert buf.undo() and np.array_equal(buf.points, s2)
    assert buf.redo() and len(buf) == 3


def test_noop_actions_are_not_recorded():
    buf = PaintBuffer(2, BOX)
    buf.clear()
    buf.erase((0, 0), 1)
    assert not buf.can_undo
    buf.brush((0, 0), 1, 3)
    buf.undo()
    buf.erase((0, 0), 1)  # nothing to erase: the redo history survives
    assert buf.can_redo


def test_points_is_a_copy_and_set_points_validates():
    buf = PaintBuffer(1, [(0, 1)])
    buf.set_points(np.array([0.25, 0.5, 7.0]))  # kept as given, even outside the bounds
    p = buf.points
    p[:] = -1
    assert buf.points[:, 0].tolist() == [0.25, 0.5, 7.0] and buf.points.dtype == np.float32
    for bad in (np.zeros((2, 2)), np.array([[np.nan]]), np.array([np.inf])):
        with pytest.raises(ValueError):
            buf.set_points(bad)
    assert len(buf) == 3


def test_history_limit():
    buf = PaintBuffer(2, BOX, max_history=3)
    for i in range(6):
        buf.brush((0, 0), 1, 1)
    n = 0
    while buf.undo():
        n += 1
    assert n == 3 and len(buf) == 3


@pytest.mark.parametrize("args, match", [
    ((3, BOX), "dim"), ((0, BOX), "dim"), ((True, [(0, 1)]), "dim"), ((2, [(0, 1)]), "bounds"),
    ((2, ((0, 1), (1, 1))), "bounds"), ((2, ((0, 1), (0, np.inf))), "bounds"), ((1, [(2, 1)]), "bounds"),
])
def test_constructor_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        PaintBuffer(*args)


@pytest.mark.parametrize("call, match", [
    (lambda b: b.brush((0, 0), 0.0, 1), "radius"), (lambda b: b.brush((0, 0), -1, 1), "radius"),
    (lambda b: b.brush((0, 0), float("nan"), 1), "radius"), (lambda b: b.brush((0, 0), 1, 0), "intensity"),
    (lambda b: b.brush((0, 0), 1, 2.5), "intensity"), (lambda b: b.brush((0, 0), 1, True), "intensity"),
    (lambda b: b.brush((np.nan, 0), 1, 1), "finite"), (lambda b: b.brush((0, np.inf), 1, 1), "finite"),
    (lambda b: b.brush((0, 0, 0), 1, 1), "coordinate"), (lambda b: b.brush(0.0, 1, 1), "coordinate"),
    (lambda b: b.erase((0, 0), 0), "radius"), (lambda b: b.erase((np.nan, 0), 1), "finite"),
])
def test_actions_reject_bad_arguments(call, match):
    buf = PaintBuffer(2, BOX)
    with pytest.raises(ValueError, match=match):
        call(buf)
    assert len(buf) == 0 and not buf.can_undo

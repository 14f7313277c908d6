"""The Canvas tab's state without a window (core.canvas_state): strokes, undo/redo, tools and
modes with their events, the region and what a completion keeps, a completion's progress; and the
pure readouts helpers of core.readouts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core import registry
from core.checkpoint import CheckpointMeta
from core.canvas_state import UNDO_DEPTH, Callbacks, CanvasState, Completion
from core.readouts import candidate_tiles, check_meta, image_shape_of, nll_percentiles, PENDING

H, W = 6, 8


@pytest.fixture
def state():
    s = CanvasState((H, W))
    s.log = []
    s.events.edited.connect(lambda: s.log.append("edited"))
    s.events.tool.connect(lambda t: s.log.append(("tool", t)))
    s.events.mode.connect(lambda m: s.log.append(("mode", m)))
    s.events.row.connect(lambda k: s.log.append(("row", k)))
    return s


def stroke(s: CanvasState, cells, opposite=False):
    s.begin_stroke(opposite)
    for cell in cells:
        s.stroke_to(cell)
    s.end_stroke()


def test_callbacks_call_each_in_order_and_can_be_disconnected():
    got = []
    cb = Callbacks()
    first = cb.connect(lambda x: got.append(("a", x)))
    cb.connect(lambda x: got.append(("b", x)))
    cb.emit(1)
    cb.disconnect(first)
    cb.emit(2)
    assert got == [("a", 1), ("b", 1), ("b", 2)]


def test_a_stroke_fills_the_gaps_and_is_one_undo_step(state):
    stroke(state, [(1, 0), (1, 7)])  # two points: the segment between them is drawn
    assert state.image[1].all() and state.image.sum() == W
    assert state.log.count("edited") == 2 and len(state.undo_stack) == 1
    state.set_brush(2)
    stroke(state, [(4, 4)])
    assert state.image[4:6, 4:6].all() and state.image.sum() == W + 4
    stroke(state, [(1, 2)], opposite=True)  # the right button: the eraser
    assert state.image[1:3, 2:4].sum() == 0 and state.image.sum() == W + 2
    assert len(state.undo_stack) == 3
    assert state.undo() and state.image.sum() == W + 4
    assert state.undo() and state.image.sum() == W
    assert state.can_redo and state.redo() and state.image.sum() == W + 4
    stroke(state, [(0, 0)])  # a new edit drops the redo steps
    assert not state.can_redo and not state.redo()


def test_a_click_that_changes_nothing_is_no_undo_step_and_leaving_the_canvas_breaks_the_line(state):
    stroke(state, [(2, 2)])
    n = len(state.undo_stack)
    stroke(state, [(2, 2)])  # ink on ink
    assert len(state.undo_stack) == n
    state.clear()
    state.begin_stroke()
    state.stroke_to((0, 0))
    state.stroke_to(None)  # the pointer left the canvas
    state.stroke_to((0, 6))
    state.end_stroke()
    assert state.image[0].tolist() == [1, 0, 0, 0, 0, 0, 1, 0]


def test_undo_depth_is_bounded_and_clear_is_undoable(state):
    for i in range(UNDO_DEPTH + 5):
        state.set_image(np.full((H, W), i % 2))
    assert len(state.undo_stack) == UNDO_DEPTH
    state.clear()
    assert not state.image.any()
    state.undo()
    assert state.image.any()
    before = len(state.undo_stack)
    state.clear()
    state.clear()  # nothing left to clear: no step
    assert len(state.undo_stack) == before + 1
    while state.undo():
        pass
    assert not state.can_undo


def test_region_tools_need_the_region_mode_and_leaving_it_takes_the_pen(state):
    with pytest.raises(ValueError, match="region mode"):
        state.set_tool("region")
    assert state.tool == "pen"
    state.set_mode("region")
    state.set_tool("region")
    stroke(state, [(2, 1), (2, 5)])
    assert state.region[2, 1:6].all() and state.region.sum() == 5 and not state.image.any()
    stroke(state, [(2, 3)], opposite=True)  # unmark
    assert state.region.sum() == 4
    state.set_mode("rows")
    assert state.tool == "pen"
    assert state.log[-2:] == [("tool", "pen"), ("mode", "rows")]
    assert state.region.sum() == 4, "the region is kept for the next time"
    with pytest.raises(ValueError):
        state.set_mode("circle")
    with pytest.raises(ValueError):
        state.set_brush(4)


def test_row_and_split_line(state):
    assert state.row == H // 2 and state.split_row == H // 2
    state.set_row(2)
    state.set_row(2)  # unchanged: no event
    state.set_row(99)
    assert state.row == H and [e for e in state.log if e[0] == "row"] == [("row", 2), ("row", H)]
    state.set_mode("region")
    assert state.split_row is None


def test_known_mask_in_both_modes(state):
    known, note = state.known_mask()
    assert known is not None and not known.any() and "empty" in note  # nothing drawn: sampling
    state.set_image(np.eye(H, W))
    state.set_row(2)
    known, note = state.known_mask()
    assert known[:2].all() and not known[2:].any() and note is None
    state.set_row(H)
    known, note = state.known_mask()
    assert known is None and "lower k" in note
    state.set_row(0)
    assert "k = 0" in state.known_mask()[1]
    state.set_mode("region")
    known, note = state.known_mask()
    assert known is None and "region brush" in note
    region = np.zeros((H, W), bool)
    region[3:, 2:5] = True
    state.set_image(state.image, region)
    known, note = state.known_mask()
    np.testing.assert_array_equal(known, ~region)
    state.set_image(state.image, np.ones((H, W), bool))
    assert "whole canvas" in state.known_mask()[1]
    state.set_image(np.ones((H, W)), region)
    assert "full" in state.known_mask()[1]


def test_completion_progress():
    image = np.zeros((2, 3))
    image[0] = 1
    known = np.zeros((2, 3), bool)
    known[0] = True
    c = Completion.start(image, known, n=2, name="m", note=None)
    assert c.total == 3 and c.x.shape == (2, 6) and c.x[:, :3].all() and not c.x[:, 3:].any()
    assert c.pending.tolist() == [False] * 3 + [True] * 3 and not c.finished
    for done, pixel in enumerate((3, 4, 5), start=1):
        x = torch.tensor(c.x)
        x[:, pixel] = 1.0
        c.take(SimpleNamespace(pixel=pixel, p=torch.tensor([0.25, 0.75]), x=x, done=done, total=3))
        # the step taken is the next pixel: shown, not yet counted as drawn
        assert c.pixel == pixel and not c.drawn[pixel] and c.pending[pixel]
    assert c.drawn.tolist() == [False, False, False, True, True, False]
    np.testing.assert_allclose(c.p, [0.25, 0.75])
    assert c.finished and c.x[:, 3:].all()
    c.finish()
    assert not c.pending.any()


def test_candidate_tiles_colour_known_model_and_pending_pixels():
    x = np.array([[1, 0, 1, 0]], np.float32)
    known = np.array([True, True, False, False])
    pending = np.array([False, False, False, True])
    tiles = candidate_tiles(x, known, pending, (2, 2))
    assert tiles.shape == (1, 2, 2, 3) and tiles.dtype == np.uint8
    assert tuple(tiles[0, 1, 1]) == PENDING
    assert len({tuple(tiles[0, r, c]) for r, c in ((0, 0), (0, 1), (1, 0))}) == 3  # ink, paper, model ink


def test_image_shapes_and_checkpoint_fit():
    assert image_shape_of((28, 28)) == (28, 28)
    assert image_shape_of((784,)) == (28, 28)
    assert image_shape_of((12,), (3, 4)) == (3, 4)
    assert image_shape_of((12,)) is None
    def meta(**raw):
        return CheckpointMeta.parse(raw)

    assert check_meta(meta(family="nade", data_shape=[784]), (28, 28)) is None
    assert check_meta(meta(family="nade", data_shape=[12], data={"image_shape": [3, 4]}), (3, 4)) is None
    assert "8x8" in check_meta(meta(family="nade", data_shape=[64]), (28, 28))
    assert "unknown model family" in check_meta(meta(family="nope"), (28, 28))
    assert "not of binary images" in check_meta(meta(family="gaussian", data_shape=[2]), (28, 28))


def test_nll_percentiles_reshape_flat_digits_for_a_2d_model():
    torch.manual_seed(0)
    model = registry.create("nade", (4, 4), hidden=3).eval()
    x = (np.random.default_rng(0).random((37, 16)) > 0.5).astype(np.uint8)
    with torch.no_grad():
        nll = -model.log_prob(torch.from_numpy(x.astype(np.float32)).reshape(-1, 4, 4)).double().numpy()
    got = nll_percentiles(model, x, batch_size=10)  # batches do not change the result
    assert got.shape == (101,) and np.all(np.diff(got) >= 0)
    np.testing.assert_allclose(got, np.percentile(nll, np.arange(101)), rtol=1e-6)
    assert got[0] == pytest.approx(nll.min()) and got[-1] == pytest.approx(nll.max())

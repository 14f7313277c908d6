"""The training engine: the Trainer generator, live changes, the NaN guard, devices,
RunControl (pause / step / resume / stop across threads) and throttling to a frame rate."""

from __future__ import annotations

import inspect
import math
import threading
import time

import numpy as np
import pytest
import torch

from core import data as datasets
from core import registry
from core.evaluation import evaluate
from core.data import Dataset
from core.control import RunControl, throttled
from core.device import select_device
from core.training import Snapshot, TrainConfig, Trainer, Visuals
from core.models.fvsbn import FVSBN
from core.protocol import DataKind

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_device_env(monkeypatch):
    monkeypatch.delenv("GMS_FORCE_CPU", raising=False)
    monkeypatch.delenv("GMS_DEVICE", raising=False)


@pytest.fixture(scope="module")
def bars():
    return datasets.load("bars", n=256)  # 256 train, 64 valid, 784 pixels


def tiny_data(d: int = 6, n: int = 128, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    p = np.linspace(0.1, 0.9, d)
    x = (rng.random((n + 32, d)) < p).astype(np.uint8)
    x[:, -1] = x[:, 0]  # some structure to learn
    return Dataset("tiny", DataKind.BINARY_IMAGE, x[:n], x[n:])


def cfg(**kw) -> TrainConfig:
    kw.setdefault("device", "cpu")
    kw.setdefault("visuals_every_s", None)
    return TrainConfig(**kw)


def state_copy(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def states_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------------------------
# the trainer generator
# --------------------------------------------------------------------------------------------


def test_snapshots_steps_events_and_eval_metrics(bars):
    model = registry.create("fvsbn", bars.shape, bars.kind, lr=0.01)
    trainer = Trainer(model, bars, cfg(max_steps=12, eval_every=4))
    snaps = list(trainer.run())
    assert [s.step for s in snaps] == list(range(1, 13))
    assert all(s.total_steps == 12 for s in snaps)
    assert [s.event for s in snaps] == ["step"] * 3 + ["eval"] + ["step"] * 3 + ["eval"] + ["step"] * 3 + ["finished"]
    assert all(math.isfinite(s.loss) for s in snaps)
    assert all(s.image_shape == (28, 28) and s.device == "cpu" for s in snaps)
    assert snaps[3].epoch == pytest.approx(1.0)  # 256 examples / batch 64 = 4 steps per epoch
    assert [s.elapsed for s in snaps] == sorted(s.elapsed for s in snaps)
    assert all(s.nll is None for s in snaps[:3])
    for s in (snaps[3], snaps[7], snaps[11]):
        assert s.nll is not None and not s.nll.is_bound and s.nll.n == 64
        assert s.nll.bits_per_dim == pytest.approx(s.nll.nats / (784 * math.log(2)))
        assert "valid_nll" not in s.metrics  # one name: the snapshot's nll
    assert snaps[4].nll == snaps[3].nll != snaps[7].nll  # the latest evaluation, until the next
    # the final evaluation is of the final weights, on the held-out set
    assert snaps[-1].nll.nats == pytest.approx(evaluate(model, bars.valid).nats, rel=1e-5)
    assert trainer.step == 12


def test_epochs_set_the_number_of_steps_and_eval_every_zero():
    data = tiny_data(n=100)
    model = registry.create("fvsbn", data.shape, batch_size=32)
    trainer = Trainer(model, data, cfg(epochs=2, eval_every=0))
    assert trainer.steps_per_epoch == 4 and trainer.total_steps == 8
    snaps = list(trainer.run())
    assert len(snaps) == 8 and snaps[-1].event == "finished"
    assert [s for s in snaps if s.nll is not None] == [snaps[-1]]


def test_trainer_rejects_mismatched_or_empty_data():
    data = tiny_data(d=6)
    with pytest.raises(ValueError, match="shape"):
        Trainer(registry.create("fvsbn", (5,)), data, cfg())
    empty = Dataset("empty", DataKind.BINARY_IMAGE, data.train[:0], data.valid)
    with pytest.raises(ValueError, match="no training examples"):
        Trainer(registry.create("fvsbn", (6,)), empty, cfg())


def _losses(data, seed):
    model = registry.create("fvsbn", data.shape, lr=0.05, batch_size=16)
    return [s.loss for s in Trainer(model, data, cfg(max_steps=15, seed=seed, eval_every=0)).run()]


def test_seeded_runs_are_identical():
    data = tiny_data()
    a, b = _losses(data, seed=3), _losses(data, seed=3)
    assert a == b
    assert _losses(data, seed=4) != a  # the seed does drive the batch order


def test_held_out_nll_falls(bars):
    model = registry.create("fvsbn", bars.shape, bars.kind, lr=0.01)
    snaps = list(Trainer(model, bars, cfg(max_steps=60, eval_every=20)).run())
    nll = [s.nll.nats for s in snaps if s.event in ("eval", "finished")]
    assert len(nll) == 3
    assert 784 * math.log(2) > nll[0] > nll[1] > nll[2]
    assert nll[2] < 0.8 * 784 * math.log(2)


def test_visuals_arrays(bars):
    model = registry.create("fvsbn", bars.shape, bars.kind)
    snaps = list(Trainer(model, bars, cfg(max_steps=3, visuals_every_s=0, visuals_n=5)).run())
    for s in snaps:
        samples = s.arrays.samples
        assert samples.shape == (5, 784) and samples.dtype == np.float32
        assert samples.flags.c_contiguous
        assert set(np.unique(samples)) <= {0.0, 1.0}


class SlowVisuals(FVSBN):
    """Sampling that takes 50 ms, like PixelCNN's pass per pixel."""

    def visuals(self, n=64, generator=None, bounds=None, res=96):
        time.sleep(0.05)  # about time itself: the cost the trainer must keep to a tenth
        return Visuals(samples=np.zeros((1, *self.data_shape), np.float32))


def test_slow_visuals_get_at_most_a_tenth_of_the_time():
    data = tiny_data()
    model = SlowVisuals(data.shape, FVSBN.info.validate({}))
    t0 = time.perf_counter()
    shown = 0
    for s in Trainer(model, data, cfg(max_steps=100_000, visuals_every_s=0.01)).run():
        shown += bool(s.arrays)
        if time.perf_counter() - t0 > 1.5:
            break
    elapsed = time.perf_counter() - t0
    # one every 9 x 50 ms at most (plus the first): the views took <= ~10 % of the run
    assert 1 <= shown <= elapsed / 0.45 + 1.5
    assert shown * 0.05 <= 0.15 * elapsed


def test_no_visuals_when_disabled():
    data = tiny_data()
    snaps = list(Trainer(registry.create("fvsbn", data.shape), data, cfg(max_steps=4)).run())
    assert all(not s.arrays and s.arrays.as_dict() == {} for s in snaps)


def test_set_lr_from_another_thread():
    data = tiny_data()
    model = registry.create("fvsbn", data.shape, lr=0.01, batch_size=16)
    trainer = Trainer(model, data, cfg(max_steps=10, eval_every=0))
    run = trainer.run()
    next(run)
    assert model.optimizer.param_groups[0]["lr"] == 0.01
    t = threading.Thread(target=trainer.set_lr, args=(0.003,))
    t.start()
    t.join(5)
    assert model.optimizer.param_groups[0]["lr"] == 0.01  # applied by the training loop, not the caller
    next(run)
    assert model.optimizer.param_groups[0]["lr"] == 0.003
    assert model.hparams["lr"] == 0.003
    for bad in (-1.0, 0.0, 5.0, math.nan, "fast"):
        with pytest.raises(ValueError, match="lr"):
            trainer.set_lr(bad)
    next(run)
    assert model.optimizer.param_groups[0]["lr"] == 0.003  # a rejected value changes nothing
    run.close()


# --------------------------------------------------------------------------------------------
# the NaN guard
# --------------------------------------------------------------------------------------------


class NaNLossAt(FVSBN):
    """An FVSBN whose loss becomes NaN at its ``bad``-th training step."""

    bad = 5

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls = 0

    def loss(self, batch):
        self.calls += 1
        loss = super().loss(batch)
        return loss * math.nan if self.calls == self.bad else loss


class NaNWeightsAt(FVSBN):
    """An FVSBN whose weights become NaN right after its ``bad``-th step (with a finite loss)."""

    bad = 6

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls = 0

    def train_step(self, batch):
        out = super().train_step(batch)
        self.calls += 1
        if self.calls == self.bad:
            with torch.no_grad():
                self.weight[0, 0] = math.nan
        return out


def _run_capturing_states(model, data, **kw):
    trainer = Trainer(model, data, cfg(**kw))
    run = trainer.run()
    snaps, states = [], {}
    for s in run:
        snaps.append(s)
        if s.event != "nonfinite":  # it repeats the step number of the last good step
            states[s.step] = state_copy(model)
    with pytest.raises(StopIteration):
        next(run)
    return trainer, snaps, states


@pytest.mark.parametrize("cls, bad_step", [(NaNLossAt, 5), (NaNWeightsAt, 6)])
def test_nan_guard_restores_last_good_weights(cls, bad_step):
    data = tiny_data()
    model = cls(data.shape, FVSBN.info.validate({"lr": 0.05, "batch_size": 16}))
    trainer, snaps, states = _run_capturing_states(model, data, max_steps=20, eval_every=3)
    last = snaps[-1]
    assert last.event == "nonfinite" and last is not snaps[0]
    assert last.message and "restored" in last.message and str(bad_step) in last.message
    assert math.isnan(last.loss)
    assert [s.event for s in snaps[:-1]] == ["step", "step", "eval", "step", "step", "eval"][:len(snaps) - 1]
    assert len(snaps) == bad_step  # steps 1..bad-1, then the nonfinite snapshot
    # the weights are those checked at the last evaluation (step 3), not the later ones
    assert states[4] is not None and not states_equal(states[4], states[3])
    assert states_equal(state_copy(model), states[3])
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_guard_before_any_eval_restores_the_initial_weights():
    data = tiny_data()
    model = NaNLossAt(data.shape, FVSBN.info.validate({"lr": 0.05, "batch_size": 16}))
    initial = state_copy(model)
    _, snaps, states = _run_capturing_states(model, data, max_steps=20, eval_every=10)
    assert snaps[-1].event == "nonfinite"
    assert not states_equal(states[4], initial)
    assert states_equal(state_copy(model), initial)


# --------------------------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------------------------

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a CPU-only machine")


@needs_no_cuda
@pytest.mark.parametrize("pref", ["cuda", "cuda:1", "CUDA"])
def test_cuda_request_falls_back_to_cpu_with_a_message(pref):
    device, message = select_device(pref)
    assert device == torch.device("cpu")
    assert message and "CUDA" in message and "CPU" in message


@needs_no_cuda
def test_cuda_from_environment_and_auto(monkeypatch):
    assert select_device("auto") == (torch.device("cpu"), None)
    assert select_device(None) == (torch.device("cpu"), None)
    monkeypatch.setenv("GMS_DEVICE", "cuda")
    device, message = select_device()
    assert device.type == "cpu" and "CUDA" in message


def test_cpu_is_honoured():
    assert select_device("cpu") == (torch.device("cpu"), None)
    assert select_device("CPU") == (torch.device("cpu"), None)


def test_force_cpu_overrides_everything(monkeypatch):
    monkeypatch.setenv("GMS_FORCE_CPU", "1")
    monkeypatch.setenv("GMS_DEVICE", "cuda")
    assert select_device("cuda") == (torch.device("cpu"), None)
    assert select_device() == (torch.device("cpu"), None)


@pytest.mark.parametrize("pref", ["tpu", "gpu", "mps0", "cpu:0x"])
def test_invalid_device_raises(pref):
    with pytest.raises(ValueError, match="device"):
        select_device(pref)


@needs_no_cuda
def test_trainer_reports_the_cuda_fallback_first():
    data = tiny_data()
    snaps = list(Trainer(registry.create("fvsbn", data.shape), data, cfg(device="cuda", max_steps=2)).run())
    assert snaps[0].event == "device" and "CUDA" in snaps[0].message and snaps[0].step == 0
    assert [s.step for s in snaps[1:]] == [1, 2] and all(s.device == "cpu" for s in snaps)


# --------------------------------------------------------------------------------------------
# RunControl across threads
# --------------------------------------------------------------------------------------------


def fake_snapshots(pulled: list, closed: threading.Event, n: int | None = None, delay: float = 0.001,
                   clock: list | None = None, tick: float = 0.0, eval_every: int = 0, arrays_every: int = 0):
    """Snapshots 1, 2, ... (``n`` of them, or forever); records what was pulled and the close."""
    try:
        step = 0
        while n is None or step < n:
            step += 1
            if delay:
                time.sleep(delay)  # about time itself: a step's duration
            if clock is not None:
                clock[0] += tick
            event = "step"
            if n is not None and step == n:
                event = "finished"
            elif eval_every and step % eval_every == 0:
                event = "eval"
            arrays = Visuals(samples=np.array([[step]])) if arrays_every and step % arrays_every == 0 else Visuals()
            pulled.append(step)
            yield Snapshot(step=step, total_steps=n or 0, epoch=0.0, loss=1.0 / step, event=event,
                           arrays=arrays, elapsed=clock[0] if clock else 0.0)
    finally:
        closed.set()


def _wait_until(pred, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


def _settle(count, quiet: float = 0.1, timeout: float = 3.0) -> int:
    """Wait until ``count()`` stops changing for ``quiet`` seconds (the step in flight when a
    pause was asked for may still finish, later on a busy machine); return it."""
    end = time.monotonic() + timeout
    n = count()
    while time.monotonic() < end:
        time.sleep(quiet)
        if count() == n:
            return n
        n = count()
    raise AssertionError("the consumer did not come to rest after pause()")


def test_run_control_pause_step_resume_stop():
    pulled, closed, frames = [], threading.Event(), []
    control = RunControl(paused=True)
    it = throttled(fake_snapshots(pulled, closed), control, fps=1000)
    consumer = threading.Thread(target=lambda: frames.extend(it), daemon=True)
    consumer.start()

    time.sleep(0.2)  # about time itself: nothing is pulled during 200 ms of pause
    assert pulled == [] and consumer.is_alive() and control.paused

    control.step(1)
    assert _wait_until(lambda: len(pulled) == 1)
    time.sleep(0.2)  # about time itself: no second snapshot in the next 200 ms
    assert pulled == [1], "step(1) let more than one snapshot through"
    assert _wait_until(lambda: len(frames) == 1)
    assert frames[0].snapshot.step == 1 and frames[0].steps == 1  # paused: every step is shown

    control.step(2)
    assert _wait_until(lambda: len(pulled) == 3)
    time.sleep(0.1)  # about time itself: no third grant's worth in the next 100 ms
    assert pulled == [1, 2, 3]

    control.resume()
    assert not control.paused
    assert _wait_until(lambda: len(pulled) > 30)

    control.pause()
    n = _settle(lambda: len(pulled))
    time.sleep(0.2)  # about time itself: no progress during 200 ms of pause
    assert len(pulled) == n, "the consumer made progress while paused"

    control.resume()
    assert _wait_until(lambda: len(pulled) > n + 10)
    t0 = time.monotonic()
    control.stop()
    consumer.join(1.0)
    assert not consumer.is_alive() and time.monotonic() - t0 < 1.0
    assert control.stopped and closed.is_set()
    # every snapshot pulled was handed on, none twice
    assert sum(f.steps for f in frames) == len(pulled)
    assert np.concatenate([f.curve[:, 0] for f in frames]).tolist() == pulled


def test_stop_while_paused_ends_the_consumer():
    pulled, closed, frames = [], threading.Event(), []
    control = RunControl(paused=True)
    snaps = fake_snapshots(pulled, closed)
    consumer = threading.Thread(target=lambda: frames.extend(throttled(snaps, control)), daemon=True)
    consumer.start()
    # no observable "blocked in wait()": give the consumer time to get there (a stop before it
    # does is the other case, and must end it as well)
    time.sleep(0.05)
    control.stop()
    consumer.join(1.0)
    assert not consumer.is_alive() and pulled == [] and frames == []
    assert inspect.getgeneratorstate(snaps) == inspect.GEN_CLOSED


def test_wait_timeout_and_grants():
    c = RunControl(paused=True)
    t0 = time.monotonic()
    assert c.wait(timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.04
    c.step(2)
    assert c.wait(0.01) and c.wait(0.01) and not c.wait(0.01)
    c.resume()
    assert all(c.wait(0.01) for _ in range(5))
    c.stop()
    assert c.wait(0.01) is False


def test_stop_ends_a_real_training_consumer():
    data = tiny_data()
    trainer = Trainer(registry.create("fvsbn", data.shape, batch_size=8), data,
                      cfg(max_steps=10**7, eval_every=0))
    run = trainer.run()
    control, frames = RunControl(), []
    consumer = threading.Thread(target=lambda: frames.extend(throttled(run, control, fps=50)), daemon=True)
    consumer.start()
    assert _wait_until(lambda: trainer.step > 20)
    control.pause()
    step = _settle(lambda: trainer.step)
    time.sleep(0.2)  # about time itself: no step during 200 ms of pause
    assert trainer.step == step
    control.resume()
    assert _wait_until(lambda: trainer.step > step + 5)
    t0 = time.monotonic()
    control.stop()
    consumer.join(1.0)
    assert not consumer.is_alive() and time.monotonic() - t0 < 1.0
    assert inspect.getgeneratorstate(run) == inspect.GEN_CLOSED
    assert frames and frames[-1].snapshot.step <= trainer.step


# --------------------------------------------------------------------------------------------
# throttled()
# --------------------------------------------------------------------------------------------


def test_throttled_folds_snapshots_into_frames_and_keeps_every_point():
    clock, pulled, closed = [0.0], [], threading.Event()
    n, fps = 1000, 30.0
    snaps = fake_snapshots(pulled, closed, n=n, delay=0, clock=clock, tick=0.001, eval_every=100,
                           arrays_every=7)
    frames = list(throttled(snaps, RunControl(), fps=fps, clock=lambda: clock[0]))
    # ~1 s of fake time at 30 fps, plus the evals: far fewer frames than snapshots
    assert 20 <= len(frames) <= 60
    assert sum(f.steps for f in frames) == n
    curve = np.concatenate([f.curve for f in frames])
    assert curve.shape == (n, 2) and curve.dtype == np.float64
    assert curve[:, 0].tolist() == list(range(1, n + 1))
    np.testing.assert_allclose(curve[:, 1], 1.0 / np.arange(1, n + 1))
    # every eval and the end get a frame of their own
    shown = {f.snapshot.step: f.snapshot.event for f in frames}
    assert all(shown.get(s) == "eval" for s in range(100, n, 100))
    assert frames[-1].snapshot.event == "finished" and frames[-1].snapshot.step == n
    last_time = -math.inf
    for f in frames:
        assert f.curve[-1, 0] == f.snapshot.step and len(f.curve) == f.steps
        if f.snapshot.event == "step":  # a plain frame only once the interval has passed
            assert f.snapshot.elapsed - last_time >= 1 / fps - 1e-9
        last_time = f.snapshot.elapsed
        with_arrays = [int(s) for s in f.curve[:, 0] if s % 7 == 0]
        if with_arrays:
            assert f.arrays.samples[0, 0] == max(with_arrays)  # the newest arrays of the window
        else:
            assert not f.arrays
    assert closed.is_set()


def test_throttled_flushes_the_last_pending_snapshots():
    clock, pulled, closed = [0.0], [], threading.Event()

    def five():
        try:
            for step in range(1, 6):
                pulled.append(step)
                yield Snapshot(step=step, total_steps=10, epoch=0.0, loss=float(step))
        finally:
            closed.set()

    frames = list(throttled(five(), RunControl(), fps=1.0, clock=lambda: clock[0]))
    assert [f.steps for f in frames] == [1, 4]  # the first at once, the rest when the run ends
    assert frames[-1].snapshot.step == 5 and frames[-1].curve[:, 0].tolist() == [2, 3, 4, 5]
    assert closed.is_set()


def test_throttled_keeps_nan_losses_out_of_the_curve_but_shows_the_events():
    clock = [0.0]
    snaps = iter([
        Snapshot(step=0, total_steps=3, epoch=0, loss=math.nan, event="device", message="CUDA failed"),
        Snapshot(step=1, total_steps=3, epoch=0, loss=2.0),
        Snapshot(step=2, total_steps=3, epoch=0, loss=math.nan, event="nonfinite", message="NaN"),
    ])

    def gen():
        yield from snaps

    frames = list(throttled(gen(), RunControl(), fps=1.0, clock=lambda: clock[0]))
    # the device message shows at once; the step waits for the interval, the NaN does not
    assert [f.snapshot.event for f in frames] == ["device", "nonfinite"]
    assert [f.steps for f in frames] == [1, 2]
    curve = np.concatenate([f.curve for f in frames])
    assert curve.tolist() == [[1.0, 2.0]]


def test_throttled_closes_the_generator_when_the_consumer_stops_early():
    pulled, closed = [], threading.Event()
    clock = [0.0]
    it = throttled(fake_snapshots(pulled, closed, delay=0, clock=clock, tick=1.0), RunControl(),
                   fps=10, clock=lambda: clock[0])
    for _, frame in zip(range(3), it):
        assert frame.steps == 1
    assert not closed.is_set()
    it.close()
    assert closed.is_set()
    assert pulled == [1, 2, 3]


def test_round_robin_keeps_the_other_runs_going_when_one_raises():
    from core.control import Frame, round_robin
    from core.training import Snapshot

    def good(n):
        for k in range(n):
            yield Frame(Snapshot(step=k + 1, total_steps=n, epoch=0.0, loss=1.0), np.zeros((0, 2)), Visuals(), 1)

    def bad():
        yield Frame(Snapshot(step=1, total_steps=5, epoch=0.0, loss=1.0), np.zeros((0, 2)), Visuals(), 1)
        raise ValueError("K=10 components but only 4 points")

    frames = list(round_robin([good(4), bad(), good(3)]))
    errors = [f for f in frames if f.snapshot.event == "error"]
    assert len(errors) == 1 and errors[0].index == 1 and "only 4 points" in errors[0].snapshot.message
    assert [f.snapshot.step for f in frames if f.index == 0] == [1, 2, 3, 4]
    assert [f.snapshot.step for f in frames if f.index == 2] == [1, 2, 3]

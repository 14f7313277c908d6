"""gui.jobs: the one task helper (Jobs.run: always an asyncio task, callbacks in the GUI thread,
busy state and errors shown one way) and the one paced puller of the animations (rate, time
budget per tick, catch-up cap, stop)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from gui.jobs import Jobs, PacedPuller, error_message


class Recorder:
    def __init__(self):
        self.errors: list[tuple[str, str]] = []
        self.busy: list[tuple[bool, str]] = []
        self.done: list[tuple[object, bool]] = []  # result, called in the main thread
        self.failed: list[str] = []

    def jobs(self) -> Jobs:
        return Jobs(lambda title, message: self.errors.append((title, message)),
                    lambda on, text: self.busy.append((on, text)))

    def on_done(self, result):
        self.done.append((result, threading.current_thread() is threading.main_thread()))


def test_a_job_runs_off_the_gui_thread_and_hands_its_result_back_on_it(qtbot, aloop):
    r = Recorder()
    jobs = r.jobs()
    ran_in = []

    def work(a, b):
        ran_in.append(threading.current_thread() is threading.main_thread())
        return a + b

    task = jobs.run(work, 2, 3, done=r.on_done, busy="adding…")
    assert isinstance(task, asyncio.Task) and task in jobs.tasks
    assert r.busy == [(True, "adding…")], "busy from the call on, before the job runs"
    qtbot.waitUntil(task.done, timeout=5000)
    assert ran_in == [False] and r.done == [(5, True)]
    assert r.busy == [(True, "adding…"), (False, "")] and not r.errors
    assert task.exception() is None and task not in jobs.tasks
    quiet = jobs.run(lambda: None)  # no busy text: the indicator is left alone; no done: fine
    qtbot.waitUntil(quiet.done, timeout=5000)
    assert len(r.busy) == 2 and isinstance(quiet, asyncio.Task)


def test_a_failure_calls_failed_and_shows_the_error_once(qtbot, aloop):
    r = Recorder()
    jobs = r.jobs()

    def bad():
        raise ValueError("the file is damaged")

    task = jobs.run(bad, done=r.on_done, failed=r.failed.append, title="Cannot load", busy="loading")
    qtbot.waitUntil(task.done, timeout=5000)
    assert task.exception() is None, "the failure is handled, not left in the task"
    assert r.failed == ["the file is damaged"] and r.errors == [("Cannot load", "the file is damaged")]
    assert r.done == [] and r.busy[-1] == (False, "")
    # an exception in ``done`` fails the job as well; a bug's message carries its type
    task = jobs.run(lambda: 1, done=lambda _x: {}["missing"], failed=r.failed.append, title="Cannot show")
    qtbot.waitUntil(task.done, timeout=5000)
    assert r.errors[-1] == ("Cannot show", "KeyError: 'missing'") and r.failed[-1] == "KeyError: 'missing'"


def test_error_messages():
    from core.data.download import DownloadError

    assert error_message(ValueError("bad value")) == "bad value"
    assert error_message(FileNotFoundError("no such file")) == "no such file"
    assert error_message(DownloadError("the server is down")) == "the server is down"  # core's own
    assert error_message(RuntimeError("boom")) == "RuntimeError: boom"


def test_a_follow_up_job_returned_by_done_is_awaited(qtbot, aloop):
    r = Recorder()
    jobs = r.jobs()
    gate = threading.Event()
    follow = []

    def then(first):
        follow.append(jobs.run(lambda: gate.wait(5) and first * 10, done=r.on_done))
        return follow[0]

    task = jobs.run(lambda: 4, done=then)
    qtbot.waitUntil(lambda: bool(follow), timeout=5000)
    assert not task.done(), "the first job's task ends with its follow-up"
    gate.set()
    qtbot.waitUntil(task.done, timeout=5000)
    assert follow[0].done() and r.done == [(40, True)]


def test_a_job_can_await_a_future_another_thread_settles(qtbot, aloop):
    from concurrent.futures import Future

    r = Recorder()
    jobs = r.jobs()
    future: Future = Future()
    task = jobs.run(future, done=r.on_done, title="Copy")
    assert isinstance(task, asyncio.Task) and not task.done()
    threading.Thread(target=future.set_result, args=("copied",)).start()  # e.g. the trainer, between steps
    qtbot.waitUntil(task.done, timeout=5000)
    assert r.done == [("copied", True)]
    broken: Future = Future()
    task = jobs.run(broken, done=r.on_done, failed=r.failed.append, title="Copy")
    broken.set_exception(ValueError("no copy"))
    qtbot.waitUntil(task.done, timeout=5000)
    assert r.failed == ["no copy"] and r.errors == [("Copy", "no copy")]
    pending: Future = Future()
    task = jobs.run(pending, done=r.on_done)
    jobs.close()
    qtbot.waitUntil(task.done, timeout=5000)
    pending.set_result("too late")
    assert task.cancelled() and r.done == [("copied", True)], "a closed owner gets no result"


def test_when_done_calls_back_at_once_or_once_the_future_settles(qtbot, aloop):
    from concurrent.futures import Future

    r = Recorder()
    jobs = r.jobs()
    seen: list[str] = []
    ready: Future = Future()
    ready.set_result("now")
    jobs.when_done(ready, lambda: seen.append(ready.result()))
    assert seen == ["now"] and not jobs.tasks  # no job for a copy made at once
    later: Future = Future()
    jobs.when_done(later, lambda: seen.append(later.result()))
    assert seen == ["now"] and len(jobs.tasks) == 1
    threading.Thread(target=later.set_result, args=("after the step",)).start()
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=5000)
    assert seen == ["now", "after the step"]
    failing: Future = Future()
    jobs.when_done(failing, lambda: seen.append(repr(failing.exception())), title="Copy")
    failing.set_exception(ValueError("no copy"))
    qtbot.waitUntil(lambda: len(seen) == 3, timeout=5000)
    assert "no copy" in seen[2] and r.errors == [("Copy", "no copy")]  # called back, and shown


def test_close_cancels_running_jobs_and_silences_their_callbacks(qtbot, aloop):
    r = Recorder()
    jobs = r.jobs()
    gate = threading.Event()
    task = jobs.run(gate.wait, 5, done=r.on_done, failed=r.failed.append, busy="waiting")
    jobs.close()
    gate.set()
    qtbot.waitUntil(task.done, timeout=5000)
    assert task.cancelled() and r.done == [] and r.failed == [] and r.errors == []
    assert r.busy == [(True, "waiting")], "a closed owner's widgets are not touched"


def test_without_a_running_loop_no_job_starts(qtbot, aloop):
    r = Recorder()
    jobs = r.jobs()
    running = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    try:
        with pytest.raises(RuntimeError):
            jobs.run(lambda: 1, done=r.on_done, busy="never")
    finally:
        asyncio.events._set_running_loop(running)
    assert r.busy == [] and not jobs.tasks


# -- the paced puller ------------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.t = 64.0

    def __call__(self):
        return self.t


def counting(clock=None, cost=0.0, n=None, closed=None):
    """0, 1, 2, ... (n of them, or forever); each item advances ``clock`` by ``cost``."""
    i = 0
    try:
        while n is None or i < n:
            if clock is not None:
                clock.t += cost
            yield i
            i += 1
    finally:
        if closed is not None:
            closed.append(i)


def make_puller(qtbot, clock, rate, items, budget_s=0.01, catch_up_s=0.1):
    got, batches, errors = [], [], []
    p = PacedPuller(None, tick_ms=10_000, budget_s=budget_s, catch_up_s=catch_up_s, clock=clock)
    p.start(items, lambda: rate[0], lambda x: got.append(x), lambda n, fin: batches.append((n, fin)),
            errors.append)
    return p, got, batches, errors


def test_pacing_follows_the_rate_with_the_first_item_at_once(qtbot):
    clock, rate = Clock(), [8.0]  # 8 items a second; ticks of 1/32 s (exact in binary)
    p, got, batches, _ = make_puller(qtbot, clock, rate, counting(), catch_up_s=0.5)
    p._tick()
    assert got == [0], "the first item is due at once"
    counts = []
    for _ in range(8):
        clock.t += 1 / 32
        p._tick()
        counts.append(len(got))
    assert counts == [1, 1, 1, 2, 2, 2, 2, 3], "one item every fourth tick"
    clock.t += 0.5  # a slow tick: 4 more are due (also the cap: 8/s * 0.5 s)
    p._tick()
    assert len(got) == 7 and batches[-1] == (4, False)
    rate[0] = 16.0  # the speed is read every tick
    clock.t += 0.25
    p._tick()
    assert len(got) == 11
    p.stop()


def test_a_stalled_tick_catches_up_at_most_the_cap(qtbot):
    clock, rate = Clock(), [1024.0]
    p, got, _, _ = make_puller(qtbot, clock, rate, counting(), catch_up_s=0.1)
    p._tick()
    clock.t += 5.0  # five seconds without a tick: 5120 due, but at most 0.1 s worth
    p._tick()
    assert len(got) == 1 + 102
    clock.t += 1 / 64
    p._tick()
    assert len(got) == 1 + 102 + 16
    p.stop()


def test_the_time_budget_bounds_a_tick_but_one_item_always_comes(qtbot):
    clock, rate = Clock(), [None]  # flat out
    p, got, _, _ = make_puller(qtbot, clock, rate, counting(clock, cost=0.004), budget_s=0.01)
    p._tick()
    assert len(got) == 3  # 4, 8, 12 ms: the third one ends past the 10 ms budget
    p.stop()
    clock2, rate2 = Clock(), [1000.0]
    slow, got2, _, _ = make_puller(qtbot, clock2, rate2, counting(clock2, cost=0.05), budget_s=0.01)
    clock2.t += 0.1
    slow._tick()
    assert len(got2) == 1, "an item slower than the budget: one per tick"
    assert slow.credit == pytest.approx(100 - 1), "the items not pulled stay due (up to the cap)"
    slow.stop()


def test_stop_closes_the_generator_and_no_tick_pulls_after_it(qtbot):
    clock, closed = Clock(), []
    p, got, _, _ = make_puller(qtbot, clock, [None], counting(closed=closed))
    p.pull(5)
    assert got == [0, 1, 2, 3, 4] and p.running
    p.stop()
    assert closed == [4] and not p.running and not p.timer.isActive()
    clock.t += 1
    p._tick()
    assert p.pull(3) == 0 and len(got) == 5


def test_the_end_an_exhausted_iterator_and_an_error_stop_the_puller(qtbot):
    clock = Clock()
    p, got, batches, _ = make_puller(qtbot, clock, [None], counting(n=3))
    p._tick()
    assert got == [0, 1, 2] and batches == [(3, True)] and not p.running
    # the consumer says which item is the last
    last = PacedPuller(None, clock=clock)
    seen, ends = [], []
    last.start(counting(), lambda: None, lambda x: seen.append(x) or x == 1, lambda n, fin: ends.append((n, fin)),
               lambda exc: None)
    last.pull(10)
    assert seen == [0, 1] and ends == [(2, True)] and not last.running

    def failing():
        yield 0
        raise RuntimeError("model broke")

    errors = []
    bad = PacedPuller(None, clock=clock)
    bad.start(failing(), lambda: None, lambda x: None, lambda n, fin: None, errors.append)
    assert bad.pull(5) == 1
    assert [str(e) for e in errors] == ["model broke"] and not bad.running


def test_the_timer_drives_it_at_the_real_rate(qtbot):
    got = []
    p = PacedPuller(None, tick_ms=5, budget_s=0.01)
    t0 = time.perf_counter()
    p.start(counting(), lambda: 50.0, got.append, lambda n, fin: None, lambda exc: None)
    qtbot.waitUntil(lambda: len(got) >= 6, timeout=5000)
    elapsed = time.perf_counter() - t0
    p.stop()
    assert 6 <= len(got) <= 50 * elapsed + 2
    assert elapsed >= 0.09, "six items at 50 a second take 0.1 s (the first comes at once)"

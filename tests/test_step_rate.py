"""The Training tab's speed and time left (core.control.StepRate, duration_text)."""

import pytest

from core.control import StepRate, duration_text


def test_rate_over_the_recent_window_and_time_left():
    r = StepRate(window_s=10.0, min_span_s=0.5)
    assert r.rate is None and r.seconds_left(100) is None
    r.add(0, 0.0)
    r.add(1, 0.2)
    assert r.rate is None, "too short a span to say"
    for t in range(1, 21):  # 10 steps a second for 20 s
        r.add(10 * t, float(t))
    assert r.rate == pytest.approx(10.0)
    assert r.seconds_left(1000) == pytest.approx(80.0)
    for t in range(21, 41):  # then 2 steps a second: the recent window follows
        r.add(200 + 2 * (t - 20), float(t))
    assert r.rate == pytest.approx(2.0, rel=0.15)
    r.reset()
    assert r.rate is None
    r.add(5, 100.0)
    r.add(3, 101.0)  # a new run (the step went back): starts again
    assert r.rate is None
    with pytest.raises(ValueError):
        StepRate(window_s=0)


def test_duration_text():
    assert duration_text(8.4) == "8 s"
    assert duration_text(80) == "1 min 20 s"
    assert duration_text(2 * 3600 + 5 * 60) == "2 h 05 min"
    assert duration_text(-3) == "0 s"

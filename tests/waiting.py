"""Waiting on conditions, with a deadline, instead of fixed sleeps (Qt-free: for Qt tests pass
the predicates to ``qtbot.waitUntil``, which runs the event loop while it polls)."""

from __future__ import annotations

import time
from typing import Any, Callable


def wait_until(pred: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
    """Poll ``pred`` until it holds or ``timeout`` seconds pass; return its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def steady(read: Callable[[], Any], quiet: float = 0.3) -> Callable[[], bool]:
    """A predicate that holds once ``read()`` has not changed for ``quiet`` seconds: for "the
    step in flight when pause was asked for has finished and been shown", however long that
    step takes on a busy machine."""
    state = {"value": read(), "since": time.monotonic()}

    def pred() -> bool:
        value = read()
        if value != state["value"]:
            state["value"], state["since"] = value, time.monotonic()
            return False
        return time.monotonic() - state["since"] >= quiet

    return pred

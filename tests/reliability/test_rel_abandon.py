"""Closing a window abandons its jobs' long sampling loops (they ran on after the window had
closed, and the app's exit waited for them: 3-4.6 s after closing during canvas sampling)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from core import registry
from core.protocol import Abandoned, abandon, check_abandoned


@pytest.mark.parametrize("family", ["pixelcnn", "made"])
def test_a_set_abandon_flag_ends_sampling(family):
    model = registry.create(family, [784])
    flag = threading.Event()
    token = abandon.set(flag)
    try:
        assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape[0] == 2
        flag.set()
        with pytest.raises(Abandoned):
            model.sample(2, generator=torch.Generator().manual_seed(0))
    finally:
        abandon.reset(token)
    model.sample(1)  # outside that context nothing is abandoned


def test_closing_jobs_abandons_the_work_in_their_threads(qtbot, aloop):
    from gui.jobs import Jobs

    ended = threading.Event()

    def long_work():
        try:
            for _ in range(3000):  # 30 s unless abandoned
                check_abandoned()
                time.sleep(0.01)
        finally:
            ended.set()

    jobs = Jobs(lambda title, message: None)
    jobs.run(long_work)
    qtbot.wait(100)
    jobs.close()
    assert ended.wait(5)

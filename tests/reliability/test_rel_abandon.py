"""Closing a window abandons its jobs' long sampling loops (they ran on after the window had
closed, and the app's exit waited for them: 3-4.6 s after closing during canvas sampling)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from core import registry
from core.protocol import Abandoned, abandon, check_abandoned


@pytest.mark.parametrize("family", ["pixelcnn", "made", "pixelrnn", "cnade", "nade", "fvsbn"])
def test_a_set_abandon_flag_ends_sampling_and_completion(family):
    """Every raster sampler's ``sample`` and ``complete`` (PixelRNN's and cNADE's once ran to
    their end whatever the flag) end at the next pixel once the flag is set."""
    model = registry.create(family, [784])
    flag = threading.Event()
    token = abandon.set(flag)
    half = torch.zeros(1, 784)
    known = torch.zeros(1, 784, dtype=torch.bool)
    known[:, :392] = True
    try:
        assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape[0] == 2
        assert model.complete(half, known, 2).shape == (2, 784)
        flag.set()
        with pytest.raises(Abandoned):
            model.sample(2, generator=torch.Generator().manual_seed(0))
        with pytest.raises(Abandoned):
            model.complete(half, known, 2)
    finally:
        abandon.reset(token)
    model.sample(1)  # outside that context nothing is abandoned


def test_an_ensembles_likelihood_and_the_percentile_pass_are_abandonable():
    """The canvas readouts' long passes: an ensemble MADE's log p (its masks a few at a time)
    and the validation digits' NLL percentiles (in batches)."""
    from core.models import made
    from core.readouts import nll_percentiles

    model = registry.create("made", [784], hidden=50, masks=2 * made.MASKS_AT_ONCE + 1,
                            ensemble=2 * made.MASKS_AT_ONCE + 1)
    digits = (torch.rand(250, 784) < 0.2).float()
    whole = model.log_prob(digits[:5])
    parts = torch.cat([model.log_prob(digits[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(whole, parts)  # the chunked ensemble is the same mean over masks
    single = torch.stack([model.log_prob_masks(digits[:5], [k])[0] for k in range(model.n_ensemble)])
    torch.testing.assert_close(whole, torch.logsumexp(single, 0) - torch.log(torch.tensor(float(model.n_ensemble))))
    flag = threading.Event()
    token = abandon.set(flag)
    try:
        assert nll_percentiles(model, digits.numpy()).shape == (101,)
        flag.set()
        with pytest.raises(Abandoned):
            model.log_prob(digits[:5])
        with pytest.raises(Abandoned):
            nll_percentiles(model, digits.numpy())
    finally:
        abandon.reset(token)


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


def test_a_run_abandoned_inside_its_step_ends_quietly(qtbot):
    """Stopping a session sets its abandon flag; a long pass in the step (an ensemble's masks,
    a slow sampler) then raises Abandoned in the worker: the run ends as stopped, not failed."""
    from core import data as datasets
    from core.training import TrainConfig, Trainer
    from gui.worker import TrainingSession

    ds = datasets.load("8gaussians", n=400, seed=0)
    trainer = Trainer(registry.create("gaussian", ds.shape, ds.kind), ds,
                      TrainConfig(max_steps=5, device="cpu", visuals_every_s=None))
    session = TrainingSession(trainer)

    def abandoned_pass():
        check_abandoned()  # as a long pass checks between its parts
        raise AssertionError("the pass went on after its run was stopped")
        yield  # pragma: no cover

    session.runs[0].run = abandoned_pass
    failures = []
    session.failed.connect(lambda message, _details: failures.append(message))  # (GUI thread: queued)
    session.request_stop()
    with qtbot.waitSignal(session.finished, timeout=5000):
        session.start()
    assert failures == [] and not session.running


def test_held_out_scoring_is_abandonable():
    """The held-out NLL a run measures during training (CI's fuzz closed the window while a
    VAE scored its validation digits with 5000-sample IWAE bounds: the pass ran on past the
    close, and the window's thread was destroyed while running)."""
    from core.evaluation import nll_of

    vae = registry.create("vae", [784], hidden=16, latent=2, eval_k=8)
    digits = (torch.rand(40, 784) < 0.2).float()
    flag = threading.Event()
    token = abandon.set(flag)
    try:
        with torch.no_grad():
            assert torch.isfinite(vae.iwae_bound(digits[:4])).all()
            assert nll_of(vae, digits, batch_size=10).n == 40
            flag.set()
            with pytest.raises(Abandoned):
                vae.iwae_bound(digits[:4])
            with pytest.raises(Abandoned):
                nll_of(registry.create("gaussian", [2]), torch.randn(30, 2), batch_size=10)
    finally:
        abandon.reset(token)

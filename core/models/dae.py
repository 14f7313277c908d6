"""Denoising autoencoder as a generative model (Bengio, Yao, Alain & Vincent, NIPS 2013).

Corruption C(x~ | x): x~ = x + sigma * eps. Reconstruction P(x | x~): a gaussian whose mean
(x~ plus an MLP's output) and, unless ``recon_std`` fixes it, per-coordinate std the MLP gives.
Training uses walkback: a chain starts at each training point x, and at every one of its
``walkback`` steps it corrupts the current point, trains the reconstruction of x~ towards the
ORIGINAL x, then moves to a sample of P(. | x~). Walkback visits the spurious places the
sampling chain will go and teaches the model to come back from them.

The mean is fitted by squared error and the std by the gaussian NLL around the (detached) mean;
that has the joint NLL's optimum (posterior mean and spread) but does not stall the mean while
the std is large. Only the first, one-step term fits the std: with the walkback terms in it, the
std grew to cover several steps' drift (0.75 instead of ~0.15 data stds on a 4-mode set) and
the chain's samples spread out accordingly.

Sampling runs the Markov chain x -> x~ ~ C(. | x) -> x ~ P(. | x~) for ``burn_in`` steps from
a gaussian with the data's mean and std; the chain's stationary distribution estimates the data
distribution (Bengio et al. 2013, theorem 1). There is no likelihood.

The data are standardised with a location and scale taken from the first training batch (kept
in buffers); ``sigma`` and ``recon_std`` are in those units (fractions of the data's std).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.protocol import DataKind, GenerativeModel, HParam, Likelihood, ModelInfo, batch_size_hparam, lr_hparam
from core.models._standardise import fit_standardiser, register_standardiser
from core.registry import register

_LOG_STD_MIN, _LOG_STD_MAX = math.log(1e-3), math.log(10.0)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@register
class DAE(GenerativeModel):
    info = ModelInfo(
        key="dae",
        name="Denoising autoencoder",
        group="Autoencoders",
        description="Denoising autoencoder as a generative model (Bengio et al. 2013): it learns to undo "
                    "gaussian corruption, with a gaussian reconstruction distribution, trained with "
                    "walkback (a short chain from each data point, every visited corrupted point "
                    "trained to reconstruct the original). Samples come from the Markov chain: "
                    "corrupt, sample a reconstruction, repeat. No likelihood.",
        likelihood=Likelihood.NONE,
        data_kinds=(DataKind.POINTS_1D, DataKind.POINTS_2D),
        hparams=(
            HParam("sigma", "float", 0.3, 1e-3, 5.0, log=True,
                   help="corruption noise std, in units of the data's std"),
            HParam("walkback", "int", 3, 1, 20, help="chain steps per training point (1: plain DAE)"),
            HParam("hidden", "int", 128, 4, 1024, help="units per hidden layer"),
            HParam("layers", "int", 3, 1, 8, help="hidden layers"),
            HParam("recon_std", "float", 0.0, 0.0, 5.0,
                   help="std of the reconstruction gaussian, in units of the data's std (0: learned)"),
            HParam("burn_in", "int", 100, 1, 10000, live=True, structural=False,
                   help="chain steps before a sample is taken"),
            lr_hparam(3e-3),
            batch_size_hparam(256),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self.check_point_dims((1, 2), "the denoising autoencoder")
        h, layers, d = int(hparams["hidden"]), int(hparams["layers"]), self.dim
        mods: list[torch.nn.Module] = []
        d_in = d
        for _ in range(layers):
            mods += [torch.nn.Linear(d_in, h), torch.nn.SiLU()]
            d_in = h
        self.learn_std = float(hparams["recon_std"]) == 0.0
        mods.append(torch.nn.Linear(d_in, 2 * d if self.learn_std else d))
        self.net = torch.nn.Sequential(*mods)
        if self.learn_std:  # start with reconstruction std ~ sigma: a sane chain from the start
            with torch.no_grad():
                self.net[-1].bias[d:] = math.log(float(hparams["sigma"]))
        register_standardiser(self, d)

    # -- pieces -------------------------------------------------------------------------------
    def reconstruction(self, x_tilde: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std of P(x | x~), standardised units."""
        out = self.net(x_tilde)
        d = self.dim
        mean = x_tilde + out[:, :d]  # a residual: the net learns the denoising step
        if self.learn_std:
            log_std = out[:, d:].clamp(_LOG_STD_MIN, _LOG_STD_MAX)
        else:
            log_std = torch.full_like(mean, math.log(float(self.hparams["recon_std"])))
        return mean, log_std

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + float(self.hparams["sigma"]) * noise

    def _draw(self, mean, log_std, generator=None):
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + log_std.exp() * noise

    # -- training -----------------------------------------------------------------------------
    def loss(self, batch):
        x = self.check_batch(batch)
        if len(x) == 0:
            raise ValueError("denoising autoencoder: empty training batch")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("denoising autoencoder: the data contain NaN or infinite values")
        if not bool(self.initialised):
            fit_standardiser(self, x)
        x0 = (x - self.loc) / self.scale
        cur = x0
        sigma = float(self.hparams["sigma"])
        total = x0.new_zeros(())
        self._last_mse = math.nan
        for k in range(int(self.hparams["walkback"])):
            xt = self.corrupt(cur)
            mean, log_std = self.reconstruction(xt)
            # The mean is fitted by squared error (scaled by 1/sigma^2 to be O(1)), the std by the
            # gaussian NLL around the detached mean: the same optimum as the joint NLL (posterior
            # mean and spread), without the joint NLL's habit of stalling the mean behind a large
            # std. Walkback terms train the mean only: the std is fitted on one-step corruption,
            # the one the sampling chain uses.
            sq = ((x0 - mean) ** 2).sum(1).mean()
            total = total + 0.5 * sq / sigma ** 2
            if k == 0 and self.learn_std:
                resid = (x0 - mean.detach()) / log_std.exp()
                total = total + (log_std + 0.5 * resid ** 2 + _HALF_LOG_2PI).sum(1).mean()
            if k == 0:
                self._last_mse = float(((mean.detach() - x0) ** 2).sum(1).mean())
            cur = self._draw(mean.detach(), log_std.detach())
        return total / int(self.hparams["walkback"])

    def train_step(self, batch):
        out = super().train_step(batch)
        out["recon_mse"] = self._last_mse  # first step's squared error, standardised units
        return out

    # -- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def chain(self, n: int, steps: int, generator: torch.Generator | None = None,
              keep_path: bool = False) -> torch.Tensor:
        """Run ``n`` chains for ``steps`` steps from N(loc, scale^2); the final points (n, d) in
        data units, or with ``keep_path`` the whole path (steps + 1, n, d)."""
        x = torch.randn(int(n), self.dim, generator=generator, device=self.device)
        path = [x] if keep_path else None
        for _ in range(int(steps)):
            mean, log_std = self.reconstruction(self.corrupt(x, generator))
            x = self._draw(mean, log_std, generator)
            if keep_path:
                path.append(x)
        if keep_path:
            return torch.stack(path) * self.scale + self.loc
        return x * self.scale + self.loc

    @torch.no_grad()
    def sample(self, n, generator=None):
        self.eval()
        return self.chain(int(n), int(self.hparams["burn_in"]), generator).float()

    @torch.no_grad()
    def visuals(self, n=64, generator=None, bounds=None, res=96):
        out = super().visuals(n, generator, bounds, res)
        path = self.chain(1, max(int(self.hparams["burn_in"]), 50), generator, keep_path=True)[:, 0, :]
        out.chain = np.ascontiguousarray(path.cpu().numpy(), dtype=np.float32)
        return out

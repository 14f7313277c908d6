"""Variational autoencoder (Kingma & Welling 2014) for binary images, with the importance-weighted
bound of Burda, Grosse & Salakhutdinov (2016).

    q(z | x) = N(mu(x), diag sigma(x)^2)      (the encoder, an MLP)
    p(z)     = N(0, I)
    p(x | z) = prod_d Bernoulli(x_d; pi_d(z)) (the decoder, an MLP)

Training maximises the ELBO ``E_q[log p(x|z)] - KL(q(z|x) || p(z))`` by the reparameterisation
``z = mu + sigma * eps``, or the IWAE bound with ``k`` importance samples

    L_k(x) = E[ log (1/k) sum_i p(x, z_i) / q(z_i | x) ],  z_i ~ q(z | x),

which is tighter as ``k`` grows (L_1 is the ELBO) and tends to log p(x). Optional KL warm-up
scales the prior/posterior term by beta = min(1, step / warmup) early in training; optional free
bits (Kingma et al. 2016) keep each latent dimension's batch-mean KL at least ``free_bits``
nats in the ELBO objective.

``log_prob`` is the IWAE bound with ``eval_k`` samples (``Likelihood.LOWER_BOUND``); pass ``k=``
for another. ``encode`` gives the posterior mean, ``decode`` the pixel probabilities.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.protocol import (DataKind, GenerativeModel, HParam, Likelihood, ModelInfo, batch_size_hparam,
                           check_abandoned, lr_hparam)
from core.registry import register

_LOG_2PI = math.log(2 * math.pi)
#: importance samples evaluated at once per row in ``iwae_bound``, at most; and rows x samples at
#: once, at most (the decoder's output for them is 4 * 784 bytes each: ~100 MB), so that k = 5000
#: runs in bounded memory for any batch
_K_CHUNK = 500
_ROWS_X_SAMPLES = 1 << 15


def mlp(sizes: list[int], act: type[nn.Module] = nn.ELU) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``act`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)


def kl_to_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per dimension, (N, latent)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_mean_exp(a: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.logsumexp(a, dim) - math.log(a.shape[dim])


LATENT_HPARAMS = (
    HParam("latent", "int", 2, 1, 256, help="latent dimensions (2: the map is the whole latent space)"),
    HParam("hidden", "int", 500, 8, 4096, log=True, help="units in each hidden layer of encoder and decoder"),
    HParam("layers", "int", 2, 1, 4, help="hidden layers in encoder and decoder"),
)

#: how a VAE (or conditional VAE) is trained and scored; none of them shapes the weights
BOUND_HPARAMS = (
    HParam("objective", "choice", "elbo", choices=("elbo", "iwae"),
           help="training objective: the ELBO, or the IWAE bound with k samples", structural=False),
    HParam("k", "int", 5, 1, 5000, log=True, help="importance samples per example when training on IWAE",
           structural=False),
    HParam("eval_k", "int", 100, 1, 100000, log=True,
           help="importance samples in log_prob (the held-out bound): more is tighter and slower",
           structural=False),
    HParam("warmup", "int", 0, 0, 10_000_000,
           help="KL warm-up: steps over which the KL weight rises linearly from 0 to 1 (0: none)",
           structural=False),
    HParam("free_bits", "float", 0.0, 0.0, 10.0,
           help="nats of KL per latent dimension not penalised (ELBO objective; 0: none)",
           structural=False),
)


@register
class VAE(GenerativeModel):
    info = ModelInfo(
        key="vae",
        name="VAE",
        group="Latent variable",
        description="Variational autoencoder: Gaussian encoder, Bernoulli decoder, trained on the ELBO or "
                    "the importance-weighted bound (IWAE). Its likelihood is a lower bound: the IWAE bound "
                    "with eval_k samples.",
        likelihood=Likelihood.LOWER_BOUND,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=LATENT_HPARAMS + (
            *BOUND_HPARAMS,
            lr_hparam(1e-3),
            batch_size_hparam(100),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        d, h, n = self.dim, int(self.hparams["hidden"]), int(self.hparams["layers"])
        zdim = int(self.hparams["latent"])
        self.encoder = mlp([self.input_dim()] + [h] * n + [2 * zdim])
        self.decoder = mlp([zdim + self.condition_dim()] + [h] * n + [d])
        # steps trained so far, for the KL warm-up (kept in checkpoints, so fine-tuning goes on)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    # -- shape hooks (the conditional VAE adds a label code) -----------------------------------
    def input_dim(self) -> int:
        return self.dim

    def condition_dim(self) -> int:
        return 0

    @property
    def latent_dim(self) -> int:
        return int(self.hparams["latent"])

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return self.check_batch(x).reshape(len(x), self.dim)

    # -- the two networks ----------------------------------------------------------------------
    def posterior(self, x: torch.Tensor, **cond) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | x), each (N, latent), from flat float inputs (N, D)."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decoder_logits(self, z: torch.Tensor, **cond) -> torch.Tensor:
        """Logits of p(x_d = 1 | z), (..., D), for latents (..., latent)."""
        return self.decoder(z)

    def beta(self) -> float:
        warm = int(self.hparams.get("warmup", 0))
        return 1.0 if warm <= 0 else min(1.0, (int(self.steps) + 1) / warm)

    # -- bounds ----------------------------------------------------------------------------------
    def log_weights(self, x: torch.Tensor, k: int, beta: float = 1.0, **cond) -> torch.Tensor:
        """(k, N) log importance weights log p(x|z_i) + beta * (log p(z_i) - log q(z_i|x)),
        z_i ~ q(z | x), for flat inputs (N, D)."""
        mu, logvar = self.posterior(x, **cond)
        z = mu + torch.randn(k, *mu.shape, device=mu.device) * (0.5 * logvar).exp()
        rep = {name: v.expand(k, *v.shape) for name, v in cond.items()}
        log_px = -F.binary_cross_entropy_with_logits(self.decoder_logits(z, **rep), x.expand(k, *x.shape),
                                                     reduction="none").sum(-1)
        return log_px + beta * (std_normal_log_prob(z) - gaussian_log_prob(z, mu, logvar))

    def elbo_terms(self, x: torch.Tensor, **cond) -> tuple[torch.Tensor, torch.Tensor]:
        """One-sample reconstruction term log p(x|z) (N,) and the analytic KL per dimension
        (N, latent), for flat inputs (N, D)."""
        mu, logvar = self.posterior(x, **cond)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = -F.binary_cross_entropy_with_logits(self.decoder_logits(z, **cond), x, reduction="none").sum(-1)
        return rec, kl_to_std_normal(mu, logvar)

    def elbo(self, x: torch.Tensor, **cond) -> torch.Tensor:
        """The evidence lower bound per example (one-sample reconstruction, analytic KL), in nats."""
        x = self._flat(x)
        rec, kl = self.elbo_terms(x, **self._cond(len(x), **cond))
        return rec - kl.sum(-1)

    def iwae_bound(self, x: torch.Tensor, k: int | None = None, **cond) -> torch.Tensor:
        """The IWAE bound L_k per example (nats), in chunks of importance samples, so that large
        ``k`` (5000) runs in bounded memory."""
        k = int(self.hparams["eval_k"] if k is None else k)
        if k < 1:
            raise ValueError(f"the number of importance samples must be at least 1, got {k}")
        x = self._flat(x)
        cond = self._cond(len(x), **cond)
        chunk = max(1, min(_K_CHUNK, _ROWS_X_SAMPLES // max(1, len(x))))
        parts = []
        for start in range(0, k, chunk):
            check_abandoned()  # (k = 5000 on a few thousand digits: many seconds)
            parts.append(torch.logsumexp(self.log_weights(x, min(chunk, k - start), **cond), 0))
        return torch.logsumexp(torch.stack(parts), 0) - math.log(k)

    def _cond(self, n: int, **cond) -> dict:
        """Keyword inputs of the networks besides x (the conditional VAE's label code)."""
        if any(v is not None for v in cond.values()):
            raise ValueError(f"{self.info.name} is not class-conditional: it takes no {', '.join(cond)}")
        return {}

    # -- the protocol ------------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, k: int | None = None, **cond) -> torch.Tensor:
        """The IWAE lower bound on log p(x) with ``k`` (default ``eval_k``) importance samples."""
        return self.iwae_bound(x, k, **cond)

    def loss(self, batch: torch.Tensor, **cond) -> torch.Tensor:
        x = self._flat(batch)
        cond = self._cond(len(x), **cond)
        beta = self.beta() if self.training else 1.0
        if self.hparams["objective"] == "iwae":
            return -log_mean_exp(self.log_weights(x, int(self.hparams["k"]), beta, **cond), 0).mean()
        rec, kl = self.elbo_terms(x, **cond)
        fb = float(self.hparams.get("free_bits", 0.0))
        kl_term = kl.mean(0).clamp_min(fb).sum() if fb > 0 else kl.sum(-1).mean()
        return -rec.mean() + beta * kl_term

    def train_step(self, batch: torch.Tensor) -> dict[str, float]:
        out = super().train_step(batch)
        self.steps += 1
        out["kl_weight"] = self.beta()
        return out

    @torch.no_grad()
    def encode(self, x: torch.Tensor, **cond) -> torch.Tensor:
        """The posterior mean of z for each row of ``x``, (N, latent)."""
        x = self._flat(x)
        return self.posterior(x, **self._cond(len(x), **cond))[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, **cond) -> torch.Tensor:
        """Pixel probabilities p(x_d = 1 | z), (N, *data_shape), for latents (N, latent)."""
        z = self.check_latent(z)
        probs = torch.sigmoid(self.decoder_logits(z, **self._cond(len(z), **cond)))
        return probs.reshape(len(z), *self.data_shape)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, **cond) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator).to(self.device)
        probs = self.decode(z, **cond).reshape(n, self.dim)
        u = torch.rand(probs.shape, generator=generator).to(self.device)
        return (u < probs).float().reshape(n, *self.data_shape)

    @torch.no_grad()
    def kl_per_dim(self, x: torch.Tensor, **cond) -> torch.Tensor:
        """The mean KL(q(z_j|x) || p(z_j)) of each latent dimension over ``x``, (latent,): the
        dimensions the model uses have a large KL, the collapsed ones ~0."""
        x = self._flat(x)
        mu, logvar = self.posterior(x, **self._cond(len(x), **cond))
        return kl_to_std_normal(mu, logvar).mean(0)

"""RNADE (Uria, Murray & Larochelle 2013): real-valued NADE with mixture-of-Gaussian conditionals.

``p(x) = prod_d p(x_d | x_<d)``, each conditional a mixture of K Gaussians whose weights, means and
scales are read from a hidden layer that NADE shares between the dimensions:

    a_d = c + sum_{j<d} W[:, j] x_j          (a running sum: one pass gives every a_d)
    h_d = relu(rho_d * a_d)                  (then ``depth - 1`` more shared hidden layers)
    alpha_d, mu_d, log sigma_d = V_d h_d + b_d

For 1D data this is a plain mixture of K Gaussians (``a_1 = c`` depends on nothing); for 2D the
first coordinate is an unconditional mixture and the second a mixture whose parameters are an MLP
of the first. The inputs are standardised with a per-coordinate location and scale taken from the
first training batch (buffers, included in the log-density's Jacobian), so the same defaults suit
data of any scale. Exact likelihood; ancestral sampling, one coordinate after the other.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.protocol import DataKind, GenerativeModel, HParam, Likelihood, ModelInfo, Recipe, batch_size_hparam, lr_hparam
from core.registry import register

LOG_2PI = math.log(2 * math.pi)
#: log-sigma (in standardised units) is soft-clamped to [-LOG_SIGMA_BOUND, LOG_SIGMA_BOUND]
LOG_SIGMA_BOUND = 6.0


@register
class RNADE(GenerativeModel):
    info = ModelInfo(
        key="rnade",
        name="RNADE",
        group="Autoregressive",
        description="Real-valued NADE: p(x) = p(x1) p(x2 | x1), each a mixture of K Gaussians whose "
                    "parameters come from a hidden layer shared NADE-style across the coordinates. "
                    "Exact likelihood; ancestral sampling. 1D and 2D points.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_1D, DataKind.POINTS_2D),
        recipe=Recipe(steps=4000, schedule="cosine", warmup=100),
        hparams=(
            HParam("components", "int", 10, 1, 200, help="Gaussians in each conditional mixture (K)"),
            HParam("hidden", "int", 64, 1, 2048, log=True, help="units in the shared hidden layer"),
            HParam("depth", "int", 2, 1, 6, help="hidden layers (the first is NADE's shared one)"),
            lr_hparam(3e-3),
            batch_size_hparam(256),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        if len(self.data_shape) != 1:
            raise ValueError(f"RNADE takes points (N, D), got data of shape {self.data_shape}")
        d, h, k = self.dim, int(self.hparams["hidden"]), int(self.hparams["components"])
        self.k = k
        self.W = nn.Parameter(torch.randn(h, d) / math.sqrt(max(d, 1)))
        self.c = nn.Parameter(0.1 * torch.randn(h))
        self.rho = nn.Parameter(torch.ones(d))
        self.hidden_layers = nn.ModuleList(nn.Linear(h, h) for _ in range(int(self.hparams["depth"]) - 1))
        self.V = nn.Parameter(torch.randn(d, h, 3 * k) * (0.01 / math.sqrt(h)))
        b = torch.zeros(d, 3, k)
        b[:, 1] = torch.linspace(-2.0, 2.0, k) if k > 1 else 0.0  # means spread over +-2 std
        b[:, 2] = math.log(1.0 if k == 1 else 4.0 / k)  # sigmas about the spacing of the means
        self.b = nn.Parameter(b.reshape(d, 3 * k))
        # standardisation, set from the first training batch
        self.register_buffer("loc", torch.zeros(d))
        self.register_buffer("log_scale", torch.zeros(d))
        self.register_buffer("initialized", torch.zeros(()))

    # -- the model ------------------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Standardise with the mean and standard deviation of ``x`` (the first training batch)."""
        x = self.check_batch(x)
        if not torch.isfinite(x).all():
            raise ValueError("RNADE: the data contain NaN or infinite values")
        std = x.std(0) if len(x) > 1 else torch.ones(self.dim, device=x.device)
        std = torch.where(std > 1e-6, std, torch.ones_like(std))
        self.loc.copy_(x.mean(0))
        self.log_scale.copy_(std.log())
        self.initialized.fill_(1.0)

    def _params(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture parameters of every conditional, in standardised units, from standardised
        ``u`` (N, D): log-weights (normalised), means and log-sigmas, each (N, D, K). Row ``d``
        only depends on ``u[:, :d]``."""
        contrib = u[:, :, None] * self.W.t()[None]  # (N, D, H): W[:, j] x_j
        before = torch.cumsum(contrib, 1) - contrib  # sum over j < d
        h = torch.relu(self.rho[None, :, None] * (self.c + before))
        for layer in self.hidden_layers:
            h = torch.relu(layer(h))
        out = torch.einsum("ndh,dhk->ndk", h, self.V) + self.b
        logits, mu, log_sigma = out.split(self.k, dim=2)
        log_sigma = LOG_SIGMA_BOUND * torch.tanh(log_sigma / LOG_SIGMA_BOUND)
        return F.log_softmax(logits, 2), mu, log_sigma

    def conditionals(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For each row of ``x`` and each coordinate d, the mixture p(x_d | x_<d) in data units:
        (log-weights, means, sigmas), each (N, D, K); the weights sum to 1 over K."""
        x = self.check_batch(x)
        scale = self.log_scale.exp()
        log_w, mu, log_sigma = self._params((x - self.loc) / scale)
        return log_w, mu * scale[:, None] + self.loc[:, None], (log_sigma + self.log_scale[:, None]).exp()

    def log_prob(self, x):
        x = self.check_batch(x)
        u = (x - self.loc) / self.log_scale.exp()
        log_w, mu, log_sigma = self._params(u)
        z = (u[:, :, None] - mu) * torch.exp(-log_sigma)
        comp = log_w - 0.5 * z * z - log_sigma - 0.5 * LOG_2PI
        return torch.logsumexp(comp, 2).sum(1) - self.log_scale.sum()

    def loss(self, batch):
        if not bool(self.initialized):
            self.initialize(batch)
        return super().loss(batch)

    @torch.no_grad()
    def sample(self, n, generator=None):
        n = int(n)
        u = torch.zeros(n, self.dim, device=self.device)
        rows = torch.arange(n, device=self.device)
        for d in range(self.dim):
            log_w, mu, log_sigma = self._params(u)
            comp = torch.multinomial(log_w[:, d].exp(), 1, generator=generator).squeeze(1)
            eps = torch.randn(n, generator=generator, device=self.device)
            u[:, d] = mu[rows, d, comp] + log_sigma[rows, d, comp].exp() * eps
        return u * self.log_scale.exp() + self.loc

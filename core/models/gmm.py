"""A single full-covariance gaussian (closed-form fit) and a gaussian mixture fitted by EM.

``gaussian``: the maximum-likelihood mean and covariance (divided by n), plus ``reg_covar`` on
the diagonal; one training step is the fit.

``gmm``: ``p(x) = sum_k w_k N(x; mu_k, Sigma_k)`` with full covariances. The first step seeds
the means by k-means++ (Arthur & Vassilvitskii 2007; seeded by the ``seed`` hyperparameter),
assigns every point to its nearest seed and takes the weights, means and covariances of those
clusters; then every training step is one EM iteration (E: responsibilities; M: weighted
weights, means and covariances, ``reg_covar`` added to each diagonal as in scikit-learn, which
keeps a component that collapses onto one point finite). The reported loss is the mean NLL of
the batch under the parameters after the step; EM never increases it (up to ``reg_covar``).
All the arithmetic is float64. Before the first step both models are a standard normal.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.models.histogram import FIT_HPARAMS, check_fit_data
from core.protocol import DataKind, GenerativeModel, HParam, Likelihood, ModelInfo, NonFiniteError, grid_points
from core.registry import register

_LOG_2PI = math.log(2 * math.pi)


def mvn_log_prob(x: torch.Tensor, means: torch.Tensor, covs: torch.Tensor) -> torch.Tensor:
    """log N(x_i; mu_k, Sigma_k) for every point and component: (N, K), float64."""
    x = x.double()
    chol = torch.linalg.cholesky(covs)  # (K, d, d)
    diff = x[None, :, :] - means[:, None, :]  # (K, N, d)
    z = torch.linalg.solve_triangular(chol, diff.transpose(1, 2), upper=False)  # (K, d, N)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)  # (K,)
    d = x.shape[1]
    return (-0.5 * (z * z).sum(1) - 0.5 * (log_det[:, None] + d * _LOG_2PI)).T


def _check_covariances(covs: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(covs).all()):
        raise NonFiniteError(f"{name}: a covariance became NaN or infinite")


class _Gaussians(GenerativeModel):
    """Shared parts: float64 buffers (weights, means, covariances), no optimizer, sampling."""

    def __init__(self, data_shape, hparams, k: int):
        super().__init__(data_shape, hparams)
        d = self.dim
        self.check_point_dims((1, 2))
        self.register_buffer("weights", torch.full((k,), 1.0 / k, dtype=torch.float64))
        self.register_buffer("means", torch.zeros(k, d, dtype=torch.float64))
        self.register_buffer("covariances", torch.eye(d, dtype=torch.float64).repeat(k, 1, 1))
        self.register_buffer("fitted", torch.zeros(()))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted > 0)

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(x; mu_k, Sigma_k): (N, K) float64."""
        return mvn_log_prob(x, self.means, self.covariances) + torch.log(self.weights)[None, :]

    def log_prob(self, x):
        x = self.check_batch(x)
        return torch.logsumexp(self.component_log_prob(x), 1).float()

    @torch.no_grad()
    def density_grid(self, bounds, res):
        """Point values, except for components narrower than a pixel (a component collapsed onto
        a few points), which a point value would miss or blow up: their mass per pixel divided
        by its area instead, exactly in 1D (normal CDF differences); in 2D by a fine quadrature
        along the component's major axis, its minor spread (under a pixel) neglected."""
        d, dev = self.dim, self.device
        lo = [b[0] for b in bounds]
        steps = [(hi - lo_) / res for lo_, hi in bounds]
        evals, evecs = torch.linalg.eigh(self.covariances)  # ascending
        narrow = evals[:, 0].clamp_min(0).sqrt() < min(steps)
        g = torch.from_numpy(grid_points(bounds, res)).to(dev)
        out = torch.zeros(len(g), dtype=torch.float64, device=dev)
        if bool((~narrow).any()):
            for i in range(0, len(g), 16384):
                comp = self.component_log_prob(g[i:i + 16384])[:, ~narrow]
                out[i:i + 16384] = torch.logsumexp(comp, 1).exp()
        for k in torch.nonzero(narrow).flatten().tolist():
            w, mu = self.weights[k], self.means[k]
            if d == 1:
                edges = lo[0] + steps[0] * torch.arange(res + 1, dtype=torch.float64, device=dev)
                cdf = torch.special.ndtr((edges - mu[0]) / evals[k, 0].clamp_min(1e-300).sqrt())
                out += w * torch.diff(cdf) / steps[0]
                continue
            major, s = evecs[k][:, 1], float(evals[k, 1].clamp_min(0).sqrt())
            m = int(min(20001, 4 * math.ceil(12 * s / min(steps)) + 1))
            t = torch.linspace(-6, 6, m, dtype=torch.float64, device=dev)
            wts = torch.exp(-0.5 * t * t)
            pts = mu + t[:, None] * s * major
            idx = torch.floor((pts - torch.tensor(lo, dtype=torch.float64, device=dev))
                              / torch.tensor(steps, dtype=torch.float64, device=dev)).long()
            inside = ((idx >= 0) & (idx < res)).all(1)
            flat = idx[inside, 1] * res + idx[inside, 0]
            out.index_add_(0, flat, w * (wts / wts.sum())[inside] / (steps[0] * steps[1]))
        return np.ascontiguousarray(out.reshape((res,) * d).cpu().numpy(), dtype=np.float32)

    @torch.no_grad()
    def sample(self, n, generator=None):
        comp = torch.multinomial(self.weights.float(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covariances)[comp]  # (n, d, d)
        return (self.means[comp] + (chol @ z[:, :, None])[:, :, 0]).float()

    def _reg(self, d: int, device) -> torch.Tensor:
        return float(self.hparams["reg_covar"]) * torch.eye(d, dtype=torch.float64, device=device)


@register
class Gaussian(_Gaussians):
    info = ModelInfo(
        key="gaussian",
        name="Gaussian (full covariance)",
        group="Classical density estimation",
        description="One gaussian with full covariance: the maximum-likelihood mean and covariance in "
                    "closed form (reg_covar added to the diagonal). The baseline every other model should "
                    "beat. One training step is the fit.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_1D, DataKind.POINTS_2D),
        hparams=(
            HParam("reg_covar", "float", 1e-6, 0.0, 10.0, help="added to the covariance's diagonal"),
        ) + FIT_HPARAMS,
        full_batch=True,
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams, 1)

    @torch.no_grad()
    def train_step(self, batch):
        x = check_fit_data(self.check_batch(batch), self.info.name).double()
        mean = x.mean(0)
        diff = x - mean
        cov = diff.T @ diff / len(x) + self._reg(self.dim, x.device)
        _check_covariances(cov, self.info.name)
        if float(torch.linalg.eigvalsh(cov).min()) <= 0:
            raise ValueError(f"{self.info.name}: the training points lie on a line or a point, so the "
                             f"covariance is singular; raise reg_covar or add varied data")
        self.means.copy_(mean[None])
        self.covariances.copy_(cov[None])
        self.fitted.fill_(1.0)
        loss = float(-self.log_prob(batch).double().mean())
        if not math.isfinite(loss):
            raise NonFiniteError(f"{self.info.name}: the training NLL is {loss}")
        return {"loss": loss}


def kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: the first centre uniformly, each next one with probability proportional
    to the squared distance to the nearest centre chosen so far. ``x`` float64 on the CPU."""
    n = len(x)
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total > 0:
            nxt = int(torch.multinomial(d2 / total, 1, generator=generator))
        else:  # fewer distinct points than k: any point will do
            nxt = int(torch.randint(n, (1,), generator=generator))
        centres.append(x[nxt])
        d2 = torch.minimum(d2, ((x - x[nxt]) ** 2).sum(1))
    return torch.stack(centres)


@register
class GMM(_Gaussians):
    info = ModelInfo(
        key="gmm",
        name="Gaussian mixture (EM)",
        group="Classical density estimation",
        description="K gaussians with full covariances, fitted by expectation-maximisation: one training step "
                    "is one EM iteration (responsibilities, then weighted means and covariances), so you can "
                    "watch the components move. Seeded k-means++ initialisation; reg_covar on each "
                    "covariance's diagonal keeps a component that collapses onto a point finite. The "
                    "log-likelihood never decreases from one step to the next.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_1D, DataKind.POINTS_2D),
        hparams=(
            HParam("components", "int", 8, 1, 200, help="number of gaussians K"),
            HParam("reg_covar", "float", 1e-6, 0.0, 10.0, help="added to each covariance's diagonal"),
            HParam("seed", "int", 0, 0, 2 ** 31 - 1, help="seed of the k-means++ initialisation"),
        ) + FIT_HPARAMS,
        full_batch=True,
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams, int(hparams.get("components", 8)))

    @property
    def k(self) -> int:
        return len(self.weights)

    def _m_step(self, x: torch.Tensor, resp: torch.Tensor) -> None:
        nk = resp.sum(0) + 10 * torch.finfo(torch.float64).eps  # (K,)
        means = resp.T @ x / nk[:, None]
        diff = x[None, :, :] - means[:, None, :]  # (K, N, d)
        covs = torch.einsum("kn,kni,knj->kij", resp.T, diff, diff) / nk[:, None, None]
        covs = covs + self._reg(x.shape[1], x.device)
        _check_covariances(covs, self.info.name)
        self.weights.copy_(nk / nk.sum())
        self.means.copy_(means)
        self.covariances.copy_(covs)

    def initialise(self, x: torch.Tensor) -> None:
        """k-means++ seeds, hard assignment to the nearest seed, then one M-step."""
        g = torch.Generator().manual_seed(int(self.hparams["seed"]))
        centres = kmeans_pp(x.cpu(), self.k, g).to(x.device)
        nearest = torch.cdist(x, centres).argmin(1)
        resp = torch.nn.functional.one_hot(nearest, self.k).double()
        self._m_step(x, resp)

    @torch.no_grad()
    def train_step(self, batch):
        x = check_fit_data(self.check_batch(batch), self.info.name).double()
        if self.k > len(x):
            raise ValueError(f"{self.info.name}: {self.k} components but only {len(x)} training points; "
                             f"lower 'components' to at most {len(x)}")
        if not self.is_fitted:
            self.initialise(x)
            self.fitted.fill_(1.0)
        try:
            log_joint = self.component_log_prob(x)  # E-step
            resp = torch.softmax(log_joint, 1)
            self._m_step(x, resp)  # M-step
            log_lik = torch.logsumexp(self.component_log_prob(x), 1)
        except torch.linalg.LinAlgError as exc:
            raise NonFiniteError(f"{self.info.name}: a covariance is no longer positive definite ({exc}); "
                                 f"raise reg_covar") from None
        loss = float(-log_lik.mean())
        if not math.isfinite(loss):
            raise NonFiniteError(f"{self.info.name}: the training NLL is {loss}")
        return {"loss": loss, "min_weight": float(self.weights.min())}

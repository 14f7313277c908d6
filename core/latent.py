"""What the latent-space explorer computes, without Qt: decoding grids and paths, ordering the
sliders, encoding a drawing (with its bounds), and projecting a drawing onto a GAN's output.

Every function takes a model with ``decode(z[, labels])`` (VAE, conditional VAE, autoencoder,
DCGAN, conditional GAN) and returns C-contiguous float32 numpy arrays for the views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from core.protocol import GenerativeModel, Likelihood

#: families the explorer shows, and what each can do there
LATENT_FAMILIES = ("vae", "cvae", "ae", "dcgan", "cgan")


class LatentError(ValueError):
    """A request the explorer cannot serve (no decoder, a wrong latent size, an empty drawing ...)."""


def latent_dim(model: GenerativeModel) -> int:
    if "decode" not in model.capabilities():
        raise LatentError(f"{model.info.name} has no decoder: the latent explorer needs one")
    return int(getattr(model, "latent_dim"))


def _labels(model: GenerativeModel, digit: int | None, n: int) -> dict[str, Any]:
    if not model.info.conditional:
        return {}
    if digit is None:
        raise LatentError(f"{model.info.name} is conditional: choose a digit")
    return {"labels": torch.full((n,), int(digit), dtype=torch.long)}


def pin_torch_threads(n: int) -> None:
    """Let this thread's torch work run on ``n`` threads from now on (nothing if it already
    does). Set once per thread, never flipped back and forth: changing the count between two
    calls costs the next convolution ~70 ms here (its oneDNN / OpenMP state is rebuilt). Threads
    started afterwards inherit ``n`` (as after ``gui.worker``'s own call)."""
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _images(out: torch.Tensor, n: int) -> np.ndarray:
    arr = out.reshape(n, 28, 28).detach().cpu().numpy()
    if not np.isfinite(arr).all():
        raise LatentError("the decoder returned NaN or infinite values for these latents")
    return np.ascontiguousarray(arr, dtype=np.float32)


@torch.inference_mode()
def decode(model: GenerativeModel, z: np.ndarray, digit: int | None = None) -> np.ndarray:
    """Images (N, 28, 28) in [0, 1] for latents (N, latent) (or one latent (latent,)); inference
    mode (no autograd bookkeeping: the images leave as numpy arrays)."""
    z = np.asarray(z, np.float32)
    if z.ndim == 1:
        z = z[None]
    d = latent_dim(model)
    if z.ndim != 2 or z.shape[1] != d:
        raise LatentError(f"{model.info.name} has {d} latent dimensions, got latents of shape {z.shape}")
    if not np.isfinite(z).all():
        raise LatentError("latent values must be finite numbers")
    return _images(model.decode(torch.from_numpy(z), **_labels(model, digit, len(z))), len(z))


def grid_latents(base: np.ndarray, dims: tuple[int, int], extent: float, n: int) -> np.ndarray:
    """(n * n, latent): ``base`` with dimensions ``dims`` (x, y) swept over [-extent, extent],
    row-major with y decreasing down the rows (the map's top row is the largest y)."""
    base = np.asarray(base, np.float32)
    i, j = dims
    if i == j or not (0 <= i < len(base) and 0 <= j < len(base)):
        raise LatentError(f"the map needs two different dimensions of {len(base)}, got {dims}")
    ticks = np.linspace(-extent, extent, n, dtype=np.float32)
    z = np.repeat(base[None], n * n, 0)
    yy, xx = np.meshgrid(ticks[::-1], ticks, indexing="ij")
    z[:, i], z[:, j] = xx.ravel(), yy.ravel()
    return z


def mosaic(images: np.ndarray, n: int) -> np.ndarray:
    """(n*28, n*28) float32 from (n*n, 28, 28), row-major."""
    return np.ascontiguousarray(images.reshape(n, n, 28, 28).transpose(0, 2, 1, 3).reshape(n * 28, n * 28))


def decode_map(model: GenerativeModel, base: np.ndarray, dims: tuple[int, int], extent: float = 3.0,
               n: int = 16, digit: int | None = None) -> np.ndarray:
    """The 2D map: a mosaic (n*28, n*28) of decoded images over two latent dimensions."""
    return mosaic(decode(model, grid_latents(base, dims, extent, n), digit), n)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between latents a and b at fractions ``t`` (T,), (T, latent);
    linear where a and b are (nearly) parallel."""
    a, b, t = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(t, np.float64)[:, None]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-8 or nb < 1e-8:
        return ((1 - t) * a + t * b).astype(np.float32)
    omega = math.acos(float(np.clip(a @ b / (na * nb), -1.0, 1.0)))
    if omega < 1e-4:
        return ((1 - t) * a + t * b).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / math.sin(omega)).astype(np.float32)


def interpolate(a: np.ndarray, b: np.ndarray, steps: int, spherical: bool = False) -> np.ndarray:
    """(steps, latent) from a to b inclusive, linear or spherical."""
    if steps < 2:
        raise LatentError(f"an interpolation needs at least 2 steps, got {steps}")
    t = np.linspace(0.0, 1.0, steps)
    if spherical:
        out = slerp(a, b, t)
        out[0], out[-1] = a, b  # exact ends, whatever the rounding
        return out
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return ((1 - t[:, None]) * a + t[:, None] * b).astype(np.float32)


@torch.no_grad()
def dimension_order(model: GenerativeModel, x: np.ndarray | None = None, digit: int | None = None) -> np.ndarray:
    """The latent dimensions, the ones that matter most first: by the mean KL of q(z_j | x) over
    the digits ``x`` for a VAE (collapsed dimensions carry ~0 nats), by the spread of the codes for
    an autoencoder, in index order for a GAN (all of its noise is used alike)."""
    d = latent_dim(model)
    if x is None or not len(x) or "encode" not in model.capabilities():
        return np.arange(d)
    xt = torch.from_numpy(np.asarray(x, np.float32))
    kw = _labels(model, digit, len(x)) if model.info.conditional else {}
    if hasattr(model, "kl_per_dim"):
        score = model.kl_per_dim(xt, **kw).cpu().numpy()
    else:
        score = model.encode(xt, **kw).std(0).cpu().numpy()
    return np.argsort(-score, kind="stable")


@dataclass
class Encoding:
    z: np.ndarray  # (latent,) the posterior mean (a GAN: the projected z)
    reconstruction: np.ndarray  # (28, 28) decoded from z
    elbo: float | None = None  # nats, for a VAE
    iwae: float | None = None  # nats, the IWAE bound with iwae_k samples
    iwae_k: int | None = None


def check_drawing(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image, np.float32).reshape(-1)
    if x.size != 784:
        raise LatentError(f"a drawing is 28x28 pixels, got {np.asarray(image).shape}")
    if not np.isfinite(x).all():
        raise LatentError("the drawing contains NaN or infinite values")
    if not x.any():
        raise LatentError("the drawing is empty: draw a digit (or pick a random one) first")
    return x


@torch.no_grad()
def encode_drawing(model: GenerativeModel, image: np.ndarray, digit: int | None = None,
                   iwae_k: int = 1000) -> Encoding:
    """Encode a drawing (its posterior mean), decode that mean, and for a VAE score the drawing:
    the ELBO (one-sample reconstruction, analytic KL; averaged over 100 draws) and the IWAE bound."""
    if "encode" not in model.capabilities():
        raise LatentError(f"{model.info.name} has no encoder: project the drawing instead")
    x = torch.from_numpy(check_drawing(image))[None]
    kw = _labels(model, digit, 1)
    z = model.encode(x, **kw)
    rec = decode(model, z.cpu().numpy(), digit)[0]
    out = Encoding(np.ascontiguousarray(z[0].cpu().numpy(), np.float32), rec)
    if model.info.likelihood is Likelihood.LOWER_BOUND and hasattr(model, "elbo"):
        xs = x.repeat(100, 1)
        kws = _labels(model, digit, 100)
        out.elbo = float(model.elbo(xs, **kws).mean())
        out.iwae, out.iwae_k = float(model.iwae_bound(x, iwae_k, **kw)[0]), iwae_k
    return out


@dataclass
class ProjectionStep:
    step: int
    z: np.ndarray  # (latent,)
    image: np.ndarray  # (28, 28) the generator's image of z
    distance: float  # mean squared pixel difference to the target


def project(model: GenerativeModel, image: np.ndarray, digit: int | None = None, steps: int = 200,
            restarts: int = 8, lr: float = 0.05, seed: int = 0) -> Iterator[ProjectionStep]:
    """Find the z whose generated image is closest to a drawing (iGAN's projection, Zhu et al.
    2016): Adam on z from ``restarts`` random starts at once, the pixels' squared error plus a
    small pull towards the prior's typical set; yields the best start's state after every step."""
    target = torch.from_numpy(check_drawing(image))
    d = latent_dim(model)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(restarts, d, generator=gen).to(model.device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    kw = _labels(model, digit, restarts)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for step in range(1, steps + 1):
            img = model.generate(z, kw.get("labels")) if hasattr(model, "generate") else model.decoder_logits(z).sigmoid()
            err = (img.reshape(restarts, 784) - target.to(img.device)).pow(2).mean(1)
            best = int(err.argmin())
            state = ProjectionStep(step, z[best].detach().cpu().numpy().astype(np.float32, copy=True),
                                   _images(img[best].detach(), 1)[0], float(err[best].detach()))
            loss = err.sum() + 1e-3 * (z.pow(2).sum(1) - d).pow(2).sum() / d
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            yield state
    finally:
        for p in model.parameters():
            p.requires_grad_(True)

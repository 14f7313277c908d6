"""Array helpers shared by the views, the self-test and the benchmarks (pure numpy)."""

from __future__ import annotations

import math

import numpy as np


def image_grid(images: np.ndarray, image_shape: tuple[int, int], ncols: int | None = None,
               pad: int = 1) -> np.ndarray:
    """Tile (N, H*W) or (N, H, W) values in [0, 1] into one C-contiguous uint8 image (0..255),
    rows of the grid first, with ``pad`` grey pixels between tiles."""
    h, w = image_shape
    x = np.asarray(images, dtype=np.float32).reshape(-1, h, w)
    n = len(x)
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = max(1, math.ceil(n / ncols))
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), 96, np.uint8)
    tiles = (np.clip(np.nan_to_num(x), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = tiles[i]
    return np.ascontiguousarray(grid)

"""A small digit classifier: the measuring instrument of sample quality.

Not a generative model: it reads a 28x28 image (binary or grey, values in [0, 1]) and says which
digit it is. Two 3x3 convolution blocks (32 and 64 maps, each followed by 2x2 max pooling), a
128-unit hidden layer (its activations are the *features* the Frechet distance compares), and
a 10-way read-out. Trained on the labelled digits (``mnist_digits``, 9,000 images) with random
shifts of up to 2 pixels; its accuracy is measured on the 1,000 held-out ones.

:mod:`core.sample_quality` uses it to score the samples of every image model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: the key that marks a classifier checkpoint in its sidecar (no registry family)
KIND = "digit-classifier"


class DigitClassifier(nn.Module):
    def __init__(self, classes: int = 10, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        self.classes, self.hidden, self.dropout = classes, hidden, dropout
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.fc = nn.Linear(64 * 7 * 7, hidden)
        self.out = nn.Linear(hidden, classes)

    @staticmethod
    def images(x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, 1, 28, 28) float from (N, 784), (N, 28, 28) or (N, 1, 28, 28) in [0, 1]."""
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).float()
        if x.dim() == 2 and x.shape[1] == 784 or x.dim() == 3 and tuple(x.shape[1:]) == (28, 28):
            x = x.reshape(len(x), 1, 28, 28)
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"the classifier reads 28x28 images, got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("the images to classify contain NaN or infinite values")
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 128 hidden activations (after ReLU): what the Frechet distance compares."""
        return F.relu(self.fc(self.conv(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.out(F.dropout(h, self.dropout, self.training))

    @torch.no_grad()
    def predict(self, x, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """(labels (N,), features (N, hidden)) of images, in batches, in eval mode."""
        self.eval()
        x = self.images(x)
        labels, feats = [], []
        dev = next(self.parameters()).device
        for i in range(0, len(x), batch):
            h = self.features(x[i:i + batch].to(dev))
            labels.append(self.out(h).argmax(1).cpu().numpy())
            feats.append(h.double().cpu().numpy())
        if not labels:
            return np.zeros(0, np.int64), np.zeros((0, self.hidden))
        return np.concatenate(labels), np.concatenate(feats)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by up to ``max_shift`` pixels in x and y (zeros come in)."""
    if max_shift <= 0:
        return x
    n = len(x)
    pad = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(28)[None]).reshape(n, 1, 28, 1).expand(n, 1, 28, 28 + 2 * max_shift)
    out = pad.gather(2, rows)
    cols = (dx[:, None] + torch.arange(28)[None]).reshape(n, 1, 1, 28).expand(n, 1, 28, 28)
    return out.gather(3, cols)


@dataclass
class ClassifierProgress:
    epoch: int
    step: int
    loss: float
    valid_accuracy: float | None
    elapsed_s: float


def train_classifier(model: DigitClassifier, train: np.ndarray, train_labels: np.ndarray,
                     valid: np.ndarray, valid_labels: np.ndarray, *, epochs: int = 20, lr: float = 1e-3,
                     batch_size: int = 64, max_shift: int = 2, seed: int = 0) -> Iterator[ClassifierProgress]:
    """Adam with a cosine decay over ``epochs``; yields a progress record after every epoch (with
    the held-out accuracy)."""
    if len(train) != len(train_labels) or len(valid) != len(valid_labels):
        raise ValueError("each image needs one label")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = DigitClassifier.images(train), torch.as_tensor(np.asarray(train_labels, np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    t0, step = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(random_shift(x[idx], max_shift, gen)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += float(loss.detach()) * len(idx)
        yield ClassifierProgress(epoch, step, total / len(x), accuracy(model, valid, valid_labels),
                                 time.perf_counter() - t0)


def accuracy(model: DigitClassifier, images, labels) -> float:
    pred, _ = model.predict(images)
    return float((pred == np.asarray(labels)).mean()) if len(pred) else float("nan")


# -- checkpoints: the app's safetensors format, family "digit-classifier" (not a generative model) --
def save_classifier(path, model: DigitClassifier, extra: dict | None = None):
    """Write the classifier's weights and a sidecar, as the app writes every checkpoint."""
    import torch as _t

    from core.checkpoint import FORMAT, FORMAT_VERSION, jsonable, write_checkpoint

    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "family": KIND,
            "hparams": {"classes": model.classes, "hidden": model.hidden, "dropout": model.dropout},
            "data_shape": [784], "torch_version": _t.__version__, **(extra or {})}
    return write_checkpoint(path, tensors, jsonable(meta))


def load_classifier(path) -> tuple[DigitClassifier, dict]:
    """The classifier of a checkpoint written by :func:`save_classifier`; CheckpointError if the
    file is not one, is damaged or does not fit (nothing is unpickled)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from core.checkpoint import CheckpointError, read_checkpoint_meta

    meta = read_checkpoint_meta(path)
    if meta.family != KIND:
        raise CheckpointError(f"{path} holds a {meta.family!r} model, not the digit classifier")
    try:
        hp = meta.hparams
        model = DigitClassifier(int(hp["classes"]), int(hp["hidden"]), float(hp["dropout"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its classifier description is damaged ({exc})") from None
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is damaged or truncated: {exc}") from None
    own = model.state_dict()
    if set(own) != set(tensors) or any(own[k].shape != tensors[k].shape for k in own):
        raise CheckpointError(f"{path} does not fit the digit classifier (its tensors differ)")
    if any(v.is_floating_point() and not torch.isfinite(v).all() for v in tensors.values()):
        raise CheckpointError(f"{path} holds NaN or infinite weights")
    model.load_state_dict(tensors)
    return model.eval(), meta

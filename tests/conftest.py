"""Shared test fields with closed-form solutions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor


class GaussianField:
    """Exact marginal velocity of data N(mu, sd^2 I) on the linear path (the closed-form Gaussian test field).

    v(x, t) = mu + (dS/S)(x - t mu), S_t^2 = t^2 sd^2 + (1 - t)^2; from noise x0: x(t) = t mu + S_t x0.
    """

    def __init__(self, mu: float = 1.0, sd: float = 0.5):
        self.mu, self.sd = mu, sd

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        tb = t.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        s2 = tb**2 * self.sd**2 + (1 - tb) ** 2
        return self.mu + (tb * self.sd**2 - (1 - tb)) / s2 * (x - tb * self.mu)

    def solution(self, x0: Tensor, t: float = 1.0) -> Tensor:
        return t * self.mu + (t**2 * self.sd**2 + (1 - t) ** 2) ** 0.5 * x0


@pytest.fixture
def gaussian_field() -> GaussianField:
    return GaussianField()


class _FileCreatingPayload:
    """Unpickling this object calls open(target, "w"): a stand-in for code hidden in a data file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.fixture
def pickle_payload(tmp_path):
    """(an object whose unpickling would create a file, the path of that file)."""
    target = tmp_path / "created-by-unpickling"
    return _FileCreatingPayload(target), target


@pytest.fixture(autouse=True)
def _deterministic():
    """Every test starts from the same global RNG state and thread count, so thresholds never flake."""
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


def write_idx(path, array, gz=True):
    """An IDX file of unsigned bytes, as the official Fashion-MNIST files are written."""
    import gzip

    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_fashion_files(folder, n_train=12, n_test=5, gz=True, seed=0):
    """The four Fashion-MNIST IDX files with random pixels and labels under `folder`; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), array, gz)
    return arrays

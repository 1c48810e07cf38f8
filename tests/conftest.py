"""Shared test fields with closed-form solutions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]


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


def write_cifar10_files(root, n_per_batch=8, n_test=24, seed=0):
    """CIFAR-10 in the official python-batch format (five training batches and the test batch) with random pixels under
    `root/cifar10/cifar-10-batches-py`."""
    import pickle

    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": rng.integers(0, 10, n).tolist()}, f)


def write_fake_inception(folder):
    """A stand-in for clean-fid's Inception torchscript file: the same interface (`layers` maps [N, 3, 299, 299] to 2,048
    pooled features), random weights, a few milliseconds per image. Real weights are never downloaded in tests."""
    from torch import nn

    class Layers(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2048, 1)

        def forward(self, x):
            x = torch.nn.functional.avg_pool2d(x, 16)  # 299 -> 18 pixels a side: cheap, still image-dependent
            return torch.nn.functional.adaptive_avg_pool2d(torch.tanh(self.conv(x)), 1)

    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, x, return_features: bool = False):
            return self.layers(x)

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.jit.script(Base()).save(str(folder / "inception-2015-12-05.pt"))
    return folder / "inception-2015-12-05.pt"


# dvc.yaml's order for one teacher: data, teacher, baselines, the four papers, the combinations, the report.
PROFILE_STAGES = ["00_data", "00b_autoencoders", "01_teacher", "01b_baselines", "02_boss", "03_bespoke", "04_flowturbo",
                  "05_fgm", "05b_combos", "06_report"]
STAGE_WIDE = ("00_data", "00b_autoencoders", "06_report")  # notebooks without a teacher parameter


def run_profile_smoke(profile, tmp, overrides):
    """Every stage notebook of `dvc repro` for `profiles/<profile>.yaml`, in order, under papermill at its smoke sizes
    (FLOWLIB_SMOKE=1), with `overrides` deep-merged into the profile (e.g. its data root). Returns the run's reports/."""
    import papermill
    import yaml

    from flowlib.config import _deep_update

    raw = _deep_update(yaml.safe_load((ROOT / "profiles" / f"{profile}.yaml").read_text()), overrides)
    params_file = tmp / f"{profile}.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    (teacher,) = raw["teachers"]
    mp = pytest.MonkeyPatch()
    mp.setenv("FLOWLIB_SMOKE", "1")
    mp.setenv("FLOWLIB_SMOKE_DIR", str(tmp / "run"))  # its own artefacts and reports, apart from the notebooks' nbval run
    out = tmp / "run" / "reports" / "notebooks"  # where dvc.yaml writes them: the report lists their times
    out.mkdir(parents=True)
    try:
        for stage in PROFILE_STAGES:
            parameters = {"params_file": str(params_file)} | ({} if stage in STAGE_WIDE else {"teacher": teacher})
            papermill.execute_notebook(ROOT / "notebooks" / f"{stage}.ipynb", out / f"{stage}.ipynb",
                                       parameters=parameters, cwd=str(ROOT / "notebooks"), progress_bar=False)
    finally:
        mp.undo()
    return tmp / "run" / "reports"

"""Datasets behind one loader API: 2-D toys, scikit-learn's 8x8 digits, Fashion-MNIST and CIFAR-10 from files.

`load_dataset(name)` returns a `Dataset` with a fixed `train` and `heldout` split (tensors in model space:
toys as [N, 2], images as [N, C, H, W] in [-1, 1]) and `sample_batch` for training. Nothing is downloaded:
toys are generated, digits ship with scikit-learn, Fashion-MNIST is read from its four IDX files (Debian's package
`dataset-fashion-mnist` installs them), CIFAR-10 must be placed under `data/cifar10` by the user.
"""
from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .errors import FlowlibError

TOY_DATASETS = ("8gaussians", "moons", "checkerboard")
IMAGE_DATASETS = ("digits", "fashion", "cifar10")
CLASSIFIER_DATASETS = ("digits", "fashion")  # labelled grey images: their Fréchet distance uses a classifier trained here
DATASETS = TOY_DATASETS + IMAGE_DATASETS
DIGITS_SIZE = 1797        # scikit-learn's bundled 8x8 digits
CIFAR10_TEST_SIZE = 10_000  # the official test batch, our held-out split
FASHION_TEST_SIZE = 10_000  # Fashion-MNIST's official test set, our held-out split
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # where `apt-get install dataset-fashion-mnist` puts it
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

FASHION_HELP = (
    "Fashion-MNIST is read from its four IDX files ({files}, each plain or .gz) under {root} or {debian}, and never "
    "downloaded at run time. On Debian or Ubuntu install them with `apt-get install dataset-fashion-mnist` (as root), "
    "or copy the four files from "
    "https://github.com/zalandoresearch/fashion-mnist into {root}."
)

CIFAR10_HELP = (
    "CIFAR-10 is an input of the paper-scale `cifar10` profile and is never downloaded at run time. "
    "Download cifar-10-binary.tar.gz (or cifar-10-python.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html "
    "and extract it so that {root}/cifar-10-batches-bin/data_batch_1.bin ... test_batch.bin (or "
    "{root}/cifar-10-batches-py/data_batch_1 ... test_batch) exist, or put PNG files under {root}/train/ and "
    "{root}/test/; then run `dvc add data` (or `dvc pull data.dvc` if your remote holds it)."
)


class DatasetError(FlowlibError, ValueError):
    """An unknown, missing or malformed dataset."""


@dataclass
class Dataset:
    """A dataset in model space with a fixed split; `sample_batch` draws training minibatches."""

    name: str
    train: Tensor
    heldout: Tensor
    sampler: Callable[[int, torch.Generator], Tensor] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample (without the batch axis)."""
        return tuple(self.train.shape[1:])

    @property
    def is_image(self) -> bool:
        """Whether its samples are images (shown as grids, scored in an image feature space)."""
        return self.train.dim() == 4

    @property
    def pixels(self) -> "Dataset":
        """The data in image (or point) space: itself; a latent dataset's images (`flowlib.latent.LatentDataset`)."""
        return self

    def to_images(self, samples: Tensor) -> Tensor:
        """Samples of this dataset as what they stand for: themselves; a latent dataset decodes them."""
        return samples

    def sample_batch(self, n: int, generator: torch.Generator) -> Tensor:
        """A training minibatch: fresh samples for toys, a random subset (with replacement) for images."""
        if self.sampler is not None:
            return self.sampler(n, generator)
        idx = torch.randint(len(self.train), (n,), generator=generator)
        return self.train[idx]


# ----------------------------------------------------------------------------------------------- toys
def sample_8gaussians(n: int, generator: torch.Generator) -> Tensor:
    """Eight Gaussians on a circle of radius 4/sqrt(2) with std 0.5/sqrt(2) (the FFJORD toy)."""
    angles = torch.arange(8) * (torch.pi / 4)
    centers = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) * 4.0
    which = torch.randint(8, (n,), generator=generator)
    points = centers[which] + 0.5 * torch.randn(n, 2, generator=generator)
    return points / 2**0.5


def sample_moons(n: int, generator: torch.Generator, noise: float = 0.05) -> Tensor:
    """Two interleaved half circles, centred and scaled to roughly unit spread."""
    theta = torch.rand(n, generator=generator) * torch.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(theta), 1.0 - torch.cos(theta))
    y = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta))
    points = torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=generator)
    return (points - torch.tensor([0.5, 0.25])) * 2.0


def sample_checkerboard(n: int, generator: torch.Generator) -> Tensor:
    """A 4x4 checkerboard on [-4, 4]^2 with 8 filled squares (the FFJORD toy)."""
    x1 = torch.rand(n, generator=generator) * 4 - 2
    x2 = torch.rand(n, generator=generator) - torch.randint(0, 2, (n,), generator=generator).float() * 2
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], dim=1) * 2.0


MIXTURE_DATASETS = ("8gaussians",)  # toys that are exactly a Gaussian mixture: they have an exact teacher


def exact_mixture(name: str):
    """The closed-form flow of a mixture dataset (`GaussianMixtureVelocity` of the same distribution)."""
    from .models.mixture import ring_mixture  # its defaults are this dataset's radius and scale

    if name not in MIXTURE_DATASETS:
        raise DatasetError(f"{name!r} is not a Gaussian mixture; exact teachers exist for {', '.join(MIXTURE_DATASETS)}.")
    return ring_mixture()


_TOY_SAMPLERS: dict[str, Callable[[int, torch.Generator], Tensor]] = {
    "8gaussians": sample_8gaussians,
    "moons": sample_moons,
    "checkerboard": sample_checkerboard,
}


def _toy_dataset(name: str, n_train: int, n_heldout: int, seed: int) -> Dataset:
    sampler = _TOY_SAMPLERS[name]
    train = sampler(n_train, torch.Generator().manual_seed(seed))
    heldout = sampler(n_heldout, torch.Generator().manual_seed(seed + 1))
    return Dataset(name, train, heldout, sampler=sampler)


# --------------------------------------------------------------------------------------------- images
def to_model_space(images_uint8: np.ndarray | Tensor, max_value: float = 255.0) -> Tensor:
    """Map integer pixel values in [0, max_value] to float32 in [-1, 1]."""
    x = torch.as_tensor(np.asarray(images_uint8), dtype=torch.float32)
    return x / max_value * 2.0 - 1.0


def split_indices(n: int, heldout_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed random train/held-out split of range(n)."""
    if not 0.0 < heldout_fraction < 1.0:
        raise DatasetError(f"heldout_fraction must lie in (0, 1), got {heldout_fraction}.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_held = int(round(n * heldout_fraction))
    return perm[n_held:], perm[:n_held]


def load_digits(heldout_fraction: float = 1 / 3, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16) as [N, 1, 8, 8] in [-1, 1]."""
    from sklearn.datasets import load_digits as sk_load_digits

    images = sk_load_digits().images  # float64, 0..16
    x = to_model_space(images, max_value=16.0).unsqueeze(1)
    train_idx, held_idx = split_indices(len(x), heldout_fraction, seed)
    return Dataset("digits", x[train_idx], x[held_idx])


def digits_labels(heldout_fraction: float = 1 / 3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Class labels of `load_digits`'s train and held-out splits (for the FID feature classifier)."""
    from sklearn.datasets import load_digits as sk_load_digits

    y = torch.as_tensor(sk_load_digits().target, dtype=torch.long)
    train_idx, held_idx = split_indices(len(y), heldout_fraction, seed)
    return y[train_idx], y[held_idx]


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 python batch and nothing else: only numpy's array reconstruction may be called.

    The official "python version" archive is a set of pickles (a dict of bytes keys, a uint8 `data` array and
    `labels`); a plain `pickle.load` would run whatever code a tampered file names, so every other global is
    refused. The binary archive (`cifar-10-batches-bin`) needs no pickle at all and is read when present.
    """

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only numpy arrays")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is not a CIFAR batch
        raise DatasetError(f"{path} is not a readable CIFAR-10 python batch ({exc}). Re-extract the archive.") from exc
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: expected data of shape [N, 3072], got {data.shape}. Re-extract the archive.")
    return data.reshape(-1, 3, 32, 32)


def _read_cifar_binary(path: Path) -> np.ndarray:
    """One file of the official binary archive: records of 1 label byte and 3,072 pixel bytes (CHW)."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DatasetError(f"{path}: {raw.size} bytes is not a whole number of 3,073-byte CIFAR-10 records. "
                           "Re-extract the archive.")
    return raw.reshape(-1, 3073)[:, 1:].reshape(-1, 3, 32, 32)


def _read_png_folder(folder: Path) -> np.ndarray:
    from PIL import Image

    files = sorted(folder.rglob("*.png"))
    if not files:
        raise DatasetError(f"No PNG files under {folder}.")
    images = []
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB"), dtype=np.uint8)
        if img.shape != (32, 32, 3):
            raise DatasetError(f"{f}: expected a 32x32 RGB image, got shape {img.shape}.")
        images.append(img.transpose(2, 0, 1))
    return np.stack(images)


def _cifar_files(folder: Path, train: list[str], test: str, root: Path) -> list[Path]:
    files = [folder / name for name in train + [test]]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DatasetError(f"CIFAR-10 under {folder} is incomplete: missing {missing}. " + CIFAR10_HELP.format(root=root))
    return files


def load_cifar10(root: str | Path = "data/cifar10") -> Dataset:
    """CIFAR-10 from the official binary or python archive, or PNG folders, under `root` ([N, 3, 32, 32] in [-1, 1]).

    The official test set is the held-out split.
    """
    root = Path(root)
    binary, python = root / "cifar-10-batches-bin", root / "cifar-10-batches-py"
    if binary.is_dir():
        *train_files, test_file = _cifar_files(binary, [f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin", root)
        train = np.concatenate([_read_cifar_binary(f) for f in train_files])
        test = _read_cifar_binary(test_file)
    elif python.is_dir():
        *train_files, test_file = _cifar_files(python, [f"data_batch_{i}" for i in range(1, 6)], "test_batch", root)
        train = np.concatenate([_read_cifar_batch(f) for f in train_files])
        test = _read_cifar_batch(test_file)
    elif (root / "train").is_dir() and (root / "test").is_dir():
        train, test = _read_png_folder(root / "train"), _read_png_folder(root / "test")
    else:
        raise DatasetError(f"CIFAR-10 not found under {root}. " + CIFAR10_HELP.format(root=root))
    return Dataset("cifar10", to_model_space(train), to_model_space(test))


IDX_TYPES = {0x08: np.uint8}  # the IDX type codes flowlib reads (Fashion-MNIST's pixels and labels are unsigned bytes)


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (plain or gzip) as a numpy array: 2 zero bytes, the type code, the number of axes, one big-endian
    uint32 per axis, then the values. A file that is not one, or whose size does not match its header, is refused."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path} is not a readable IDX file ({exc}). Reinstall or re-copy it.") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_TYPES:
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes (header {raw[:4].hex() or 'empty'}). "
                           "Reinstall or re-copy it.")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)) if len(raw) >= 4 + 4 * ndim else None
    body = len(raw) - 4 - 4 * ndim
    if dims is None or body != int(np.prod(dims)):
        raise DatasetError(f"{path}: the header announces shape {dims} but the file "
                           f"holds {max(body, 0)} values: truncated or corrupt. Reinstall or re-copy it.")
    return np.frombuffer(raw, dtype=IDX_TYPES[raw[2]], offset=4 + 4 * ndim).reshape(dims).copy()


def fashion_files(root: str | Path = "data/fashion-mnist") -> dict[str, Path]:
    """The four Fashion-MNIST files, from `root` or else Debian's folder (each plain or .gz)."""
    root = Path(root)
    for folder in (root, DEBIAN_FASHION):
        found = {name: next((folder / f"{name}{ext}" for ext in (".gz", "") if (folder / f"{name}{ext}").is_file()), None)
                 for name in FASHION_FILES}
        if all(found.values()):
            return found  # type: ignore[return-value]
    raise DatasetError("Fashion-MNIST not found. " + FASHION_HELP.format(files=", ".join(FASHION_FILES), root=root,
                                                                        debian=DEBIAN_FASHION))


def load_fashion(root: str | Path = "data/fashion-mnist") -> Dataset:
    """Fashion-MNIST (60,000 training and 10,000 test images, 28x28 grey) as [N, 1, 28, 28] in [-1, 1]; the official
    test set is the held-out split."""
    files = fashion_files(root)
    train, test = read_idx(files["train-images-idx3-ubyte"]), read_idx(files["t10k-images-idx3-ubyte"])
    for name, images in (("train-images-idx3-ubyte", train), ("t10k-images-idx3-ubyte", test)):
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DatasetError(f"{files[name]}: expected images of shape [N, 28, 28], got {images.shape}.")
    return Dataset("fashion", to_model_space(train).unsqueeze(1), to_model_space(test).unsqueeze(1))


def fashion_labels(root: str | Path = "data/fashion-mnist") -> tuple[Tensor, Tensor]:
    """Class labels (0..9) of `load_fashion`'s train and held-out splits (for the feature classifier)."""
    files = fashion_files(root)
    return tuple(torch.as_tensor(read_idx(files[n]).astype(np.int64))  # type: ignore[return-value]
                 for n in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"))


# ------------------------------------------------------------------------------------------- the API
def dataset_labels(name: str, root: str | Path = "data", *, heldout_fraction: float = 1 / 3,
                   seed: int = 0) -> tuple[Tensor, Tensor]:
    """Class labels of a labelled dataset's train and held-out splits (`CLASSIFIER_DATASETS`), in `load_dataset`'s order."""
    if name == "digits":
        return digits_labels(heldout_fraction, seed)
    if name == "fashion":
        return fashion_labels(Path(root) / "fashion-mnist")
    raise DatasetError(f"Dataset {name!r} has no labels here; the labelled ones are {', '.join(CLASSIFIER_DATASETS)}.")


def heldout_size(name: str, heldout_fraction: float = 1 / 3, n_toy: int = 20_000) -> int:
    """Size of a dataset's held-out split without loading it (the config checks `n_eval` against it)."""
    if name in _TOY_SAMPLERS:
        return n_toy
    if name == "digits":
        return int(round(DIGITS_SIZE * heldout_fraction))
    if name == "cifar10":
        return CIFAR10_TEST_SIZE
    if name == "fashion":
        return FASHION_TEST_SIZE
    raise DatasetError(f"Unknown dataset {name!r}. Choose one of: {', '.join(DATASETS)}.")


def load_dataset(
    name: str,
    root: str | Path = "data",
    *,
    heldout_fraction: float = 1 / 3,
    n_toy: int = 20_000,
    seed: int = 0,
) -> Dataset:
    """Load a dataset by name: one of `DATASETS`.

    Toys are `n_toy` fresh points per split; digits use a fixed split of `heldout_fraction`; Fashion-MNIST is read
    from `root/fashion-mnist` (or Debian's folder); CIFAR-10 from `root/cifar10`.
    """
    if name in _TOY_SAMPLERS:
        return _toy_dataset(name, n_toy, n_toy, seed)
    if name == "digits":
        return load_digits(heldout_fraction, seed)
    if name == "cifar10":
        return load_cifar10(Path(root) / "cifar10")
    if name == "fashion":
        return load_fashion(Path(root) / "fashion-mnist")
    raise DatasetError(f"Unknown dataset {name!r}. Choose one of: {', '.join(DATASETS)}.")


def main(argv: list[str] | None = None) -> int:
    """`python -m flowlib.data check NAME [ROOT]`: load a dataset once and say where it came from, or how to provide it
    (exit status 2). `make repro PROFILE=fashion` runs it before the pipeline."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m flowlib.data", description=main.__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="load a dataset and print its splits")
    check.add_argument("name", choices=DATASETS)
    check.add_argument("root", nargs="?", default="data")
    args = parser.parse_args(argv)
    try:
        ds = load_dataset(args.name, args.root)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = ""
    if args.name == "fashion":
        where = f" from {fashion_files(Path(args.root) / 'fashion-mnist')['train-images-idx3-ubyte'].parent}"
    print(f"{args.name}{where}: train {tuple(ds.train.shape)}, held-out {tuple(ds.heldout.shape)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

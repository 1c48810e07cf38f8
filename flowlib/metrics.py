"""Quality metrics: Fréchet distance in a named feature space, sliced Wasserstein for 2-D, RMSE, timing.

FID is clean-fid's Fréchet distance. Its features come from Inception (clean-fid's torchscript model, read
from a local weights file, never downloaded) or, for the small grey datasets (digits, Fashion-MNIST), from a small
classifier trained in the `data` stage. Every metric has a `name` that goes into the `quality_metric` column, and
`check_same_metric` refuses to compare numbers from different feature spaces.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from .artifacts import sha256_file
from .device import chunked, device_of
from .errors import FlowlibError

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_HELP = (
    "The Inception weights are an input of the paper-scale profile and are never downloaded at run time. "
    "Download {file} (the StyleGAN2-ADA torchscript Inception used by clean-fid, "
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/{file}) on a machine with "
    "internet access and place it at {path}, then `dvc add data`."
)


class MetricError(FlowlibError, ValueError):
    """A metric that cannot be computed as asked (missing weights, mixed feature spaces, bad shapes)."""


# ------------------------------------------------------------------------------------ Fréchet distance
def gaussian_stats(features: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of an [N, D] feature matrix."""
    f = np.asarray(features.detach().cpu() if isinstance(features, Tensor) else features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise MetricError(f"Features must be [N>=2, D], got shape {f.shape}.")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2).

    Tr((S_a S_b)^1/2) is the sum of the square roots of the eigenvalues of S_a S_b (real and non-negative for
    covariance matrices), so no matrix square root is needed: the same value as clean-fid's `frechet_distance`
    (a test checks it to 1e-9), about 100 times faster, which the bootstrap noise band relies on.
    """
    (mu_a, cov_a), (mu_b, cov_b) = stats_a, stats_b
    diff = mu_a - mu_b
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b).real.clip(min=0)
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(eigenvalues).sum())


def frechet_distance_to(features: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> float:
    """`frechet_distance` of the Gaussian fitted to an [N, D] feature matrix to `stats`.

    With no more samples than dimensions (N ≤ D, e.g. a few hundred Inception features of 2,048 dimensions), the sample
    covariance is Yᵀ Y with Y the [N, D] centred features / √(N − 1), and the non-zero eigenvalues of S Yᵀ Y are those of
    the symmetric N x N matrix Y S Yᵀ: the same value from an N x N eigenproblem instead of a D x D one (seconds per
    score become milliseconds). Otherwise the plain formula on both covariances.
    """
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    if n > d:
        return frechet_distance(gaussian_stats(f), stats)
    if n < 2:
        raise MetricError(f"Features must be [N>=2, D], got shape {f.shape}.")
    mu_r, cov_r = stats
    mu = f.mean(axis=0)
    y = (f - mu) / np.sqrt(n - 1)
    eigenvalues = np.linalg.eigvalsh(y @ cov_r @ y.T).clip(min=0)
    diff = mu - mu_r
    return float(diff @ diff + (y * y).sum() + np.trace(cov_r) - 2 * np.sqrt(eigenvalues).sum())


class FeatureExtractor(Protocol):
    """Maps images in [-1, 1] ([N, C, H, W]) to an [N, D] feature array; `metric_name` names the space."""

    metric_name: str

    def __call__(self, images: Tensor) -> np.ndarray: ...


class FeatureClassifier(nn.Module):
    """A small CNN for 1xSxS grey images (S = 8 digits, 28 Fashion-MNIST); its penultimate layer is the feature space
    of the dataset's Fréchet distance (`fid-<dataset>-classifier`), the small-image stand-in for Inception.

    Each stride-2 convolution halves the side: one for 8x8 (to 4x4), two for 28x28 (to 7x7). The 8x8 net is the
    same module list, in the same order, as it always was, so a seed gives the same digits classifier.
    """

    def __init__(self, image_size: int = 8, feature_dim: int = 64, n_classes: int = 10):
        super().__init__()
        if image_size not in (8, 28):
            raise MetricError(f"FeatureClassifier takes 8x8 or 28x28 grey images, got side {image_size}.")
        extra = [nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.SiLU()] if image_size == 28 else []
        side = 4 if image_size == 8 else 7
        self.image_size = image_size
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.SiLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.SiLU(), *extra,
            nn.Flatten(), nn.Linear(64 * side * side, feature_dim), nn.SiLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def train_feature_classifier(
    images: Tensor, labels: Tensor, steps: int = 1500, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
    noise_augment: float = 0.1, feature_dim: int = 64,
) -> FeatureClassifier:
    """Train a `FeatureClassifier` for `images` ([N, 1, S, S]) with cross-entropy (light Gaussian-noise augmentation),
    deterministic per seed.

    >>> import torch
    >>> x, y = torch.randn(64, 1, 8, 8), torch.arange(64) % 10
    >>> train_feature_classifier(x, y, steps=2).features(x[:3]).shape
    torch.Size([3, 64])
    """
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[2] != images.shape[3]:
        raise MetricError(f"The feature classifier trains on [N, 1, S, S] grey images, got shape {tuple(images.shape)}.")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = FeatureClassifier(images.shape[-1], feature_dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=gen)
        x = images[idx] + noise_augment * torch.randn(images[idx].shape, generator=gen)
        loss = nn.functional.cross_entropy(model(x), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval().requires_grad_(False)


class ClassifierFeatures:
    """Penultimate-layer features of a trained classifier (`fid-<dataset>-classifier`)."""

    def __init__(self, classifier: FeatureClassifier, metric_name: str = "fid-digits-classifier", chunk: int | None = None):
        self.classifier = classifier.eval()
        self.metric_name, self.chunk = metric_name, chunk

    @torch.no_grad()
    def __call__(self, images: Tensor) -> np.ndarray:
        """Features on the classifier's device (images moved there, `chunk` at a time), returned on the host."""
        device = device_of(self.classifier)
        return chunked(lambda x: self.classifier.features(x.to(device).float()).cpu(), images,
                       self.chunk).numpy().astype(np.float64)


class RandomFourierFeatures:
    """Points and random Fourier features of them, [x, sqrt(2/D) cos(W x + b)] with W ~ N(0, 1/bandwidth²):
    a fixed feature space in which the Fréchet distance between low-dimensional point sets sees the shape of
    the distribution, not only its mean and covariance (`fd-rff`).

    On the 2-D teacher at 10,000 samples it puts the ground truth's floor well below midpoint at 8 NFE, where
    sliced W2 and the energy distance move more between draws than the samplers differ.
    """

    metric_name = "fd-rff"

    def __init__(self, dim: int, n_features: int = 64, bandwidth: float = 0.1, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(dim, n_features, generator=gen, dtype=torch.float64) / bandwidth
        self.phase = torch.rand(n_features, generator=gen, dtype=torch.float64) * 2 * torch.pi
        self.scale = (2.0 / n_features) ** 0.5

    def __call__(self, points: Tensor) -> np.ndarray:
        x = points.cpu().flatten(1).double()
        return torch.cat([x, self.scale * torch.cos(x @ self.weight + self.phase)], dim=1).numpy()


class InceptionFeatures:
    """clean-fid's Inception-V3 pool features ("clean" resize to 299 px) from a local weights file."""

    metric_name = "fid-inception"

    def __init__(self, weights_path: str | Path, sha256: str | None = None, device: str = "cpu", batch_size: int = 100):
        weights_path = Path(weights_path)
        if weights_path.name != INCEPTION_FILE or not weights_path.is_file():
            raise MetricError(
                f"Inception weights not found at {weights_path}. "
                + INCEPTION_HELP.format(file=INCEPTION_FILE, path=weights_path.parent / INCEPTION_FILE)
            )
        if sha256 is not None and sha256_file(weights_path) != sha256:
            raise MetricError(
                f"{weights_path} does not match the expected SHA-256 {sha256}: the file is corrupt or a different "
                "model. " + INCEPTION_HELP.format(file=INCEPTION_FILE, path=weights_path)
            )
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.resize import build_resizer

        self.model = InceptionV3W(str(weights_path.parent), download=False).to(device).eval()
        self.resize = build_resizer("clean")
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def __call__(self, images: Tensor) -> np.ndarray:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise MetricError(f"Inception features need [N, 1|3, H, W] images, got {tuple(images.shape)}.")
        uint8 = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if uint8.shape[1] == 1:
            uint8 = uint8.repeat(1, 3, 1, 1)
        hwc = uint8.permute(0, 2, 3, 1).cpu().numpy()
        feats = []
        for i in range(0, len(hwc), self.batch_size):
            batch = np.stack([self.resize(img) for img in hwc[i:i + self.batch_size]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().to(self.device)
            feats.append(self.model(x).cpu().numpy())
        return np.concatenate(feats).astype(np.float64)


# ------------------------------------------------------------------------------------------ 2-D metric
def _directions(dim: int, n_projections: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(dim, n_projections, generator=gen, dtype=torch.float64)
    return dirs / dirs.norm(dim=0, keepdim=True)


def _quantiles(sorted_rows: Tensor, m: int) -> Tensor:
    """Quantiles at linspace(0, 1, m) of rows sorted along dim 1, by linear interpolation between order
    statistics (torch.quantile's 'linear' rule, computed as an align-corners linear resampling: much faster)."""
    if sorted_rows.shape[1] == m:
        return sorted_rows
    return torch.nn.functional.interpolate(sorted_rows.unsqueeze(0), size=m, mode="linear", align_corners=True)[0]


def _sorted_projections(points: Tensor, directions: Tensor) -> Tensor:
    """[n_projections, n] projections of `points` ([n, d]), each row sorted (rows are contiguous: fast sorts)."""
    return torch.sort((points @ directions).T.contiguous(), dim=1).values


def _sliced_w2_sorted(pa: Tensor, pb: Tensor) -> float:
    m = max(pa.shape[1], pb.shape[1])
    return float((_quantiles(pa, m) - _quantiles(pb, m)).pow(2).mean(dim=1).mean().sqrt())


def sliced_wasserstein(a: Tensor, b: Tensor, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance: sqrt of the mean over random unit directions of the 1-D W2^2.

    The 1-D W2 between empirical measures is computed from matched quantiles (equal sizes: sorted samples;
    otherwise both are interpolated to the larger size). For N(0, I) vs N(m, I) in d dims it tends to |m| / sqrt(d).
    """
    a, b = a.flatten(1).double(), b.flatten(1).double()
    if a.shape[1] != b.shape[1]:
        raise MetricError(f"Sample dimensions differ: {a.shape[1]} vs {b.shape[1]}.")
    dirs = _directions(a.shape[1], n_projections, seed)
    return _sliced_w2_sorted(_sorted_projections(a, dirs), _sorted_projections(b, dirs))


# ------------------------------------------------------------------------------- quality metric objects
class QualityMetric(Protocol):
    """Lower-is-better distance of a sample set to a fixed reference; `name` goes into the table.

    `embed` maps samples to what the distance compares (features, or the points themselves) and `score` turns an
    embedded set into the distance, so resampling for a noise band (`bootstrap_std`) embeds only once.
    """

    name: str

    def embed(self, samples: Tensor) -> np.ndarray | Tensor: ...

    def score(self, embedded: np.ndarray | Tensor) -> float: ...

    def __call__(self, samples: Tensor) -> float: ...


class FID:
    """Fréchet distance of samples to fixed reference statistics in one feature space.

    The reference is the dataset (FID to data) or the teacher's own ground-truth samples (distance to the
    teacher's distribution); `name` defaults to the feature space's metric name.
    """

    def __init__(self, extractor: FeatureExtractor, reference: Tensor | tuple[np.ndarray, np.ndarray],
                 name: str | None = None):
        """`reference`: the reference samples, or their `gaussian_stats` when computed once already (a dataset's)."""
        self.extractor = extractor
        self.name = name or extractor.metric_name
        self.reference_stats = reference if isinstance(reference, tuple) else gaussian_stats(extractor(reference.detach()))

    def embed(self, samples: Tensor) -> np.ndarray:
        return self.extractor(samples.detach())

    def score(self, embedded: np.ndarray) -> float:
        return frechet_distance_to(embedded, self.reference_stats)

    def __call__(self, samples: Tensor) -> float:
        return self.score(self.embed(samples))


class SlicedW2:
    """Sliced Wasserstein-2 distance to a fixed reference sample (`sliced-w2`, or the name given).

    The samples' projections are compared with the reference's quantiles at the samples' own size (cached per
    size), so a bootstrap resample costs one sort: `embed` projects once, `score` sorts and compares.
    """

    def __init__(self, reference: Tensor, n_projections: int = 256, seed: int = 0, name: str = "sliced-w2"):
        self.name = name
        reference = reference.flatten(1).double()
        self.directions = _directions(reference.shape[1], n_projections, seed)
        self.reference_sorted = _sorted_projections(reference, self.directions)  # projected once
        self._quantiles_at: dict[int, Tensor] = {}

    def embed(self, samples: Tensor) -> Tensor:
        """[n, n_projections] projections of the samples on the fixed directions."""
        return samples.detach().cpu().flatten(1).double() @ self.directions

    def score(self, embedded: Tensor) -> float:
        ours = torch.sort(embedded.T.contiguous(), dim=1).values
        n = ours.shape[1]
        if n not in self._quantiles_at:
            self._quantiles_at[n] = _quantiles(self.reference_sorted, n)
        return float((ours - self._quantiles_at[n]).pow(2).mean(dim=1).mean().sqrt())

    def __call__(self, samples: Tensor) -> float:
        return self.score(self.embed(samples))


def redraw_std(metric: QualityMetric, samples: Tensor, n: int) -> tuple[float, float, int]:
    """(mean, std, draws) of `metric` over the disjoint draws of `n` samples that `samples` holds.

    Real redraws, against which `bootstrap_std` is checked; NaN with fewer than two draws.
    """
    draws = len(samples) // n
    if draws < 2:
        return float("nan"), float("nan"), draws
    embedded = metric.embed(samples[: draws * n])
    values = [metric.score(embedded[i * n:(i + 1) * n]) for i in range(draws)]
    return float(np.mean(values)), float(np.std(values, ddof=1)), draws


def bootstrap_std(metric: QualityMetric, samples: Tensor, draws: int = 20, seed: int = 0) -> float:
    """Standard deviation of `metric` over `draws` bootstrap resamples (with replacement) of `samples`.

    The noise band of a quality number: how much it moves when the same sampler is scored on another draw of
    the same size. NaN when `draws` < 2.
    """
    if draws < 2:
        return float("nan")
    embedded = metric.embed(samples)
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(draws):
        idx = torch.randint(len(embedded), (len(embedded),), generator=gen)
        values.append(metric.score(embedded[idx.numpy()] if isinstance(embedded, np.ndarray) else embedded[idx]))
    return float(np.std(values, ddof=1))


def check_same_metric(names: list[str] | set[str]) -> str:
    """Return the single metric name shared by a comparison, or raise if feature spaces are mixed."""
    unique = sorted(set(names))
    if len(unique) != 1:
        raise MetricError(f"Refusing to compare quality numbers from different metrics: {unique}.")
    return unique[0]


# --------------------------------------------------------------------------------------- RMSE and time
def per_sample_rmse(samples: Tensor, reference: Tensor) -> Tensor:
    """sqrt(mean_dims (x - x_ref)^2) per sample (Bespoke's RMSE norm), float64 [n]."""
    if samples.shape != reference.shape:
        raise MetricError(f"RMSE needs matching shapes, got {tuple(samples.shape)} and {tuple(reference.shape)}.")
    return (samples - reference).double().flatten(1).pow(2).mean(dim=1).sqrt()


def rmse(samples: Tensor, reference: Tensor) -> float:
    """Mean over samples of the per-sample RMSE (`per_sample_rmse`)."""
    return float(per_sample_rmse(samples, reference).mean())


def wall_time(fn: Callable[[], Tensor]) -> tuple[Tensor, float]:
    """Run `fn` once; return its output and the wall time in seconds (CUDA synchronised on both sides)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def time_call(fn: Callable[[], Tensor], repeats: int = 1) -> tuple[Tensor, float]:
    """Run `fn` `repeats` times; return its last output and the best wall time in seconds."""
    best, out = float("inf"), None
    for _ in range(max(repeats, 1)):
        out, seconds = wall_time(fn)
        best = min(best, seconds)
    return out, best


def median_latency(fn: Callable[[], Tensor], repeats: int = 11, warmup: int = 2) -> float:
    """Median wall time of `fn()` in seconds over `repeats` runs after `warmup` untimed ones (latency, not throughput)."""
    for _ in range(warmup):
        fn()
    return float(np.median([wall_time(fn)[1] for _ in range(max(repeats, 1))]))

"""Latent teachers: a flow trained on an image autoencoder's standardised latents.

The image models the papers study run their flow in an autoencoder's latent space. Here an image profile trains a
`ConvAutoencoder` once per dataset (stage `autoencoders`), encodes the images, and a teacher with `latent: <name>`
learns its flow on those latents. Every sampler and distiller takes any `v(x, t)`, so they run on the latent flow
unchanged; only what looks at images decodes first: the image metrics (`DecodedFeatures`), the sample grids
(`Dataset.to_images`). The RMSE to the ground truth stays a latent-space number.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .artifacts import load_checkpoint, save_checkpoint
from .data import Dataset
from .device import chunked, device_of
from .errors import ArgumentError, FlowlibError
from .flow import (
    TrainConfig,
    TrainData,
    TrainResult,
    check_training_args,
    data_identity,
    identity,
    rebuild_net,
    require_data,
    train,
)
from .metrics import FeatureExtractor
from .models.autoencoder import ConvAutoencoder
from .train_data import DataSampler


class LatentError(FlowlibError, ValueError):
    """An autoencoder that does not fit the latent teacher that names it."""


@dataclass
class LatentDataset(Dataset):
    """Standardised latents of an image dataset (`train`, `heldout`: [N, latent_dim]) with the autoencoder that made
    them; `pixels` is the image dataset, `to_images` decodes."""

    autoencoder: ConvAutoencoder | None = None
    images: Dataset | None = None

    @property
    def is_image(self) -> bool:
        """Its samples stand for images: they are decoded to be shown and scored."""
        return True

    @property
    def pixels(self) -> Dataset:
        return self.images

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.images.shape

    @torch.no_grad()
    def to_images(self, samples: Tensor, chunk: int = 2048) -> Tensor:
        """Decode latents to images in [-1, 1], `chunk` at a time, on the autoencoder's device."""
        device = device_of(self.autoencoder)
        return torch.cat([self.autoencoder.decode(z.to(device)).to(samples.device) for z in samples.split(chunk)])


@torch.no_grad()
def encode(autoencoder: ConvAutoencoder, images: Tensor, chunk: int = 2048) -> Tensor:
    """Standardised latents of `images` (on the CPU), `chunk` at a time."""
    device = device_of(autoencoder)
    return torch.cat([autoencoder.encode(x.to(device)).cpu() for x in images.split(chunk)])


def latent_dataset(autoencoder: ConvAutoencoder, images: Dataset) -> LatentDataset:
    """The latent view of `images`: both splits encoded once (the flow's training data and its held-out data)."""
    if tuple(images.shape) != tuple(autoencoder.image_shape):
        raise LatentError(f"The autoencoder takes images of shape {tuple(autoencoder.image_shape)}, but {images.name} "
                          f"holds {tuple(images.shape)}; train an autoencoder on {images.name}.")
    autoencoder = autoencoder.eval().requires_grad_(False)
    return LatentDataset(images.name, encode(autoencoder, images.train), encode(autoencoder, images.heldout),
                         autoencoder=autoencoder, images=images)


class DecodedFeatures:
    """An image feature space seen from the latent space: decode, then extract (same `metric_name`, since the
    numbers compare decoded images with the data exactly as real images are compared)."""

    def __init__(self, dataset: LatentDataset, extractor: FeatureExtractor):
        self.dataset, self.extractor, self.metric_name = dataset, extractor, extractor.metric_name

    def __call__(self, latents: Tensor) -> np.ndarray:
        return self.extractor(self.dataset.to_images(latents))


# ---------------------------------------------------------------------------------------------- training
def reconstruction_loss(model: nn.Module, images: Tensor) -> Tensor:
    """Mean squared reconstruction error in [-1, 1] pixel units."""
    return nn.functional.mse_loss(model(images), images)


@torch.no_grad()
def heldout_reconstruction_loss(model: nn.Module, images: Tensor, chunk: int = 2048) -> float:
    """The reconstruction error on held-out images (the validation score)."""
    return float(chunked(lambda x: (model(x) - x).pow(2).flatten(1).mean(1), images, chunk).mean())


def train_autoencoder(
    model: ConvAutoencoder,
    data: TrainData[DataSampler],
    config: TrainConfig,
    *,
    ckpt_dir: str | Path | None = None,
    progress: bool = True,
    run_config: dict | None = None,
) -> TrainResult:
    """Train `model` to reconstruct minibatches of `data.source(n, generator)` (images), until the held-out
    reconstruction error (`data.heldout`) plateaus or the cap `config.steps`. Standardising the latents comes after,
    on the whole training split (`ConvAutoencoder.set_normalisation`).

    Same shape as every flowlib trainer: resumable from `ckpt_dir`, seeded, a `TrainResult` whose `ema_model` (the
    best validation weights) is the autoencoder to keep.

    >>> import torch
    >>> from flowlib import TrainConfig, TrainData
    >>> images = torch.rand(64, 1, 8, 8) * 2 - 1
    >>> ae = ConvAutoencoder((1, 8, 8), latent_dim=4, width=4)
    >>> source = lambda n, g: images[torch.randint(64, (n,), generator=g)]
    >>> r = train_autoencoder(ae, TrainData(source, 16, images[:16]), TrainConfig(steps=4, warmup=0, val_every=2),
    ...                       progress=False)
    >>> r.steps, tuple(r.ema_model.encode(images[:2]).shape)
    (4, (2, 4))
    """
    check_training_args(model, config)
    if not isinstance(model, ConvAutoencoder):
        raise ArgumentError(f"train_autoencoder trains a flowlib ConvAutoencoder, got {type(model).__name__}.")
    require_data(data, "train_autoencoder", DataSampler)
    if data.heldout is None or not isinstance(data.heldout, Tensor):
        raise ArgumentError("train_autoencoder: data.heldout must be held-out images (a tensor): the autoencoder trains "
                            "to the plateau of their reconstruction error.")
    shape = tuple(model.image_shape)
    if tuple(data.heldout.shape[1:]) != shape:
        raise ArgumentError(f"train_autoencoder: data.heldout has images of shape {tuple(data.heldout.shape[1:])}, the "
                            f"autoencoder takes {shape}.")
    sample_batch, batch_size = data.source.sample, data.batch_size
    probe = sample_batch(2, torch.Generator().manual_seed(0))
    if not isinstance(probe, Tensor) or tuple(probe.shape[1:]) != shape or not probe.is_floating_point():
        raise ArgumentError(f"train_autoencoder: data.source must return float images of shape "
                            f"[n, {', '.join(map(str, shape))}], got {type(probe).__name__} "
                            f"{tuple(getattr(probe, 'shape', ()))}.")
    device = device_of(model)
    heldout = data.heldout.to(device)
    if not torch.isfinite(heldout).all():
        raise ArgumentError("train_autoencoder: data.heldout holds NaN or infinite values.")
    run = {"data": data_identity(sample_batch, trainer="train_autoencoder"), "heldout": identity(heldout),
           "batch_size": batch_size, **(run_config or {})}

    def loss_fn(net: nn.Module, generator: torch.Generator) -> Tensor:
        return reconstruction_loss(net, sample_batch(batch_size, generator).to(device))

    return train(model, loss_fn, config, ckpt_dir, run_config=run, progress=progress, desc="autoencoder",
                 validate=partial(heldout_reconstruction_loss, images=heldout))


# ----------------------------------------------------------------------------------------------- files
def save_autoencoder(path: str | Path, model: ConvAutoencoder, dataset: str, meta: dict[str, Any] | None = None) -> None:
    """Save an autoencoder with its config, the dataset it encodes and `meta` (kind `autoencoder`)."""
    if not isinstance(model, ConvAutoencoder):
        raise ArgumentError(f"save_autoencoder saves a ConvAutoencoder, got {type(model).__name__}.")
    save_checkpoint({"config": model.config(), "dataset": dataset, "state_dict": model.state_dict(), "meta": meta or {}},
                    path,
                    kind="autoencoder")


def load_autoencoder(path: str | Path, rebuild_hint: str = "", dataset: str | None = None,
                     latent_dim: int | None = None) -> ConvAutoencoder:
    """The autoencoder saved at `path`, in eval mode with gradients off. With `dataset` / `latent_dim`, one of
    another dataset or latent size is refused (a latent teacher names the autoencoder it was trained on)."""
    state = load_checkpoint(path, rebuild_hint, kind="autoencoder")
    fix = f" Rebuild it with: {rebuild_hint}" if rebuild_hint else ""
    if dataset is not None and state.get("dataset") != dataset:
        raise LatentError(f"{path} is an autoencoder of {state.get('dataset')!r}, not of {dataset!r}.{fix}")
    model = rebuild_net(state, path, rebuild_hint, build=lambda: ConvAutoencoder(**state["config"]))
    if latent_dim is not None and model.latent_dim != latent_dim:
        raise LatentError(f"{path} has a {model.latent_dim}-dimensional latent, not the configured {latent_dim}.{fix}")
    return model.eval().requires_grad_(False)

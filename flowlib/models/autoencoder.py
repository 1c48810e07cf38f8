"""A small convolutional autoencoder: the latent space an image teacher's flow runs in.

Image flows of the papers' scale (SD3, the latent DiT behind FlowTurbo) learn their velocity on an autoencoder's
latents, not on pixels. `ConvAutoencoder` is the CPU-sized version: two stride-2 convolutions take an SxS image to
(S/4)x(S/4) feature maps and a linear layer to a flat `latent_dim` vector; the decoder mirrors it. The latents a flow
sees are standardised per dimension with the training set's mean and standard deviation (`set_normalisation`), so
the flow's Gaussian source matches their scale; `encode` and `decode` apply and undo that standardisation.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArgumentError, Positive, checked_args


class ConvAutoencoder(nn.Module):
    """Images [N, C, S, S] in [-1, 1] <-> standardised latents [N, latent_dim] (S divisible by 4).

    >>> ae = ConvAutoencoder((1, 28, 28), latent_dim=8, width=4)
    >>> z = ae.encode(torch.zeros(2, 1, 28, 28)); tuple(z.shape), tuple(ae.decode(z).shape)
    ((2, 8), (2, 1, 28, 28))
    """

    @checked_args
    def __init__(self, image_shape: tuple[Positive, Positive, Positive] = (1, 28, 28), latent_dim: Positive = 32,
                 width: Positive = 32):
        super().__init__()
        c, h, w = image_shape
        if h != w or h % 4:
            raise ArgumentError(f"ConvAutoencoder takes square images with a side divisible by 4 (two stride-2 "
                                f"convolutions), got image_shape {tuple(image_shape)}.")
        self.image_shape, self.latent_dim, self.width = (c, h, w), latent_dim, width
        side, wide = h // 4, 2 * width
        self.encoder = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, wide, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(wide, wide, 4, stride=2, padding=1), nn.SiLU(),
            nn.Flatten(), nn.Linear(wide * side * side, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, wide * side * side), nn.SiLU(), nn.Unflatten(1, (wide, side, side)),
            nn.ConvTranspose2d(wide, wide, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(wide, width, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, c, 3, padding=1), nn.Tanh(),
        )
        self.register_buffer("mean", torch.zeros(latent_dim))
        self.register_buffer("std", torch.ones(latent_dim))

    def config(self) -> dict[str, Any]:
        """What rebuilds this network (`ConvAutoencoder(**config)`)."""
        return {"image_shape": list(self.image_shape), "latent_dim": self.latent_dim, "width": self.width}

    def forward(self, images: Tensor) -> Tensor:
        """The reconstruction (what training minimises the error of)."""
        return self.decoder(self.encoder(images))

    def encode(self, images: Tensor) -> Tensor:
        """Standardised latents of `images`."""
        return (self.encoder(images) - self.mean) / self.std

    def decode(self, latents: Tensor) -> Tensor:
        """Images in [-1, 1] from standardised latents."""
        return self.decoder(latents * self.std + self.mean)

    @torch.no_grad()
    def set_normalisation(self, images: Tensor, chunk: int = 2048) -> None:
        """Standardise the latents by the mean and standard deviation of the raw codes of `images` (the training set)."""
        device = self.mean.device
        codes = torch.cat([self.encoder(x.to(device)) for x in images.split(chunk)])
        self.mean.copy_(codes.mean(0))
        self.std.copy_(codes.std(0).clamp_min(1e-6))

"""Latent teachers: the autoencoder (shapes, training to a falling held-out error, determinism, standardised latents,
its checkpoint kind), the decoded image metric, and the errors of a latent teacher whose autoencoder is missing, of
another dataset or latent size, or retrained since the teacher was."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, write_fashion_files
from flowlib import ArgumentError, CheckpointError, TrainConfig, TrainData, load_velocity_model, save_velocity_model
from flowlib.artifacts import CheckpointKindError
from flowlib.config import ConfigError, check_raw, parse_params
from flowlib.data import load_dataset
from flowlib.experiments.common import load_teacher, teacher_dataset
from flowlib.latent import (
    DecodedFeatures,
    LatentError,
    latent_dataset,
    load_autoencoder,
    save_autoencoder,
    train_autoencoder,
)
from flowlib.models import build_model
from flowlib.models.autoencoder import ConvAutoencoder


def digits_autoencoder(steps: int, seed: int = 0) -> tuple[ConvAutoencoder, object]:
    digits = load_dataset("digits")
    torch.manual_seed(seed)
    model = ConvAutoencoder((1, 8, 8), latent_dim=8, width=8)
    config = TrainConfig(steps=steps, lr=3e-3, warmup=10, ema_decay=0.9, val_every=max(steps // 4, 1), patience=50,
                         seed=seed)
    return model, train_autoencoder(model, TrainData(digits.sample_batch, 64, digits.heldout), config, progress=False)


def test_shapes_and_bad_shapes():
    ae = ConvAutoencoder((1, 28, 28), latent_dim=16, width=4)
    z = ae.encode(torch.zeros(3, 1, 28, 28))
    assert z.shape == (3, 16) and ae.decode(z).shape == (3, 1, 28, 28)
    assert ae.decode(torch.randn(5, 16) * 100).abs().max() <= 1  # pixels stay in [-1, 1]
    for shape in [(1, 28, 27), (1, 10, 10)]:
        with pytest.raises(ArgumentError, match="ConvAutoencoder takes square images with a side divisible by 4"):
            ConvAutoencoder(shape)
    for kwargs, message in [({"image_shape": (0, 8, 8)}, r"image_shape\[0\] must be greater than or equal to 1"),
                            ({"latent_dim": 2.5}, "latent_dim must be a valid integer"),
                            ({"width": 0}, "width must be greater than or equal to 1"),
                            ({"image_shape": (8, 8)}, r"image_shape needs an item at image_shape\[2\]")]:
        with pytest.raises(ArgumentError, match=message):
            ConvAutoencoder(**kwargs)


def test_training_lowers_the_heldout_error_and_is_deterministic():
    _, first = digits_autoencoder(120)
    values = [v for _, v in first.val_history]
    assert values[-1] < 0.5 * values[0], values  # the held-out reconstruction error falls
    _, again = digits_autoencoder(120)
    for a, b in zip(first.ema_model.state_dict().values(), again.ema_model.state_dict().values()):
        assert torch.equal(a, b)


def test_latents_are_standardised_and_decode_back():
    _, result = digits_autoencoder(120)
    ae = result.ema_model
    digits = load_dataset("digits")
    ae.set_normalisation(digits.train)
    latents = latent_dataset(ae, digits)
    assert latents.shape == (8,) and latents.pixels is digits and latents.is_image
    assert latents.train.mean(0).abs().max() < 1e-4 and (latents.train.std(0) - 1).abs().max() < 1e-4
    with torch.no_grad():
        direct = ae(digits.heldout[:16])
    assert torch.allclose(latents.to_images(latents.heldout[:16]), direct, atol=1e-5)


def test_decoded_features_score_the_decoded_images():
    ae = ConvAutoencoder((1, 8, 8), latent_dim=4, width=4).eval()
    digits = load_dataset("digits")
    latents = latent_dataset(ae, digits)
    extractor = lambda images: images.flatten(1).numpy().astype(np.float64)  # noqa: E731
    extractor.metric_name = "fid-pixels"
    decoded = DecodedFeatures(latents, extractor)
    z = torch.randn(10, 4)
    assert decoded.metric_name == "fid-pixels"
    np.testing.assert_allclose(decoded(z), extractor(latents.to_images(z)))


def test_checkpoint_kind_and_mismatches(tmp_path):
    ae = ConvAutoencoder((1, 8, 8), latent_dim=4, width=4)
    path = tmp_path / "ae.pt"
    save_autoencoder(path, ae, "digits", {"steps": 3})
    assert load_autoencoder(path, dataset="digits", latent_dim=4).latent_dim == 4
    with pytest.raises(CheckpointKindError, match="image autoencoder"):
        load_velocity_model(path)
    with pytest.raises(LatentError, match="an autoencoder of 'digits', not of 'fashion'"):
        load_autoencoder(path, "dvc repro autoencoders", dataset="fashion")
    with pytest.raises(LatentError, match="4-dimensional latent, not the configured 32"):
        load_autoencoder(path, latent_dim=32)
    net = tmp_path / "net.pt"
    save_velocity_model(net, build_model((2,), {"arch": "mlp", "hidden": 8, "depth": 2}), {"arch": "mlp", "hidden": 8,
                                                                                            "depth": 2}, (2,))
    with pytest.raises(CheckpointKindError, match="not an image autoencoder"):
        load_autoencoder(net)
    with pytest.raises(LatentError, match=r"takes images of shape \(1, 8, 8\)"):
        latent_dataset(ae, load_dataset("moons", n_toy=16))


def fashion_raw(tmp_path) -> dict:
    raw = yaml.safe_load((ROOT / "profiles" / "fashion.yaml").read_text())
    write_fashion_files(tmp_path / "data" / "fashion-mnist", n_train=24, n_test=12)
    raw["data"]["root"] = str(tmp_path / "data")
    return raw


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["teachers"]["fashion"].update(latent="nope"), "teachers.fashion.latent: 'nope' → one of the "),
    (lambda raw: raw["autoencoders"]["fashion"].update(dataset="digits"), "(an autoencoder of digits) → an autoencoder "
                                                                          "of fashion"),
    (lambda raw: raw["autoencoders"]["fashion"].update(dataset="moons"), "'moons' → an image dataset"),
    (lambda raw: raw["teachers"]["fashion"].update(model={"arch": "unet"}), "'unet' → 'mlp': the latent is a flat"),
])
def test_config_refuses_a_latent_that_does_not_fit(tmp_path, edit, message):
    raw = copy.deepcopy(fashion_raw(tmp_path))
    edit(raw)
    with pytest.raises(ConfigError) as info:
        check_raw(raw)
    assert any(message in p for p in info.value.problems), info.value.problems


def test_a_latent_teacher_names_the_stage_to_run(tmp_path):
    params = parse_params(fashion_raw(tmp_path), tmp_path)
    with pytest.raises(CheckpointError, match="Build it with: dvc repro autoencoders"):
        teacher_dataset(params, "fashion")
    path = params.layout.autoencoder("fashion")
    save_autoencoder(path, ConvAutoencoder((1, 8, 8), latent_dim=32, width=4), "digits")
    with pytest.raises(LatentError, match="of 'digits', not of 'fashion'. Rebuild it with: dvc repro autoencoders"):
        teacher_dataset(params, "fashion")
    save_autoencoder(path, ConvAutoencoder((1, 28, 28), latent_dim=16, width=4), "fashion")
    with pytest.raises(LatentError, match="16-dimensional latent, not the configured 32. Rebuild it with: dvc repro"):
        teacher_dataset(params, "fashion")
    save_autoencoder(path, ConvAutoencoder((1, 28, 28), latent_dim=32, width=4), "fashion")
    assert teacher_dataset(params, "fashion").shape == (32,)
    config = {"arch": "mlp", "hidden": 8, "depth": 2}
    save_velocity_model(params.layout.teacher("fashion"), build_model((32,), config), config, (32,), latent_sha256="0" * 64)
    with pytest.raises(LatentError, match="another autoencoder .* Retrain it with: dvc repro teacher@fashion"):
        load_teacher(params, "fashion")

import pytest
import torch

from flowlib.data import load_dataset
from flowlib.flow import TrainConfig, TrainData, flow_matching_loss, train_teacher
from flowlib.metrics import sliced_wasserstein
from flowlib.models import MLPVelocity, build_model, count_parameters
from flowlib.solvers import ODESampler


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16), (3, 32, 32)])
def test_unet_shapes(shape):
    model = build_model(shape, {"arch": "unet", "width": 16, "channel_mult": [1, 2, 2], "attention_levels": [1]})
    x = torch.randn(2, *shape)
    assert model(x, torch.rand(2)).shape == x.shape


def test_unet_rejects_indivisible_size():
    with pytest.raises(ValueError, match="not divisible by 8"):
        build_model((1, 12, 12), {"arch": "unet", "channel_mult": [1, 2, 2, 2]})


def test_mlp_shapes_and_time_dependence():
    model = build_model((1, 8, 8), {"arch": "mlp", "hidden": 32, "depth": 3})
    x = torch.randn(3, 1, 8, 8)
    assert model(x, torch.zeros(3)).shape == x.shape
    assert not torch.allclose(model(x, torch.zeros(3)), model(x, torch.ones(3)))


def test_unknown_arch():
    with pytest.raises(ValueError, match="Unknown model arch 'dit'"):
        build_model((2,), {"arch": "dit"})


def test_small_unet_digits_teacher_trains_and_samples():
    ds = load_dataset("digits")
    model = build_model(ds.shape, {"arch": "unet", "width": 16, "channel_mult": [1, 2]})
    assert count_parameters(model) < 200_000
    gen = torch.Generator().manual_seed(0)
    held = ds.heldout[:256]
    untrained_loss = flow_matching_loss(model, held, gen).item()
    result = train_teacher(model, TrainData(ds.sample_batch, 64), TrainConfig(steps=150, lr=2e-3, warmup=10, ema_decay=0.9),
                           progress=False)
    trained_loss = flow_matching_loss(result.model, held, torch.Generator().manual_seed(0)).item()
    assert trained_loss < 0.7 * untrained_loss
    noise = torch.randn(256, *ds.shape, generator=gen)
    samples = ODESampler.uniform(result.ema_model, 8, "euler")(noise)
    assert samples.shape == noise.shape and torch.isfinite(samples).all()
    # samples moved from noise towards the data distribution (pixel-space sliced W2)
    assert sliced_wasserstein(samples, ds.train) < 0.6 * sliced_wasserstein(noise, ds.train)


def test_mlp_shared_time_fast_path_is_the_same_function():
    """A batch at one time computes the time branch once; it must match row-by-row evaluation."""
    torch.manual_seed(0)
    net = MLPVelocity((3,), hidden=32, depth=4)
    x = torch.randn(16, 3)
    t = torch.full((16,), 0.37)
    with torch.no_grad():
        fast = net(x, t)
        rows = torch.cat([net(x[i:i + 1], t[i:i + 1]) for i in range(16)])
    assert torch.allclose(fast, rows, atol=1e-6)
    t.requires_grad_(True)  # per-row gradients in t: the general path, one gradient per row
    (grad,) = torch.autograd.grad(net(x, t).sum(), t)
    assert torch.allclose(net(x, t.detach()), fast, atol=1e-6) and (grad != 0).all()

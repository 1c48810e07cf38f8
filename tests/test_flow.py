import pytest
import torch

from flowlib.data import load_dataset
from flowlib.flow import (
    EMA,
    TrainConfig,
    TrainData,
    TrainingDivergedError,
    flow_matching_loss,
    linear_path,
    load_velocity_model,
    save_velocity_model,
    train,
    train_teacher,
)
from flowlib.models import build_model

MLP = {"arch": "mlp", "hidden": 64, "depth": 3}


def test_linear_path_convention():
    x0, x1 = torch.zeros(2, 3), torch.ones(2, 3)
    xt, target = linear_path(x0, x1, torch.tensor([0.0, 0.25]))
    assert torch.equal(xt[0], x0[0]) and torch.allclose(xt[1], torch.full((3,), 0.25))  # t = 0 noise, t = 1 data
    assert torch.equal(target, x1 - x0)


def test_flow_matching_loss_falls_on_a_toy():
    ds = load_dataset("8gaussians", n_toy=2000)
    model = build_model(ds.shape, MLP)
    cfg = TrainConfig(steps=400, lr=3e-3, warmup=20, log_every=20, ema_decay=0.99)
    result = train_teacher(model, TrainData(ds.sample_batch, 256), cfg, progress=False)
    first, last = result.history[0][1], min(loss for _, loss in result.history[-5:])
    assert last < 0.8 * first, f"loss did not fall: {first:.3f} -> {last:.3f}"
    assert result.seconds > 0 and not result.ema_model.training


def test_resume_continues_exactly(tmp_path):
    ds = load_dataset("moons", n_toy=1000)
    cfg = TrainConfig(steps=20, lr=1e-3, warmup=5, ckpt_every=10, log_every=5, seed=3)

    class Crash(Exception):
        pass

    def make():
        torch.manual_seed(123)
        return build_model(ds.shape, MLP)

    def loss_fn_factory(crash_at=None):
        calls = {"n": 0}

        def loss_fn(net, gen):
            calls["n"] += 1
            if crash_at is not None and calls["n"] > crash_at:
                raise Crash
            return flow_matching_loss(net, ds.sample_batch(32, gen), gen)

        return loss_fn

    straight = train(make(), loss_fn_factory(), cfg, progress=False)
    with pytest.raises(Crash):
        train(make(), loss_fn_factory(crash_at=13), cfg, tmp_path, progress=False)  # dies after the step-10 checkpoint
    resumed = train(make(), loss_fn_factory(), cfg, tmp_path, progress=False)
    assert resumed.resumed_from == 10
    for a, b in zip(straight.ema_model.parameters(), resumed.ema_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_stale_checkpoint_is_not_resumed(tmp_path, capsys):
    ds = load_dataset("moons", n_toy=500)
    first = TrainConfig(steps=4, warmup=1, ckpt_every=2)
    train_teacher(build_model(ds.shape, MLP), TrainData(ds.sample_batch, 16), first, ckpt_dir=tmp_path, progress=False)
    result = train_teacher(build_model(ds.shape, MLP), TrainData(ds.sample_batch, 16),
                           TrainConfig(steps=4, lr=5e-4, warmup=1, ckpt_every=2), ckpt_dir=tmp_path, progress=False)
    assert result.resumed_from == 0 and "different configuration" in capsys.readouterr().out


def test_nan_loss_is_a_clear_error():
    model = build_model((2,), MLP)

    def loss_fn(net, gen):
        return net(torch.full((4, 2), float("nan")), torch.rand(4)).mean()

    with pytest.raises(TrainingDivergedError, match="NaN at step 0.*Lower the learning rate"):
        train(model, loss_fn, TrainConfig(steps=3), progress=False)


@pytest.mark.parametrize("field,value", [("steps", 0), ("lr", -1.0), ("grad_clip", 0.0)])
def test_bad_train_config(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_ema_tracks_parameters():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, 0.5)
    with torch.no_grad():
        model.weight.add_(2.0)
    before = ema.model.weight.clone()
    ema.update(model)
    assert torch.allclose(ema.model.weight, 0.5 * before + 0.5 * model.weight)


def test_velocity_model_round_trip(tmp_path):
    model = build_model((2,), MLP)
    save_velocity_model(tmp_path / "t.pt", model, MLP, (2,), note="x")
    back = load_velocity_model(tmp_path / "t.pt")
    x, t = torch.randn(5, 2), torch.rand(5)
    assert torch.equal(model(x, t), back(x, t)) and not back.training

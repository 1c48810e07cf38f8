"""Typed training data: each trainer takes one kind of source, the shorthands stand for the obvious one, and the
trainer's own hooks carry what used to be special cases (no clipping, FGM's online model as the loop's partner)."""
import subprocess
import sys

import pytest
import torch
from torch import nn

import flowlib
from flowlib import ArgumentError, Coupling, DataSampler, NoiseShape, TrainConfig, TrainData
from flowlib.artifacts import load_checkpoint
from flowlib.distill.bespoke import bespoke_config
from flowlib.flow import Partner, PartnerLog, train


def test_shorthands_become_typed_sources():
    z = torch.zeros(4, 2)
    assert isinstance(TrainData(lambda n, g: torch.randn(n, 2, generator=g), 8).source, DataSampler)
    assert isinstance(TrainData((z, z + 1), 8).source, Coupling)
    assert TrainData((1, 8, 8), 8).source == NoiseShape((1, 8, 8))
    assert TrainData([2], 8).source.shape == (2,)
    assert TrainData((z, torch.zeros(4, 3)), 8).source[1].shape == (4, 3)  # no kind fits: refused by the trainer


def test_each_trainer_names_the_kind_it_takes():
    z = torch.randn(8, 2)
    with pytest.raises(ArgumentError, match=r"train_fgm: data.source must be the data shape.*\(flowlib.NoiseShape\)"):
        flowlib.train_fgm(flowlib.ring_mixture(), flowlib.OneStepGenerator(flowlib.MLPVelocity((2,), 8, 2, 4)),
                          TrainData((z, z), 4), TrainConfig(steps=1))
    with pytest.raises(ArgumentError, match=r"reflow: data.source must be the coupling .*\(flowlib.Coupling\)"):
        from flowlib.distill import reflow
        reflow(flowlib.MLPVelocity((2,), 8, 2, 4), None, TrainData((2,), 4), TrainConfig(steps=1))
    with pytest.raises(ArgumentError, match=r"train_teacher: data.source must be a data sampler"):
        flowlib.train_teacher(flowlib.MLPVelocity((2,), 8, 2, 4), TrainData((2,), 4), TrainConfig(steps=1))


def test_typed_sources_refuse_what_they_cannot_be():
    with pytest.raises(ArgumentError, match=r"Coupling\(noise, target\) takes two tensors of one shape"):
        Coupling(torch.zeros(4, 2), torch.zeros(5, 2))
    with pytest.raises(ArgumentError, match="NoiseShape takes the data shape"):
        NoiseShape((2, 0))


def _fit(grad_clip, partner=None, steps=5, ckpt_dir=None):
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    x = torch.randn(64, 2) * 100   # large gradients: clipping at 1 would change them

    def loss_fn(net, g):
        return (net(x) - 3 * x).pow(2).mean()

    config = TrainConfig(steps=steps, warmup=0, ema_decay=0.0, grad_clip=grad_clip, log_every=1, ckpt_every=2)
    return train(model, loss_fn, config, ckpt_dir, progress=False, partner=partner)


def test_no_clipping_is_none_not_a_huge_threshold():
    assert bespoke_config(10, 1e-2).grad_clip is None
    unclipped, huge, tight = (_fit(c).model.weight for c in (None, 1e9, 1e-9))
    assert torch.equal(unclipped, huge)          # None applies the gradient as it is
    assert not torch.allclose(unclipped, tight)  # and a real clip changes the run


def _partner(calls):
    online = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(online.parameters(), lr=0.1)

    def loss_fn(model_net, net, g):
        calls.append(float(model_net.weight.detach().sum()))   # the model as it is before its own step
        return (net(torch.ones(4, 2)) - model_net(torch.ones(4, 2)).detach()).pow(2).mean()

    return Partner("online", online, optimizer, loss_fn, PartnerLog(TrainConfig(log_every=1), "partner"))


def test_the_loop_steps_the_partner_before_each_model_step_and_checkpoints_it(tmp_path):
    calls = []
    partner = _partner(calls)
    result = train(nn.Linear(2, 2), lambda net, g: net(torch.ones(4, 2)).pow(2).mean(),
                   TrainConfig(steps=4, warmup=0, log_every=1, ckpt_every=2), tmp_path, progress=False, partner=partner)
    assert len(calls) == 4 and len(set(calls)) == 4 and partner.log.step == 4 and len(partner.log.history) == 4
    assert partner.log.history[-1][1] < partner.log.history[0][1]   # the partner learns
    state = load_checkpoint(tmp_path / "last.pt", kind="trainer")
    assert {"online", "online_optimizer", "online_log"} <= set(state["companions"])
    again = _partner([])
    train(nn.Linear(2, 2), lambda net, g: net(torch.ones(4, 2)).pow(2).mean(),
          TrainConfig(steps=4, warmup=0, log_every=1, ckpt_every=2), tmp_path, progress=False, partner=again)
    assert again.log.step == 4 and torch.equal(again.model.weight, partner.model.weight)  # restored, not retrained
    assert result.steps == 4


def test_reading_the_config_loads_no_method():
    code = ("import sys, flowlib.config; "
            "print(sorted(m for m in sys.modules if m.startswith(('flowlib.solvers', 'flowlib.distill', "
            "'flowlib.diffusers_bridge', 'flowlib.models'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert flowlib.ODESampler.__module__ == "flowlib.solvers.samplers"   # the public names still load on use

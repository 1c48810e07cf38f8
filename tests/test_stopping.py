"""The shared trainer's stopping rule: plateau detection, best checkpoint, the cap, resume, and the FLOP count."""
import math

import pytest
import torch
from torch import nn

from flowlib.flow import StoppingRule, TrainConfig, count_flops, train


class Scalar(nn.Module):
    """One weight w; the training loss pulls it towards `target`."""

    def __init__(self, start: float = 0.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(start))


def pull_to(target: float):
    return lambda net, gen: (net.w - target) ** 2 + 0.0 * torch.rand((), generator=gen)


def config(**kw):
    base = dict(steps=2000, lr=0.05, warmup=0, ema_decay=0.0, grad_clip=100.0, log_every=10, ckpt_every=50,
                val_every=10, patience=3, rel_tol=0.01)
    return TrainConfig(**{**base, **kw})


def test_rule_counts_checks_without_a_relative_gain():
    rule = StoppingRule(patience=2, rel_tol=0.1)
    state = {"w": torch.zeros(1)}
    for step, value in enumerate([10.0, 8.0, 7.5, 7.3, 7.2]):  # 8 is a 20% gain, then 6%, 9%, 10% of 8: no gain
        rule.update(step, value, {"w": torch.full((1,), float(step))})
    assert rule.best == 7.2 and rule.best_step == 4 and rule.best_state["w"].item() == 4.0  # the best is kept anyway
    assert rule.stale == 3 and rule.plateau
    rule = StoppingRule(patience=2, rel_tol=0.1)
    for step, value in enumerate([10.0, 8.0, 7.5, 7.1]):  # 7.1 < 0.9 x 8: progress again
        rule.update(step, value, state)
    assert rule.stale == 0 and not rule.plateau
    with pytest.raises(FloatingPointError, match="validation score became nan"):
        rule.update(9, math.nan, state)


def test_stops_at_a_known_plateau_and_keeps_the_best_checkpoint():
    # training drives w from 0 to 1; the validation score |w - 0.5| is best as w passes 0.5 and then gets worse
    result = train(Scalar(), pull_to(1.0), config(), progress=False, validate=lambda m: abs(m.w.item() - 0.5))
    assert result.converged is True and result.steps < 2000
    assert result.steps == result.val_history[-1][0] and len(result.val_history) == result.steps // 10 + 1
    best_step, best = min(result.val_history, key=lambda h: h[1])
    assert (result.best_step, result.best_value) == (best_step, best)
    assert abs(result.ema_model.w.item() - 0.5) == pytest.approx(best)  # the returned model is the best checkpoint
    assert abs(result.model.w.item() - 1.0) < abs(result.ema_model.w.item() - 1.0)  # the raw model trained on past it
    assert result.steps == best_step + 3 * 10  # patience 3 checks after the best one, no later


def test_a_run_still_improving_hits_its_cap_and_says_so():
    result = train(Scalar(), pull_to(10.0), config(steps=200, lr=0.01), progress=False,
                   validate=lambda m: abs(m.w.item() - 10.0))
    assert result.steps == 200 and result.converged is False
    assert result.val_history[-1][1] < result.val_history[0][1] and result.best_step == 200
    assert "stopped at its cap of 200 steps, still improving" in result.describe()


def test_without_validation_the_rule_is_off():
    result = train(Scalar(), pull_to(1.0), config(steps=30), progress=False)
    assert result.steps == 30 and result.converged is None and result.val_history == []


def test_measure_only_trains_to_the_cap_and_reports_the_plateau():
    result = train(Scalar(), pull_to(1.0), config(steps=600), progress=False, validate=lambda m: abs(m.w.item() - 0.5),
                   stop_at_plateau=False)
    assert result.steps == 600 and result.converged is True
    assert result.ema_model.w.item() == pytest.approx(1.0, abs=1e-3)  # the last weights, not the best


def test_a_resumed_run_continues_the_rules_state(tmp_path):
    class Crash(Exception):
        pass

    def loss_fn(crash_at=None):
        calls = {"n": 0}

        def fn(net, gen):
            calls["n"] += 1
            if crash_at is not None and calls["n"] > crash_at:
                raise Crash
            return (net.w - 1.0) ** 2 * (1 + 0.1 * torch.rand((), generator=gen))

        return fn

    def score(m):
        return abs(m.w.item() - 0.5)

    slow = config(lr=0.005)  # w passes 0.5 after about 100 steps: the plateau comes well after the first checkpoint
    straight = train(Scalar(), loss_fn(), slow, progress=False, validate=score)
    assert straight.converged and straight.steps > 100
    with pytest.raises(Crash):  # killed at step 57: the checkpoint of step 50 holds three validations of the rule
        train(Scalar(), loss_fn(crash_at=57), slow, tmp_path, progress=False, validate=score)
    resumed = train(Scalar(), loss_fn(), slow, tmp_path, progress=False, validate=score)
    assert resumed.resumed_from == 50
    assert resumed.val_history == straight.val_history and resumed.steps == straight.steps
    assert (resumed.best_step, resumed.converged) == (straight.best_step, straight.converged)
    assert resumed.ema_model.w.item() == straight.ema_model.w.item()
    again = train(Scalar(), loss_fn(), slow, tmp_path, progress=False, validate=score)  # a finished run stays finished
    assert again.resumed_from == straight.steps and again.ema_model.w.item() == straight.ema_model.w.item()


def test_flops_are_counted_per_step_and_per_validation():
    net = nn.Linear(4, 4, bias=False)
    x = torch.randn(8, 4)
    _, forward = count_flops(lambda: net(x))
    assert forward == 2 * 8 * 4 * 4
    result = train(net, lambda m, gen: m(x).pow(2).mean(), config(steps=20, val_every=10, patience=5, lr=1e-3),
                   progress=False, validate=lambda m: float(m(x).pow(2).mean()))
    assert result.steps == 20 and len(result.val_history) == 3
    # a step: forward + the weight gradient (the input needs none); a validation: forward
    assert result.flops == 20 * 2 * forward + 3 * forward

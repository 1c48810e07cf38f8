"""One sampler base for every sampler: NFE counted at the call (teacher and refiner apart), eager and compiled runs
that agree, check_finite on all, and no change to the caller's modules."""
import warnings

import pytest
import torch

import flowlib
from flowlib.distill.fgm import GeneratorSampler, OneStepGenerator
from flowlib.models import MLPVelocity, VelocityRefiner
from flowlib.solvers import AdaptiveSampler, CountingSampler, ODESampler
from flowlib.solvers.bellman import bellman_sampler
from flowlib.solvers.bespoke import BespokeSampler, BespokeSolver
from flowlib.solvers.compiled import CompileFallbackWarning
from flowlib.solvers.flowturbo import FlowTurboSampler


class Recorded(torch.nn.Module):
    """A small network that records how often it runs (the independent count the sampler's NFE must equal), in a tensor
    so that compiled code counts too."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("runs", torch.zeros((), dtype=torch.int64))

    @property
    def calls(self) -> int:
        return int(self.runs)

    def forward(self, *args):
        self.runs.add_(1)
        return self.net(*args)


def _teacher():
    torch.manual_seed(0)
    return Recorded(MLPVelocity((2,), hidden=32, depth=2, time_dim=8)).eval()


def _refiner():
    torch.manual_seed(1)
    refiner = VelocityRefiner((2,), {"arch": "mlp", "hidden": 16, "depth": 2, "time_dim": 8})
    for p in refiner.parameters():  # zero-initialised in training; perturb so R steps matter here
        p.data.add_(0.05 * torch.randn_like(p))
    return Recorded(refiner).eval()


def _samplers(teacher, refiner, compiled):
    """(sampler, teacher calls per run, refiner calls per run) for every kind of sampler."""
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(5))
    generator = OneStepGenerator(teacher, 0.2)
    return [
        (ODESampler.uniform(teacher, 4, "euler", compiled=compiled), 4, 0),
        (ODESampler.uniform(teacher, 8, "rk4", compiled=compiled), 8, 0),
        (bellman_sampler(teacher, noise, 3, n_fine=12, compiled=compiled), 3, 0),
        (BespokeSampler(teacher, BespokeSolver("rk2", 3), compiled=compiled), 6, 0),
        (FlowTurboSampler(teacher, "H1P2R2", refiner, compiled=compiled), 4, 4),
        (AdaptiveSampler(teacher, 1e-7, 1e-7, compiled=compiled), None, 0),
        (GeneratorSampler(generator, compiled=compiled), 1, 0),
    ]


@pytest.mark.parametrize("index", range(7), ids=["euler", "rk4", "bellman", "bespoke", "flowturbo", "adaptive", "fgm"])
def test_eager_and_compiled_agree_and_count_every_call(index):
    teacher, refiner = _teacher(), _refiner()
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(9))
    eager, teacher_calls, refiner_calls = _samplers(teacher, refiner, False)[index]
    compiled = _samplers(teacher, refiner, True)[index][0]
    assert isinstance(eager, CountingSampler) and isinstance(compiled, CountingSampler)
    outputs = {}
    for mode, sampler in (("eager", eager), ("compiled", compiled)):
        for batch in (z, z[:1], z):  # a second batch size, and a repeat (no recompile needed)
            teacher.runs.zero_(), refiner.runs.zero_()
            with warnings.catch_warnings():
                warnings.simplefilter("error", CompileFallbackWarning)  # a fallback would make this test vacuous
                out = sampler(batch)
            assert (sampler.nfe, sampler.refiner_calls) == (teacher.calls, refiner.calls)
        if teacher_calls is not None:
            assert (sampler.nfe, sampler.refiner_calls) == (teacher_calls, refiner_calls)
        outputs[mode] = out
    tol = 1e-4 if index == 5 else 1e-5  # adaptive: fused kernels may accept other steps (this random net is sensitive)
    torch.testing.assert_close(outputs["compiled"], outputs["eager"], rtol=tol, atol=tol)


def test_every_sampler_checks_for_nan_and_can_skip_the_check():
    field = lambda x, t: torch.where(t[:, None] > 0.6, x * float("nan"), -x)  # noqa: E731
    z = torch.randn(4, 2)
    for make in (lambda c: ODESampler(field, 4, "euler", check_finite=c),
                 lambda c: BespokeSampler(field, BespokeSolver("rk1", 4), check_finite=c),
                 lambda c: AdaptiveSampler(field, check_finite=c),
                 lambda c: FlowTurboSampler(field, "H1P2", check_finite=c)):
        with pytest.raises(flowlib.NonFiniteError, match="returned NaN or inf at evaluation"):
            make(True)(z)
        if not isinstance(make(False), AdaptiveSampler):  # dopri5 cannot step through NaN at all
            assert not torch.isfinite(make(False)(z)).all()


def test_the_generator_sampler_leaves_the_callers_module_as_it_was():
    generator = OneStepGenerator(MLPVelocity((2,), hidden=16, depth=2, time_dim=8), 0.1).train()
    sampler = GeneratorSampler(generator)
    assert generator.training
    sampler(torch.randn(3, 2))
    assert generator.training and all(m.training for m in generator.modules()) and sampler.nfe == 1
    with pytest.raises(flowlib.ArgumentError, match="compiled must be True or False"):
        ODESampler(lambda x, t: -x, 2, compiled="yes")

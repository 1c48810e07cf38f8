"""FlowTurbo: schedules, the H/P/R steps, call counting, the refiner and its training, compiled sampling."""
import math
import warnings

import pandas as pd
import pytest
import torch

from flowlib.config import ConfigError, parse_params, read_yaml, repo_root
from flowlib.distill.flowturbo import load_refiner, refiner_loss, save_refiner, train_refiner
from flowlib.experiments.flowturbo import matched_heun_latency
from flowlib.flow import TrainConfig, TrainData
from flowlib.models import MLPVelocity, VelocityRefiner
from flowlib.solvers import ODESampler, uniform_grid
from flowlib.solvers.flowturbo import (
    CompileFallbackWarning,
    FlowTurboSampler,
    Schedule,
    ScheduleError,
    refiner_step,
)
from flowlib.solvers.nfe import CountingVelocity, NonFiniteError


# ------------------------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("text,steps,canonical", [
    ("H2P4R3", "HHPPPPRRR", "H2P4R3"), ("HPPPPPRRR", "HPPPPPRRR", "H1P5R3"), ("h1 p1 r1 h1p1r1", "HPRHPR", "H1P1R1H1P1R1"),
    ("P3", "PPP", "P3")])
def test_schedule_parse_round_trip(text, steps, canonical):
    schedule = Schedule.parse(text)
    assert schedule.steps == steps and str(schedule) == canonical
    assert Schedule.parse(str(schedule)) == schedule


@pytest.mark.parametrize("text,message", [("", "Empty"), ("RHP", "starts with R"), ("R2", "starts with R"),
                                          ("H0P2", "zero count"), ("X3", "Malformed"), ("H2-P", "Malformed")])
def test_schedule_errors(text, message):
    with pytest.raises(ScheduleError, match=message):
        Schedule.parse(text)


def test_refiner_steps_need_a_refiner(gaussian_field):
    with pytest.raises(ScheduleError, match="no refiner"):
        FlowTurboSampler(gaussian_field, "H1R1")


def test_counts_and_order():
    s = Schedule.parse("H2P4R3")
    assert (s.teacher_calls, s.refiner_calls, s.n_steps, s.ordered) == (8, 6, 9, True)
    assert Schedule.parse("P3").teacher_calls == 4  # a leading P has no cache: it runs as an H step
    assert not Schedule.parse("H1P1R1H1P1R1").ordered


# ------------------------------------------------------------------------------------------------ steps
def test_heun_schedule_equals_heun_solver(gaussian_field):
    x0 = torch.randn(32, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = FlowTurboSampler(gaussian_field, "H6")(x0)
    ref = ODESampler(gaussian_field, uniform_grid(6), "heun")(x0)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_leading_p_runs_as_heun(gaussian_field):
    x0 = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(FlowTurboSampler(gaussian_field, "P4")(x0), FlowTurboSampler(gaussian_field, "H1P3")(x0))


def _global_error(field, schedule: str, x0):
    return (FlowTurboSampler(field, schedule)(x0) - field.solution(x0)).abs().max().item()


@pytest.mark.parametrize("kind,order", [("P", 2), ("H", 2)])
def test_pseudo_corrector_keeps_second_order(gaussian_field, kind, order):
    """Endpoint error of H1P(N-1) (and H_N) on the closed-form Gaussian flow falls like 1/N^2 (Euler: 1/N)."""
    x0 = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ns = [16, 32, 64, 128]
    errs = [_global_error(gaussian_field, f"H1P{n - 1}" if kind == "P" else f"H{n}", x0) for n in ns]
    slope = -torch.tensor(errs).log().diff().div(torch.tensor(ns, dtype=torch.float64).log().diff()).mean().item()
    assert abs(slope - order) < 0.2, f"{kind}: measured order {slope:.3f}"
    euler = [(ODESampler(gaussian_field, uniform_grid(n), "euler")(x0) - gaussian_field.solution(x0)).abs().max().item()
             for n in (32, 64)]
    assert abs(math.log2(euler[0] / euler[1]) - 1) < 0.2


def test_zero_refiner_gives_euler_with_the_cache():
    refiner = VelocityRefiner((3,), {"arch": "mlp", "hidden": 16, "depth": 3, "time_dim": 8})
    x, cache = torch.randn(5, 3), torch.randn(5, 3)
    assert refiner(x, torch.rand(5), cache).abs().max().item() == 0.0
    t0, t1 = torch.tensor(0.3), torch.tensor(0.5)
    x1, new_cache = refiner_step(refiner, x, cache, t0, t1)
    torch.testing.assert_close(x1, x + 0.2 * cache)
    torch.testing.assert_close(new_cache, cache)


def test_unet_refiner_starts_at_zero():
    refiner = VelocityRefiner((3, 8, 8), {"arch": "unet", "width": 8, "channel_mult": [1, 2]})
    x = torch.randn(2, 3, 8, 8)
    out = refiner(x, torch.rand(2), torch.randn(2, 3, 8, 8))
    assert out.shape == x.shape and out.abs().max().item() == 0.0


class RecordingNet:
    """Counts calls and records the time each call sees."""

    def __init__(self, fn):
        self.fn, self.times = fn, []

    def __call__(self, x, t, *rest):
        self.times.append(float(t[0]))
        return self.fn(x, t, *rest)


@pytest.mark.parametrize("text,teacher_calls,refiner_calls", [("H2P4R3", 8, 6), ("P3", 4, 0), ("H1P1R1H1P1R1", 6, 4),
                                                              ("H1P5R3", 7, 6)])
def test_calls_are_counted_exactly(gaussian_field, text, teacher_calls, refiner_calls):
    teacher = RecordingNet(gaussian_field)
    refiner = RecordingNet(lambda x, t, v: 0.1 * v)
    sampler = FlowTurboSampler(teacher, text, refiner)
    sampler(torch.randn(4, 2, dtype=torch.float64))
    assert (len(teacher.times), len(refiner.times)) == (teacher_calls, refiner_calls)
    assert (sampler.nfe, sampler.refiner_calls) == (teacher_calls, refiner_calls)


def test_every_refiner_step_sees_its_own_times(gaussian_field):
    """Guards the early-release bug of the official code, where every refiner step saw the same t."""
    refiner = RecordingNet(lambda x, t, v: 0.0 * v)
    FlowTurboSampler(gaussian_field, "H1P1R4", refiner)(torch.randn(3, 2, dtype=torch.float64))
    n = 6
    expected = [t for i in range(2, 6) for t in (i / n, (i + 1) / n)]
    assert refiner.times == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------- compile
def _tiny_pair():
    torch.manual_seed(0)
    teacher = MLPVelocity((2,), hidden=16, depth=3, time_dim=8).eval().requires_grad_(False)
    refiner = VelocityRefiner((2,), {"arch": "mlp", "hidden": 8, "depth": 3, "time_dim": 8})
    with torch.no_grad():
        refiner.body.out.weight.normal_(0, 0.1)  # a non-zero refiner, so R steps do something
    return teacher, refiner.eval().requires_grad_(False)


def test_compiled_equals_eager():
    teacher, refiner = _tiny_pair()
    noise = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    eager = FlowTurboSampler(teacher, "H1P1R1", refiner)(noise)
    compiled = FlowTurboSampler(teacher, "H1P1R1", refiner, compiled=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileFallbackWarning)  # a fallback would make this test vacuous
        out = compiled(noise)
    torch.testing.assert_close(out, eager, rtol=0, atol=1e-5)
    assert compiled.nfe == 3 and compiled.refiner_calls == 2
    assert all(step.compile_seconds > 0 for step in compiled.steps.values())


def test_compile_failure_falls_back_with_a_warning(monkeypatch):
    teacher, refiner = _tiny_pair()

    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    noise = torch.randn(4, 2)
    sampler = FlowTurboSampler(teacher, "H1P1R1", refiner, compiled=True)
    with pytest.warns(CompileFallbackWarning, match="no C\\+\\+ compiler found"):
        out = sampler(noise)
    torch.testing.assert_close(out, FlowTurboSampler(teacher, "H1P1R1", refiner)(noise))


# ---------------------------------------------------------------------------------------------- training
class CurvedTeacher(torch.nn.Module):
    """A fixed velocity field that changes with t and x: what the refiner has to learn to follow."""

    def forward(self, x, t):
        return torch.sin(3 * x + 2 * t.view(-1, 1))


def _toy_batch(n, generator):
    return torch.randn(n, 2, generator=generator) * 0.5 + 1.0


def test_refiner_loss_at_init_is_the_stale_velocity_error():
    teacher = CurvedTeacher()
    refiner = VelocityRefiner((2,), {"arch": "mlp", "hidden": 16, "depth": 3, "time_dim": 8})
    x1 = _toy_batch(256, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(3)
    loss = refiner_loss(refiner, teacher, x1, 0.2, gen).item()
    # the same draws by hand: the zero refiner leaves ||v(x_t, t) - v(x', t + Δ)||²
    gen = torch.Generator().manual_seed(3)
    x0, t = torch.randn(x1.shape, generator=gen), torch.rand(256, generator=gen)
    delta = float(torch.rand((), generator=gen)) * 0.2
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    v = teacher(xt, t)
    expected = (v - teacher(xt + delta * v, t + delta)).pow(2).mean().item()
    assert loss == pytest.approx(expected, rel=1e-6) and loss > 1e-4


def _mean_loss(refiner, teacher, seed=5, batches=20):
    """The refiner loss averaged over fixed draws (common random numbers: the same data, t and Δ for every refiner)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return sum(refiner_loss(refiner, teacher, _toy_batch(256, gen), 0.2, gen).item() for _ in range(batches)) / batches


def test_refiner_training_lowers_the_loss(tmp_path):
    teacher = CurvedTeacher()
    torch.manual_seed(0)
    config = {"arch": "mlp", "hidden": 32, "depth": 3, "time_dim": 16}
    refiner = VelocityRefiner((2,), config)
    before = _mean_loss(refiner, teacher)
    result = train_refiner(teacher, refiner, TrainData(_toy_batch, 128),
                           TrainConfig(steps=300, lr=1e-2, warmup=20, ema_decay=0.9, log_every=50), delta_max=0.2, progress=False)
    after = _mean_loss(result.ema_model, teacher)
    assert after < 0.35 * before, (before, after)  # measured: 0.046 -> 0.011
    save_refiner(tmp_path / "refiner.pt", result.ema_model, config)
    loaded = load_refiner(tmp_path / "refiner.pt")
    x, t = torch.randn(4, 2), torch.full((4,), 0.5)
    torch.testing.assert_close(loaded(x, t, x), result.ema_model(x, t, x))


def test_nan_teacher_stops_refiner_training():
    teacher = lambda x, t: x * float("nan")  # noqa: E731
    refiner = VelocityRefiner((2,), {"arch": "mlp", "hidden": 8, "depth": 3, "time_dim": 8})
    with pytest.raises(NonFiniteError, match=r"the teacher \(refiner training\) returned NaN or inf at evaluation 1 "):
        train_refiner(teacher, refiner, TrainData(_toy_batch, 16), TrainConfig(steps=3, warmup=1), delta_max=0.1, progress=False)


def test_teacher_calls_are_counted_in_training():
    counting = CountingVelocity(CurvedTeacher())
    refiner = VelocityRefiner((2,), {"arch": "mlp", "hidden": 8, "depth": 3, "time_dim": 8})
    train_refiner(counting, refiner, TrainData(_toy_batch, 16), TrainConfig(steps=5, warmup=1), delta_max=0.1, progress=False)
    assert counting.nfe == 10  # two teacher calls per step: at (x_t, t) and after the Euler step


# --------------------------------------------------------------------------------- acceleration, config
def testmatched_heun_latency_interpolates_on_the_envelope():
    heun = pd.DataFrame({"ms_per_sample": [1.0, 2.0, 4.0], "gt_distance": [8.0, 2.0, 2.5]})
    latency, how = matched_heun_latency(4.0, heun)
    assert how == "interpolated" and latency == pytest.approx(math.sqrt(2.0))  # halfway in log distance
    assert matched_heun_latency(1.0, heun) == (4.0, "beyond best Heun")
    assert math.isnan(matched_heun_latency(9.0, heun)[0])


def _raw():
    return read_yaml(repo_root() / "params.yaml")


def test_config_rejects_a_bad_schedule_and_a_missing_refiner():
    raw = _raw()
    raw["flowturbo"]["schedules"] = ["H2P4R3", "RHP"]
    del raw["flowturbo"]["refiners"]["moons"]
    with pytest.raises(ConfigError) as err:
        parse_params(raw, repo_root())
    text = str(err.value)
    assert "flowturbo.schedules[1]: 'RHP' →" in text and "starts with R" in text
    assert "no refiner for teacher 'moons'" in text

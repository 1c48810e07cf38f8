"""Nothing silent: every wrong input at the API, config and checkpoint surface raises a flowlib error (a subclass of
`flowlib.FlowlibError`) whose message names the problem, instead of being accepted or ending in a raw traceback.

One parametrized table of cases (what is called, the error type, words the message must contain), then the faults
that need more set-up: an interrupted checkpoint write, and resuming onto other data or another network.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import flowlib
from flowlib import (
    AdaptiveSampler,
    ArgumentError,
    BespokeSampler,
    BespokeSolver,
    CheckpointError,
    CheckpointKindError,
    FlowTurboSampler,
    GeneratorSampler,
    GridError,
    NonFiniteError,
    ODESampler,
    OneStepGenerator,
    TrainConfig,
    TrainData,
    VelocityCallError,
    VelocityRefiner,
    VelocityShapeError,
    bellman_sampler,
    compare_samplers,
    fit_bespoke,
    load_velocity_model,
    save_velocity_model,
    solve_adaptive,
    train_fgm,
    train_refiner,
    train_teacher,
)
from flowlib.artifacts import atomic_path, save_checkpoint
from flowlib.config import ConfigError, load_params
from flowlib.data import sample_8gaussians, sample_moons
from flowlib.distill.bespoke import load_bespoke, save_bespoke
from flowlib.distill.fgm import load_generator, save_generator
from flowlib.distill.flowturbo import load_refiner, save_refiner
from flowlib.models import MLPVelocity, ring_mixture
from flowlib.solvers.flowturbo import ScheduleError

ROOT = Path(__file__).resolve().parents[1]
V = ring_mixture()
Z = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
CFG = TrainConfig(steps=3, warmup=1, log_every=1, ckpt_every=1)
MOONS, NOISE_2D = TrainData(sample_moons, 16), TrainData((2,), 16)  # a trainer's data: moons, or FGM's (2,) noise
REFINER_CFG = {"arch": "mlp", "hidden": 8, "depth": 2, "time_dim": 8}


def net(hidden: int = 8) -> MLPVelocity:
    torch.manual_seed(0)
    return MLPVelocity((2,), hidden=hidden, depth=2, time_dim=8)


def nan_after(t0: float):
    """A field that is the ring's exact velocity until t0, NaN after."""
    return lambda x, t: torch.where(t[:, None] > t0, x * float("nan"), V(x, t))


def shape_changes():
    calls = []

    def field(x, t):
        calls.append(1)
        return -x if len(calls) == 1 else -x[:1]
    return field


def ints(n, generator):
    return torch.randint(0, 3, (n, 2), generator=generator)


def refiner():
    return VelocityRefiner((2,), REFINER_CFG)


def gen():
    return OneStepGenerator(net(), 0.1)


def truth():
    return AdaptiveSampler(V)(Z)


CASES = {
    # time grids: a sampler runs from exactly t = 0 (noise) to t = 1 (data)
    "grid stops early": (lambda: ODESampler(V, [0.0, 0.3, 0.6]), GridError, r"exactly t = 0.*t = 1.*\[0, 0\.6\]"),
    "grid starts late": (lambda: ODESampler(V, [0.3, 0.6, 1.0]), GridError, r"treats the noise as the state"),
    "grid is a float": (lambda: ODESampler(V, 2.5), GridError, r"got the float 2\.5"),
    "grid of zero steps": (lambda: ODESampler(V, 0), GridError, r"positive integer"),
    "grid not increasing": (lambda: ODESampler(V, [0, 0.5, 0.5, 1]), GridError, r"strictly increasing"),
    "grid with NaN": (lambda: ODESampler(V, [0, float("nan"), 1]), GridError, r"NaN or inf"),
    "grid is a bool": (lambda: ODESampler(V, True), GridError, r"got a bool"),
    "grid outside [0, 1]": (lambda: ODESampler(V, [0, 0.5, 1.5]), GridError, r"lie in \[0, 1\]"),
    "partial solve_adaptive": (lambda: solve_adaptive(V, Z, times=[0.5, 1]), GridError, r"must start at 0"),
    # samplers: arguments
    "unknown RK method": (lambda: ODESampler(V, 4, "rk5"), ArgumentError, r"Unknown solver method 'rk5'"),
    "no velocity field": (lambda: ODESampler(None, 4), ArgumentError, r"velocity must be a velocity field.*NoneType"),
    "one-argument field": (lambda: ODESampler(lambda x: -x, 4), ArgumentError, r"2 positional arguments \(x, t\)"),
    "uniform NFE not a multiple": (lambda: ODESampler.uniform(V, 3, "heun"), ArgumentError, r"multiple of 2 NFE"),
    "uniform NFE a float": (lambda: ODESampler.uniform(V, 4.0), ArgumentError, r"multiple of 1 NFE, got nfe=4\.0"),
    "check_finite not a bool": (lambda: ODESampler(V, 4, check_finite="yes"), ArgumentError, r"check_finite must be True"),
    "adaptive rtol zero": (lambda: AdaptiveSampler(V, rtol=0), ArgumentError, r"rtol must be a finite number in \(0"),
    # samplers: noise against the field
    "integer noise": (lambda: ODESampler(V, 4)(Z.long()), ArgumentError, r"dtype torch\.int64.*floating point"),
    "float64 noise, float32 net": (lambda: ODESampler(net(), 4)(Z.double()), ArgumentError,
                                   r"torch\.float64 but the network's weights are torch\.float32.*noise\.to"),
    "noise of the wrong width": (lambda: ODESampler(net(), 4)(torch.randn(8, 3)), ArgumentError,
                                 r"shape \(8, 3\) but the network models data of shape \(2,\)"),
    "wrong width, plain field": (lambda: ODESampler(lambda x, t: x @ torch.eye(2), 4)(torch.randn(8, 3)),
                                 VelocityCallError, r"failed on its first call, with x of shape \(8, 3\).*mat1"),
    "noise without batch axis": (lambda: ODESampler(V, 4)(torch.randn(2)), ArgumentError, r"batch axis.*noise\[None\]"),
    "empty noise batch": (lambda: ODESampler(V, 4)(torch.randn(0, 2)), ArgumentError, r"at least one sample"),
    "noise a list": (lambda: ODESampler(V, 4)([[0.0, 1.0]]), ArgumentError, r"noise must be a torch tensor"),
    # samplers: what the field returns
    "output of another shape": (lambda: ODESampler(lambda x, t: x[:, :1], 4)(Z), VelocityShapeError,
                                r"returned shape \(8, 1\) for x of shape \(8, 2\)"),
    "output shape changes later": (lambda: ODESampler(shape_changes(), 4)(Z), VelocityShapeError,
                                   r"evaluation 2\) returned shape \(1, 2\)"),
    "integer output": (lambda: ODESampler(lambda x, t: (x > 0).long(), 4)(Z), VelocityShapeError, r"dtype torch\.int64"),
    "output not a tensor": (lambda: ODESampler(lambda x, t: 1.0, 4)(Z), VelocityShapeError, r"returned float"),
    "NaN after t = 0.5 (Euler)": (lambda: ODESampler(nan_after(0.5), 8)(Z), NonFiniteError,
                                  r"evaluation 6 \(t = 0\.625\) on a finite input"),
    "NaN in the adaptive solve": (lambda: AdaptiveSampler(nan_after(0.5))(Z), NonFiniteError,
                                  r"adaptive.*returned NaN or inf"),
    # FlowTurbo
    "schedule an int": (lambda: FlowTurboSampler(V, 4), ArgumentError, r"schedule must be a FlowTurbo schedule"),
    "schedule R without refiner": (lambda: FlowTurboSampler(V, "H1P4R2"), ScheduleError, r"no refiner was given"),
    "schedule malformed": (lambda: FlowTurboSampler(V, "X3"), ScheduleError, r"Malformed FlowTurbo schedule"),
    "schedule starts with R": (lambda: FlowTurboSampler(V, "R2H1", refiner=refiner()), ScheduleError, r"starts with R"),
    "refiner takes 2 arguments": (lambda: FlowTurboSampler(V, "H1R1", refiner=lambda x, t: x), ArgumentError,
                                  r"refiner must accept 3 positional arguments \(x, t, v\)"),
    "FlowTurbo float64 noise": (lambda: FlowTurboSampler(net(), "H1P2")(Z.double()), ArgumentError, r"float64"),
    "FlowTurbo NaN field": (lambda: FlowTurboSampler(nan_after(0.5), "H1P4")(Z), NonFiniteError,
                            r"sampler 'H1P4'\) returned NaN or inf at evaluation \d"),
    # Bespoke
    "Bespoke solver a string": (lambda: BespokeSampler(V, "rk2"), ArgumentError, r"solver must be a trained BespokeSolver"),
    "Bespoke solver a sampler": (lambda: BespokeSampler(V, ODESampler(V, 4)), ArgumentError, r"got ODESampler"),
    "Bespoke base unknown": (lambda: BespokeSolver("rk3", 2), ArgumentError, r"Unknown Bespoke base solver 'rk3'"),
    "Bespoke zero steps": (lambda: BespokeSolver("rk2", 0), ArgumentError, r"positive integer number of steps"),
    "fit_bespoke odd NFE for rk2": (lambda: fit_bespoke(V, Z, nfe=3), ArgumentError, r"nfe divisible by its stages"),
    "fit_bespoke NaN field": (lambda: fit_bespoke(nan_after(-1.0), Z, 4, grid=5, iterations=2, progress=False),
                              NonFiniteError, r"Bespoke's dense ground truth\) returned NaN"),
    "fit_bespoke integer noise": (lambda: fit_bespoke(V, Z.long(), 4), ArgumentError, r"int64"),
    "fit_bespoke one noise": (lambda: fit_bespoke(V, Z[:1], 4, progress=False), ArgumentError, r"at least 2 noises"),
    # Bellman
    "Bellman NaN after 0.9": (lambda: bellman_sampler(nan_after(0.9), Z, 4, 20), NonFiniteError,
                              r"Bellman rollout\) returned NaN or inf at evaluation 20 \(t = 0\.95\)"),
    "Bellman K zero": (lambda: bellman_sampler(V, Z, 0, 20), ArgumentError, r"k must be an integer ≥ 1"),
    "Bellman K beyond the fine grid": (lambda: bellman_sampler(V, Z, 30, 20), ArgumentError, r"in \[1, 20\]"),
    "Bellman integer noise": (lambda: bellman_sampler(V, Z.long(), 4), ArgumentError, r"int64"),
    # FGM generator
    "generator a function": (lambda: GeneratorSampler(lambda z: z), ArgumentError, r"generator must be a one-step"),
    "generator noise width": (lambda: GeneratorSampler(gen())(torch.randn(8, 3)), ArgumentError, r"data of shape \(2,\)"),
    "generator noise dtype": (lambda: GeneratorSampler(gen())(Z.double()), ArgumentError, r"float64"),
    "generator t* = 1": (lambda: OneStepGenerator(net(), 1.0), ArgumentError, r"t_star must lie in \[0, 1\)"),
    # compare_samplers
    "a field where a sampler belongs": (lambda: compare_samplers([V], Z, truth()), ArgumentError,
                                        r"samplers\[0\] is GaussianMixtureVelocity.*, not a sampler"),
    "ground truth of another shape": (lambda: compare_samplers([ODESampler(V, 4)], Z, truth()[:4]), ArgumentError,
                                      r"ground_truth has shape \(4, 2\)"),
    "ground truth with NaN": (lambda: compare_samplers([ODESampler(V, 4)], Z, truth() * float("nan")), NonFiniteError,
                              r"ground_truth contains NaN"),
    # training
    "batch size zero": (lambda: train_teacher(net(), TrainData(sample_moons, 0), CFG, progress=False), ArgumentError,
                        r"batch_size must be an integer ≥ 1, got int 0"),
    "teacher without weights": (lambda: train_teacher(V, MOONS, CFG), ArgumentError,
                                r"network with weights to train"),
    "config a dict": (lambda: train_teacher(net(), TrainData(sample_moons, 16), {"steps": 3}), ArgumentError,
                      r"config must be a flowlib\.TrainConfig"),
    "sample_batch takes one argument": (lambda: train_teacher(net(), TrainData(lambda n: torch.randn(n, 2), 16), CFG),
                                        ArgumentError, r"data.source\(n, generator\) failed on a probe call"),
    "sample_batch returns ints": (lambda: train_teacher(net(), TrainData(ints, 16), CFG), ArgumentError,
                                  r"must return a floating tensor"),
    "TrainConfig lr inf": (lambda: TrainConfig(lr=float("inf")), ArgumentError, r"lr: Input should be a finite number"),
    "TrainConfig unknown field": (lambda: TrainConfig(step=3), ArgumentError, r"step: Extra inputs"),
    "refiner delta_max zero": (lambda: train_refiner(V, refiner(), MOONS, CFG, delta_max=0.0), ArgumentError,
                               r"delta_max must be a finite number in \(0, 1\]"),
    "refiner a function": (lambda: train_refiner(V, lambda x, t, v: v, MOONS, CFG, delta_max=0.1), ArgumentError,
                           r"refiner must be a network with weights"),
    "refiner NaN teacher": (lambda: train_refiner(nan_after(-1.0), refiner(), MOONS, CFG, delta_max=0.1, progress=False),
                            NonFiniteError, r"the teacher \(refiner training\) returned NaN"),
    "FGM generator a string": (lambda: train_fgm(V, "gen", NOISE_2D, CFG), ArgumentError, r"generator must be a network"),
    "FGM shape an int": (lambda: train_fgm(V, gen(), TrainData(2, 16), CFG, online=net()), ArgumentError,
                         r"data.source must be the data shape"),
    "trainer data not TrainData": (lambda: train_teacher(net(), sample_moons, CFG), ArgumentError,
                                   r"data must be a flowlib.TrainData\(source, batch_size"),
    "straighten on a coupling": (lambda: flowlib.straighten(net(), None, TrainData((Z, Z), 4), CFG), ArgumentError,
                                 r"straighten: data.source must be the StraighteningPairs"),
    "FGM negative λ": (lambda: train_fgm(V, gen(), NOISE_2D, CFG, l1_weight=-1.0, online=net()), ArgumentError,
                       r"l1_weight must be a finite number in \[0"),
    "FGM teacher not callable": (lambda: train_fgm(3, gen(), NOISE_2D, CFG), ArgumentError, r"teacher must be a velocity"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_is_a_clear_flowlib_error(case):
    call, error, words = CASES[case]
    with pytest.raises(error, match=words) as caught:
        call()
    assert isinstance(caught.value, flowlib.FlowlibError), type(caught.value).__mro__


# ------------------------------------------------------------------------------------------ checkpoints
def _saved(tmp_path: Path) -> dict[str, Path]:
    """One file of every kind a user loads."""
    paths = {k: tmp_path / f"{k}.pt" for k in ("velocity", "generator", "bespoke", "refiner")}
    save_velocity_model(paths["velocity"], net(), {"arch": "mlp", "hidden": 8, "depth": 2, "time_dim": 8}, (2,))
    save_generator(paths["generator"], gen(), {"arch": "mlp", "hidden": 8, "depth": 2, "time_dim": 8}, (2,))
    save_bespoke(paths["bespoke"], BespokeSolver("rk2", 2))
    save_refiner(paths["refiner"], refiner(), REFINER_CFG)
    train_teacher(net(), TrainData(sample_moons, 16), TrainConfig(steps=2, warmup=1), ckpt_dir=tmp_path / "run", progress=False)
    paths["trainer"] = tmp_path / "run" / "last.pt"
    return paths


LOADERS = {"velocity": load_velocity_model, "generator": load_generator, "bespoke": load_bespoke, "refiner": load_refiner}
NAMES = {"velocity": "a velocity model", "generator": "an FGM one-step generator", "bespoke": "a Bespoke solver",
         "refiner": "a FlowTurbo refiner", "trainer": "a trainer state"}
WRONG_KIND = [(saved, loader) for loader in LOADERS for saved in NAMES if saved != loader]


@pytest.mark.parametrize("saved, loader", WRONG_KIND)
def test_a_checkpoint_of_another_kind_is_refused_naming_both(tmp_path, saved, loader):
    paths = _saved(tmp_path)
    with pytest.raises(CheckpointKindError, match=rf"is {NAMES[saved]}.*not {NAMES[loader]}"):
        LOADERS[loader](paths[saved])


def test_each_loader_reads_its_own_kind(tmp_path):
    paths = _saved(tmp_path)
    assert load_generator(paths["generator"]).t_star == pytest.approx(0.1)
    for kind, loader in LOADERS.items():
        assert isinstance(loader(paths[kind]), torch.nn.Module)


def test_checkpoint_paths_that_are_not_files(tmp_path):
    with pytest.raises(CheckpointError, match=r"is a directory, not a checkpoint file; pass the \.pt file inside it"):
        load_velocity_model(tmp_path)
    with pytest.raises(CheckpointError, match=r"Cannot write .*: it is a directory"):
        save_velocity_model(tmp_path, net(), {"arch": "mlp"}, (2,))
    with pytest.raises(CheckpointError, match=r"does not exist"):
        load_velocity_model(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"must be a str or pathlib\.Path"):
        load_velocity_model(123)


def test_a_checkpoint_whose_config_does_not_fit_its_weights_is_refused(tmp_path):
    save_velocity_model(tmp_path / "v.pt", net(8), {"arch": "mlp", "hidden": 16, "depth": 2, "time_dim": 8}, (2,))
    with pytest.raises(CheckpointError, match=r"does not rebuild into its network \(RuntimeError: Error\(s\) in loading"):
        load_velocity_model(tmp_path / "v.pt")


def test_an_interrupted_write_leaves_nothing_after_the_next_write(tmp_path):
    """A writer killed (SIGKILL) inside a checkpoint write leaves its temporary file; the next write to that path
    removes it, and the target itself was never half-written."""
    target = tmp_path / "model.pt"
    save_checkpoint({"x": torch.ones(3)}, target)
    child = textwrap.dedent(f"""
        import os, signal
        from flowlib.artifacts import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b"half a checkpoint")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    run = subprocess.run([sys.executable, "-c", child], cwd=ROOT)
    assert run.returncode == -signal.SIGKILL
    leftovers = list(tmp_path.glob(".model.pt.*.tmp"))
    assert len(leftovers) == 1 and flowlib.artifacts.load_checkpoint(target)["x"].sum() == 3  # target intact
    save_checkpoint({"x": torch.zeros(3)}, target)
    assert list(tmp_path.glob(".model.pt.*.tmp")) == [] and flowlib.artifacts.load_checkpoint(target)["x"].sum() == 0


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    target = tmp_path / "a.pt"
    mine = tmp_path / f".a.pt.{os.getpid()}.abc.tmp"
    mine.write_bytes(b"in progress")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"done")
    assert mine.exists() and target.read_bytes() == b"done"


# ------------------------------------------------------------------------------------------ resume
def test_resume_onto_other_data_trains_from_scratch(tmp_path, capsys):
    """The issue's case: a finished moons run in the directory, then 8 Gaussians with the same TrainConfig."""
    moons = train_teacher(net(), TrainData(sample_moons, 32), CFG, ckpt_dir=tmp_path, progress=False)
    gaussians = train_teacher(net(), TrainData(sample_8gaussians, 32), CFG, ckpt_dir=tmp_path, progress=False)
    assert gaussians.resumed_from == 0 and "(data changed)" in capsys.readouterr().out
    diff = max((a - b).abs().max() for a, b in zip(moons.model.parameters(), gaussians.model.parameters()))
    assert diff > 1e-5  # trained on the new data (the run returned the moons weights: difference 0)
    again = train_teacher(net(), TrainData(sample_8gaussians, 32), CFG, ckpt_dir=tmp_path, progress=False)
    assert again.resumed_from == CFG.steps  # the same run resumes (as finished)
    for a, b in zip(again.ema_model.parameters(), gaussians.ema_model.parameters()):
        torch.testing.assert_close(a, b)


def test_resume_with_another_batch_size_or_network_trains_from_scratch(tmp_path, capsys):
    train_teacher(net(8), TrainData(sample_moons, 32), CFG, ckpt_dir=tmp_path, progress=False)
    assert train_teacher(net(8), MOONS, CFG, ckpt_dir=tmp_path, progress=False).resumed_from == 0
    assert "(batch_size changed)" in capsys.readouterr().out
    wider = train_teacher(net(16), MOONS, CFG, ckpt_dir=tmp_path, progress=False)  # no size-mismatch traceback
    assert wider.resumed_from == 0
    assert "(model changed)" in capsys.readouterr().out


def test_an_interrupted_run_resumes_bit_identically_on_the_same_data(tmp_path):
    """Killed (an exception) during step 4, checkpointed at step 2: the rerun on the same data resumes from step 2 and
    ends with the weights of an uninterrupted run."""
    config = TrainConfig(steps=6, warmup=1, ckpt_every=2)
    full = train_teacher(net(), TrainData(sample_moons, 32), config, ckpt_dir=tmp_path / "full", progress=False)
    calls, kill = [], [True]

    def moons(n, generator):  # killed at step 4 while `kill` holds: call 1 is the data probe, calls 2-5 are steps 1-4
        calls.append(n)
        if kill[0] and len(calls) == 5:
            raise KeyboardInterrupt("killed")
        return sample_moons(n, generator)

    with pytest.raises(KeyboardInterrupt):
        train_teacher(net(), TrainData(moons, 32), config, ckpt_dir=tmp_path / "cut", progress=False)
    kill[0] = False  # the rerun: the same source (its counters are not part of the data's identity)
    resumed = train_teacher(net(), TrainData(moons, 32), config, ckpt_dir=tmp_path / "cut", progress=False)
    assert resumed.resumed_from == 2
    for a, b in zip(resumed.ema_model.parameters(), full.ema_model.parameters()):
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------ params.yaml
def _params(tmp_path: Path, text: str) -> Path:
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


BASE = (ROOT / "params.yaml").read_text()
CONFIG_CASES = {
    "duplicate key": (BASE.replace("  bootstrap:", "  bootstrap: 3\n  bootstrap:", 1), r"'bootstrap' appears twice"),
    "duplicate eval.nfes": (BASE + "\n", r"eval\.nfes\[3\]: 4 again → each entry once"),
    "duplicate boss.nfes": (BASE + "\n", r"boss\.nfes\[2\]: 4 again"),
    "duplicate bespoke.nfes": (BASE + "\n", r"bespoke\.nfes\[2\]: 4 again"),
    "duplicate flowturbo.schedules": (BASE + "\n", r"flowturbo\.schedules\[1\]: 'H1P4' again"),
    "bespoke trains no rk2 solver": (BASE + "\n", r"bespoke\.nfes: \[3, 5\] → at least one NFE that rk2 can spend"),
    "bootstrap 1": (BASE + "\n", r"eval\.bootstrap: 1 → 0 \(no noise band\) or at least 2"),
    "infinite lr": (BASE + "\n", r"boss\.train\.lr.*finite number"),
    "empty file": ("", r"params\.yaml is empty"),
    "comments only": ("# nothing here\n", r"params\.yaml is empty"),
}
EDITS = {  # applied to the parsed default file, then dumped: each breaks one rule
    "duplicate eval.nfes": lambda p: p["eval"].update(nfes=[1, 2, 4, 4, 6, 8, 10, 20]),
    "duplicate boss.nfes": lambda p: p["boss"].update(nfes=[2, 4, 4]),
    "duplicate bespoke.nfes": lambda p: p["bespoke"].update(nfes=[2, 4, 4]),
    "duplicate flowturbo.schedules": lambda p: p["flowturbo"].update(schedules=["H1P4", "H1P4"]),
    "bespoke trains no rk2 solver": lambda p: p["bespoke"].update(nfes=[3, 5], bases=["rk2"]),
    "bootstrap 1": lambda p: p["eval"].update(bootstrap=1),
    "infinite lr": lambda p: p["boss"]["train"].update(lr=float("inf")),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_a_bad_params_file_is_refused(tmp_path, case):
    import yaml

    text, words = CONFIG_CASES[case]
    if case in EDITS:
        raw = yaml.safe_load(BASE)
        EDITS[case](raw)
        text = yaml.safe_dump(raw, sort_keys=False)
    with pytest.raises(ConfigError, match=words):
        load_params(_params(tmp_path, text), smoke=False)


def test_a_params_path_that_is_a_directory(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(ConfigError, match=r"is a directory"):
        load_params(tmp_path, smoke=False)

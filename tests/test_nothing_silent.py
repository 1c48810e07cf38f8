"""Nothing silent, second pass: one table per mechanism, each case a bad input that used to be accepted or to end in a
raw error, now a flowlib error whose message names the argument and the fix.

The mechanisms: every trainer checks its data against its network before step one (`flowlib.flow.check_samples`);
one grid rule for the samplers, the diffusers bridge and `export_grid` (`full_time_grid`); the argument layer of the
public API (`flowlib.errors.checked_args`, `TrainConfig`'s validators, `VelocityCallError` on a field's first call);
no lost work (`config use` keeps edits, writable checkpoint folders, paths inside the repository); seed separation
(no fitting, training or validation draw from an evaluation seed); a complete run fingerprint (the whole data, the
teacher, the validator: a changed input restarts a resumed run and says what changed).
"""
from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flowlib import (
    ArgumentError,
    BespokeSolver,
    CheckpointError,
    GridError,
    ODESampler,
    OneStepGenerator,
    TrainConfig,
    TrainData,
    VelocityCallError,
    fit_bespoke,
    ring_mixture,
    train_fgm,
    train_refiner,
    train_teacher,
)
from flowlib.config import ConfigError, check_raw, read_yaml, use_profile
from flowlib.data import sample_moons
from flowlib.diffusers_bridge import DiffusersSampler, export_grid, grid_to_sigmas
from flowlib.distill.bespoke import dense_ground_truth, train_bespoke
from flowlib.distill.boss import straighten, straightening_pairs
from flowlib.distill.reflow import reflow
from flowlib.models import MLPVelocity, UNetVelocity, VelocityRefiner, build_model
from flowlib.solvers.bellman import euler_rollout

ROOT = Path(__file__).resolve().parents[1]
V = ring_mixture()
Z = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
CFG = TrainConfig(steps=2, warmup=1, log_every=1)


def net(shape=(2,)) -> MLPVelocity:
    torch.manual_seed(0)
    return MLPVelocity(shape, hidden=8, depth=2, time_dim=8)


def moons_as(fn):
    return TrainData(lambda n, g: fn(sample_moons(n, g)), 16)


def pairs():
    rollout = euler_rollout(net(), torch.randn(4, 2), n_fine=4)
    return straightening_pairs(rollout, torch.tensor([0, 2, 4]))


def bespoke_data(val_noise, val_target):
    return TrainData(dense_ground_truth(V, torch.randn(8, 2), grid=5), 4, heldout=(val_noise, val_target))


class NoShape(torch.nn.Module):
    """A v(x, t) network that declares no `.shape` and returns one value per sample (a broadcasting loss)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def forward(self, x, t):
        return self.lin(x)


# ------------------------------------------------------------------ 1. every trainer checks its data first
DATA_CASES = {
    "teacher: [n, 1, 2] into a (2,) net": (lambda: train_teacher(net(), moons_as(lambda x: x[:, None]), CFG),
                                          r"samples of shape \(1, 2\) but the network models data of shape \(2,\)"),
    "teacher: [n, 2] into a (1, 2) net": (lambda: train_teacher(net((1, 2)), moons_as(lambda x: x), CFG),
                                         r"samples of shape \(2,\) but the network models data of shape \(1, 2\)"),
    "teacher: float64 batches, float32 net": (lambda: train_teacher(net(), moons_as(lambda x: x.double()), CFG),
                                              r"dtype torch\.float64 but the network's weights are torch\.float32"),
    "teacher: held-out of another shape": (lambda: train_teacher(net(), TrainData(sample_moons, 16, heldout=torch.randn(8, 3)),
                                                                 CFG), r"data\.heldout has samples of shape \(3,\)"),
    "teacher: held-out numpy float64": (lambda: train_teacher(net(), TrainData(sample_moons, 16, heldout=np.zeros((8, 2))),
                                                              CFG), r"astype\('float32'\)"),
    "teacher: held-out numpy ints": (lambda: train_teacher(net(), TrainData(sample_moons, 16,
                                                                            heldout=np.zeros((8, 2), dtype=int)), CFG),
                                     r"numpy array of dtype int64; pass floating data"),
    "teacher: held-out without batch axis": (lambda: train_teacher(net(), TrainData(sample_moons, 16,
                                                                                    heldout=torch.zeros(2)), CFG),
                                             r"batch axis"),
    "teacher: held-out with NaN": (lambda: train_teacher(net(), TrainData(sample_moons, 16,
                                                                          heldout=torch.full((4, 2), float("nan"))), CFG),
                                   r"data\.heldout contains NaN"),
    "teacher: a net without .shape that broadcasts": (lambda: train_teacher(NoShape(), TrainData(sample_moons, 16), CFG),
                                                      r"returns \(2, 1\) for data\.source's batch of shape \(2, 2\)"),
    "refiner: batches of another width": (lambda: train_refiner(V, VelocityRefiner((2,), {"hidden": 8, "depth": 2}),
                                                                moons_as(lambda x: torch.cat([x, x], 1)), CFG,
                                                                delta_max=0.1),
                                          r"train_refiner: data\.source's batch has samples of shape \(4,\)"),
    "refiner: refiner for another shape": (lambda: train_refiner(V, VelocityRefiner((3,), {"hidden": 8, "depth": 2}),
                                                                 TrainData(sample_moons, 16), CFG, delta_max=0.1),
                                           r"refiner models data of shape \(3,\) but the teacher \(2,\)"),
    "refiner: held-out [n, 1, 2]": (lambda: train_refiner(V, VelocityRefiner((2,), {"hidden": 8, "depth": 2}),
                                                          TrainData(sample_moons, 16, heldout=torch.randn(4, 1, 2)), CFG,
                                                          delta_max=0.1), r"data\.heldout has samples of shape \(1, 2\)"),
    "reflow: noise of another width": (lambda: reflow(net(), None, TrainData((torch.randn(8, 3), torch.randn(8, 3)), 4),
                                                      CFG), r"reflow: data\.source\.noise has samples of shape"),
    "reflow: float64 coupling": (lambda: reflow(net(), None, TrainData((Z.double(), Z.double()), 4), CFG),
                                 r"dtype torch\.float64"),
    "straighten: a (3,) student on (2,) pairs": (lambda: straighten(net(), net((3,)), TrainData(pairs(), 4), CFG),
                                                 r"straighten: data\.source\.x_a .* shape \(2,\) but the network models "
                                                 r"data of shape \(3,\)"),
    "bespoke: validation noise of another shape": (lambda: train_bespoke(V, BespokeSolver("rk1", 2),
                                                                         bespoke_data(torch.randn(4, 3), torch.randn(4, 3)),
                                                                         CFG), r"val_noise has samples of shape \(3,\)"),
    "bespoke: validation target rows differ": (lambda: train_bespoke(V, BespokeSolver("rk1", 2),
                                                                     bespoke_data(torch.randn(4, 2), torch.randn(3, 2)),
                                                                     CFG), r"val_target has shape \(3, 2\).*4 rows"),
    "bespoke: validation noise numpy ints": (lambda: train_bespoke(V, BespokeSolver("rk1", 2),
                                                                   bespoke_data(np.zeros((4, 2), dtype=int), Z[:4]), CFG),
                                             r"numpy array of dtype int64"),
    "fgm: data shape other than the networks'": (lambda: train_fgm(V, OneStepGenerator(net(), 0.1), TrainData((3,), 8),
                                                                   CFG, online=net()),
                                                 r"data shape \(3,\) but the generator models data of shape \(2,\)"),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_trainers_check_their_data_against_the_network_before_step_one(case, tmp_path):
    call, message = DATA_CASES[case]
    with pytest.raises(ArgumentError, match=message):
        call()


def test_the_issue_example_trains_no_longer_on_a_broadcast_loss():
    """`[n, 1, 2]` data for a `(2,)` net: refused before step one (it used to train, 3x further from the data)."""
    model = net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ArgumentError, match="The loss would broadcast"):
        train_teacher(model, moons_as(lambda x: x[:, None]), CFG, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------ 2. a complete run fingerprint
def _rows(n=256, seed=0):
    return sample_moons(n, torch.Generator().manual_seed(seed))


def _from(x):
    """A data source over the rows of `x` (a closure: its tensor is part of the source's identity)."""
    return lambda n, g: x[torch.randint(len(x), (n,), generator=g)]


def _corrected(x, row=200):
    y = x.clone()
    y[row] += 0.5   # a corrected row far outside any probe batch
    return y


def test_a_corrected_row_outside_the_probe_restarts_a_finished_teacher_run(tmp_path, capsys):
    """The issue's case: the fingerprint hashed a 64-row probe, so fixing a later row resumed the old finished run."""
    x = _rows()
    first = train_teacher(net(), TrainData(_from(x), 16), CFG, ckpt_dir=tmp_path, progress=False)
    assert train_teacher(net(), TrainData(_from(x.clone()), 16), CFG, ckpt_dir=tmp_path,
                         progress=False).resumed_from == CFG.steps   # the same data: the finished run is reused
    fixed = train_teacher(net(), TrainData(_from(_corrected(x)), 16), CFG, ckpt_dir=tmp_path, progress=False)
    assert fixed.resumed_from == 0 and "(data changed); training from scratch" in capsys.readouterr().out
    assert first.resumed_from == 0


def test_a_dataset_is_hashed_whole(tmp_path, capsys):
    """A `Dataset`'s sample_batch: every row of its training split (and its held-out split) is in the identity."""
    from flowlib.data import Dataset
    from flowlib.flow import data_identity

    x = _rows(512)
    same = data_identity(Dataset("d", x, x[:8]).sample_batch)
    assert data_identity(Dataset("d", x.clone(), x[:8].clone()).sample_batch) == same
    assert data_identity(Dataset("d", _corrected(x, 511), x[:8]).sample_batch) != same
    assert data_identity(Dataset("d", x, _corrected(x[:8], 7)).sample_batch) != same


def test_changed_heldout_data_restarts_a_refiner_run(tmp_path, capsys):
    torch.manual_seed(0)
    held = _rows(32, seed=1)
    data = TrainData(_from(_rows()), 16, heldout=held)
    cfg = TrainConfig(steps=2, warmup=1, log_every=1, val_every=1)
    train_refiner(V, VelocityRefiner((2,), {"arch": "mlp", "hidden": 8, "depth": 2}), data, cfg, ckpt_dir=tmp_path, delta_max=0.5,
                  progress=False)
    again = train_refiner(V, VelocityRefiner((2,), {"arch": "mlp", "hidden": 8, "depth": 2}), TrainData(data.source, 16,
                          heldout=_corrected(held, 31)), cfg, ckpt_dir=tmp_path, delta_max=0.5, progress=False)
    assert again.resumed_from == 0 and "heldout" in capsys.readouterr().out


def _fgm(validate, ckpt_dir):
    return train_fgm(V, OneStepGenerator(net(), 0.1), TrainData((2,), 8), TrainConfig(steps=2, warmup=1, val_every=1),
                     online=net(), ckpt_dir=ckpt_dir, progress=False, validate=validate)


def test_fgm_resumed_with_another_validator_restarts(tmp_path, capsys):
    """The issue's case: FGM resumed with another validator kept the first validator's history."""
    noise_a, noise_b = torch.randn(16, 2), torch.randn(16, 2)

    def spread(noise):
        return lambda g: float(g(noise).std())

    first = _fgm(spread(noise_a), tmp_path)
    assert _fgm(spread(noise_a.clone()), tmp_path).resumed_from == 2        # the same validator: reused
    other = _fgm(spread(noise_b), tmp_path)                                  # the same code on other noise
    assert other.resumed_from == 0 and "(validator changed)" in capsys.readouterr().out
    assert other.val_history != first.val_history
    assert _fgm(lambda g: float(g(noise_a).abs().mean()), tmp_path).resumed_from == 0   # other code


def test_a_changed_teacher_restarts_an_fgm_run(tmp_path, capsys):
    _fgm(None, tmp_path)
    moved = ring_mixture(radius=3.0)
    result = train_fgm(moved, OneStepGenerator(net(), 0.1), TrainData((2,), 8), TrainConfig(steps=2, warmup=1),
                       online=net(), ckpt_dir=tmp_path, progress=False)
    assert result.resumed_from == 0 and "teacher" in capsys.readouterr().out


def test_identity_streams_a_tensor_without_copying_and_sees_every_byte():
    from flowlib.flow import identity

    x = torch.zeros(1000, 784)
    base = identity(x)
    x[999, 783] = 1e-30
    assert identity(x) != base and identity(x[:, :10]) != identity(x[:, :10].contiguous().T)
    assert identity(x.to(torch.bfloat16)) != identity(x)   # the dtype is part of it


# ------------------------------------------------------------------ 3. one grid rule
GRID_CASES = {
    "bridge grid starting late": lambda: DiffusersSampler(V, grid=[0.3, 0.6, 1.0]),
    "bridge grid stopping early": lambda: DiffusersSampler(V, grid=[0.0, 0.3, 0.6]),
    "bridge grid not increasing": lambda: DiffusersSampler(V, grid=[0.0, 0.6, 0.3, 1.0]),
    "bridge grid a float": lambda: DiffusersSampler(V, grid=2.5),
    "export_grid stopping early": lambda: export_grid([0.0, 0.3, 0.6]),
    "export_grid starting late": lambda: export_grid([0.2, 1.0]),
    "grid_to_sigmas outside [0, 1]": lambda: grid_to_sigmas([0.0, 0.5, 1.5]),
    "grid_to_sigmas stopping early": lambda: grid_to_sigmas(torch.tensor([0.0, 0.9])),
}


@pytest.mark.parametrize("case", GRID_CASES)
def test_the_bridge_and_export_grid_obey_the_samplers_grid_rule(case):
    with pytest.raises(GridError) as info:
        GRID_CASES[case]()
    with pytest.raises(GridError) as same:  # the samplers' own words, for the same kind of grid
        ODESampler(V, [0.0, 0.3, 0.6])
    if "exactly t = 0" in str(info.value):
        assert str(info.value).split(", got")[0] == str(same.value).split(", got")[0]


# ------------------------------------------------------------------ 4. the argument layer
def mutates(x, t):
    x.mul_(2.0)
    return -x


ARGUMENT_CASES = {
    "MLP hidden 0": (lambda: MLPVelocity((2,), hidden=0), r"MLPVelocity: hidden must be greater than or equal to 1"),
    "MLP hidden negative via build_model": (lambda: build_model((2,), {"arch": "mlp", "hidden": -3}),
                                            r"MLPVelocity: hidden must be greater than or equal to 1, got int -3"),
    "MLP depth 1": (lambda: MLPVelocity((2,), depth=1), r"depth must be greater than or equal to 2"),
    "MLP width a float": (lambda: MLPVelocity((2,), hidden=8.5), r"hidden must be a valid integer"),
    "MLP empty shape": (lambda: MLPVelocity(()), r"shape must have at least 1 item"),
    "MLP zero in the shape": (lambda: MLPVelocity((0,)), r"shape\[0\] must be greater than or equal to 1"),
    "MLP misspelt argument": (lambda: build_model((2,), {"arch": "mlp", "hiden": 3}),
                              r"hiden is not an argument \(they are shape, hidden, depth"),
    "UNet width 0": (lambda: UNetVelocity((1, 8, 8), width=0), r"UNetVelocity: width must be greater than or equal to 1"),
    "UNet dropout 1": (lambda: UNetVelocity((1, 8, 8), dropout=1.0), r"dropout must be less than 1"),
    "UNet no levels": (lambda: UNetVelocity((1, 8, 8), channel_mult=()), r"channel_mult must have at least 1 item"),
    "UNet 2-D shape": (lambda: UNetVelocity((8, 8)), r"UNetVelocity: shape"),
    "ring of zero Gaussians": (lambda: ring_mixture(k=0), r"ring_mixture: k must be greater than or equal to 1"),
    "ring of negative size": (lambda: ring_mixture(k=-1), r"k must be greater than or equal to 1"),
    "ring radius negative": (lambda: ring_mixture(radius=-1.0), r"radius must be greater than or equal to 0"),
    "ring scale zero": (lambda: ring_mixture(scale=0.0), r"scale must be greater than 0"),
    "fit_bespoke val_fraction 1.5": (lambda: fit_bespoke(V, Z, 2, progress=False, val_fraction=1.5),
                                     r"fit_bespoke: val_fraction must be less than 1"),
    "fit_bespoke val_fraction 0": (lambda: fit_bespoke(V, Z, 2, progress=False, val_fraction=0),
                                   r"val_fraction must be greater than 0"),
    "train_bespoke l_tau negative": (lambda: train_bespoke(V, BespokeSolver("rk1", 2), bespoke_data(Z[:4], Z[:4]), CFG,
                                                           l_tau=-5), r"l_tau must be a finite number in \(0"),
    "reflow eps 1.5": (lambda: reflow(net(), None, TrainData((Z, Z), 4), CFG, eps=1.5),
                       r"eps \(the smallest training time\) must be a number in \[0, 1\), got 1\.5"),
    "reflow eps negative": (lambda: reflow(net(), None, TrainData((Z, Z), 4), CFG, eps=-0.1), r"in \[0, 1\)"),
    "reflow k zero": (lambda: reflow(net(), None, TrainData((Z, Z), 4), CFG, k=0), r"k .* must be an integer ≥ 1"),
    "warmup longer than steps": (lambda: TrainConfig(steps=10, warmup=50), r"warmup: .*at most steps \(10\)"),
    "steps set below warmup": (lambda: setattr(TrainConfig(steps=200, warmup=100), "steps", 50),
                               r"steps: .*warmup \(100\) must be at most steps \(50\)"),
    "lr set negative": (lambda: setattr(TrainConfig(), "lr", -1.0), r"lr: Input should be greater than 0"),
}


@pytest.mark.parametrize("case", ARGUMENT_CASES)
def test_public_arguments_out_of_range_are_argument_errors(case):
    call, message = ARGUMENT_CASES[case]
    with pytest.raises(ArgumentError, match=message):
        call()


def test_a_refused_assignment_leaves_the_config_as_it_was():
    config = TrainConfig(steps=200, warmup=100)
    with pytest.raises(ArgumentError):
        config.steps = 50
    assert config.steps == 200


def test_the_default_warmup_never_outlasts_a_short_run():
    assert TrainConfig(steps=3).warmup == 3 and TrainConfig(steps=300).warmup == 100


FIELD_FAULTS = {
    "KeyError": (lambda x, t: {}["velocity"], r"KeyError: 'velocity'"),
    "ZeroDivisionError": (lambda x, t: 1 / 0, r"ZeroDivisionError"),
    "AttributeError": (lambda x, t: x.no_such_method(), r"AttributeError"),
    "NameError": (lambda x, t: undefined_name, r"NameError"),  # noqa: F821
    "ValueError": (lambda x, t: int("not a number"), r"ValueError: invalid literal"),
}


@pytest.mark.parametrize("kind", FIELD_FAULTS)
def test_any_exception_of_a_field_on_its_first_call_is_a_velocity_call_error(kind):
    field, message = FIELD_FAULTS[kind]
    with pytest.raises(VelocityCallError, match=message) as info:
        ODESampler(field, 4)(Z)
    assert info.value.__cause__ is not None  # the original is chained


def test_a_field_that_changes_its_input_is_refused_and_the_noise_kept():
    noise = Z.clone()
    with pytest.raises(VelocityCallError, match=r"changed its input x in place.*Return a new tensor"):
        ODESampler(mutates, 4)(noise)
    assert torch.equal(noise, Z)


# ------------------------------------------------------------------ 5. no lost work
def test_config_use_keeps_edits_of_params_unless_forced(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    use_profile("fashion", tmp_path)  # a profile as `use` writes it: nothing to lose
    use_profile("cifar10", tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(params.read_text() + "# my edit\n")
    with pytest.raises(ConfigError, match=r"params\.yaml has edits.*profiles/mine\.yaml.*--force"):
        use_profile("fashion", tmp_path)
    assert params.read_text().endswith("# my edit\n")
    use_profile("fashion", tmp_path, force=True)
    assert "# my edit" not in params.read_text()


def test_config_use_cli_refuses_with_exit_2_and_names_the_fix(tmp_path):
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("profile: mine\n")
    done = subprocess.run([sys.executable, "-m", "flowlib.config", "use", "fashion"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 2 and "--force" in done.stderr
    assert (tmp_path / "params.yaml").read_text() == "profile: mine\n"


def test_a_checkpoint_folder_that_is_a_file_fails_before_training(tmp_path):
    blocker = tmp_path / "ckpt"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointError, match=r"ckpt_dir\) .* is a file, not a folder"):
        train_teacher(net(), TrainData(sample_moons, 16), CFG, ckpt_dir=blocker, progress=False)


def test_an_unwritable_checkpoint_folder_fails_before_training(tmp_path, monkeypatch):
    import flowlib.artifacts as artifacts

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(artifacts.tempfile, "mkstemp", refuse)  # root may write anywhere: simulate the read-only folder
    with pytest.raises(CheckpointError, match=r"not writable \(Permission denied\).*chmod u\+w"):
        train_teacher(net(), TrainData(sample_moons, 16), CFG, ckpt_dir=tmp_path / "ro",
                      progress=False)


DEFAULT = read_yaml(ROOT / "params.yaml")


def with_key(path, value):
    raw = copy.deepcopy(DEFAULT)
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return raw


@pytest.mark.parametrize("value", ["/tmp/elsewhere", "../outside", "artifacts/../../up", "  "])
@pytest.mark.parametrize("key", ["artifacts", "reports"])
def test_output_paths_stay_inside_the_repository(key, value):
    with pytest.raises(ConfigError, match=rf"paths\.{key}: .* → a relative folder inside the repository"):
        check_raw(with_key(("paths", key), value))


@pytest.mark.parametrize("name", ["../../escape", "a/b", "has space", "1digits"])
def test_teacher_names_are_identifiers(name):
    raw = copy.deepcopy(DEFAULT)
    raw["teachers"][name] = raw["teachers"].pop("moons")
    raw["flowturbo"]["refiners"][name] = raw["flowturbo"]["refiners"].pop("moons")
    with pytest.raises(ConfigError, match=r"a name of letters, digits, '_' and '-' starting with a letter"):
        check_raw(raw)


# ------------------------------------------------------------------ 6. seed separation
SEED_CASES = [
    (("data", "seed"), 1234, r"data\.seed: 1234 → another seed: the 2-D toy data .* which is eval\.seed"),
    (("teachers", "moons", "train", "seed"), 2024, r"teachers\.moons\.train\.seed: 2024 .* eval\.reference_seed"),
    (("boss", "seed"), 99, r"boss\.seed: 99 → another seed: BOSS's cost-matrix noise .* eval\.distance_seed"),
    (("boss", "seed"), 1233, r"boss\.seed: 1233 .* BOSS's pairs would be drawn from boss\.seed \+ 1 = 1234"),
    (("boss", "seed"), 97, r"BOSS's validation noise would be drawn from boss\.seed \+ 2 = 99"),
    (("boss", "train", "seed"), 1234, r"boss\.train\.seed: 1234 .* straightening finetunes"),
    (("bespoke", "seed"), 2024, r"bespoke\.seed: 2024 .* Bespoke training and validation noise"),
    (("flowturbo", "train", "seed"), 99, r"flowturbo\.train\.seed: 99 .* refiner's training noise"),
    (("fgm", "seed"), 1234, r"fgm\.seed: 1234 .* FGM's validation noise"),
    (("fgm", "seed"), 2023, r"reflow baseline's pairs would be drawn from fgm\.seed \+ 1 = 2024"),
    (("fgm", "train", "seed"), 1234, r"fgm\.train\.seed: 1234 .* FGM's training noise"),
]


@pytest.mark.parametrize("path,value,message", SEED_CASES, ids=[f"{'.'.join(p)}={v}" for p, v, _ in SEED_CASES])
def test_no_fitting_draw_uses_an_evaluation_seed(path, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        check_raw(with_key(path, value))
    assert len(info.value.problems) == 1


def test_every_profile_keeps_its_seeds_apart():
    for profile in ("params.yaml", *sorted(str(p) for p in (ROOT / "profiles").glob("*.yaml"))):
        check_raw(read_yaml(ROOT / profile))

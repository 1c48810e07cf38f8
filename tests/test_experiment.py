"""Pipeline steps: a teacher trained twice from the same params is bit-identical (initial weights included)."""
from pathlib import Path

import pytest
import torch
import yaml

from flowlib.config import parse_params
from flowlib.experiments.common import fit_teacher, load_teacher

ROOT = Path(__file__).resolve().parents[1]


def test_fit_teacher_is_deterministic(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    runs = []
    for i in range(2):
        params = parse_params(raw, ROOT, smoke=True, smoke_dir=tmp_path / f"run{i}")
        torch.randn(11)  # a different global RNG state before each run must not matter
        fit_teacher(params, "moons", progress=False)
        runs.append(load_teacher(params, "moons"))
    x, t = torch.randn(8, 2), torch.rand(8)
    assert torch.equal(runs[0](x, t), runs[1](x, t))


def test_every_pipeline_checkpoint_loads_weights_only(tmp_path):
    """Teacher (last.pt and teacher.pt), ground truth, classifier, BOSS grids, every student and every Bespoke solver
    (and its ground-truth pool): all plain data."""
    from flowlib.artifacts import CheckpointError, load_checkpoint
    from flowlib.experiments.boss import compute_grids, finetune_rows
    from flowlib.experiments.common import load_context, solve_ground_truth, solve_reference, train_feature_classifier

    params = parse_params(yaml.safe_load((ROOT / "params.yaml").read_text()), ROOT, smoke=True, smoke_dir=tmp_path)
    train_feature_classifier(params)
    fit_teacher(params, "moons", progress=False)
    solve_ground_truth(params, "moons")
    with pytest.raises(CheckpointError, match=r"reference.pt does not exist.*dvc repro teacher@moons"):
        load_context(params, "moons")  # a missing reference names the stage that builds it
    solve_reference(params, "moons", progress=False)
    ctx = load_context(params, "moons")
    finetune_rows(params, ctx, compute_grids(params, ctx), progress=False)
    from flowlib.experiments.bespoke import ground_truth_pool, train_solvers
    train_solvers(params, ctx, ground_truth_pool(params, ctx, progress=False), progress=False)
    written = sorted(p.relative_to(params.artifacts).as_posix() for p in params.artifacts.rglob("*.pt"))
    teacher = {f"teachers/moons/{f}.pt" for f in ("last", "teacher", "ground_truth", "reference")}
    assert teacher | {"features/digits_classifier.pt", "boss/moons/grids.pt", "boss/moons/uniform-reflow.pt"} <= set(written)
    assert any(w.startswith("boss/moons/bellman-euler+ft-lora") for w in written)
    assert {"bespoke/moons/ground_truth_pool.pt", "bespoke/moons/bespoke-rk2-nfe4.pt"} <= set(written)
    for name in written:
        load_checkpoint(params.artifacts / name)  # weights-only: raises on anything that is not plain data

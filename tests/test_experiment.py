"""Pipeline steps: a teacher trained twice from the same params is bit-identical (initial weights included)."""
from pathlib import Path

import torch
import yaml

from flowlib.config import parse_params
from flowlib.experiment import fit_teacher, load_teacher

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

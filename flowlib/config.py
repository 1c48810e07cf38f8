"""The one place that reads `params.yaml`: validated parameters, smoke settings and profiles.

Notebooks call `load_params()` and pass plain values into flowlib; nothing else reads the file.
- Smoke mode (`FLOWLIB_SMOKE=1`, set by the test command) applies the file's `smoke:` overrides and sends
  every artefact to `$FLOWLIB_SMOKE_DIR`, so nbval never touches the committed reports.
- Profiles: `params.yaml` is the active profile (the CPU default); `profiles/<name>.yaml` holds the others.
  `python -m flowlib.config use cifar10` validates one and makes it active; `check` validates a file.
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .data import DATASETS
from .flow import TrainConfig
from .models import ARCHITECTURES
from .solvers.fixed_grid import METHODS


class ConfigError(ValueError):
    """A parameter file that is malformed, has unknown keys or invalid values."""


def repo_root(start: str | Path | None = None) -> Path:
    """The nearest directory at or above `start` (default: cwd) holding `dvc.yaml`; cwd if none."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "dvc.yaml").is_file():
            return d
    return here


def smoke_enabled() -> bool:
    """True when the environment asks for the tiny test-suite setting."""
    return os.environ.get("FLOWLIB_SMOKE", "").lower() in ("1", "true", "yes")


@dataclass
class DataParams:
    root: str = "data"
    heldout_fraction: float = 1 / 3
    n_toy: int = 20_000
    seed: int = 0
    classifier_steps: int = 1500
    inception_weights: str = "data/inception/inception-2015-12-05.pt"
    inception_sha256: str | None = None


@dataclass
class EvalParams:
    nfes: list[int] = field(default_factory=lambda: [1, 2, 4, 6, 8, 10, 16, 32])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    gt_rtol: float = 1e-5
    gt_atol: float = 1e-5
    seed: int = 1234
    timing_repeats: int = 3


@dataclass
class TeacherParams:
    name: str
    dataset: str
    n_eval: int
    batch_size: int
    model: dict[str, Any]
    train: TrainConfig


@dataclass
class BossParams:
    """BOSS (papers/boss.md): Bellman grids, straightening finetune and the reflow baselines."""

    n_fine: int = 100                 # fine uniform Euler grid N (= K_max)
    n_cost: int = 100                 # noise samples for the cost matrix
    nfes: list[int] = field(default_factory=lambda: [2, 4, 6, 8, 10])
    finetune_k: list[int] = field(default_factory=lambda: [4, 6])
    n_pairs: int = 2000               # teacher trajectories for the straightening pairs (paper: 5000)
    batch_size: int = 64
    lora_rank: int = 4
    lora_alpha: float = 1.0
    reflow_eps: float = 1e-3
    seed: int = 7
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class Params:
    profile: str
    root: Path
    artifacts: Path
    reports: Path
    data: DataParams
    eval: EvalParams
    teachers: dict[str, TeacherParams]
    boss: BossParams = field(default_factory=BossParams)
    smoke: bool = False

    def teacher(self, name: str) -> TeacherParams:
        """The teacher called `name`, or a clear error listing the configured ones."""
        if name not in self.teachers:
            raise ConfigError(f"No teacher {name!r} in profile {self.profile!r}; configured: {sorted(self.teachers)}.")
        return self.teachers[name]


def _dataclass_from(cls: type, values: dict[str, Any], where: str, **extra: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(values).__name__}.")
    known = {f.name for f in fields(cls)} - set(extra)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"Unknown key(s) {unknown} in {where}; known keys: {sorted(known)}.")
    try:
        return cls(**values, **extra)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Invalid {where}: {exc}") from exc


def _deep_update(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = _deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where} must be a positive integer, got {value!r}.")
    return value


def parse_params(raw: dict[str, Any], root: Path, smoke: bool = False, smoke_dir: Path | None = None) -> Params:
    """Validate a raw parameter mapping (as read from YAML) into `Params`."""
    allowed = {"profile", "paths", "data", "eval", "teachers", "boss", "smoke"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"Unknown top-level key(s) {unknown}; known: {sorted(allowed)}.")
    if smoke:
        raw = _deep_update(raw, raw.get("smoke") or {})
    paths = raw.get("paths") or {}
    data = _dataclass_from(DataParams, raw.get("data") or {}, "data")
    if not 0 < data.heldout_fraction < 1:
        raise ConfigError(f"data.heldout_fraction must lie in (0, 1), got {data.heldout_fraction}.")
    ev = _dataclass_from(EvalParams, raw.get("eval") or {}, "eval")
    for i, nfe in enumerate(ev.nfes):
        _positive_int(nfe, f"eval.nfes[{i}]")
    bad = [m for m in ev.methods if m not in METHODS]
    if bad:
        raise ConfigError(f"eval.methods has unknown solver(s) {bad}; choose from {list(METHODS)}.")
    teachers_raw = raw.get("teachers") or {}
    if not teachers_raw:
        raise ConfigError("params define no teachers; add at least one under `teachers:`.")
    teachers = {}
    for name, t in teachers_raw.items():
        where = f"teachers.{name}"
        t = dict(t)
        train = _dataclass_from(TrainConfig, t.pop("train", {}), f"{where}.train")
        tp = _dataclass_from(TeacherParams, t, where, name=name, train=train)
        if tp.dataset not in DATASETS:
            raise ConfigError(f"{where}.dataset: unknown dataset {tp.dataset!r}; choose one of {list(DATASETS)}.")
        if tp.model.get("arch") not in ARCHITECTURES:
            raise ConfigError(f"{where}.model.arch must be one of {sorted(ARCHITECTURES)}, got {tp.model.get('arch')!r}.")
        _positive_int(tp.n_eval, f"{where}.n_eval")
        _positive_int(tp.batch_size, f"{where}.batch_size")
        teachers[name] = tp
    boss = _parse_boss(raw.get("boss") or {})
    base = smoke_dir if smoke and smoke_dir is not None else root
    return Params(
        profile=str(raw.get("profile", "default")),
        root=root,
        artifacts=base / paths.get("artifacts", "artifacts"),
        reports=base / paths.get("reports", "reports"),
        data=data,
        eval=ev,
        teachers=teachers,
        boss=boss,
        smoke=smoke,
    )


def _parse_boss(raw: dict[str, Any]) -> BossParams:
    raw = dict(raw)
    train = _dataclass_from(TrainConfig, raw.pop("train", {}), "boss.train")
    boss = _dataclass_from(BossParams, raw, "boss", train=train)
    for key in ("n_fine", "n_cost", "n_pairs", "batch_size", "lora_rank"):
        _positive_int(getattr(boss, key), f"boss.{key}")
    for key in ("nfes", "finetune_k"):
        for i, k in enumerate(getattr(boss, key)):
            _positive_int(k, f"boss.{key}[{i}]")
            if k > boss.n_fine:
                raise ConfigError(f"boss.{key}[{i}] = {k} exceeds the fine grid boss.n_fine = {boss.n_fine}.")
    return boss


def load_params(path: str | Path = "params.yaml", smoke: bool | None = None) -> Params:
    """Read and validate a parameter file (relative paths resolve against the repository root).

    `smoke=None` follows `FLOWLIB_SMOKE`; smoke artefacts go to `$FLOWLIB_SMOKE_DIR` (default: a fixed
    directory under the system temp dir).
    """
    root = repo_root()
    path = Path(path)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise ConfigError(f"Parameter file {path} not found; run from the repository (it holds params.yaml).")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    smoke = smoke_enabled() if smoke is None else smoke
    smoke_dir = Path(os.environ.get("FLOWLIB_SMOKE_DIR", Path(tempfile.gettempdir()) / "flowlib-smoke"))
    params = parse_params(raw, root, smoke=smoke, smoke_dir=smoke_dir)
    params.data.root = str(root / params.data.root)
    params.data.inception_weights = str(root / params.data.inception_weights)
    return params


def use_profile(name: str, root: Path | None = None) -> Path:
    """Validate `profiles/<name>.yaml` and copy it onto `params.yaml` (the active profile)."""
    root = root or repo_root()
    source = root / "profiles" / f"{name}.yaml"
    if not source.is_file():
        available = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise ConfigError(f"No profile {name!r}; available: {available} (the default lives in git's params.yaml).")
    parse_params(yaml.safe_load(source.read_text()), root)
    shutil.copyfile(source, root / "params.yaml")
    return root / "params.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowlib.config", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="validate a parameter file").add_argument("file", nargs="?", default="params.yaml")
    sub.add_parser("use", help="make profiles/<name>.yaml the active params.yaml").add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "check":
            params = load_params(args.file, smoke=False)
            print(f"{args.file}: profile {params.profile!r}, teachers {sorted(params.teachers)}: OK")
        else:
            print(f"params.yaml is now profile {args.name!r} ({use_profile(args.name)}); `git checkout params.yaml` restores the default.")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from flowlib.config import ConfigError, load_params, parse_params, repo_root, use_profile

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def parse(raw, **kw):
    return parse_params(raw, ROOT, **kw)


def test_default_profile_is_valid():
    params = load_params(ROOT / "params.yaml", smoke=False)
    assert params.profile == "default" and set(params.teachers) == {"digits", "moons"}
    assert params.teacher("digits").train.steps > 100 and params.artifacts == ROOT / "artifacts"
    assert params.boss.n_fine == 100 and params.boss.lora_rank == 4 and 6 in params.boss.finetune_k


def test_cifar10_profile_loads_and_validates():
    params = parse(yaml.safe_load((ROOT / "profiles" / "cifar10.yaml").read_text()))
    tp = params.teacher("cifar10")
    assert tp.dataset == "cifar10" and tp.model["arch"] == "unet" and params.profile == "cifar10"


def test_smoke_overrides(tmp_path):
    params = parse(DEFAULT, smoke=True, smoke_dir=tmp_path)
    assert params.teacher("digits").train.steps <= 50 and params.eval.nfes == [1, 2, 4]
    assert params.artifacts == tmp_path / "artifacts" and params.reports == tmp_path / "reports"
    assert params.teacher("digits").model == DEFAULT["teachers"]["digits"]["model"]  # untouched keys survive


def _with(path, value):
    raw = copy.deepcopy(DEFAULT)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


@pytest.mark.parametrize("path,value,match", [
    (("teachers", "digits", "dataset"), "mnist", "unknown dataset 'mnist'"),
    (("teachers", "digits", "train", "steps"), -5, "steps=-5"),
    (("teachers", "digits", "train", "stpes"), 5, r"Unknown key\(s\) \['stpes'\] in teachers.digits.train"),
    (("teachers", "digits", "model"), {"arch": "transformer"}, "model.arch must be one of"),
    (("teachers", "moons", "n_eval"), 0, "n_eval must be a positive integer"),
    (("eval", "nfes"), [4, -1], r"eval.nfes\[1\] must be a positive integer"),
    (("eval", "methods"), ["euler", "dpm"], r"unknown solver\(s\) \['dpm'\]"),
    (("data", "heldout_fraction"), 1.5, "heldout_fraction must lie in"),
    (("bogus",), 1, r"Unknown top-level key\(s\) \['bogus'\]"),
    (("boss", "finetune_k"), [4, 200], r"boss.finetune_k\[1\] = 200 exceeds the fine grid"),
    (("boss", "nfes"), [0], r"boss.nfes\[0\] must be a positive integer"),
    (("boss", "train", "steps"), 0, "steps=0"),
    (("boss", "lora_rnk"), 4, r"Unknown key\(s\) \['lora_rnk'\] in boss"),
])
def test_bad_params_are_clear_errors(path, value, match):
    with pytest.raises(ConfigError, match=match):
        parse(_with(path, value))


def test_unknown_teacher_name():
    with pytest.raises(ConfigError, match="No teacher 'cifar' .*digits"):
        parse(DEFAULT).teacher("cifar")


def test_use_profile_switches_params(tmp_path):
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    use_profile("cifar10", tmp_path)
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["profile"] == "cifar10"
    assert repo_root(tmp_path / "profiles") == tmp_path
    with pytest.raises(ConfigError, match="No profile 'imagenet'.*cifar10"):
        use_profile("imagenet", tmp_path)


def test_missing_or_invalid_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("teachers: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")

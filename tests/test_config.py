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
    assert params.profile == "default" and set(params.teachers) == {"digits", "moons", "ring"}
    assert params.teacher("ring").exact and not params.teacher("digits").exact
    assert params.teacher("digits").train.steps > 100 and params.artifacts == ROOT / "artifacts"
    assert params.boss.n_fine == 100 and params.boss.lora_rank == 4 and 6 in params.boss.finetune_k


@pytest.mark.parametrize("smoke", [False, True])
def test_cifar10_profile_loads_and_validates(smoke, tmp_path):
    params = parse(yaml.safe_load((ROOT / "profiles" / "cifar10.yaml").read_text()), smoke=smoke, smoke_dir=tmp_path)
    tp = params.teacher("cifar10")
    assert tp.dataset == "cifar10" and tp.model.arch == "unet" and params.profile == "cifar10"


def test_smoke_overrides(tmp_path):
    params = parse(DEFAULT, smoke=True, smoke_dir=tmp_path)
    assert params.teacher("digits").train.steps <= 50 and params.eval.nfes == [1, 2, 4]
    assert params.artifacts == tmp_path / "artifacts" and params.reports == tmp_path / "reports"
    assert params.teacher("digits").model.hidden == DEFAULT["teachers"]["digits"]["model"]["hidden"]  # untouched keys survive


def _with(path, value):
    raw = copy.deepcopy(DEFAULT)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


@pytest.mark.parametrize("path,value,message", [
    # the cases a new user hit (each must name the key, what was given and what is expected)
    (("teachers", "digits", "model", "hidden"), -1, "teachers.digits.model.hidden: -1 → an integer ≥ 1"),
    (("eval", "gt_rtol"), -1, "eval.gt_rtol: -1 → a number > 0"),
    (("teachers", "moons", "train", "ema_decay"), 1.5, "teachers.moons.train.ema_decay: 1.5 → a number < 1"),
    (("boss", "train", "lr"), "fast", "boss.train.lr: 'fast' → a number"),
    (("teachers", "moons", "train", "steps"), "lots", "teachers.moons.train.steps: 'lots' → an integer"),
    (("teachers", "moons", "train", "steps"), True, "teachers.moons.train.steps: True → an integer"),
    (("teachers", "digits", "n_eval"), 700, "teachers.digits.n_eval: 700 → at most 599, the held-out size of digits"),
    (("teachers", "moons", "n_eval"), 30000, "teachers.moons.n_eval: 30000 → at most 20000"),
    # registries, ranges, unknown keys, cross-field rules
    (("teachers", "digits", "dataset"), "mnist", "teachers.digits.dataset: 'mnist' → one of '8gaussians'"),
    (("teachers", "digits", "train", "stpes"), 5, "teachers.digits.train.stpes: unknown key → one of the known keys ['ckpt"),
    (("teachers", "digits", "model"), {"arch": "transformer"}, "teachers.digits.model: 'transformer' → arch one of 'mlp'"),
    (("teachers", "digits", "model", "widht"), 3, "teachers.digits.model.widht: unknown key → one of the known keys ['arch'"),
    (("teachers", "moons", "model"), {"arch": "unet"}, "teachers.moons.model.arch: 'unet' → 'mlp' for the 2-D dataset 'moons'"),
    (("eval", "nfes"), [4, -1], "eval.nfes[1]: -1 → an integer ≥ 1"),
    (("eval", "methods"), ["euler", "dpm"], "eval.methods[1]: 'dpm' → one of 'euler', 'midpoint', 'heun' or 'rk4'"),
    (("data", "heldout_fraction"), 1.5, "data.heldout_fraction: 1.5 → a number < 1"),
    (("data", "inception_sha256"), "abc", "data.inception_sha256: 'abc' → a 64-character lowercase hex SHA-256"),
    (("bogus",), 1, "bogus: unknown key → one of the known keys ['autoencoders', 'bespoke', 'boss', 'combos'"),
    (("boss", "finetune_k"), [6, 200], "boss.finetune_k[1]: 200 → at most boss.n_fine = 100"),
    (("boss", "nfes"), [0], "boss.nfes[0]: 0 → an integer ≥ 1"),
    (("boss", "train", "steps"), 0, "boss.train.steps: 0 → an integer ≥ 1"),
    (("boss", "lora_rnk"), 4, "boss.lora_rnk: unknown key"),
    (("teachers",), {}, "teachers: {} → at least 1 entry"),
    (("bespoke", "bases"), ["rk4"], "bespoke.bases[0]: 'rk4' → one of 'rk1' or 'rk2'"),
    (("bespoke", "seed"), 1234, "bespoke.seed: 1234 → another seed"),
    (("bespoke", "grid"), 1, "bespoke.grid: 1 → an integer ≥ 2"),
    (("smoke", "boss", "train", "steps"), "x", "smoke.boss.train.steps: 'x' → an integer (with the smoke overrides applied)"),
    # the exact teacher, the combinations and FlowTurbo's compile list
    (("teachers", "ring", "dataset"), "moons", "teachers.ring.model.arch: 'mixture' → 'mlp': 'moons' has no "
     "closed-form mixture"),
    (("teachers", "ring", "student"), None, "teachers.ring.student: missing → a network config"),
    (("combos", "teachers"), ["digits", "ring"], "combos.teachers[1]: 'ring' → a trained teacher"),
    (("combos", "teachers"), ["cifar"], "combos.teachers[0]: 'cifar' → one of"),
    (("combos", "k"), 4, "combos.k: 4 → one of boss.finetune_k [6]"),
    (("flowturbo", "compile"), ["digits", "mnist"], "flowturbo.compile[1]: 'mnist' → one of"),
])
def test_bad_params_are_one_clear_line(path, value, message):
    with pytest.raises(ConfigError) as info:
        parse(_with(path, value))
    assert len(info.value.problems) == 1, info.value.problems
    assert info.value.problems[0].startswith(message), info.value.problems[0]


def test_all_problems_are_reported_at_once():
    raw = _with(("teachers", "moons", "train", "steps"), "lots")
    raw["eval"]["gt_rtol"] = -1
    raw["boss"]["train"]["lr"] = "fast"
    with pytest.raises(ConfigError, match="3 problems") as info:
        parse(raw)
    assert sorted(p.split(":")[0] for p in info.value.problems) == [
        "boss.train.lr", "eval.gt_rtol", "teachers.moons.train.steps"]


def test_check_cli_prints_every_problem(tmp_path, capsys, monkeypatch):
    from flowlib.config import main

    raw = _with(("teachers", "digits", "model", "hidden"), -1)
    raw["teachers"]["moons"]["train"]["ema_decay"] = 1.5
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    assert main(["check", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "teachers.digits.model.hidden: -1 → an integer ≥ 1" in err and "teachers.moons.train.ema_decay: 1.5" in err
    assert main(["check", str(ROOT / "params.yaml")]) == 0


def test_model_schemas_cover_every_architecture():
    from flowlib.config import MixtureConfig, MLPConfig, UNetConfig
    from flowlib.models import ARCHITECTURES

    schemas = (MLPConfig, UNetConfig, MixtureConfig)
    assert {m.model_fields["arch"].annotation.__args__[0] for m in schemas} == set(ARCHITECTURES)


def test_loader_returns_typed_sections():
    params = parse(DEFAULT)
    tp = params.teacher("digits")
    assert tp.train.steps == DEFAULT["teachers"]["digits"]["train"]["steps"] and tp.model.arch == "mlp"
    assert tp.model_dict == {"arch": "mlp", "hidden": 512, "depth": 4, "time_dim": 64}
    assert params.boss.train.warmup == DEFAULT["boss"]["train"]["warmup"] and params.eval.nfes == DEFAULT["eval"]["nfes"]


def test_committed_schema_is_current():
    from flowlib.config import SCHEMA_FILE, json_schema

    assert (ROOT / SCHEMA_FILE).read_text() == json_schema(), "run: python -m flowlib.config schema > params.schema.json"
    for name in ["params.yaml", *(f"profiles/{p.name}" for p in (ROOT / "profiles").glob("*.yaml"))]:
        first = (ROOT / name).read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=") and first.endswith(SCHEMA_FILE), name


def test_unknown_teacher_name():
    with pytest.raises(ConfigError, match="No teacher 'cifar' .*digits"):
        parse(DEFAULT).teacher("cifar")


def test_use_profile_switches_params(tmp_path):
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    use_profile("cifar10", tmp_path)
    text = (tmp_path / "params.yaml").read_text()
    assert yaml.safe_load(text)["profile"] == "cifar10" and text.startswith("# yaml-language-server: $schema=params.schema.json")
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


@pytest.mark.parametrize("smoke", [False, True])
def test_fashion_profile_loads_and_validates(smoke, tmp_path):
    from flowlib.config import profile_teachers

    params = parse(yaml.safe_load((ROOT / "profiles" / "fashion.yaml").read_text()), smoke=smoke, smoke_dir=tmp_path)
    tp = params.teacher("fashion")
    assert tp.dataset == "fashion" and tp.model.arch == "mlp" and params.profile == "fashion"
    assert profile_teachers("fashion") == ["fashion"] and params.combos.teachers == ["fashion"]


def test_a_rule_the_smoke_overrides_break_elsewhere_is_reported():
    raw = copy.deepcopy(DEFAULT)
    raw["smoke"]["flowturbo"]["latency_batches"] = [1]  # the plain file's ratio_batch 8 is no longer among them
    with pytest.raises(ConfigError, match=r"flowturbo.ratio_batch: 8 → one of flowturbo.latency_batches \[1\] "
                                          r"\(with the smoke overrides applied\)"):
        parse(raw)

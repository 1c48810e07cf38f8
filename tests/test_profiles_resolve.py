"""Every profile resolves against dvc.yaml, as `python -m flowlib.config use NAME && dvc dag` does on a clone: DVC's own
parser expands each stage's `foreach` and `${...}` from the profile, and every `params:` key a stage lists exists in it
(a profile that lacks one would fail `dvc repro` with "missing params")."""
import shutil
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"default": ROOT / "params.yaml", **{p.stem: p for p in sorted((ROOT / "profiles").glob("*.yaml"))}}


def has_key(tree: dict, dotted: str) -> bool:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def resolve(profile: Path, where: Path) -> list:
    """The stages DVC resolves from dvc.yaml with `profile` as params.yaml, in a bare DVC repository at `where`."""
    shutil.copy(ROOT / "dvc.yaml", where / "dvc.yaml")
    shutil.copy(profile, where / "params.yaml")
    Repo.init(str(where), no_scm=True)
    with Repo(str(where)) as repo:
        return list(repo.index.stages)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_resolves_against_dvc_yaml(name, tmp_path):
    stages = resolve(PROFILES[name], tmp_path)
    raw = yaml.safe_load(PROFILES[name].read_text())
    teachers = set(raw["teachers"])
    names = {s.name for s in stages}
    assert {"data", "report"} <= names and {f"teacher@{t}" for t in teachers} <= names
    missing = [(stage.addressing, key) for stage in stages for dep in stage.deps if hasattr(dep, "params")
               for key in dep.params if not has_key(raw, key)]
    assert not missing, f"profile {name}: stages list params it does not set: {missing}"


def test_a_missing_key_fails(tmp_path):
    """The check can fail: a profile without the `combos` block DVC's foreach reads does not resolve."""
    raw = yaml.safe_load(PROFILES["cifar10"].read_text())
    del raw["combos"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(raw))
    (tmp_path / "repo").mkdir()
    with pytest.raises(Exception, match="combos"):
        resolve(broken, tmp_path / "repo")

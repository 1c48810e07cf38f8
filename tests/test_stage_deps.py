"""Stage deps that cannot go stale: the flowlib code a stage runs is declared once, by its notebook's imports.

The `code` stage of dvc.yaml writes each notebook's manifest (`flowlib.stage_deps`: the sha256 of every file in the
notebook's import closure and the launcher's), and every stage depends on its notebook's manifest. These tests check
that the closure is computed from the source (every `import` and `from ... import`, transitively, package `__init__`s
included, and public names reached through `flowlib.PUBLIC`), that every stage depends on its manifest and lists no
flowlib file by hand, and that a manifest changes exactly when code its notebook runs changes.
"""
import ast
import shutil
from pathlib import Path

import pytest
import yaml

from flowlib.stage_deps import closure, imported_modules, manifest, notebook_imports, stage_code, write_manifests

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def notebook_stages() -> list[tuple[str, Path, list[str]]]:
    """(stage, notebook, deps) of every dvc.yaml stage that runs a notebook."""
    out = []
    for name, stage in DVC.items():
        body = stage.get("do", stage)
        notebook = next((w for w in body["cmd"].split() if w.endswith(".ipynb")), None)
        if notebook is not None:
            out.append((name, ROOT / notebook, [str(d) for d in body["deps"]]))
    return out


def test_the_closure_follows_imports_transitively():
    reached = closure({"flowlib.experiments.boss"})
    for module in ("flowlib/experiments/boss.py", "flowlib/claims.py", "flowlib/evaluate.py", "flowlib/__init__.py",
                   "flowlib/solvers/bellman.py", "flowlib/errors.py", "flowlib/experiments/__init__.py",
                   "flowlib/train_data.py"):
        assert Path(module) in reached, module
    assert Path("flowlib/explore.py") not in reached  # nothing BOSS runs imports the explorer


def test_the_configuration_reaches_no_method():
    """The package imports its public names on first use, so reading the config reaches no sampler or trainer."""
    reached = {p.as_posix() for p in closure({"flowlib.config"})}
    assert not [p for p in reached if p.startswith(("flowlib/solvers", "flowlib/distill", "flowlib/diffusers_bridge"))]


def test_public_names_count_as_their_modules():
    """`import flowlib` then `flowlib.ODESampler`, or `from flowlib import straighten`: the lazy package's names are
    followed to the module that defines them."""
    used = imported_modules(ast.parse("import flowlib\nflowlib.ODESampler(v, 4)"), None)
    assert Path("flowlib/solvers/samplers.py") in closure(used)
    assert "flowlib.distill.boss" in imported_modules(ast.parse("from flowlib import straighten"), None)
    assert not imported_modules(ast.parse("import flowlib"), None) - {"flowlib"}


@pytest.mark.parametrize("stage,notebook,deps", notebook_stages(), ids=[s[0] for s in notebook_stages()])
def test_every_stage_depends_on_its_notebooks_code_manifest(stage, notebook, deps):
    assert notebook.relative_to(ROOT).as_posix() in deps, f"{stage}: dvc.yaml misses its own notebook"
    assert f"artifacts/code/{notebook.stem}.txt" in deps, f"{stage}: dvc.yaml misses its code manifest"
    by_hand = [d for d in deps if d.startswith("flowlib")]
    assert not by_hand, f"{stage}: flowlib code is declared by the manifest, not by hand: {by_hand}"
    assert closure(notebook_imports(notebook)), f"{stage}: {notebook.name} imports nothing from flowlib"


def test_the_code_stage_rewrites_every_manifest_when_flowlib_or_a_notebook_changes():
    code = DVC["code"]
    assert code["cmd"] == "python -m flowlib.stage_deps artifacts/code"
    assert set(code["deps"]) == {"flowlib", "notebooks"}
    assert [next(iter(o)) if isinstance(o, dict) else o for o in code["outs"]] == ["artifacts/code"]


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "flowlib", tmp_path / "flowlib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return tmp_path


def test_a_manifest_changes_exactly_when_code_its_notebook_runs_changes(tmp_path):
    root = _copy(tmp_path)
    boss = root / "notebooks" / "02_boss.ipynb"
    written = write_manifests(root / "artifacts" / "code", root)
    assert len(written) == len(list((root / "notebooks").glob("*.ipynb")))
    before = (root / "artifacts" / "code" / "02_boss.txt").read_text()
    assert before == manifest(boss, root)
    assert [line.split()[-1] for line in before.splitlines()[1:]] == [p.as_posix() for p in stage_code(boss, root)]
    assert "flowlib/launch.py" in before   # the launcher that runs it
    with open(root / "flowlib" / "explore.py", "a") as f:   # code BOSS does not run
        f.write("\n# an edit\n")
    assert manifest(boss, root) == before
    with open(root / "flowlib" / "solvers" / "bellman.py", "a") as f:   # code BOSS runs
        f.write("\n# an edit\n")
    assert manifest(boss, root) != before

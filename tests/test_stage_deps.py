"""Stage deps that cannot go stale: every stage of dvc.yaml depends on each flowlib module its notebook really imports.

The import closure is computed from the source (every `import` and `from ... import` in the notebook's code cells and,
transitively, in the modules they reach, package `__init__`s included), so a new import in any module fails this test
until dvc.yaml covers it, and a committed result can never describe code its stage did not depend on.
"""
import ast
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "flowlib"


def module_file(name: str) -> Path | None:
    """The source file of a flowlib module name (a package's `__init__.py`), None if it is not one."""
    base = ROOT / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(tree: ast.AST, package: str | None) -> set[str]:
    """flowlib module names a parsed source imports (relative imports resolved against `package`), with their parents."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import submodule`
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1) if module_file(".".join(parts[:i]))}
    return out


def closure(roots: set[str]) -> set[Path]:
    """Every flowlib source file reached from the module names `roots`."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo += imported_modules(ast.parse(path.read_text()), package) - seen
    return {module_file(n).relative_to(ROOT) for n in seen}


def notebook_imports(notebook: Path) -> set[str]:
    code = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code")
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    return imported_modules(ast.parse(code), None)


def stages() -> list[tuple[str, Path, list[str]]]:
    """(stage, notebook, deps) of every dvc.yaml stage that runs a notebook."""
    out = []
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        body = stage.get("do", stage)
        notebook = next(w for w in body["cmd"].split() if w.endswith(".ipynb"))
        out.append((name, ROOT / notebook, [str(d) for d in body["deps"]]))
    return out


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


def test_the_closure_follows_imports_transitively():
    reached = closure({"flowlib.experiments.boss"})
    for module in ("flowlib/experiments/boss.py", "flowlib/claims.py", "flowlib/evaluate.py", "flowlib/__init__.py",
                   "flowlib/solvers/bellman.py", "flowlib/errors.py", "flowlib/experiments/__init__.py"):
        assert Path(module) in reached, module
    assert Path("flowlib/explore.py") not in reached  # nothing BOSS runs imports the explorer


def test_a_stage_run_by_the_launcher_depends_on_it():
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        body = stage.get("do", stage)
        if "flowlib.launch" in body["cmd"]:
            assert "flowlib/launch.py" in body["deps"], f"dvc.yaml stage {name!r} runs flowlib.launch without depending on it"


@pytest.mark.parametrize("stage,notebook,deps", stages(), ids=[s[0] for s in stages()])
def test_every_stage_depends_on_the_code_its_notebook_imports(stage, notebook, deps):
    assert notebook.relative_to(ROOT).as_posix() in deps, f"{stage}: dvc.yaml misses its own notebook"
    modules = closure(notebook_imports(notebook))
    assert modules, f"{stage}: {notebook.name} imports nothing from flowlib"
    missing = sorted(str(m) for m in modules if not covered(m, deps))
    assert not missing, f"dvc.yaml stage {stage!r} runs code it does not depend on; add to its deps: {missing}"

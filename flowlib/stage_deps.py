"""What code each stage runs, declared once: by the imports of its notebook.

dvc.yaml's first stage, `code`, writes one manifest per notebook, `artifacts/code/<notebook>.txt`: the sha256 of every
flowlib file the notebook runs, that is the import closure of its code cells (every `import` and, transitively, those
of the flowlib modules they reach, package `__init__`s included; a public name used as `flowlib.X` or imported with
`from flowlib import X` counts as its module, through `flowlib.PUBLIC`), and the closure of the launcher
`flowlib.launch` that runs it. Every other stage depends on its notebook's manifest instead of a list of files. The
`code` stage reruns on any change to flowlib or the notebooks (in a second), but a manifest's text, and so the stages
that read it, changes only when code its notebook runs changed. `tests/test_stage_deps.py` checks the closure and
that every stage depends on its manifest; `python -m flowlib.stage_deps NOTEBOOK` prints one manifest.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "flowlib"
LAUNCHER = "flowlib.launch"


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of a flowlib module name (a package's `__init__.py`), None if it is not one."""
    base = root / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def public_names(root: Path = ROOT) -> dict[str, str]:
    """`flowlib.PUBLIC` (public name -> module), read from the source: the package imports its names lazily."""
    tree = ast.parse((root / PACKAGE / "__init__.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "PUBLIC":
            return {name: f"{PACKAGE}.{module}" for name, module in ast.literal_eval(node.value).items()}
    return {}


def imported_modules(tree: ast.AST, package: str | None, root: Path = ROOT,
                     public: dict[str, str] | None = None) -> set[str]:
    """flowlib module names a parsed source imports (relative imports resolved against `package`), with their parents;
    `public`: `public_names(root)`, when the caller has read it already."""
    public, names = public if public is not None else public_names(root), set()
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
            if base == PACKAGE:
                names |= {public[a.name] for a in node.names if a.name in public}
        elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == PACKAGE and node.attr in public:
            names.add(public[node.attr])   # flowlib.X: the module that defines X
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1) if module_file(".".join(parts[:i]), root)}
    return out


def closure(roots: set[str], root: Path = ROOT) -> set[Path]:
    """Every flowlib source file reached from the module names `roots`, relative to `root`."""
    seen, todo, public = set(), list(roots), public_names(root)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo += imported_modules(ast.parse(path.read_text()), package, root, public) - seen
    return {module_file(n, root).relative_to(root) for n in seen}


def notebook_imports(notebook: Path, root: Path = ROOT) -> set[str]:
    """The flowlib modules a notebook's code cells import (shell and magic lines left out)."""
    cells = json.loads(notebook.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    return imported_modules(ast.parse(code), None, root)


def stage_code(notebook: Path, root: Path = ROOT) -> list[Path]:
    """The flowlib files a notebook runs: its import closure and the launcher's, sorted, relative to `root`."""
    return sorted(closure(notebook_imports(notebook, root) | {LAUNCHER}, root))


def manifest(notebook: Path, root: Path = ROOT) -> str:
    """The text of a notebook's code manifest: one `sha256  path` line per file it runs."""
    lines = [f"{hashlib.sha256((root / path).read_bytes()).hexdigest()}  {path.as_posix()}"
             for path in stage_code(notebook, root)]
    return f"# the flowlib code {notebook.name} runs (python -m flowlib.stage_deps)\n" + "\n".join(lines) + "\n"


def write_manifests(out: Path, root: Path = ROOT) -> list[Path]:
    """One manifest per notebook of `root/notebooks`, written into `out` (each atomically); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook in sorted((root / "notebooks").glob("*.ipynb")):
        path = out / f"{notebook.stem}.txt"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(manifest(notebook, root))
        os.replace(tmp, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowlib.stage_deps", description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="a notebook: print its manifest; a folder: write every notebook's")
    args = parser.parse_args(argv)
    if args.target.suffix == ".ipynb":
        print(manifest(args.target.resolve()), end="")
    else:
        print(f"{len(write_manifests(args.target))} code manifests in {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

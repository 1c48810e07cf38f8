"""Run one stage notebook under papermill, on one process or on several through torchrun (what every dvc.yaml stage
calls; `make repro NPROC=8` sets `FLOWLIB_NPROC=8`).

    python -m flowlib.launch NOTEBOOK OUTPUT [papermill options...]

With `FLOWLIB_NPROC` = N > 1 the command relaunches itself as `torchrun --standalone --nproc_per_node=N`: every rank runs
the whole notebook, so every trainer in it runs data-parallel (each rank its share of one global batch, see
`flowlib.flow.train`) and everything else runs once per rank on identical inputs. Only rank 0 writes the stage's outputs:
each other rank reads the existing artefacts through a tree of symbolic links in a private scratch folder and writes
there, and the folder is deleted when the rank ends, so no rank can overwrite or half-write what rank 0 writes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import load_params

OUTPUT_DIR_ENV = "FLOWLIB_OUTPUT_DIR"  # load_params puts artifacts/ and reports/ under it (ranks > 0: their scratch)


def nproc() -> int:
    """The processes a stage runs on (`FLOWLIB_NPROC`, default 1), or a clear error."""
    text = os.environ.get("FLOWLIB_NPROC", "1") or "1"
    if not text.isdigit() or int(text) < 1:
        raise SystemExit(f"error: FLOWLIB_NPROC (make repro NPROC=...) must be a whole number ≥ 1, got {text!r}.")
    return int(text)


def shadow_outputs(params_file: str, scratch: Path) -> None:
    """Mirror the profile's artifacts and reports folders into `scratch` as trees of symbolic links (reads see the real
    files; an atomic write replaces a link, never its target) and point `FLOWLIB_OUTPUT_DIR` there."""
    params = load_params(params_file)
    for folder in (params.artifacts, params.reports):
        target = scratch / folder.relative_to(params.output_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if folder.is_dir():
            shutil.copytree(folder, target, symlinks=True, copy_function=os.symlink)
        else:
            target.mkdir(parents=True)
    os.environ[OUTPUT_DIR_ENV] = str(scratch)


def papermill(notebook: str, output: str, options: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "papermill", notebook, output, *options])


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    notebook, output, options = args[0], args[1], args[2:]
    world = nproc()
    if world > 1 and "RANK" not in os.environ:
        return subprocess.call([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                f"--nproc_per_node={world}", "-m", "flowlib.launch", *args])
    if int(os.environ.get("RANK", "0")) == 0:
        return papermill(notebook, output, options)
    params_file = options[options.index("params_file") + 1] if "params_file" in options else "params.yaml"
    scratch = Path(tempfile.mkdtemp(prefix=f"flowlib-rank{os.environ['RANK']}-"))
    try:
        shadow_outputs(params_file, scratch)
        return papermill(notebook, str(scratch / Path(output).name), options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Test-suite settings: notebooks under nbval run in smoke mode, writing into a throw-away directory.

The nbval kernel inherits this process's environment, so setting the variables here covers both
`make test` and a bare `pytest`.

Notebook outputs are also checked here, cell by cell, for what a reader would see: no output may show an absolute
path of this machine, no figure may show as its text repr (`<Figure size ...>`: the kernels keep Jupyter's inline
backend, as in JupyterLab), and the figures a notebook reports writing (`check_figures_shown`, its last cell) must
match the images it displayed.
"""
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import matplotlib
import pytest

os.environ.setdefault("FLOWLIB_SMOKE", "1")
if "FLOWLIB_SMOKE_DIR" not in os.environ:  # our own throw-away directory: removed when the session ends
    os.environ["FLOWLIB_SMOKE_DIR"] = _OWN_SMOKE_DIR = tempfile.mkdtemp(prefix="flowlib-smoke-")
else:
    _OWN_SMOKE_DIR = None
# The test process draws headless; the nbval kernels keep Jupyter's inline backend (ipykernel picks it when MPLBACKEND
# is unset), as in JupyterLab, so a raw Figure a notebook displays must render as an image there too.
matplotlib.use("Agg")
os.environ.pop("MPLBACKEND", None)

MACHINE_PATHS = sorted({str(Path(__file__).resolve().parent), os.environ["FLOWLIB_SMOKE_DIR"], tempfile.gettempdir() + "/"})
FIGURE_REPR = re.compile(r"<Figure size \S+ with \d+ Axes>|<Axes: |<seaborn\.axisgrid\.\w+ object at ")
_IMAGES: Counter = Counter()  # notebook -> image outputs so far


def _text(output) -> str:
    """Everything readable in one nbval output: stream text, text/plain, markdown, html, tracebacks."""
    parts = [output.get("text", "")] + list(output.get("traceback", []))
    data = output.get("data", {})
    parts += [data.get(kind, "") for kind in ("text/plain", "text/markdown", "text/html")]
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    outputs = getattr(item, "test_outputs", None) or []
    notebook = str(getattr(item, "fspath", ""))
    _IMAGES[notebook] += sum("image/png" in o.get("data", {}) for o in outputs)
    for output in outputs:
        text = _text(output)
        leaked = [p for p in MACHINE_PATHS if p in text]
        if leaked:
            raise AssertionError(f"{item.name}: an output shows a path of this machine ({leaked}): "
                                 f"{text.strip()[:300]!r}. Show paths relative to the repository.")
        if FIGURE_REPR.search(text) and "image/png" not in output.get("data", {}):
            raise AssertionError(f"{item.name}: a figure is shown as its text repr ({FIGURE_REPR.search(text).group(0)}), "
                                 "not as an image: something set a non-inline matplotlib backend in the kernel.")
        written = re.search(r"(\d+) figure\(s\) written, all shown inline", text)
        if written and int(written.group(1)) != _IMAGES[notebook]:
            raise AssertionError(f"{Path(notebook).name}: {written.group(1)} figures written but "
                                 f"{_IMAGES[notebook]} image outputs displayed.")
    return result


def pytest_sessionfinish(session, exitstatus):
    """Remove the smoke directory this run made (about 40 MB of checkpoints and samples per run)."""
    if _OWN_SMOKE_DIR:
        shutil.rmtree(_OWN_SMOKE_DIR, ignore_errors=True)

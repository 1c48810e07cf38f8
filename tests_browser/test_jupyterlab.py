"""What a person sees: JupyterLab in a real (headless) Chromium, a method notebook run with "Run All Cells".

`make test-browser` runs this (Debian's `chromium`, Playwright's Python package; nothing is downloaded at run time
beyond those packages). The notebooks run in the smoke setting on a throw-away copy of the repository's notebooks and
parameters, so the working tree is never autosaved into. Asserts: every cell ran and the kernel went idle, no cell
shows an error, each figure the notebook wrote rendered as an image, and the progress bar rendered as a widget.
Screenshots go to reports/screenshots/.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "flowlib-browser-test"
NOTEBOOK = "01b_baselines"          # a method notebook: tqdm progress widget, a table and a figure
PREPARE = [("00_data", {}), ("01_teacher", {"teacher": "digits"})]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free localhost port over a copy of notebooks/ and the parameter files."""
    if not shutil.which("chromium"):
        pytest.fail("Debian's chromium is not installed: run `make test-browser` (it installs it with apt-get).")
    work = tmp_path_factory.mktemp("lab")
    for name in ("params.yaml", "dvc.yaml", "params.schema.json"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    env = {**os.environ, "FLOWLIB_SMOKE": "1", "FLOWLIB_SMOKE_DIR": str(work / "smoke"), "MPLBACKEND": "Agg",
           "JUPYTERLAB_SETTINGS_DIR": str(ROOT / ".jupyter/lab/user-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"), "JUPYTER_CONFIG_DIR": str(work / "config")}
    for name, parameters in PREPARE:  # the artefacts the method notebook reads, made headless first
        args = [a for k, v in parameters.items() for a in ("-p", k, v)]
        subprocess.run([str(BIN / "papermill"), f"notebooks/{name}.ipynb", str(work / f"{name}.out.ipynb"), *args,
                        "--cwd", "notebooks"], cwd=work, env=env, check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen([str(BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                               f"--ServerApp.port={port}", f"--IdentityProvider.token={TOKEN}",
                               f"--ServerApp.root_dir={work}", "--allow-root"], cwd=work, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(work / "lab.log", "w"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api?token={TOKEN}", timeout=1)
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"JupyterLab did not start within 60 s; its log: {(work / 'lab.log').read_text()[-2000:]}")
    yield url
    server.terminate()
    server.wait(timeout=30)


def test_method_notebook_runs_and_shows_its_figures_and_progress(lab):
    from playwright.sync_api import sync_playwright

    shots = ROOT / "reports" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{lab}/lab/tree/notebooks/{NOTEBOOK}.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        idle = ".jp-Notebook-ExecutionIndicator[data-status='idle']"
        page.wait_for_selector(idle, timeout=60_000)  # the kernel has started
        time.sleep(2)
        page.locator(".jp-Notebook").first.click()  # focus the notebook, then Run > Run All Cells
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        code_cells = page.locator(".jp-Notebook .jp-CodeCell")
        deadline = time.time() + 240
        while time.time() < deadline:  # every code cell has an execution count, none is pending
            prompts = code_cells.locator(".jp-InputArea-prompt").all_inner_texts()
            if prompts and all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in prompts):
                break
            time.sleep(1)
        else:
            page.screenshot(path=str(shots / f"{NOTEBOOK}-timeout.png"))
            pytest.fail(f"Not every cell ran within 240 s: prompts {prompts}")
        page.wait_for_selector(idle, timeout=60_000)
        outputs = page.locator(".jp-OutputArea-output")
        text = "\n".join(outputs.all_inner_texts())
        assert "Traceback" not in text and not re.search(r"^\w*(Error|Exception)\b", text, re.M), text[-2000:]
        written = int(re.search(r"(\d+) figure\(s\) written, all shown inline", text).group(1))
        images = page.locator(".jp-OutputArea-output img")
        assert written >= 1 and images.count() == written, (written, images.count())
        assert page.locator(".widget-progress, .jupyter-widgets.widget-hprogress").count() >= 1, "no progress widget"
        images.first.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"{NOTEBOOK}-jupyterlab.png"))
        browser.close()

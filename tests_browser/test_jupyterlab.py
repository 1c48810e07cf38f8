"""What a person sees: JupyterLab in a real (headless) Chromium, each notebook a reader is invited to open run with
"Run All Cells".

`make test-browser` runs this (Debian's `chromium`, Playwright's Python package; nothing is downloaded at run time
beyond those packages). The notebooks run in the smoke setting on a throw-away copy of the repository's notebooks and
parameters, so the working tree is never autosaved into; the artefacts they read are made headless first (papermill).
The kernels keep Jupyter's own inline matplotlib backend (MPLBACKEND is unset), as in a person's JupyterLab.

For every notebook: every cell ran and the kernel went idle, no cell shows an error, no output is a figure's text repr
(`<Figure size ...>`), and every figure the notebook wrote rendered as an image. The explorer is also driven: changing
the NFE, the method and the teacher each replaces the image, and a combination with no cached artefact shows its fix.
Screenshots go to reports/screenshots/.
"""
from __future__ import annotations

import json
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
SHOTS = ROOT / "reports" / "screenshots"
# the artefacts the opened notebooks read, made headless first: every stage of the digits teacher, and the exact ring
# teacher for the explorer's teacher switch
PREPARE = [("00_data", {}), ("01_teacher", {"teacher": "digits"}), ("01_teacher", {"teacher": "ring"}),
           ("01b_baselines", {}), ("02_boss", {}), ("03_bespoke", {}), ("04_flowturbo", {}), ("05_fgm", {}),
           ("05b_combos", {})]
# what a reader opens: the baselines, a method notebook, the report, your own flow, diffusers and the explorer
OPENED = ["01b_baselines", "04_flowturbo", "06_report", "07_your_flow", "08_diffusers", "explore"]
PROGRESS = {"01b_baselines", "04_flowturbo"}  # notebooks whose training/evaluation shows a tqdm widget
FIGURE_REPR = re.compile(r"<Figure size [^>]*>|<Axes: [^>]*>|<seaborn\.axisgrid\.\w+ object at [^>]*>")
IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle']"


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
    settings = work / "settings"  # the repository's settings, and every cell rendered (no windowing): the test reads
    shutil.copytree(ROOT / ".jupyter/lab/user-settings", settings)  # every prompt and output, not just those in view
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernels choose Jupyter's inline backend
    env |= {"FLOWLIB_SMOKE": "1", "FLOWLIB_SMOKE_DIR": str(work / "smoke"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"), "JUPYTER_CONFIG_DIR": str(work / "config")}
    for i, (name, parameters) in enumerate(PREPARE):
        args = [a for k, v in parameters.items() for a in ("-p", k, v)]
        run = subprocess.run([str(BIN / "papermill"), f"notebooks/{name}.ipynb", str(work / f"prepare-{i}-{name}.ipynb"),
                              *args, "--cwd", "notebooks"], cwd=work, env=env, capture_output=True, text=True)
        if run.returncode:
            pytest.fail(f"preparing {name} {parameters} headless failed:\n{run.stderr[-3000:]}")
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


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _shutdown_kernels(url: str) -> None:
    """Stop every kernel the last notebook started, so each notebook runs alone (2 cores)."""
    with urllib.request.urlopen(f"{url}/api/kernels?token={TOKEN}", timeout=10) as answer:
        kernels = json.load(answer)
    for kernel in kernels:
        request = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(request, timeout=30)


def _run_all(page, url: str, notebook: str, timeout: float = 300):
    """Open `notebook` in its own workspace, Run All Cells, and wait until every cell has run and the kernel is idle."""
    page.goto(f"{url}/lab/workspaces/{notebook}/tree/notebooks/{notebook}.ipynb?reset&token={TOKEN}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(IDLE, timeout=60_000)  # the kernel has started
    time.sleep(2)
    page.locator(".jp-Notebook").first.click()  # focus the notebook, then Run > Run All Cells
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt")
    deadline = time.time() + timeout
    texts: list[str] = []
    while time.time() < deadline:  # every code cell has an execution count, none is pending
        texts = prompts.all_inner_texts()
        if texts and all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in texts):
            break
        time.sleep(1)
    else:
        page.screenshot(path=str(SHOTS / f"{notebook}-timeout.png"))
        pytest.fail(f"{notebook}: not every cell ran within {timeout:.0f} s: prompts {texts}")
    page.wait_for_selector(IDLE, timeout=60_000)


def _check_outputs(page, notebook: str) -> str:
    """No error, no figure shown as text; every figure the notebook reports writing is an image. Returns the text."""
    text = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    shown = [e for e in errors.all_inner_texts() if "Traceback" in e or "Error" in e]
    assert "Traceback" not in text and not shown, (shown or [text[-2000:]])[0][-2000:]  # an error a user did not ask for

    reprs = FIGURE_REPR.findall(text)
    assert not reprs, f"{notebook}: figures shown as text, not images: {reprs[:3]}"
    written = re.search(r"(\d+) figure\(s\) written, all shown inline", text)
    images = page.locator(".jp-OutputArea-output img")
    if written:
        assert int(written.group(1)) >= 1 and images.count() == int(written.group(1)), (written.group(0), images.count())
    return text


@pytest.mark.parametrize("notebook", [n for n in OPENED if n != "explore"])
def test_notebook_runs_and_shows_its_figures(lab, browser, notebook):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        _run_all(page, lab, notebook)
        _check_outputs(page, notebook)
        assert page.locator(".jp-OutputArea-output img").count() >= 1, f"{notebook}: no image at all"
        if notebook in PROGRESS:
            assert page.locator(".widget-progress, .jupyter-widgets.widget-hprogress").count() >= 1, "no progress widget"
        page.locator(".jp-OutputArea-output img").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"{notebook}-jupyterlab.png"))
    finally:
        page.close()
        _shutdown_kernels(lab)


def _explorer_image(page, previous: str | None, timeout: float = 90) -> str:
    """The explorer's current image (its data URL), once it differs from `previous`; fails if none appears."""
    image = page.locator(".widget-output img")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if image.count() == 1:
            src = image.first.get_attribute("src") or ""
            if src.startswith("data:image/png") and src != previous:
                return src
        time.sleep(0.5)
    shown = page.locator(".widget-output").first.inner_text()
    pytest.fail(f"the explorer's image did not change within {timeout:.0f} s; it shows: {shown[:500]!r}")


def _choose(page, label: str, option: str) -> None:
    """Set the ipywidgets dropdown whose label is `label`."""
    dropdown = page.locator(".widget-dropdown").filter(has=page.locator("label.widget-label", has_text=re.compile(
        rf"^{re.escape(label)}$")))
    dropdown.locator("select").select_option(label=option)


def test_explorer_shows_an_image_that_every_control_replaces(lab, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    try:
        _run_all(page, lab, "explore")
        _check_outputs(page, "explore")
        # the widget's figure and the two fixed views below it
        assert page.locator(".jp-OutputArea-output img").count() >= 3, "the explorer or its fixed views show no image"
        first = _explorer_image(page, None)  # digits, teacher, 4 NFE Euler
        _choose(page, "NFE", "8")
        after_nfe = _explorer_image(page, first)
        _choose(page, "method", "flowturbo")
        after_method = _explorer_image(page, after_nfe)
        # no refiner need be cached for the ring: its H/P schedules call the teacher alone and still draw (the
        # explorer offers R schedules only where a refiner is cached; the error for one is tested headless)
        _choose(page, "teacher", "ring")
        ring_turbo = _explorer_image(page, after_method)
        output = page.locator(".widget-output").first
        assert "Error" not in output.inner_text(), output.inner_text()[:500]
        _choose(page, "method", "teacher")
        ring = _explorer_image(page, ring_turbo)  # the ring teacher's 8-step Euler, with its trajectories
        _choose(page, "teacher", "digits")
        after_teacher = _explorer_image(page, ring)
        assert after_teacher == after_nfe  # back to digits, teacher, 8 NFE: the same picture (fixed noise)
        _choose(page, "teacher", "ring")
        _explorer_image(page, after_teacher)
        output.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "explore-jupyterlab.png"))
    finally:
        page.close()
        _shutdown_kernels(lab)

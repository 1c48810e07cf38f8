"""The README is true: every command it shows (its shell blocks and the commands in its code spans) is either run here,
in a clean copy of the repository (the tracked files only, as a fresh clone has them), or named as a long one with the
reason it is not (`pytest -rs` lists them; they run in CI or are the pipeline itself).

`make your-flow` runs here too, on a clean copy (it trains the digits teacher through DVC first: minutes), so it is
marked `profile_smoke`: `make test-profiles` runs it, and CI runs that after `make test`.

A command added to the README without an entry below fails `test_every_readme_command_is_run_or_named`. The Python
blocks are run by `tests/test_api.py`.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROFILES = sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml"))
COMMAND_WORDS = ("make", "python -m", ".venv/bin/", "dvc ", "pytest", "git ", "source ", "CI=", "FLOWLIB_DEVICE=")

# Long commands: the reason each is not run by `make test` (the two README commands and CI run the pipeline).
LONG = {
    "make repro": "the default pipeline itself (its measured time is in the README: The two commands)",
    "make test": "this test suite",
    "make test-browser": "CI runs it after make test (JupyterLab in Chromium, minutes)",
    "make test-profiles": "CI runs it after make test (the fashion and cifar10 smokes and make your-flow, minutes)",
    "pytest -m profile_smoke tests": "what make test-profiles runs (CI)",
    "make repro PROFILE=fashion": "the fashion pipeline (needs Fashion-MNIST; its smoke runs in make test-profiles)",
    "make repro PROFILE=cifar10": "the cifar10 pipeline (needs CIFAR-10 and Inception; its smoke runs in make test-profiles)",
    "make repro NPROC=8": "needs 8 GPUs (the torchrun launch is tested on CPU with gloo: tests/test_ddp.py, test_launch.py)",
    "FLOWLIB_DEVICE=cpu make repro": "the default pipeline on the CPU (what make repro does on a machine without a GPU)",
    "make your-flow": "trains the digits teacher first on a clean clone (dvc repro teacher@digits, minutes): "
                      "run by test_make_your_flow_on_a_clean_clone in make test-profiles (CI)",
    ".venv/bin/papermill notebooks/01_teacher.ipynb out.ipynb -p teacher moons --cwd notebooks":
        "trains a teacher (minutes at full size); the same notebook runs under nbval in make test",
    "dvc exp run -S 'teachers.moons.train.steps=8000'": "retrains the moons stages after make repro (even --dry needs "
        "make repro's artefacts: DVC hashes each stage's deps); which stages it reruns is checked against DVC's own "
        "graph by test_dvc_section_names_the_stages_a_param_reruns",
    "dvc exp run -S ...": "as above",
    "dvc repro": "the pipeline (after make repro it runs nothing; on a clean clone it is make repro's work, and --dry "
                 "stops at the first stage whose deps a run makes)",
    "dvc add data": "needs CIFAR-10 and the Inception weights under data/ (the cifar10 smoke makes stand-ins in a test)",
    "python -m flowlib.launch": "what every stage calls; run by make repro and tests/test_launch.py",
    "source .venv/bin/activate": "puts .venv/bin on PATH, as every command here is run",
}


def readme_commands() -> set[str]:
    """The commands the README shows: every line of its shell blocks and every code span that starts like a command."""
    text = (ROOT / "README.md").read_text()
    found = set()
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
        for line in block.splitlines():
            for part in line.split("#", 1)[0].split(";"):
                if part.strip():
                    found.add(re.sub(r"\s+", " ", part.strip()))
    for span in re.findall(r"`([^`\n]+)`", text):
        if span.strip().startswith(COMMAND_WORDS):
            found.add(span.strip())
    return found


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh clone, shared by the quick commands."""
    return fresh_clone(tmp_path_factory)


def fresh_clone(tmp_path_factory) -> Path:
    """The tracked files of this checkout in a new git repository: what a fresh clone has (no artefacts, no .venv)."""
    dest = tmp_path_factory.mktemp("clone") / "flowlib"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git = ["git", "-c", "user.email=docs@flowlib", "-c", "user.name=docs"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "clean clone"]):
        subprocess.run(git + args, cwd=dest, check=True)
    return dest


def sh(clone: Path, command: str, ok: tuple[int, ...] = (0,), timeout: int = 120) -> str:
    """Run `command` in the clone with .venv's tools on PATH, as the README's readers do; returns its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLIB_SMOKE")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=timeout)
    out = done.stdout + done.stderr
    assert done.returncode in ok, f"`{command}` exited {done.returncode}:\n{out[-3000:]}"
    return out


def clean_tree(clone: Path) -> None:
    """Whatever a documented command writes lies under an ignored path."""
    assert sh(clone, "git status --porcelain").strip() == ""


def nothing_untracked(clone: Path) -> None:
    """A command that reruns committed results may change them, but leaves no new file outside an ignored path."""
    new = [line for line in sh(clone, "git status --porcelain --untracked-files=all").splitlines() if line.startswith("??")]
    assert not new, f"files a documented command left untracked and not ignored: {new}"


def make(clone: Path, target: str, timeout: int = 120) -> str:
    """`make TARGET` in the clone, on this environment's .venv (already installed: `-o` skips the install rule)."""
    return sh(clone, f"make -o {BIN.parent}/.installed {target} VENV={BIN.parent}", timeout=timeout)


# The quick commands: each README command (as written there) and how it is run and checked here.
def _config_check(clone):
    """`config check [FILE]` on params.yaml (every profile file is checked in test_config.py)."""
    assert "OK" in sh(clone, "python -m flowlib.config check")


def _config_use(clone):
    """`config use NAME` then `dvc dag`, for every profile, and back to the default with either `git checkout` form
    (`config use` refusing an edited params.yaml is tested in test_nothing_silent.py)."""
    for name in PROFILES:
        assert f"profile '{name}'" in sh(clone, f"python -m flowlib.config use {name} && dvc dag")
    sh(clone, "git checkout params.yaml")
    clean_tree(clone)
    sh(clone, "python -m flowlib.config use fashion && git checkout HEAD -- params.yaml dvc.lock reports ':!reports/fashion'")
    clean_tree(clone)


def _config_schema(clone):
    sh(clone, "python -m flowlib.config schema > params.schema.json")
    clean_tree(clone)   # the committed schema is the current one


def _data_check(clone):
    out = sh(clone, "python -m flowlib.data check fashion", ok=(0, 2))
    assert "train (60000, 1, 28, 28)" in out or "apt-get install dataset-fashion-mnist" in out  # where it is, or how to get it


def _dvc_metrics(clone):
    assert "reports/metrics/baselines-digits.json" in sh(clone, "dvc metrics show")


def _dvc_plots(clone):
    assert "dvc_plots/index.html" in sh(clone, "dvc plots show")
    assert "dvc_plots/index.html" in sh(clone, "dvc plots diff main")
    clean_tree(clone)


def _make_lab(clone):
    """`make lab` (as root too) starts JupyterLab, which answers on its port; then it is stopped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    lab = subprocess.Popen(["make", "-o", f"{BIN.parent}/.installed", "lab", f"VENV={BIN.parent}",
                            f"LAB_ARGS=--port={port} --no-browser --ServerApp.token=''"], cwd=clone, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and lab.poll() is None and answer is None:
            try:
                answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=2).status
            except OSError:
                time.sleep(0.5)
        log = "" if lab.poll() is None else lab.stdout.read().decode(errors="replace")
        assert answer == 200, f"make lab did not answer on port {port}:\n{log[-2000:]}"
    finally:
        os.killpg(lab.pid, 15)
        lab.wait(timeout=30)


def _make_diffusers(clone):
    """`make diffusers` runs notebooks/08_diffusers.ipynb with papermill (full size; about 20 s)."""
    make(clone, "diffusers")
    assert (clone / "reports/notebooks/08_diffusers.ipynb").is_file()
    nothing_untracked(clone)


def _stage_deps(clone):
    """One notebook's code manifest: a sha256 per flowlib file it runs, the launcher's included; writes nothing (the
    clone is shared: other commands may have rerun committed figures before)."""
    before = sh(clone, "git status --porcelain --untracked-files=all")
    out = sh(clone, "python -m flowlib.stage_deps notebooks/02_boss.ipynb")
    files = [line.split()[-1] for line in out.splitlines() if not line.startswith("#")]
    assert {"flowlib/solvers/bellman.py", "flowlib/launch.py"} <= set(files) and "flowlib/explore.py" not in files
    assert sh(clone, "git status --porcelain --untracked-files=all") == before


QUICK = {
    "python -m flowlib.config check [FILE]": _config_check,
    "python -m flowlib.config use NAME": _config_use,
    "git checkout params.yaml": _config_use,
    "git checkout HEAD -- params.yaml dvc.lock reports ':!reports/fashion'": _config_use,
    "python -m flowlib.config schema > params.schema.json": _config_schema,
    "python -m flowlib.data check fashion": _data_check,
    "python -m flowlib.data check NAME": _data_check,
    "dvc metrics show": _dvc_metrics,
    "dvc plots show": _dvc_plots,
    "dvc plots diff main": _dvc_plots,
    "dvc plots diff <rev>": _dvc_plots,
    "make lab": _make_lab,
    "make diffusers": _make_diffusers,
    "python -m flowlib.stage_deps notebooks/02_boss.ipynb": _stage_deps,
}


def test_every_readme_command_is_run_or_named():
    """A new command in the README must be added to QUICK (run here) or LONG (with its reason)."""
    unknown = sorted(readme_commands() - QUICK.keys() - LONG.keys())
    assert not unknown, f"README commands neither run nor named as long in {__name__}: {unknown}"
    stale = sorted((QUICK.keys() | LONG.keys()) - readme_commands())
    assert not stale, f"entries for commands the README no longer shows: {stale}"


@pytest.mark.parametrize("check", sorted({fn.__name__: fn for fn in QUICK.values()}.values(), key=lambda f: f.__name__),
                         ids=lambda fn: fn.__name__.strip("_"))
def test_quick_readme_commands_work_on_a_clean_clone(check, clone):
    check(clone)


@pytest.mark.parametrize("command", sorted(LONG))
def test_long_readme_commands_are_named(command):
    pytest.skip(f"long README command `{command}`: {LONG[command]}")


@pytest.mark.profile_smoke
def test_make_your_flow_on_a_clean_clone(tmp_path_factory):
    """`make your-flow` on a fresh clone: DVC brings up the digits teacher it needs, then 07_your_flow runs under
    papermill at full size (minutes: make test-profiles, CI)."""
    where = fresh_clone(tmp_path_factory)
    out = make(where, "your-flow", timeout=900)
    assert "Running stage 'teacher@digits'" in out
    assert (where / "reports/notebooks/07_your_flow.ipynb").is_file()
    nothing_untracked(where)


# The DVC section's claim about `dvc exp run -S 'teachers.moons.train.steps=8000'`, checked against DVC's own graph.
EXP_PARAM = "teachers.moons.train.steps"
README_RERUNS = {"teacher@moons", "baselines@moons", "boss@moons", "bespoke@moons", "flowturbo@moons", "fgm@moons",
                 "combos@moons", "report"}


def test_dvc_section_names_the_stages_a_param_reruns():
    """The stages whose params hold `teachers.moons.train.steps`, and every stage downstream of them, are exactly the
    ones the README's DVC section says `dvc exp run -S` reruns (every moons stage and the report; digits and ring stay
    cached)."""
    import networkx as nx
    from dvc.repo import Repo

    text = (ROOT / "README.md").read_text()
    assert "every moons stage (teacher, baselines, the four" in text and "digits and ring stay cached" in text
    with Repo(str(ROOT)) as repo:
        graph = repo.index.graph
        touched = [stage for stage in graph for dep in stage.deps if type(dep).__name__ == "ParamsDependency"
                   and any(EXP_PARAM == p or EXP_PARAM.startswith(p + ".") for p in dep.params)]
        reruns = {s.addressing for s in touched} | {s.addressing for t in touched for s in nx.ancestors(graph, t)}
    assert reruns == README_RERUNS
